"""Write a notification's Incidents: one per alert, the dedup held in the object.

For each alert the Incident named by ``mapping`` is read; a missing one is created (spec from the
mapping, the annotation ``opex.dev/alert-state``), then ``status.alert`` is written with the
resourceVersion just read (``mapping.next_record``: occurrences, firstSeen, lastSeen,
resolvedAt). A write that lost a race (another delivery, another replica, the Incident
controller checkpointing) is read and done again, so no delivery is lost or counted twice and a
burst of one alert makes one Incident. When the alert's state flips, the annotation is set too:
it wakes the Incident's reconcile loop wherever it runs, and the Incident controller (the only
writer of conditions and the timeline) records ``AlertResolved``.

A resolved alert only updates the record: it starts nothing, cancels nothing and closes nothing.
A resolved alert with no Incident is ignored (it was never opened, or it was refused).
"""
from __future__ import annotations

import asyncio
import random
import datetime as dt
import logging
import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable

from .. import metrics
from ..api.common import EventType, now as utcnow
from ..api.approvals import CREATED_BY_ANNOTATION
from ..api.incident import ALERT_STATE_ANNOTATION, AlertRecord
from ..errors import KubeError
from ..kube import ObjectRef
from ..ports import IncidentStore
from .mapping import Mapped, MappingRules, Refused, map_alert, next_record
from .webhook import Alert, AlertStatus, Notification

log = logging.getLogger(__name__)

COMPONENT = "opex-operator"
MAX_ATTEMPTS = 5          # reads and writes of one alert's record before the delivery is given up (503)
RETRY_BACKOFF = 0.05      # seconds before the second attempt, doubling, jittered: racing writers spread out
PARALLEL_WRITES = 8       # alerts of one notification written at once
LOCK_STRIPES = 64


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    IGNORED = "ignored"
    REFUSED = "refused"


@dataclass(frozen=True)
class Written:
    """What became of one alert: the Incident written (``ref``), or why none was."""

    alert: Alert
    outcome: Outcome
    ref: ObjectRef | None = None
    note: str = ""


@dataclass
class Receipt:
    """A notification's result: what was written, and the alerts refused with their reasons."""

    written: list[Written] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


class Unavailable(Exception):
    """The API server cannot take the writes now (down, throttling, a race lost too often): the
    sender should retry the whole notification (HTTP 503; Alertmanager retries 5xx)."""


def _closed(body: dict[str, Any]) -> bool:
    return bool((body.get("spec") or {}).get("closed"))


def _recorded_start(body: dict[str, Any]) -> str | None:
    alert = (body.get("status") or {}).get("alert") or {}
    source = ((body.get("spec") or {}).get("source") or {}).get("alert") or {}
    return alert.get("startsAt") or source.get("startsAt")


def _same_firing(body: dict[str, Any], alert: Alert) -> bool:
    recorded = _recorded_start(body)
    if recorded is None or alert.starts_at is None:
        return recorded is None and alert.starts_at is None
    return dt.datetime.fromisoformat(recorded.replace("Z", "+00:00")) == alert.starts_at


