"""The status writer: the one place that appends the timeline, derives Ready, writes status and
posts Events, for every kind.

``save`` is a checkpoint: it returns only after the API server has the new status, so a step
recorded as started is on record before the call it guards is made. Before each write Ready is
summarised from the kind's own conditions (``READY_FROM`` on its status model; see
``api.conditions.summarize``), so no controller sets Ready and Ready never disagrees with the
conditions and phase it summarises. Only what changed is sent (a JSON merge patch).
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

    async def save(self, status: KindStatus, events: Sequence[Event] = ()) -> None:
        """Append ``events`` to the timeline, derive Ready, write what changed, then post the Events."""
        timeline = getattr(status, "timeline", None)
        entries = [TimelineEntry(time=now(), type=type_, reason=reason, message=message)
                   for type_, reason, message in events]
        if timeline is not None and entries:
            timeline.extend(entries)
            del timeline[:-MAX_TIMELINE]
        summarize(status.conditions, type(status).READY_FROM, self.generation)
        wire = status.model_dump(mode="json", by_alias=True, exclude_none=True)
        if wire != self.saved:
            await self.sink.patch(merge_patch(self.saved, wire))
            self.saved = wire
        for entry in entries:
            self.sink.event(entry.type, entry.reason, entry.message)


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
