"""The reconcile runtime: watch events in, a bounded pool of workers out (controller-runtime's shape).

Kopf watches the three kinds and hands events to :meth:`Runtime.observe`, which adds the
object's key to the work queue when something the controller reacts to changed (a new
object, its generation, a request annotation), never for the operator's own status writes:
those stop at Kopf's ``when=`` filter (:meth:`Runtime.wants`), before Kopf runs a handler.
``OPEX_WORKERS`` workers take keys; a pass starts from the body of the watch event that queued
the object when that is still the newest state this runtime knows of (no later event came, and
the event of its own last status write has arrived: a pass always sees its own last checkpoint),
and otherwise reads the object from the API server (a timed pass, a restart's re-checks); it runs
the kind's controller for one move and schedules the next pass from its answer: at once, after N
seconds (one timer heap for all objects), or not until a watch event. A pass that raises is logged
with the object, counted, reported as ``Reconciling=True/ReconcileError`` and retried with backoff
per key. Work a person or a schedule is waiting for costs nothing until its deadline or an event.

Timed passes run at background priority (``workqueue.BACKGROUND``), and their AWS calls draw on
the background share of the AWS call budget (``aws.budget``), so a restart's re-checks or a
thousand waiting Incidents never delay the first assessment of a new one. A pass that asks for
the next one at once has work under way (a Rollback's next copy batch found by a restart's
re-check): that next pass runs in the foreground.

With leader election on, only the holder of the coordination Lease runs passes; a standby keeps
its queue filled from the watch and takes over when the leader is gone (``handlers.leader``).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Awaitable, Callable, Mapping


from .. import metrics
from ..api.common import EventType, parse_time
from ..api.conditions import RECONCILING, get, mark, remove
from ..aws.budget import background
from ..controllers.base import Controller, Event, Observed
from ..controllers.status import StatusWriter
from ..errors import KubeError
from ..kube import Kube, ObjectRef
from ..config import MIN_SHUTDOWN_GRACE
from ..workqueue import BACKGROUND, WorkQueue, jittered

log = logging.getLogger(__name__)

RECONCILE_ERROR = "ReconcileError"
TERRAFORM_STOP_SECONDS = MIN_SHUTDOWN_GRACE   # Terraform's SIGINT grace, and the status write after it
EVENT_COMPONENT = "opex-operator"
EVENT_FLUSH_SECONDS = 5.0   # the most a stop waits for Events still being posted
CHAINED_PASSES = 8       # passes in a row on one view of the object, while each asks for the next at once
RESTART_SPREAD = 30.0    # seconds over which a restart looks at the objects it already reconciled
_FAILED = object()
_UNKNOWN = object()   # the resourceVersion of a write that did not say it (never equals an event's)
Key = tuple[str, str, str]   # (plural, namespace, name)


class ApiSink:
    """Where one object's status and Events go: its status subresource, and the runtime's Event
    poster (:meth:`Runtime.post_event`: flushed before the operator exits)."""

    def __init__(self, kube: Kube, ref: ObjectRef, body: dict[str, Any],
                 post: Callable[[ObjectRef, str, str, str], None], wrote: Callable[[str | None], None]):
        """``wrote``: told the resourceVersion each status write left (:meth:`Runtime.wrote`)."""
        self.kube, self.ref, self.body, self.post, self.wrote = kube, ref, body, post, wrote

    async def patch(self, patch: dict[str, Any]) -> None:
        self.wrote(await asyncio.to_thread(self.kube.patch_status, self.ref, patch))

    def event(self, type_: EventType, reason: str, message: str) -> None:
        self.post(self.ref, str(type_), reason, message)


class Runtime:
    """The queue, its workers and what they know about each object (only what wakes it)."""

    def __init__(self, controllers: dict[str, Controller], kube: Kube, workers: int, resync_seconds: float,
                 restart_spread: float = RESTART_SPREAD, owns: Callable[[dict[str, str]], bool] = lambda labels: True,
                 reporting_instance: str = ""):
        """``reporting_instance``: which replica and shard posts this runtime's Events (``host/shard``)."""
        self.controllers, self.kube, self.resync = controllers, kube, resync_seconds
        self.reporting_instance = reporting_instance
        self.restart_spread = restart_spread
        self.owns = owns  # sharding: whether an object's labels make it this replica's (sharding.belongs)
        self.queue: WorkQueue[tuple[str, str, str]] = WorkQueue(namespace_of=lambda key: key[1])
        self.workers = workers
        self.leading = asyncio.Event()
        self._triggers: dict[Key, tuple] = {}
        # The body of the watch event that queued a key, taken by its next pass instead of a read
        # (see ``_fresh_body``); any later event of the key drops it.
        self._fresh: dict[Key, dict[str, Any]] = {}
        self._seen: dict[Key, str | None] = {}   # the resourceVersion of the key's last watch event
        # This runtime's last status write of a key whose watch event has not arrived yet (its
        # resourceVersion; _UNKNOWN when the write did not say): a body queued before it misses it.
        self._unseen: dict[Key, object] = {}
        self._tasks: list[asyncio.Task] = []
        self._in_flight: set[Key] = set()
        self._posting: set[asyncio.Task] = set()   # Events on their way to the API server
        self._outbox: dict[ObjectRef, list[tuple[str, str, str]]] = {}   # Events of this turn of the loop

    # -- watch events ---------------------------------------------------------------------------
    def wants(self, plural: str, event_type: str | None, body: Mapping[str, Any]) -> bool:
        """Whether :meth:`observe` has anything to do with this watch event: Kopf's ``when=`` filter,
        so that the operator's own status writes (most events in a burst) and other changes the
        controller does not react to are dropped before Kopf runs a handler for them. Every event
        passes here, so every one is noted first (:meth:`_saw`)."""
        meta = body.get("metadata") or {}
        key = (plural, meta.get("namespace", ""), meta.get("name", ""))
        self._saw(key, meta)
        if not self._tasks or event_type == "DELETED":
            return True
        if not self.owns(meta.get("labels") or {}):
            return key in self._triggers  # moved to another shard: forget it once
        return self._triggers.get(key) != _trigger(body, self.controllers[plural].wake_annotations)

    def observe(self, plural: str, event_type: str | None, body: dict[str, Any]) -> None:
        """A watch event (Kopf's ``on.event``): queue the object when something it reacts to changed."""
        if not self._tasks:
            self.start()  # on the first event: the loop is running
        meta = body.get("metadata") or {}
        key = (plural, meta.get("namespace", ""), meta.get("name", ""))
        self._saw(key, meta)  # again for a kind watched without the filter (Rollbacks): a no-op otherwise
        controller = self.controllers[plural]
        status = body.get("status") or {}
        if event_type == "DELETED" or not self.owns(meta.get("labels") or {}):  # gone, or another shard's
            self.queue.remove(key)
            for known in (self._triggers, self._seen, self._unseen):
                known.pop(key, None)
            controller.forget(_ref(controller, body))
            return
        trigger = _trigger(body, controller.wake_annotations)
        if self._triggers.get(key) == trigger:
            return  # our own status write, or a change the controller does not react to
        self._triggers[key] = trigger
        priority = controller.priority(body)
        if event_type is None and status.get("observedGeneration") == meta.get("generation"):
            # The listing at start (or after a watch restart): objects whose spec was reconciled
            # before are looked at again spread over ``restart_spread`` seconds, at background
            # priority, so a restart with thousands of objects is no burst (new and changed ones
            # still go first). Their passes read them then: no body is held for thousands.
            self.queue.add_after(key, random.uniform(0, self.restart_spread), priority + BACKGROUND)
        else:
            self._fresh[key] = body
            self.queue.add(key, priority)
        metrics.WORKQUEUE_ADDS.labels(controller.resource.kind).inc()

    def _saw(self, key: Key, meta: Mapping[str, Any]) -> None:
        """Note a watch event of ``key`` (its ``metadata``): the body kept for the key's next pass
        is no longer the newest (``observe`` keeps this one instead when it queues the key), and
        when it is the event of this runtime's last status write of the key, none is missing."""
        version = meta.get("resourceVersion")
        self._seen[key] = version
        self._fresh.pop(key, None)
        if key in self._unseen and self._unseen[key] == version:
            del self._unseen[key]

    def wrote(self, key: Key, version: str | None) -> None:
        """This runtime wrote ``key``'s status, which left it at resourceVersion ``version`` (None:
        not known). Until the watch brings that version, a body queued before it lacks the write,
        and the key's passes read the object (see :meth:`_fresh_body`); the event may have come
        already, while the write's answer was on its way."""
        if version is None or self._seen.get(key) != version:
            self._unseen[key] = _UNKNOWN if version is None else version

    def _fresh_body(self, key: Key) -> dict[str, Any] | None:
        """The body of the watch event that queued ``key``, when a pass may start from it instead of
        reading the object: no event of the key came after it, and the event of this runtime's last
        status write of the key came before it (watch events arrive in the order of their writes:
        that body holds the write). None otherwise: the pass reads it."""
        body = self._fresh.pop(key, None)
        return None if key in self._unseen else body

    async def finalize(self, plural: str, body: dict[str, Any]) -> None:
        """The object is being deleted: no more passes; its controller releases what it holds."""
        meta = body.get("metadata") or {}
        self.queue.remove((plural, meta.get("namespace", ""), meta.get("name", "")))
        controller = self.controllers[plural]
        await controller.finalize(_ref(controller, body))

    def wake(self, plural: str, namespace: str, name: str, priority: int = 0) -> None:
        """Queue an object now (e.g. an Incident whose child Rollback changed)."""
        self.queue.add((plural, namespace, name), priority)

    # -- workers --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers (on the first watch event; they wait for ``leading``)."""
        self._tasks = [asyncio.create_task(self._work(), name=f"opex-worker-{i}") for i in range(self.workers)]

    async def _work(self) -> None:
        await self.leading.wait()
        while True:
            key, waited, priority = await self.queue.get()
            kind = self.controllers[key[0]].resource.kind
            metrics.WORKQUEUE_WAIT.labels(kind).observe(waited)
            self._in_flight.add(key)
            try:
                await self._process(key, priority)
            finally:
                self._in_flight.discard(key)
                self.queue.done(key)
                metrics.WORKQUEUE_DEPTH.set(len(self.queue))

    async def _process(self, key: Key, priority: int) -> None:
        plural, namespace, name = key
        controller = self.controllers[plural]
        try:
            body = self._fresh_body(key) or await asyncio.to_thread(self.kube.get, plural, namespace, name)
        except KubeError as err:
            log.warning("cannot read %s %s/%s: %s", controller.resource.kind, namespace, name, err)
            self.queue.add_rate_limited(key, priority)
            return
        if body is None or not self.owns((body.get("metadata") or {}).get("labels") or {}):
            self.queue.remove(key)
            return
        obj = _observed(controller, self.kube, body, self.post_event, lambda version: self.wrote(key, version))
        # A pass that asks for the next one at once continues with the object as it just wrote it
        # (its status in memory is the API server's): no read in between, unless the object
        # changed meanwhile (an event came), then the next pass reads it fresh; or more urgent work
        # is waiting, which goes first.
        for _ in range(CHAINED_PASSES):
            delay = await self._pass(controller, obj, key, priority)
            # A pass asked again at once continues work under way (a restore's next batch after a
            # restart's re-check): foreground, as its requeue would be, not the background share.
            priority %= BACKGROUND
            if delay != 0 or self.queue.dirty(key) or self.queue.closed or self.queue.waiting_before(priority):
                break
        if delay is not _FAILED:  # the chain ends: what its passes held (``controllers.status``) is written
            delay = await self._guarded(controller, obj, key, priority, _flushed(obj, delay))
        if delay is _FAILED:
            return
        if delay == 0:
            self.queue.add(key, priority)
        elif delay is not None:
            self.queue.add_after(key, delay, priority + BACKGROUND)
        elif self.resync:
            self.queue.add_after(key, jittered(self.resync), priority + BACKGROUND)

    async def _pass(self, controller: Controller, obj: Observed, key: Key, priority: int) -> Any:
        """One reconcile pass: its requeue delay, or _FAILED (reported and rescheduled already)."""
        kind = controller.resource.kind
        started = time.monotonic()
        try:
            return await self._guarded(controller, obj, key, priority, self._reconcile(controller, obj, key, priority))
        finally:
            metrics.RECONCILE_DURATION.labels(kind).observe(time.monotonic() - started)

    async def _reconcile(self, controller: Controller, obj: Observed, key: Key, priority: int) -> Any:
        with background(priority >= BACKGROUND):
            delay = await controller.reconcile(obj)
        metrics.RECONCILES.labels(controller.resource.kind, "success").inc()
        if self.queue.failures(key):
            await _recovered(obj)
        self.queue.forget(key)
        return delay

    async def _guarded(self, controller: Controller, obj: Observed, key: Key, priority: int,
                       work: Awaitable[Any]) -> Any:
        """``work``'s answer, or _FAILED when it raised: the object gone (forgotten), any other
        failure reported on the object and retried with backoff (:meth:`_failed`)."""
        try:
            return await work
        except KubeError as err:
            if err.not_found:
                self.queue.remove(key)
                return _FAILED
            await self._failed(controller, obj, key, err, priority)
            return _FAILED
        except Exception as err:  # noqa: BLE001 - every other failure is logged, reported and retried
            await self._failed(controller, obj, key, err, priority)
            return _FAILED

    async def _failed(self, controller: Controller, obj: Observed, key: Key, err: Exception, priority: int) -> None:
        kind = controller.resource.kind
        delay = self.queue.add_rate_limited(key, priority % BACKGROUND + BACKGROUND)
        failures = self.queue.failures(key)
        metrics.RECONCILES.labels(kind, "error").inc()
        metrics.RECONCILE_ERRORS.labels(kind, type(err).__name__).inc()
        log.error("reconcile of %s %s failed (attempt %d): %s", kind, obj.ref.key, failures, err,
                  exc_info=not isinstance(err, KubeError))
        message = f"{type(err).__name__}: {err}; retrying in {delay:.0f}s"
        try:
            mark(obj.status.conditions, RECONCILING, RECONCILE_ERROR, message, obj.generation)
            await obj.recorder.save(obj.status, [Event(EventType.WARNING, RECONCILE_ERROR, message)])
        except KubeError:  # the report itself fails when the API server is down
            log.warning("could not report the reconcile error of %s", obj.ref.key)

    def post_event(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
        """Post an Event without holding up the pass; :meth:`stop` waits for every one still on its
        way (an Event of a pass that finished during shutdown is not lost, as it was in Kopf's queue).
        The Events of one object posted in one turn of the loop (one status write's) go out in one
        thread, one after the other: a thread hop per Event was 2 % of the CPU of a burst."""
        batch = self._outbox.get(ref)
        if batch is None:
            batch = self._outbox[ref] = []
            asyncio.get_running_loop().call_soon(self._send_events, ref)
        batch.append((type_, reason, message))

    def _send_events(self, ref: ObjectRef) -> None:
        batch = self._outbox.pop(ref)

        def post() -> None:
            for type_, reason, message in batch:
                try:
                    self.kube.post_event(ref, type_, reason, message, EVENT_COMPONENT, self.reporting_instance)
                except KubeError as err:
                    log.warning("could not post Event %s on %s: %s", reason, ref.key, err)

        task = asyncio.get_running_loop().create_task(asyncio.to_thread(post))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    async def flush_events(self, timeout: float = EVENT_FLUSH_SECONDS) -> None:
        """Wait (at most ``timeout`` seconds) for the Events still being posted."""
        if self._posting:
            await asyncio.wait(set(self._posting), timeout=timeout)

    # -- stopping -------------------------------------------------------------------------------
    async def stop(self, grace: float) -> None:
        """Hand out no more keys and let passes in flight finish; within ``grace`` seconds in all:
        what is still running then is cancelled with TERRAFORM_STOP_SECONDS left, so a Terraform
        child gets SIGINT (it saves state and releases its lock) and the pass records that it was
        interrupted (see ``terraform.runner`` and ``controllers.driftcheck``)."""
        self.queue.shutdown()
        pending = [t for t in self._tasks if not t.done()]
        if self._in_flight:
            log.info("waiting up to %.0fs for %d reconcile passes in flight", grace, len(self._in_flight))
        wait = max(0.0, grace - TERRAFORM_STOP_SECONDS)
        _, late = await asyncio.wait(pending, timeout=wait) if pending else (set(), set())
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        await self.flush_events()


def _trigger(body: Mapping[str, Any], annotations: tuple[str, ...]) -> tuple:
    meta = body.get("metadata") or {}
    notes = meta.get("annotations") or {}
    return (meta.get("uid"), meta.get("generation"), tuple(notes.get(a) for a in annotations))


def _ref(controller: Controller, body: dict[str, Any]) -> ObjectRef:
    meta = body.get("metadata") or {}
    kind = controller.resource
    return ObjectRef(kind.plural, meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""), kind.kind)


