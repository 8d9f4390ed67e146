"""Status bookkeeping shared by the controllers: phase changes, and refusing a spec the models reject."""
from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from ..api.common import ConditionStatus, EventType
from ..api.conditions import mark, set_condition
from .base import Event, Observed


def transition(status: Any, phase: StrEnum, reason: str, message: str, generation: int,
               warning: bool = False) -> list[Event]:
    """Set ``status.phase`` and, from the kind's ``PHASE_MARKERS``, its Reconciling/Stalled
    condition (``reason``, ``message``); the Event to record when the phase changed.

    Ready is not set here: the status writer derives it from the conditions before saving.
    """
    changed = status.phase != phase
    status.phase = phase
    mark(status.conditions, type(status).PHASE_MARKERS[phase], reason, message, generation)
    if not changed:
        return []
    return [Event(EventType.WARNING if warning else EventType.NORMAL, reason, message, phase=True)]


def spec_error(err: ValidationError) -> str:
    """The first validation error as ``spec.<field path>: <problem>`` (for an InvalidSpec condition)."""
    first = err.errors()[0]
    return f"spec.{'.'.join(map(str, first['loc']))}: {first['msg']}"


async def reject_spec(obj: Observed, failed: StrEnum, err: ValidationError) -> None:
    """End a pass over a spec the models refuse (the CRD schema normally stops it first): the phase
    ``failed`` (Stalled/InvalidSpec naming the field) and an Event."""
    events = transition(obj.status, failed, "InvalidSpec", spec_error(err), obj.generation, warning=True)
    obj.status.observed_generation = obj.generation
    await obj.recorder.save(obj.status, events)


class Pass:
    """The bookkeeping of one reconcile pass: the Events it will record, conditions stamped with the
    pass's generation, and ``save``, the checkpoint. Each kind's pass subclasses it."""

    def __init__(self, obj: Observed):
        self.obj, self.st, self.gen = obj, obj.status, obj.generation
        self.events: list[Event] = []

    async def save(self, checkpoint: bool = True) -> None:
        """Write status with the Events gathered since the last save (a checkpoint; see
        ``StatusWriter`` for a pass that only read and may save without one)."""
        events, self.events = self.events, []
        await self.obj.recorder.save(self.st, events, checkpoint)

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(Event(EventType.WARNING if warning else EventType.NORMAL, reason, message))

    def note(self, reason: str, message: str) -> None:
        """A timeline entry that is not posted as an Event (see ``Event.timeline_only``)."""
        self.events.append(Event(EventType.NORMAL, reason, message, timeline_only=True))

    def phase(self, phase: StrEnum, reason: str, message: str, warning: bool = False) -> None:
        self.events += transition(self.st, phase, reason, message, self.gen, warning)

    def condition(self, type_: str, status: ConditionStatus, reason: str, message: str) -> bool:
        """Set one of the kind's conditions; True when it changed."""
        return set_condition(self.st.conditions, type_, status, reason, message, self.gen)