class Intake:
    """Turns notifications into Incidents through ``store`` (see the module docstring).

    ``default_namespace`` takes alerts without a namespace label; ``namespaces`` are the globs the
    operator watches (alerts for other namespaces are refused); ``creator`` is the operator's own
    username, recorded on each Incident it creates (``opex.dev/created-by``: the admission policy
    requires it where the two-person rule applies, so any person may approve); ``clock`` gives UTC now.
    """

    def __init__(self, store: IncidentStore, rules: MappingRules, default_namespace: str,
                 namespaces: tuple[str, ...] = (), clock: Callable[[], dt.datetime] = utcnow,
                 creator: str | None = None):
        self.store, self.rules, self.default_namespace = store, rules, default_namespace
        self.namespaces, self.clock, self.creator = namespaces, clock, creator
        # One write at a time per Incident in this process (other writers are caught by resourceVersion).
        self._locks = [asyncio.Lock() for _ in range(LOCK_STRIPES)]
        self._parallel = asyncio.Semaphore(PARALLEL_WRITES)

    async def receive(self, notification: Notification) -> Receipt:
        """Write every alert's Incident. Raises Unavailable when a write must be retried; alerts that
        map to nothing, or that the API server refuses, are in the receipt's ``refused``."""
        receipt = Receipt()
        mapped: list[Mapped] = []
        for alert in notification.alerts:
            result = map_alert(alert, notification, self.rules, self.default_namespace, self.namespaces)
            if isinstance(result, Refused):
                receipt.refused.append(result)
            else:
                mapped.append(result)
        results = await asyncio.gather(*(self._write(m, notification) for m in mapped), return_exceptions=True)
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        for result in results:
            if isinstance(result, Written):
                receipt.written.append(result)
            elif isinstance(result, Refused):
                receipt.refused.append(result)
        for w in receipt.written:
            metrics.ALERTS_RECEIVED.labels(w.alert.status.value, w.outcome.value).inc()
        for r in receipt.refused:
            metrics.ALERTS_RECEIVED.labels(r.alert.status.value, Outcome.REFUSED.value).inc()
            log.warning("alert refused: %s", r.reason)
        if failure is not None:  # Unavailable, or a bug: either way the sender retries the notification
            raise failure
        if notification.truncated:
            await self._truncated(notification, receipt)
        return receipt

    async def _write(self, m: Mapped, notification: Notification) -> Written | Refused:
        lock = self._locks[zlib.crc32(f"{m.namespace}/{m.name}".encode()) % LOCK_STRIPES]
        async with self._parallel, lock:
            created = False   # by an earlier attempt of this delivery, which then lost a race
            try:
                for attempt in range(MAX_ATTEMPTS):
                    written, created = await self._attempt(m, notification, created)
                    if written is not None:
                        return written
                    await asyncio.sleep(RETRY_BACKOFF * 2 ** attempt * random.uniform(0.5, 1.5))
            except KubeError as err:
                if err.transient:
                    raise Unavailable(f"the API server did not take Incident {m.namespace}/{m.name}: {err}") from err
                return Refused(m.alert, f"alert {m.alert.name or m.alert.fingerprint}: Incident {m.namespace}/{m.name} "
                                        f"was refused: {err.message or err}")
        raise Unavailable(f"Incident {m.namespace}/{m.name} kept changing while its alert was recorded")

    async def _get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.store.get, "incidents", namespace, name)

    async def _attempt(self, m: Mapped, notification: Notification,
                       created: bool) -> tuple[Written | None, bool]:
        """One read-modify-write of the alert's record: (what was written, None when it lost a race
        and must read again; whether this delivery created the Incident, ``created`` on entry: an
        earlier attempt that created it and then lost the status race still reports it created)."""
        name = m.name
        body = await self._get(m.namespace, name)
        if body is not None and _closed(body) and not _same_firing(body, m.alert):
            name = m.successor()  # a closed Incident is never reopened
            body = await self._get(m.namespace, name)
        if body is None:
            if m.alert.status == AlertStatus.RESOLVED:
                return Written(m.alert, Outcome.IGNORED, note="resolved; no Incident was opened for it"), created
            new = m.body(name)
            if self.creator:
                new["metadata"]["annotations"][CREATED_BY_ANNOTATION] = self.creator
            body = await asyncio.to_thread(self.store.create, "incidents", m.namespace, new)
            if body is None:
                return None, created  # created by another delivery meanwhile
            created = True
        meta = body["metadata"]
        ref = ObjectRef("incidents", m.namespace, name, meta.get("uid", ""), "Incident")
        raw = (body.get("status") or {}).get("alert")
        current = AlertRecord.model_validate(raw) if raw else None
        record = next_record(current, m.alert, notification.receiver, self.clock())
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
        return Written(m.alert, Outcome.CREATED if created else Outcome.UPDATED, ref), created

    async def _truncated(self, notification: Notification, receipt: Receipt) -> None:
        """Alertmanager's max_alerts cut the notification: count it and say so on each Incident written."""
        metrics.ALERTS_TRUNCATED.inc(notification.truncated)
        text = (f"Alertmanager left {notification.truncated} alerts of group {notification.group_key or '(none)'} "
                f"out of the notification to {notification.receiver or 'this receiver'} (its max_alerts); they "
                f"opened no Incident: raise max_alerts on the receiver")
        log.warning("%s", text)
        for w in receipt.written:
            if w.ref is None:
                continue
            try:
                await asyncio.to_thread(self.store.post_event, w.ref, EventType.WARNING.value, "AlertsTruncated",
                                        text, COMPONENT)
            except KubeError as err:  # an Event is best effort; the metric and the log have it
                log.warning("could not post AlertsTruncated on %s: %s", w.ref.key, err)
