"""The status writer: the one place that appends the timeline, derives Ready, writes status and
posts Events, for every kind.

``save`` is a checkpoint: it returns only after the API server has the new status, so a step
recorded as started is on record before the call it guards is made. Before each write Ready is
summarised from the kind's own conditions (``READY_FROM`` on its status model; see
``api.conditions.summarize``), so no controller sets Ready and Ready never disagrees with the
conditions and phase it summarises. Only what changed is sent (a JSON merge patch).

A pass that made no call with an effect outside the operator (an assessment reads only) may
``save(..., checkpoint=False)``: its status and Events are held in memory and go out with the
next write (the next pass's, chained at once on the same object, or :meth:`StatusWriter.flush`
when the runtime's chain ends), so an Incident reaches "waiting for approval" in one or two
writes instead of one per pass. Losing a held save (the process dies) loses only reads, which the
next pass makes again.

The timeline has an entry for each change (the last ``MAX_TIMELINE``); the Kubernetes Events of
one write are fewer (:func:`posted`), after the Kubernetes event style guide
(kubernetes/community, contributors/devel/sig-instrumentation/event-style-guide.md: "no more
than one per change/attempt", no "about to do X" beside "did X", nothing a watcher of the
object already sees): a phase the write passed through on its way to
the next (an Incident created, assessed and diagnosed in the write that lands it in
AwaitingApproval) is not posted, only the phase it lands in; entries kept to the timeline
(``Event.timeline_only``) are not posted; and the rest once per reason, their messages joined
(similar events of one object aggregate). Each Event is a POST to the API server (there is no
batch create): in a burst of a thousand Incidents they were most of the operator's writes.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

from ..api.common import MAX_TIMELINE, EventType, TimelineEntry, now
from ..api.conditions import summarize
from .base import Event, KindStatus


class StatusSink(Protocol):
    """Where status and Events go: the API server (``handlers.runtime``) or a test's list."""

    async def patch(self, patch: dict[str, Any]) -> None:
        """Merge-patch the status subresource. Raises KubeError."""

    def event(self, type_: EventType, reason: str, message: str) -> None:
        """Post a Kubernetes Event on the object (best effort)."""


class StatusWriter:
    """Writes one object's status (a ``controllers.base.Recorder``).

    ``saved`` is the status as the API server last had it (wire form); ``generation`` is the
    object's generation of the current pass, stamped on the derived Ready condition.
    """

    def __init__(self, sink: StatusSink, saved: dict[str, Any], generation: int = 0):
        self.sink, self.saved, self.generation = sink, saved, generation
        self._held: KindStatus | None = None       # status saved without a checkpoint, not written yet
        self._events: list[Event] = []            # Events of saves not written yet

    async def save(self, status: KindStatus, events: Sequence[Event] = (), checkpoint: bool = True) -> None:
        """Append ``events`` to the timeline, derive Ready, write what changed, then post the Events;
        with ``checkpoint=False`` hold both until the next write or :meth:`flush`."""
        timeline = getattr(status, "timeline", None)
        if timeline is not None and events:
            at = now()
            timeline.extend(TimelineEntry(time=at, type=e.type, reason=e.reason, message=e.message) for e in events)
            del timeline[:-MAX_TIMELINE]
        summarize(status.conditions, type(status).READY_FROM, self.generation)
        self._events += events
        self._held = status
        if checkpoint:
            await self.flush()

    async def flush(self) -> None:
        """Write the status held by a save without a checkpoint (if it changed), then post its Events."""
        status, self._held = self._held, None
        if status is not None:
            wire = status.model_dump(mode="json", by_alias=True, exclude_none=True)
            if wire != self.saved:
                await self.sink.patch(merge_patch(self.saved, wire))
                self.saved = wire
        events, self._events = self._events, []
        for event in posted(events):
            self.sink.event(event.type, event.reason, event.message)


def posted(events: Sequence[Event]) -> list[Event]:
    """The Kubernetes Events one write posts for the changes it records (see the module docstring):
    of its phase changes only the last, none of the timeline-only entries, and one Event per reason
    in the order the reasons first came, the messages of a repeated reason joined with "; " (a
    Warning if any of them was one)."""
    last_phase = max((i for i, e in enumerate(events) if e.phase), default=None)
    merged: dict[str, tuple[EventType, list[str]]] = {}
    for i, event in enumerate(events):
        if event.timeline_only or (event.phase and i != last_phase):
            continue
        type_, messages = merged.setdefault(event.reason, (event.type, []))
        if event.message not in messages:
            messages.append(event.message)
        if event.type == EventType.WARNING:
            merged[event.reason] = (EventType.WARNING, messages)
    return [Event(type_, reason, "; ".join(messages)) for reason, (type_, messages) in merged.items()]


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``: changed keys, nested
    objects diffed, removed keys as null, lists replaced whole."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            inner = merge_patch(before, value)
            if inner:
                patch[key] = inner
        elif value != before or key not in old:
            patch[key] = value
    return patch
