"""Write each event of an SQS message to its Incident, and say whether the message may be deleted.

A message may be deleted (:attr:`Verdict.done`) only when every event in it is written to its
Incident, found there already (a redelivery) or passed over (a build that succeeded). Otherwise it
stays in the queue and comes back after its visibility timeout:

* an event that can never map (not JSON, not an event, an unknown detail-type, no incident type or
  target for it, a spec the API server refuses) is *refused*: counted by reason, logged in one
  line, and left for the queue's redrive policy, which moves it to the dead-letter queue after
  ``maxReceiveCount`` receives;
* an event that cannot be written *now* (the API server unavailable, a pipeline's build whose
  execution CodePipeline does not show yet or could not be read) is *deferred*: the next receive
  tries again. A pipeline's build is looked up on its first :data:`LOOKUP_RECEIVES` receives (at
  most the queue's ``maxReceiveCount``); on the last of them it opens an Incident of its own, so it
  never reaches the dead-letter queue while it could map.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Callable

from .. import metrics
from ..api.common import now as utcnow
from ..errors import AwsError, KubeError
from ..intake import IncidentWriter, Outcome, Refusal, Unavailable
from ..ports import BuildLookup, IncidentStore
from .envelope import AwsEvent, EnvelopeError, events_in
from .kinds import SOURCES
from .trail import CLOUDTRAIL_CALL, TrailTrigger
from .mapping import EventRules, Ignored, Lookup, Mapped, Refused, map_event

log = logging.getLogger(__name__)

LOOKUP_RECEIVES = 3
DEFERRED = "deferred"


@dataclass(frozen=True)
class Taken:
    """What became of one event of a message: its outcome, the Incident (``namespace/name``) and why."""

    outcome: str             # an intake.Outcome value, or "deferred"
    incident: str = ""
    reason: str = ""         # the refusal's metric label
    note: str = ""
    source: str = ""


@dataclass
class Verdict:
    """A message's events and whether the message may be deleted."""

    taken: list[Taken] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return bool(self.taken) and all(t.outcome in (Outcome.CREATED, Outcome.UPDATED, Outcome.DUPLICATE,
                                                      Outcome.IGNORED) for t in self.taken)


def _source_label(event: AwsEvent | None) -> str:
    return event.source if event is not None and event.source in SOURCES else "other"


class EventIntake:
    """Turns messages into Incidents through ``store`` (see the module docstring); ``lookups``
    answers which pipeline execution ran a build (None: never looked up, the build opens its own).
    ``default_namespace`` takes events no rule places; ``namespaces`` are the globs the operator
    watches."""

    def __init__(self, store: IncidentStore, lookups: BuildLookup | None, rules: EventRules, default_namespace: str,
                 namespaces: tuple[str, ...] = (), clock: Callable[[], dt.datetime] = utcnow,
                 trail: TrailTrigger | None = None):
        self.lookups, self.rules, self.default_namespace, self.namespaces = lookups, rules, default_namespace, namespaces
        self.writer = IncidentWriter(store, clock)
        self.trail = trail

    async def take(self, body: str, queue: str = "", receives: int = 1, last_receive: int | None = None,
                   role_key: str | None = None) -> Verdict:
        """Write the Incidents of one message ``body`` from ``queue`` on its ``receives``-th receive
        (``last_receive``: the queue's maxReceiveCount, None without a redrive policy); ``role_key``
        reads CodePipeline for a build's execution. Never raises for bad input."""
        final = receives >= min(LOOKUP_RECEIVES, last_receive or LOOKUP_RECEIVES)
        verdict = Verdict()
        for item in events_in(body):
            if isinstance(item, EnvelopeError):
                taken = Taken(Outcome.REFUSED, reason=item.reason, note=str(item), source="other")
            else:
                taken = await self._event(item, queue, final, role_key)
            verdict.taken.append(taken)
            metrics.EVENTS.labels(taken.source, str(taken.outcome)).inc()
            if taken.outcome == Outcome.REFUSED:
                metrics.EVENTS_REFUSED.labels(taken.reason).inc()
                log.warning("event refused (%s) from %s, receive %d, left for the dead-letter queue: %s", taken.reason,
                            queue or "(input)", receives, taken.note)
        return verdict

    async def _event(self, event: AwsEvent, queue: str, final: bool, role_key: str | None) -> Taken:
        source = _source_label(event)
        if event.detail_type == CLOUDTRAIL_CALL and self.trail is not None:
            try:
                outcome, note = await self.trail.take(event)
            except KubeError as err:
                return Taken(DEFERRED, note=f"the DriftChecks CloudTrail event {event.id} concerns: {err.describe()}",
                             source=source)
            return Taken(outcome, note=note, source=source)
        result = map_event(event, self.rules, self.default_namespace, self.namespaces, final=final)
        if isinstance(result, Lookup):
            try:
                execution = await self._lookup(result, role_key)
            except AwsError as err:
                return Taken(DEFERRED, note=f"which execution of {result.pipeline} ran build {result.build_id}: "
                                            f"{err}", source=source)
            if execution is None:
                return Taken(DEFERRED, note=f"CodePipeline shows no execution of {result.pipeline} that ran build "
                                            f"{result.build_id} yet", source=source)
            result = map_event(event, self.rules, self.default_namespace, self.namespaces, execution_id=execution)
        if isinstance(result, Ignored):
            return Taken(Outcome.IGNORED, note=result.why, source=source)
        if isinstance(result, Refused):
            return Taken(Outcome.REFUSED, reason=result.reason, note=result.message, source=source)
        if isinstance(result, Lookup):  # unreachable: an execution was given
            return Taken(DEFERRED, note="the build's execution is unknown", source=source)
        return await self._write(result.via(queue), source)

    async def _lookup(self, lookup: Lookup, role_key: str | None) -> str | None:
        if self.lookups is None:
            return None
        return await asyncio.to_thread(self.lookups.execution_of_build, lookup.pipeline, lookup.build_id,
                                       lookup.event.region, role_key)

    async def _write(self, m: Mapped, source: str) -> Taken:
        try:
            written = await self.writer.write(m)
        except Unavailable as err:
            return Taken(DEFERRED, f"{m.namespace}/{m.name}", note=str(err), source=source)
        except Refusal as err:
            return Taken(Outcome.REFUSED, f"{m.namespace}/{m.name}", reason="api_refused", note=str(err), source=source)
        return Taken(written.outcome, f"{m.namespace}/{m.name}", note=written.note or m.occurrence, source=source)
