"""Status bookkeeping shared by the controllers: phase changes with their Ready condition and Event."""
from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from ..api.common import ConditionStatus, EventType
from ..api.conditions import READY, set_condition
from .base import Event, Observed


def transition(status: Any, phase: StrEnum, ready: ConditionStatus, reason: str, message: str,
               generation: int, warning: bool = False) -> list[Event]:
    """Set ``status.phase`` and the Ready condition; the Event to record when the phase changed."""
    changed = status.phase != phase
    status.phase = phase
    set_condition(status.conditions, READY, ready, reason, message, generation)
    if not changed:
        return []
    return [(EventType.WARNING if warning else EventType.NORMAL, reason, message)]


def spec_error(err: ValidationError) -> str:
    """The first validation error as ``spec.<field path>: <problem>`` (for an InvalidSpec condition)."""
    first = err.errors()[0]
    return f"spec.{'.'.join(map(str, first['loc']))}: {first['msg']}"


async def reject_spec(obj: Observed, failed: StrEnum, err: ValidationError) -> None:
    """End a pass over a spec the models refuse (the CRD schema normally stops it first): the phase
    ``failed``, Ready=False/InvalidSpec naming the field, and an Event."""
    events = transition(obj.status, failed, ConditionStatus.FALSE, "InvalidSpec", spec_error(err), obj.generation,
                        warning=True)
    obj.status.observed_generation = obj.generation
    await obj.recorder.save(obj.status, events)
