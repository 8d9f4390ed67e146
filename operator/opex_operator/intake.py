"""Open an Incident from an outside signal exactly once and record what its sender keeps sending.

Shared by the two intakes: Alertmanager's webhook (``alerts/``) and AWS events through SQS
(``events/``). Each signal is a :class:`Delivery`: the Incident it belongs to (a name derived from
the signal's natural key, so every repeat of it finds the same object), the body to create when
there is none, and how ``status.alert`` changes when it arrives (:class:`~.api.incident.AlertRecord`:
occurrences, firstSeen, lastSeen, resolvedAt, the last event ids).

One delivery is one read-modify-write: the Incident is read; a missing one is created; then
``status.alert`` is written with the resourceVersion just read. A write that lost a race (another
delivery, another replica, the Incident controller checkpointing) is read and done again, so no
delivery is lost or counted twice and a burst of one signal makes one Incident. When the record's
state flips (Firing/Resolved) the annotation ``opex.dev/alert-state`` is set too: it wakes the
Incident's reconcile loop wherever it runs, and the Incident controller (the only writer of
conditions and the timeline) records AlertResolved or AlarmResolved.

A closed Incident is never reopened: a delivery it does not already hold goes to the successor the
delivery names (at most :data:`MAX_SUCCESSORS` hops). A resolution with no Incident opens nothing.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import random
import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable, Protocol

from .api.approvals import CREATED_BY_ANNOTATION
from .api.common import now as utcnow
from .api.incident import ALERT_STATE_ANNOTATION, AlertRecord
from .errors import KubeError
from .ports.objects import ObjectRef
from .ports import IncidentStore

MAX_ATTEMPTS = 5          # reads and writes of one delivery's record before it is given up (Unavailable)
RETRY_BACKOFF = 0.05      # seconds before the second attempt, doubling, jittered: racing writers spread out
LOCK_STRIPES = 64
MAX_SUCCESSORS = 3        # closed Incidents followed to their successor before the last one takes the delivery
class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DUPLICATE = "duplicate"   # the Incident already holds this delivery (a redelivered message)
    IGNORED = "ignored"
    REFUSED = "refused"


class Unavailable(Exception):
    """The API server cannot take the writes now (down, throttling, a race lost too often): the
    sender should deliver again (Alertmanager retries a 5xx; an SQS message is left in its queue)."""


class Refusal(Exception):
    """The API server refused the Incident or its record for good (a 4xx other than a conflict):
    delivering it again cannot help. The message names the Incident and the API server's reason."""


class Delivery(Protocol):
    """One signal for one Incident."""

    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str:
        """The Incident's name, from the signal's natural key."""
    @property
    def opens(self) -> bool:
        """False for a resolution: it never creates an Incident."""

    def body(self, name: str) -> dict[str, Any]:
        """The Incident to create under ``name``."""

    def holds(self, incident: dict[str, Any]) -> bool:
        """True when the (closed) Incident ``incident`` is this signal's own occurrence, so it takes it."""

    def successor(self, closed: dict[str, Any]) -> str:
        """The name of the Incident that takes the signal when ``closed`` does not."""

    def record(self, current: AlertRecord | None, now: dt.datetime) -> AlertRecord | None:
        """``status.alert`` after this delivery; None when ``current`` holds it already (a duplicate)."""


@dataclass(frozen=True)
class Written:
    """What one delivery did: the Incident (``ref``) and whether it was created, updated, found
    holding the delivery already, or why nothing was written (``note``)."""

    outcome: Outcome
    ref: ObjectRef | None = None
    note: str = ""


def closed(body: dict[str, Any]) -> bool:
    return bool((body.get("spec") or {}).get("closed"))


class IncidentWriter:
    """Writes deliveries through ``store`` (see the module docstring); ``clock`` gives UTC now;
    ``creator`` (the operator's own username) is recorded on each Incident it creates
    (``opex.dev/created-by``: the admission policy requires it where the two-person rule applies)."""

    def __init__(self, store: IncidentStore, clock: Callable[[], dt.datetime] = utcnow, creator: str | None = None):
        self.store, self.clock, self.creator = store, clock, creator
        # One write at a time per Incident in this process (other writers are caught by resourceVersion).
        self._locks = [asyncio.Lock() for _ in range(LOCK_STRIPES)]

    async def write(self, d: Delivery) -> Written:
        """Create or update ``d``'s Incident. Raises Unavailable (deliver again) or Refusal (never will be)."""
        lock = self._locks[zlib.crc32(f"{d.namespace}/{d.name}".encode()) % LOCK_STRIPES]
        async with lock:
            created = False   # by an earlier attempt of this delivery, which then lost a race
            try:
                for attempt in range(MAX_ATTEMPTS):
                    written, created = await self._attempt(d, created)
                    if written is not None:
                        return written
                    await asyncio.sleep(RETRY_BACKOFF * 2 ** attempt * random.uniform(0.5, 1.5))
            except KubeError as err:
                if err.transient:
                    raise Unavailable(f"the API server did not take Incident {d.namespace}/{d.name}: {err}") from err
                raise Refusal(f"Incident {d.namespace}/{d.name} was refused: {err.message or err}") from err
        raise Unavailable(f"Incident {d.namespace}/{d.name} kept changing while its record was written")

    async def _get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.store.get, "incidents", namespace, name)

    async def _attempt(self, d: Delivery, created: bool) -> tuple[Written | None, bool]:
        """One read-modify-write of the record: (what was written, None when it lost a race and must
        read again; whether this delivery created the Incident, ``created`` on entry: an earlier
        attempt that created it and then lost the status race still reports it created)."""
        name = d.name
        body = await self._get(d.namespace, name)
        for _ in range(MAX_SUCCESSORS):
            if body is None or not closed(body) or d.holds(body):
                break
            follower = d.successor(body)  # a closed Incident is never reopened
            if follower == name:
                break
            name = follower
            body = await self._get(d.namespace, name)
        if body is None:
            if not d.opens:
                return Written(Outcome.IGNORED, note="a resolution, and no Incident was opened for it"), created
            new = d.body(name)
            if self.creator:
                new["metadata"].setdefault("annotations", {})[CREATED_BY_ANNOTATION] = self.creator
            body = await asyncio.to_thread(self.store.create, "incidents", d.namespace, new)
            if body is None:
                return None, created  # created by another delivery meanwhile
            created = True
        meta = body["metadata"]
        ref = ObjectRef("incidents", d.namespace, name, meta.get("uid", ""), "Incident")
        raw = (body.get("status") or {}).get("alert")
        current = AlertRecord.model_validate(raw) if raw else None
        record = d.record(current, self.clock())
        if record is None:
            return Written(Outcome.DUPLICATE, ref, "the Incident holds this delivery already"), created
        # None values go as JSON null: the merge patch removes them (resolvedAt when it fires again).
        wire = record.model_dump(mode="json", by_alias=True)
        try:
            await asyncio.to_thread(self.store.patch_status, ref, {"alert": wire}, meta.get("resourceVersion"))
        except KubeError as err:
            if err.conflict:
                return None, created
            raise
        if not created and (current is None or current.state != record.state):
            await asyncio.to_thread(self.store.annotate, ref, {ALERT_STATE_ANNOTATION: record.state.value})
        return Written(Outcome.CREATED if created else Outcome.UPDATED, ref), created
