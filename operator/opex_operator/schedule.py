"""CronJob semantics for DriftCheck schedules (Kubernetes CronJob controller, "schedule" and
"startingDeadlineSeconds"), with croniter for the cron arithmetic.

* Slots come from every cron expression of the list, in the DriftCheck's IANA time zone.
* The most recent slot after ``lastScheduleTime`` (or the creation time) and not after now is
  due; only that one runs, however many were missed while the operator was down.
* With ``startingDeadlineSeconds``, a slot later than that is skipped (reported, not run).
* ``lastScheduleTime`` is recorded before a run starts, so a restart never runs a slot twice.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, croniter

MAX_LOOKBACK_SLOTS = 10_000  # like CronJob's cap on missed start times it inspects


def invalid(schedules: list[str], time_zone: str) -> str | None:
    """None when every expression and the zone are valid; else what is wrong and how to fix it."""
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"spec.timeZone {time_zone!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)"
    for i, expr in enumerate(schedules):
        try:
            croniter(expr)
        except (CroniterBadCronError, ValueError, KeyError) as err:
            return f"spec.schedule[{i}] {expr!r} is not a valid cron expression: {err}"
    return None


def next_slot(schedules: list[str], time_zone: str, after: dt.datetime) -> dt.datetime:
    """The first slot strictly after ``after`` across all schedules, in UTC."""
    tz = ZoneInfo(time_zone)
    local = after.astimezone(tz)
    return min(croniter(expr, local).get_next(dt.datetime) for expr in schedules).astimezone(dt.timezone.utc)


def latest_slot(schedules: list[str], time_zone: str, after: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """The most recent slot in (``after``, ``now``], or None."""
    latest = None
    tz = ZoneInfo(time_zone)
    for expr in schedules:
        it = croniter(expr, after.astimezone(tz))
        for _ in range(MAX_LOOKBACK_SLOTS):
            slot = it.get_next(dt.datetime).astimezone(dt.timezone.utc)
            if slot > now:
                break
            latest = slot if latest is None or slot > latest else latest
    return latest


@dataclass(frozen=True)
class Due:
    slot: dt.datetime | None          # the slot to run now, if any
    skipped: dt.datetime | None       # a slot missed beyond startingDeadlineSeconds
    next_time: dt.datetime            # the next slot after now


def due(schedules: list[str], time_zone: str, last_schedule: dt.datetime | None, created: dt.datetime,
        now: dt.datetime, starting_deadline: int | None) -> Due:
    """What the schedule asks for at ``now`` (see the module docstring)."""
    slot = latest_slot(schedules, time_zone, last_schedule or created, now)
    nxt = next_slot(schedules, time_zone, now)
    if slot is not None and starting_deadline is not None and (now - slot).total_seconds() > starting_deadline:
        return Due(None, slot, nxt)
    return Due(slot, None, nxt)
