"""The reconcile loop each custom resource gets: one Kopf daemon per object.

Why a daemon and not on.create/on.update handlers: runbook work is a sequence of checkpointed
steps with waits (approvals, schedules, escalation deadlines). One coroutine per object runs
them in order, never two passes at once for the same object, and it wakes early when the
object's generation (a spec change such as an approval) or one of the kind's request
annotations changes. Kopf keeps ``body`` live (replaced from the watch stream before any
``on.event`` handler runs, so the kind's ``on.event`` handler calls :func:`wake` and the
daemon looks at a body that is already new) and stops the daemon when the object is deleted
or the operator exits.

Status is the checkpoint: it is read from the object when the daemon starts (so a restarted
operator resumes where it was) and afterwards kept in memory and written through
:class:`KopfRecorder`, the one place that patches status, appends the timeline and posts Events.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any, Sequence

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel

from .. import metrics
from ..api.common import MAX_TIMELINE, ConditionStatus, EventType, TimelineEntry, now
from ..api.conditions import READY, set_condition
from ..controllers.base import Controller, Event, Observed
from ..kube import Kube, ObjectRef

log = logging.getLogger(__name__)

# How often a waiting daemon checks whether it was asked to stop.
STOP_CHECK_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 300.0

_wakers: dict[str, asyncio.Event] = {}


def wake(uid: str) -> None:
    """Wake the reconcile loop of the object with ``uid`` (called for every watch event)."""
    event = _wakers.get(uid)
    if event is not None:
        event.set()


class KopfRecorder:
    """Writes one object's status, appends its timeline and posts its Events.

    ``save`` is a checkpoint: it returns only after the API server has the new status, so a
    step recorded as started is on record before the call it guards is made.
    """

    def __init__(self, kube: Kube, ref: ObjectRef, body: kopf.Body, saved: dict[str, Any]):
        self.kube, self.ref, self.body = kube, ref, body
        self._saved = saved

    async def save(self, status: BaseModel, events: Sequence[Event] = ()) -> None:
        """Persist ``status`` (skipped when unchanged) after recording ``events`` (type, reason, message)."""
        timeline = getattr(status, "timeline", None)
        for type_, reason, message in events:
            if timeline is not None:
                timeline.append(TimelineEntry(time=now(), type=type_, reason=reason, message=message[:1024]))
                del timeline[:-MAX_TIMELINE]
        wire = status.model_dump(mode="json", by_alias=True, exclude_none=True)
        if wire != self._saved:
            await asyncio.to_thread(self.kube.patch_status, self.ref, merge_patch(self._saved, wire))
            self._saved = wire
        for type_, reason, message in events:
            kopf.event(self.body, type=str(type_), reason=reason, message=message)


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


def _trigger(body: kopf.Body, annotations: tuple[str, ...]) -> tuple:
    meta = body.get("metadata", {})
    notes = meta.get("annotations") or {}
    return (meta.get("generation"), tuple(notes.get(a) for a in annotations))


async def run(controller: Controller, body: kopf.Body, stopped: kopf.DaemonStopped, kube: Kube,
              resync_seconds: float) -> None:
    """Reconcile one object until it is deleted or the operator stops.

    Exceptions from a pass are counted (``opex_reconcile_errors_total``), reported on the
    ``Ready`` condition (reason ``ReconcileError``) and retried with exponential backoff
    (1 s doubling to 5 minutes). A 404 from the API server means the object is gone: the loop ends.
    """
    meta = body["metadata"]
    ref = ObjectRef(controller.plural, meta["namespace"], meta["name"], meta.get("uid", ""), body.get("kind", ""))
    status = controller.status_model.model_validate(body.get("status") or {})
    recorder = KopfRecorder(kube, ref, body, status.model_dump(mode="json", by_alias=True, exclude_none=True))
    failures = 0
    waker = _wakers.setdefault(ref.uid, asyncio.Event())
    try:
        while not stopped:
            trigger = _trigger(body, controller.wake_annotations)
            delay, failures = await _pass(controller, body, ref, status, recorder, failures)
            wait = resync_seconds if delay is None else min(delay, resync_seconds)
            await _wait(body, controller.wake_annotations, trigger, waker, wait, stopped)
    except _Gone:
        log.info("%s %s/%s is gone; its reconcile loop ends", controller.kind, ref.namespace, ref.name)
    finally:
        _wakers.pop(ref.uid, None)
        controller.forget(ref)


async def _pass(controller: Controller, body: kopf.Body, ref: ObjectRef, status: BaseModel,
                recorder: KopfRecorder, failures: int) -> tuple[float | None, int]:
    meta = body.get("metadata", {})
    created = meta.get("creationTimestamp")
    obj = Observed(ref=ref, generation=meta.get("generation", 0), annotations=dict(meta.get("annotations") or {}),
                   labels=dict(meta.get("labels") or {}), spec=dict(body.get("spec") or {}), status=status,
                   recorder=recorder, owner_references=list(meta.get("ownerReferences") or []),
                   created_at=dt.datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None)
    started = time.monotonic()
    try:
        delay = await controller.reconcile(obj)
        metrics.RECONCILES.labels(controller.kind, "success").inc()
        return delay, 0
    except ApiException as err:
        if err.status == 404:
            raise _Gone() from err
        return await _failed(controller, obj, err, failures)
    except Exception as err:  # noqa: BLE001 - every failure is reported and retried
        return await _failed(controller, obj, err, failures)
    finally:
        metrics.RECONCILE_DURATION.labels(controller.kind).observe(time.monotonic() - started)


class _Gone(Exception):
    """The object was deleted while it was being reconciled."""


async def _failed(controller: Controller, obj: Observed, err: Exception, failures: int) -> tuple[float, int]:
    failures += 1
    metrics.RECONCILES.labels(controller.kind, "error").inc()
    metrics.RECONCILE_ERRORS.labels(controller.kind, type(err).__name__).inc()
    log.exception("reconcile of %s %s/%s failed (attempt %d)", controller.kind, obj.ref.namespace, obj.ref.name, failures)
    delay = min(MAX_BACKOFF_SECONDS, 2.0 ** (failures - 1))
    message = f"{type(err).__name__}: {str(err)[:300]}; retrying in {delay:.0f}s"
    try:
        if set_condition(obj.status.conditions, READY, ConditionStatus.FALSE, "ReconcileError", message, obj.generation):
            await obj.recorder.save(obj.status, [(EventType.WARNING, "ReconcileError", message)])
    except Exception:  # noqa: BLE001 - the report itself may fail when the API server is down
        log.warning("could not report the reconcile error of %s/%s", obj.ref.namespace, obj.ref.name)
    return delay, failures


async def _wait(body: kopf.Body, annotations: tuple[str, ...], trigger: tuple, waker: asyncio.Event,
                seconds: float, stopped: kopf.DaemonStopped) -> None:
    """Sleep ``seconds``, or less when the trigger changes or the daemon is stopped."""
    deadline = time.monotonic() + seconds
    while not stopped and _trigger(body, annotations) == trigger:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        waker.clear()
        try:
            await asyncio.wait_for(waker.wait(), timeout=min(STOP_CHECK_SECONDS, left))
        except TimeoutError:
            pass
