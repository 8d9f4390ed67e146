"""What a reconcile pass gets and gives, free of Kopf (so controllers are unit-testable)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, Sequence, TypeVar

from pydantic import BaseModel

from ..api import Kind
from ..api.common import EventType
from ..ports.objects import ObjectRef

S = TypeVar("S", bound=BaseModel)
Event = tuple[EventType, str, str]  # (type, reason, message)


class Recorder(Protocol):
    """Persists an object's status; the only way a controller writes it."""

    async def save(self, status: BaseModel, events: Sequence[Event] = ()) -> None:
        """Append ``events`` to the timeline, write ``status`` (a checkpoint), then post the Events."""


@dataclass
class Observed(Generic[S]):
    """What one reconcile pass sees: identity, the live metadata/spec, and the status to update."""

    ref: ObjectRef
    generation: int
    annotations: dict[str, str]
    labels: dict[str, str]
    spec: dict[str, Any]
    status: S
    recorder: Recorder
    owner_references: list[dict[str, Any]] = field(default_factory=list)
    created_at: dt.datetime | None = None


class Controller(Protocol[S]):
    """A kind's reconciler (``resource`` is its entry of ``api.KINDS``).

    ``reconcile`` does one move and returns seconds until the next pass (0: at once), or None
    to wait for a change of the object. It raises only what nobody can handle here (a KubeError
    writing status, a bug); the runtime logs, counts and retries those with backoff.
    """

    resource: Kind
    wake_annotations: tuple[str, ...]

    async def reconcile(self, obj: Observed[S]) -> float | None:
        """One reconcile pass over ``obj``; see the class docstring."""

    def priority(self, body: dict[str, Any]) -> int:
        """The object's place in the work queue: lower first (0..99; see ``workqueue``)."""

    def forget(self, ref: ObjectRef) -> None:
        """The object is gone: drop what is kept about it in memory (metrics contributions)."""

    async def finalize(self, ref: ObjectRef) -> None:
        """The object is being deleted: release what it holds outside Kubernetes (its finalizer)."""
