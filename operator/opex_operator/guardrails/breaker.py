"""The circuit breaker on automated changes (pure): may one more change run without a person now?

Operator policy ``limits.automatedChangesPerHour`` (per namespace, and per environment within it:
``Policy.change_limits``) caps the mutating steps and applies a namespace runs in ``Auto`` in any
sliding hour. Past a limit every ``Auto`` there waits for a person, as ``Manual``, until enough
changes leave the hour or a person resets the count (``opex breaker reset NAMESPACE``); steps a
person approved are never counted and never held. This is the blast-radius limit of Shoreline's
circuit breakers: a loop that keeps "fixing" something stops after a few tries instead of
changing production all night.

The count of one namespace is a :class:`Window`, persisted by ``guardrails.breaker_store`` (so
it survives restarts and is shared by every replica and shard); :func:`admit` decides and, when
the change may run, returns the window with it recorded. A change is identified by a stable id
(an Incident step, a DriftCheck plan checksum): asked again, after a restart or a retried pass,
it counts once.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace
from enum import StrEnum

from ..environments import canonical, same

WINDOW = dt.timedelta(hours=1)
MAX_RECORDS = 1000   # changes kept per namespace: at least the largest limit the policy accepts
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ChangeLimit:
    """At most ``per_hour`` automated changes in any hour, counted over the namespace's changes
    (``environment`` None) or over one environment's; ``source`` names the policy rule."""

    per_hour: int
    environment: str | None
    source: str

    def scope(self, namespace: str) -> str:
        return f"namespace {namespace}" + (f", environment {self.environment}" if self.environment else "")


@dataclass(frozen=True)
class AutomatedChange:
    """One change made without a person: its id, its environment (canonical: ``prod`` is
    ``production``) and when it was admitted."""

    id: str
    environment: str
    time: dt.datetime


@dataclass(frozen=True)
class Window:
    """What a namespace's breaker remembers: the automated changes of the last hour (oldest first),
    and the last reset (when, by whom)."""

    changes: tuple[AutomatedChange, ...] = ()
    reset_at: dt.datetime | None = None
    reset_by: str | None = None

    def current(self, now: dt.datetime) -> "Window":
        """The window as of ``now``: changes older than an hour are forgotten."""
        since = now - WINDOW
        return replace(self, changes=tuple(c for c in self.changes if c.time > since))

    def count(self, environment: str | None = None) -> int:
        """Changes recorded (of ``environment`` only, any spelling of it, when given)."""
        return sum(1 for c in self.changes if environment is None or same(c.environment, environment))

    def to_json(self) -> str:
        """The persisted form (``from_json`` reads it back)."""
        return json.dumps({"version": FORMAT_VERSION, "resetAt": _stamp(self.reset_at), "resetBy": self.reset_by,
                           "changes": [{"id": c.id, "environment": c.environment, "time": _stamp(c.time)}
                                       for c in self.changes[-MAX_RECORDS:]]}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> "Window":
        """The window persisted in ``text`` (empty when None or ''). Raises ValueError on anything else."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            if data.get("version") != FORMAT_VERSION:
                raise ValueError(f"format version {data.get('version')!r}, expected {FORMAT_VERSION}")
            changes = tuple(AutomatedChange(str(c["id"]), str(c.get("environment") or ""), _time(c["time"]))
                            for c in data.get("changes") or [])
            return cls(tuple(sorted(changes, key=lambda c: c.time)),
                       _time(data["resetAt"]) if data.get("resetAt") else None, data.get("resetBy"))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"unreadable circuit breaker record: {err}") from None


def _stamp(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") if value else None


def _time(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


class Verdict(StrEnum):
    ADMITTED = "Admitted"                 # it may run; the window now counts it
    ALREADY_COUNTED = "AlreadyCounted"    # admitted before (a resumed step, a retried pass): it may run
    HELD = "Held"                         # a limit is reached: it waits for a person (CircuitOpen)


@dataclass(frozen=True)
class Admission:
    """The breaker's answer for one change: the verdict, the window to persist (changed only when
    ``ADMITTED``), a message for a condition or an Event, the limit that held it and when the
    hour frees a place (None: only a reset or a person's approval lets it run)."""

    verdict: Verdict
    window: Window
    message: str
    limit: ChangeLimit | None = None
    reopens_at: dt.datetime | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict != Verdict.HELD


def admit(window: Window, namespace: str, change_id: str, environment: str | None, limits: list[ChangeLimit],
          now: dt.datetime) -> Admission:
    """May the automated change ``change_id`` of ``environment`` in ``namespace`` run ``now``?

    ``window`` is the namespace's persisted window, ``limits`` the policy's
    (``Policy.change_limits``). Each limit counts the changes of the last hour in its scope (an
    environment's limit applies to that environment's changes only); the change runs when every
    count is below its limit, and is then recorded in the returned window.
    """
    window = window.current(now)
    if any(c.id == change_id for c in window.changes):
        return Admission(Verdict.ALREADY_COUNTED, window, f"automated change {change_id} was counted already")
    limits = [lim for lim in limits if lim.environment is None or same(lim.environment, environment)]
    held = [(limit, window.count(limit.environment)) for limit in limits
            if window.count(limit.environment) >= limit.per_hour]
    if not held:
        counted = replace(window, changes=window.changes + (AutomatedChange(change_id, canonical(environment), now),))
        summary = ", ".join(f"{counted.count(lim.environment)} of {lim.per_hour} in {lim.scope(namespace)}"
                            for lim in limits)
        return Admission(Verdict.ADMITTED, counted, f"automated change {change_id} admitted ({summary or 'no limit'})")
    reopens = [_reopens_at(window, limit, count) for limit, count in held]
    reopens_at = None if None in reopens else max(r for r in reopens if r is not None)
    limit, count = held[0]
    when = (f"until {reopens_at:%Y-%m-%d %H:%M:%S} UTC, when the hour frees a place" if reopens_at else
            "until a person approves it")
    reset = f" (reset at {window.reset_at:%H:%M:%S} UTC by {window.reset_by or 'someone'})" if window.reset_at else ""
    message = (f"circuit open: {count} automated change(s) in {limit.scope(namespace)} in the last hour{reset}, "
               f"the limit of {limit.source} is {limit.per_hour} (automatedChangesPerHour); Auto waits for a person "
               f"{when}, or for `opex breaker reset {namespace}`")
    return Admission(Verdict.HELD, window, message, limit, reopens_at)


def _reopens_at(window: Window, limit: ChangeLimit, count: int) -> dt.datetime | None:
    """When enough of the changes counted against ``limit`` leave the hour for one more to run."""
    if limit.per_hour == 0:
        return None
    times = sorted(c.time for c in window.changes if limit.environment is None or same(c.environment, limit.environment))
    return times[count - limit.per_hour] + WINDOW


def reset(window: Window, by: str, now: dt.datetime) -> Window:
    """The window after a person's reset: no change counted, the reset recorded (``by`` says who)."""
    return Window((), now, by)
