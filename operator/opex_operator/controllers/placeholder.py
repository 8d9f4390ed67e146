"""A reconciler that only acknowledges the object: for kinds whose behaviour is not built yet.

It sets ``status.observedGeneration`` and ``Ready=Unknown`` (reason ``NotImplemented``), so
GitOps tools and ``kubectl wait`` see that the operator has the object but does not act on it.
"""
from __future__ import annotations

from pydantic import BaseModel

from ..api import Kind
from ..api.common import ConditionStatus, EventType
from ..api.conditions import READY, set_condition
from .base import Observed


class PlaceholderController:
    """Acknowledge objects of ``kind`` without acting on them."""

    wake_annotations: tuple[str, ...] = ()

    def __init__(self, kind: Kind):
        self.kind, self.plural, self.status_model = kind.kind, kind.plural, kind.status

    async def reconcile(self, obj: Observed[BaseModel]) -> float | None:
        status = obj.status
        changed = set_condition(status.conditions, READY, ConditionStatus.UNKNOWN, "NotImplemented",
                                f"the operator does not reconcile {self.kind} resources yet", obj.generation)
        first = status.observed_generation is None
        status.observed_generation = obj.generation
        if changed or first:
            events = [(EventType.NORMAL, "Observed", f"{self.kind} observed at generation {obj.generation}")]
            await obj.recorder.save(status, events)
        return None

    def forget(self, ref) -> None:
        pass
