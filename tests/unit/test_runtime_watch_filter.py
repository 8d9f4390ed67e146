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


def test_an_object_passed_once_is_never_taken_from_a_late_event_again():
    controller = Recorder()
    api = Reads({**driftcheck(generation=2), "status": {"observedGeneration": 1}})
    rt = Runtime({"driftchecks": controller}, kube=api, workers=1, resync_seconds=0)

    async def scenario():
        rt.observe("driftchecks", "ADDED", driftcheck())
        rt.leading.set()
        await asyncio.wait_for(until(lambda: controller.seen), 5)
        # a spec change made before the pass's status write, delivered after it: no status in it
        rt.observe("driftchecks", "MODIFIED", driftcheck(generation=2))
        await asyncio.wait_for(until(lambda: len(controller.seen) >= 2), 5)
        await rt.stop(grace=1)

    asyncio.run(scenario())
    assert api.gets == 1 and controller.seen == [None, 1]
