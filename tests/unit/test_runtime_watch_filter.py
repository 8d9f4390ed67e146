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
