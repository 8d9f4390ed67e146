"""What a reconcile pass gets and gives, free of Kopf (so controllers are unit-testable)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, Sequence, TypeVar

from ..api import Kind
from ..api.common import Condition, EventType
from ..ports.objects import ObjectRef


class Event(NamedTuple):
    """A change a pass records: always a timeline entry, and a Kubernetes Event unless it is one
    of the changes the status writer keeps to the timeline (``controllers.status``, ``posted``).

    ``phase``: the change of ``status.phase`` (``controllers.common.transition``); ``timeline_only``:
    never posted (the change adds nothing a person acts on beyond the Event it comes with)."""

    type: EventType
    reason: str
    message: str
    phase: bool = False
    timeline_only: bool = False


class KindStatus(Protocol):
    """What the status writer needs of a kind's status model (``IncidentStatus`` ...): its
    conditions, which of them Ready is summarised from, and its wire form."""

    READY_FROM: ClassVar[tuple[str, ...]]
    conditions: list[Condition]

    def model_dump(self, *, mode: str, by_alias: bool, exclude_none: bool) -> dict[str, Any]: ...


S = TypeVar("S", bound=KindStatus)


class Recorder(Protocol):
    """Persists an object's status; the only way a controller writes it."""

    async def save(self, status: KindStatus, events: Sequence[Event] = (), checkpoint: bool = True) -> None:
        """Append ``events`` to the timeline, write ``status`` (a checkpoint), then post the Events;
        ``checkpoint=False``: a pass that only read may have both held until the next write."""

    async def flush(self) -> None:
        """Write what a save without a checkpoint held (the runtime, when a chain of passes ends)."""


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
