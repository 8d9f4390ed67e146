"""Write a notification's Incidents: one per alert, the dedup held in the object.

Each alert is a delivery of the shared writer (:mod:`opex_operator.intake`): the Incident named by
``mapping`` is read, a missing one created (spec from the mapping, the annotation
``opex.dev/alert-state``), then ``status.alert`` is written with the resourceVersion just read
(``mapping.next_record``: occurrences, firstSeen, lastSeen, resolvedAt); a write that lost a race is
read and done again. When the alert's state flips, the annotation is set too and the Incident
controller records ``AlertResolved``.

A resolved alert only updates the record: it starts nothing, cancels nothing and closes nothing.
A resolved alert with no Incident is ignored (it was never opened, or it was refused). A closed
Incident is never reopened: the alert firing again opens a successor.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Callable

from .. import metrics
from ..api.common import EventType, now as utcnow
from ..errors import KubeError
from ..intake import IncidentWriter, Outcome, Refusal, Unavailable
from ..kube import ObjectRef
from ..ports import IncidentStore
from .mapping import Mapped, MappingRules, Refused, map_alert
from .webhook import Alert, Notification

log = logging.getLogger(__name__)

COMPONENT = "opex-operator"
PARALLEL_WRITES = 8       # alerts of one notification written at once
__all__ = ["Intake", "Outcome", "Receipt", "Unavailable", "Written"]


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
        self.namespaces, self.clock = namespaces, clock
        self.writer = IncidentWriter(store, clock, creator)
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
        results = await asyncio.gather(*(self._write(m) for m in mapped), return_exceptions=True)
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        for done in results:
            if isinstance(done, Written):
                receipt.written.append(done)
            elif isinstance(done, Refused):
                receipt.refused.append(done)
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

    async def _write(self, m: Mapped) -> Written | Refused:
        async with self._parallel:
            try:
                done = await self.writer.write(m)
            except Refusal as err:
                return Refused(m.alert, f"alert {m.alert.name or m.alert.fingerprint}: {err}")
        return Written(m.alert, done.outcome, done.ref,
                       "resolved; no Incident was opened for it" if done.outcome == Outcome.IGNORED else done.note)

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
