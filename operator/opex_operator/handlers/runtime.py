"""The reconcile loop each custom resource gets: one Kopf daemon per object.

Why a daemon and not on.create/on.update handlers: runbook work is a sequence of checkpointed
moves with waits (approvals, schedules, escalation deadlines). One coroutine per object runs
them in order, never two passes at once for the same object, and it wakes early when the
object's generation (a spec change such as an approval) or one of the kind's request
annotations changes. Kopf keeps ``body`` live (replaced from the watch stream before any
``on.event`` handler runs, so the kind's ``on.event`` handler calls :func:`wake` and the
daemon looks at a body that is already new) and stops the daemon when the object is deleted
or the operator exits.

Status is the checkpoint: it is read from the object when the daemon starts (so a restarted
operator resumes where it was) and afterwards kept in memory and written through the
controllers' :class:`~opex_operator.controllers.status.StatusWriter`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf

from .. import metrics
from ..api.common import EventType, parse_time
from ..api.conditions import RECONCILING, get, mark, remove
from ..controllers.base import Controller, Observed
from ..controllers.status import StatusWriter
from ..errors import KubeError
from ..kube import Kube, ObjectRef

log = logging.getLogger(__name__)

# How often a waiting daemon checks whether it was asked to stop.
STOP_CHECK_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 300.0
RECONCILE_ERROR = "ReconcileError"

_wakers: dict[str, asyncio.Event] = {}


def wake(uid: str) -> None:
    """Wake the reconcile loop of the object with ``uid`` (called for every watch event)."""
    event = _wakers.get(uid)
    if event is not None:
        event.set()


class KopfSink:
    """Where one object's status and Events go: its status subresource, and Kopf's Event poster."""

    def __init__(self, kube: Kube, ref: ObjectRef, body: kopf.Body):
        self.kube, self.ref, self.body = kube, ref, body

    async def patch(self, patch: dict[str, Any]) -> None:
        await asyncio.to_thread(self.kube.patch_status, self.ref, patch)

    def event(self, type_: EventType, reason: str, message: str) -> None:
        kopf.event(self.body, type=str(type_), reason=reason, message=message)


def _trigger(body: kopf.Body, annotations: tuple[str, ...]) -> tuple:
    meta = body.get("metadata", {})
    notes = meta.get("annotations") or {}
    return (meta.get("generation"), tuple(notes.get(a) for a in annotations))


async def run(controller: Controller, body: kopf.Body, stopped: kopf.DaemonStopped, kube: Kube,
              resync_seconds: float) -> None:
    """Reconcile one object until it is deleted or the operator stops.

    Exceptions from a pass are logged with the object, counted (``opex_reconcile_errors_total``),
    reported as ``Reconciling=True/ReconcileError`` (so Ready is Unknown with the reason) and
    retried with exponential backoff (1 s doubling to 5 minutes). A 404 from the API server
    means the object is gone: the loop ends.
    """
    meta = body["metadata"]
    kind = controller.resource
    ref = ObjectRef(kind.plural, meta["namespace"], meta["name"], meta.get("uid", ""), kind.kind)
    status = kind.status.model_validate(body.get("status") or {})
    writer = StatusWriter(KopfSink(kube, ref, body), status.model_dump(mode="json", by_alias=True, exclude_none=True))
    failures = 0
    waker = _wakers.setdefault(ref.uid, asyncio.Event())
    try:
        while not stopped:
            trigger = _trigger(body, controller.wake_annotations)
            delay, failures = await _pass(controller, body, ref, status, writer, failures)
            wait = resync_seconds if delay is None else min(delay, resync_seconds)
            await _wait(body, controller.wake_annotations, trigger, waker, wait, stopped)
    except _Gone:
        log.info("%s %s is gone; its reconcile loop ends", kind.kind, ref.key)
    finally:
        _wakers.pop(ref.uid, None)
        controller.forget(ref)


async def _pass(controller: Controller, body: kopf.Body, ref: ObjectRef, status: Any, writer: StatusWriter,
                failures: int) -> tuple[float | None, int]:
    meta = body.get("metadata", {})
    writer.generation = meta.get("generation", 0)
    obj = Observed(ref=ref, generation=writer.generation, annotations=dict(meta.get("annotations") or {}),
                   labels=dict(meta.get("labels") or {}), spec=dict(body.get("spec") or {}), status=status,
                   recorder=writer, owner_references=list(meta.get("ownerReferences") or []),
                   created_at=parse_time(meta.get("creationTimestamp")))
    kind = controller.resource.kind
    started = time.monotonic()
    try:
        delay = await controller.reconcile(obj)
        metrics.RECONCILES.labels(kind, "success").inc()
        if failures:
            await _recovered(obj)
        return delay, 0
    except KubeError as err:
        if err.not_found:
            raise _Gone() from err
        return await _failed(kind, obj, err, failures)
    except Exception as err:  # noqa: BLE001 - every other failure is logged, reported and retried
        return await _failed(kind, obj, err, failures)
    finally:
        metrics.RECONCILE_DURATION.labels(kind).observe(time.monotonic() - started)


class _Gone(Exception):
    """The object was deleted while it was being reconciled."""


async def _failed(kind: str, obj: Observed, err: Exception, failures: int) -> tuple[float, int]:
    failures += 1
    metrics.RECONCILES.labels(kind, "error").inc()
    metrics.RECONCILE_ERRORS.labels(kind, type(err).__name__).inc()
    log.error("reconcile of %s %s failed (attempt %d): %s", kind, obj.ref.key, failures, err,
              exc_info=not isinstance(err, KubeError))
    delay = min(MAX_BACKOFF_SECONDS, 2.0 ** (failures - 1))
    message = f"{type(err).__name__}: {err}; retrying in {delay:.0f}s"
    try:
        mark(obj.status.conditions, RECONCILING, RECONCILE_ERROR, message, obj.generation)
        await obj.recorder.save(obj.status, [(EventType.WARNING, RECONCILE_ERROR, message)])
    except KubeError:  # the report itself fails when the API server is down
        log.warning("could not report the reconcile error of %s", obj.ref.key)
    return delay, failures


async def _recovered(obj: Observed) -> None:
    """A pass succeeded after errors: drop the error report unless the controller replaced it."""
    cond = get(obj.status.conditions, RECONCILING)
    if cond is not None and cond.reason == RECONCILE_ERROR:
        remove(obj.status.conditions, RECONCILING)
        await obj.recorder.save(obj.status)


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
