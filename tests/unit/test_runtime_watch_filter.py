"""Which watch events reach the runtime's handler: the operator's own status writes stop at Kopf's
``when=`` filter (``Runtime.wants``), changes the controller reacts to go through."""
from __future__ import annotations

import asyncio
import copy

from opex_operator.api import DRIFTCHECK
from opex_operator.handlers.runtime import Runtime

WAKE = "opex.dev/run-requested"


class Idle:
    """A DriftCheck controller that is never asked to reconcile here (the runtime is not leading)."""

    resource, wake_annotations = DRIFTCHECK, (WAKE,)
    forgotten: list

    def __init__(self):
        self.forgotten = []

    def priority(self, body):
        return 0

    def forget(self, ref):
        self.forgotten.append(ref.name)


def driftcheck(generation: int = 1, labels: dict | None = None, annotations: dict | None = None) -> dict:
    return {"metadata": {"name": "network", "namespace": "ns", "uid": "u1", "generation": generation,
                         "labels": labels or {}, "annotations": annotations or {}},
            "spec": {"schedule": ["0 9 * * *"]}, "status": {}}


def runtime(controller: Idle, shard: str | None = None) -> Runtime:
    owns = (lambda labels: labels.get("opex.dev/shard") == shard) if shard else (lambda labels: True)
    return Runtime({"driftchecks": controller}, kube=None, workers=1, resync_seconds=0, owns=owns)


def seen(rt: Runtime, event_type: str | None, body: dict) -> bool:
    """What Kopf does with an event: the handler (observe) runs only when the filter wants it."""
    wanted = rt.wants("driftchecks", event_type, body)
    if wanted:
        rt.observe("driftchecks", event_type, body)
    return wanted


def test_own_status_writes_stop_at_the_filter_and_changes_that_wake_the_object_pass():
    async def scenario():
        rt = runtime(Idle())
        body = driftcheck()
        assert seen(rt, "ADDED", body)
        written = copy.deepcopy(body)
        written["status"] = {"phase": "Scheduled", "observedGeneration": 1}
        assert not seen(rt, "MODIFIED", written)          # the operator's own status write
        assert seen(rt, "MODIFIED", driftcheck(generation=2))  # a spec change
        assert seen(rt, "MODIFIED", driftcheck(generation=2, annotations={WAKE: "t1"}))
        assert not seen(rt, "MODIFIED", driftcheck(generation=2, annotations={WAKE: "t1", "note": "x"}))
        assert seen(rt, "DELETED", driftcheck(generation=2))
        rt.queue.shutdown()
    asyncio.run(scenario())


def test_an_object_moved_to_another_shard_is_forgotten_once_and_then_ignored():
    async def scenario():
        controller = Idle()
        rt = runtime(controller, shard="payments")
        ours = driftcheck(labels={"opex.dev/shard": "payments"})
        theirs = driftcheck(labels={"opex.dev/shard": "default"})
        assert seen(rt, "ADDED", ours)
        assert seen(rt, "MODIFIED", theirs) and controller.forgotten == ["network"]
        assert not seen(rt, "MODIFIED", theirs)
        rt.queue.shutdown()
    asyncio.run(scenario())


class Recorder:
    """A DriftCheck controller that records the status each pass sees and writes one."""

    resource, wake_annotations = DRIFTCHECK, (WAKE,)

    def __init__(self):
        self.seen = []

    def priority(self, body):
        return 0

    def forget(self, ref):
        pass

    async def reconcile(self, obj):
        self.seen.append(obj.status.observed_generation)
        return None


class Reads:
    """The API server as the runtime reads it: counts GETs, answers with ``body``."""

    def __init__(self, body):
        self.body, self.gets = body, 0

    def get(self, plural, namespace, name):
        self.gets += 1
        return self.body


async def until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def run_passes(rt: Runtime, events: list[tuple[str, dict]], passes: int, controller: Recorder) -> None:
    async def scenario():
        for event_type, body in events:
            if rt.wants("driftchecks", event_type, body):
                rt.observe("driftchecks", event_type, body)
        rt.leading.set()
        await asyncio.wait_for(until(lambda: len(controller.seen) >= passes), 5)
        await rt.stop(grace=1)
    asyncio.run(scenario())