def _observed(controller: Controller, kube: Kube, body: dict[str, Any],
              post: Callable[[ObjectRef, str, str, str], None], wrote: Callable[[str | None], None]) -> Observed:
    """A pass's view of ``body`` (as just read): its status validated, written through a StatusWriter
    (``post``, ``wrote``: see ``ApiSink``)."""
    meta = body["metadata"]
    ref = _ref(controller, body)
    status = controller.resource.status.model_validate(body.get("status") or {})
    generation = meta.get("generation", 0)
    writer = StatusWriter(ApiSink(kube, ref, body, post, wrote),
                          status.model_dump(mode="json", by_alias=True, exclude_none=True),
                          generation)
    return Observed(ref=ref, generation=generation, annotations=dict(meta.get("annotations") or {}),
                    labels=dict(meta.get("labels") or {}), spec=dict(body.get("spec") or {}), status=status,
                    recorder=writer, owner_references=list(meta.get("ownerReferences") or []),
                    created_at=parse_time(meta.get("creationTimestamp")))


async def _flushed(obj: Observed, delay: Any) -> Any:
    await obj.recorder.flush()
    return delay


async def _recovered(obj: Observed) -> None:
    """A pass succeeded after errors: drop the error report unless the controller replaced it."""
    cond = get(obj.status.conditions, RECONCILING)
    if cond is not None and cond.reason == RECONCILE_ERROR:
        remove(obj.status.conditions, RECONCILING)
        await obj.recorder.save(obj.status)