def test_a_new_object_is_taken_from_its_watch_event_and_anything_checkpointed_is_read_fresh():
    controller = Recorder()
    api = Reads(driftcheck())
    rt = Runtime({"driftchecks": controller}, kube=api, workers=1, resync_seconds=0)
    run_passes(rt, [("ADDED", driftcheck())], 1, controller)
    assert api.gets == 0, "a new object has no checkpoint to miss"

    controller = Recorder()
    checkpointed = {**driftcheck(), "status": {"observedGeneration": 1}}
    api = Reads(checkpointed)
    rt = Runtime({"driftchecks": controller}, kube=api, workers=1, resync_seconds=0)
    # its creation, then a status write (another replica's, before this one leads), which stops at the filter
    run_passes(rt, [("ADDED", driftcheck()), ("MODIFIED", checkpointed)], 1, controller)
    assert api.gets == 1 and controller.seen == [1], "the body of its creation was not used after a checkpoint"


class Writer(Recorder):
    """A Recorder whose passes write status (observedGeneration) as the runtime's controllers do."""

    async def reconcile(self, obj):
        self.seen.append(obj.status.observed_generation)
        obj.status.observed_generation = obj.generation
        await obj.recorder.save(obj.status)
        return None


class Versions(Reads):
    """The API server with resourceVersions: each status write answers with the next one."""

    def __init__(self, body):
        super().__init__(body)
        self.version = int(body["metadata"]["resourceVersion"])

    def patch_status(self, ref, status):
        self.version += 1
        self.body = {**self.body, "metadata": {**self.body["metadata"], "resourceVersion": str(self.version)},
                     "status": {**self.body.get("status", {}), **status}}
        return str(self.version)


def versioned(version: int, generation: int = 1, **status) -> dict:
    body = driftcheck(generation)
    body["metadata"]["resourceVersion"] = str(version)
    return {**body, "status": status}


def test_after_its_own_write_a_pass_reads_the_object_until_the_watch_brings_that_write_back():
    controller = Writer()
    api = Versions(versioned(2, generation=2))  # a spec change (version 2) lands before the pass writes
    rt = Runtime({"driftchecks": controller}, kube=api, workers=1, resync_seconds=0)

    async def passes(n):
        await asyncio.wait_for(until(lambda: len(controller.seen) >= n), 5)

    async def scenario():
        rt.observe("driftchecks", "ADDED", versioned(1))
        rt.leading.set()
        await passes(1)   # from the event, and it writes: version 3
        assert api.gets == 0 and api.version == 3
        # the spec change, delivered after the pass: its body lacks the write
        rt.observe("driftchecks", "MODIFIED", versioned(2, generation=2))
        await passes(2)
        assert api.gets == 1 and controller.seen[1] == 1, "the pass started from a body without its own write"
        # the watch brings that write back (version 3: it stops at the filter), then a request comes
        assert not rt.wants("driftchecks", "MODIFIED", versioned(3, generation=2, observedGeneration=2))
        request = versioned(4, generation=2, observedGeneration=2)
        request["metadata"]["annotations"] = {WAKE: "t1"}
        assert rt.wants("driftchecks", "MODIFIED", request)
        rt.observe("driftchecks", "MODIFIED", request)
        await passes(3)
        assert api.gets == 1 and controller.seen[2] == 2, "the request's own body holds every write: no read"
        await rt.stop(grace=1)

    asyncio.run(scenario())


def test_a_write_whose_event_came_before_its_answer_is_not_waited_for_and_a_later_event_replaces_the_body():
    rt = runtime(Idle())
    key = ("driftchecks", "ns", "network")
    rt.wants("driftchecks", "MODIFIED", versioned(7))   # the write's event, ahead of its answer
    rt.wrote(key, "7")
    assert key not in rt._unseen
    rt.wrote(key, "8")                                   # a write whose event has not come
    rt.wrote(key, None)                                  # a write that did not say its version
    rt.wants("driftchecks", "MODIFIED", versioned(8))
    assert key in rt._unseen, "a write of unknown version is never taken as seen"
    rt.queue.shutdown()
