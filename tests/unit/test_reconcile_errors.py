"""A pass that fails is reported on its object in one line, the API server's own message: never the
HTTP headers and body dump of the kubernetes client's ApiException."""
from __future__ import annotations

import asyncio
import json

import kubernetes
from kubernetes.client.exceptions import ApiException

from opex_operator.api import DRIFTCHECK
from opex_operator.handlers.runtime import Runtime
from opex_operator.kube import Kube

REFUSAL = 'ConfigMap "network-drift-20261129090000" is invalid: []: Too long: may not be more than 1048576 bytes'


class Refusal:
    """The HTTP response urllib3 hands the kubernetes client for a refused write."""

    status, reason = 422, "Unprocessable Entity"
    data = json.dumps({"kind": "Status", "status": "Failure", "message": REFUSAL, "reason": "Invalid",
                       "code": 422}).encode()
    headers = {"Audit-Id": "5c8e0c1e-2f0a-4c55-9d6e-0b9f4f7e6a11", "Content-Type": "application/json",
               "X-Kubernetes-Pf-Prioritylevel-Uid": "f0e1d2c3"}


class RefusingCore:
    def create_namespaced_config_map(self, namespace, body, **options):
        raise ApiException(http_resp=Refusal())


class StubController:
    """What the runtime needs of a controller, for DriftChecks; subclasses give ``reconcile``."""

    resource, wake_annotations = DRIFTCHECK, ()

    def priority(self, body):
        return 0

    def forget(self, ref):
        pass

    async def finalize(self, ref):
        pass


class ReportWriter(StubController):
    """A controller whose pass writes a ConfigMap through the real ``kube.Kube``, which the API server refuses."""

    def __init__(self, kube: Kube):
        self.kube = kube

    async def reconcile(self, obj):
        await asyncio.to_thread(self.kube.put_config_map, "ns", "network-drift-20261129090000", {"a": "b"}, obj.ref)


class ApiServer:
    """What the runtime reads and patches: one DriftCheck."""

    def __init__(self):
        self.body = {"apiVersion": "opex.dev/v1alpha1", "kind": "DriftCheck",
                     "metadata": {"name": "network", "namespace": "ns", "uid": "u1", "generation": 1},
                     "spec": {}, "status": {}}
        self.patches: list[dict] = []
        self.events: list[tuple[str, str]] = []

    def get(self, plural, namespace, name):
        return self.body

    def patch_status(self, ref, status):
        self.patches.append(status)

    def post_event(self, ref, type_, reason, message, component, instance=""):
        self.events.append((reason, message))


def test_a_refused_write_is_reported_as_one_line_with_the_api_servers_message(monkeypatch):
    assert "Audit-Id" in str(ApiException(http_resp=Refusal()))  # what the condition used to carry
    kube = Kube(kubernetes.client.ApiClient(kubernetes.client.Configuration()))
    kube.core = RefusingCore()
    api = ApiServer()
    runtime = Runtime({"driftchecks": ReportWriter(kube)}, api, workers=1, resync_seconds=0)

    async def one_failed_pass():
        runtime.observe("driftchecks", "ADDED", api.body)
        runtime.leading.set()
        while not api.patches:
            await asyncio.sleep(0.01)
        await runtime.stop(grace=1)

    asyncio.run(one_failed_pass())
    [reconciling] = [c for c in api.patches[0]["conditions"] if c["type"] == "Reconciling"]
    message = reconciling["message"]
    assert reconciling["reason"] == "ReconcileError"
    assert message.startswith(f"KubeError: put_config_map: HTTP 422 Unprocessable Entity: {REFUSAL}; retrying in ")
    assert "\n" not in message and "Audit-Id" not in message and "headers" not in message.lower()
    assert api.events == [("ReconcileError", message)]   # posted before stop() returned


class Reader(StubController):
    """A controller whose first two passes only read (saved without a checkpoint), then waits."""

    def __init__(self):
        self.passes = 0

    async def reconcile(self, obj):
        from opex_operator.api.common import EventType
        from opex_operator.controllers.base import Event

        self.passes += 1
        obj.status.observed_generation = self.passes
        await obj.recorder.save(obj.status, [Event(EventType.NORMAL, "Read", f"pass {self.passes}")],
                                checkpoint=self.passes == 3)
        return 0.0 if self.passes < 3 else None


def test_passes_that_only_read_are_written_with_the_pass_that_ends_the_chain():
    api, reader = ApiServer(), Reader()
    runtime = Runtime({"driftchecks": reader}, api, workers=1, resync_seconds=0)

    async def chain():
        runtime.observe("driftchecks", "ADDED", api.body)
        runtime.leading.set()
        while reader.passes < 3 or not api.events:
            await asyncio.sleep(0.01)
        await runtime.stop(grace=1)

    asyncio.run(chain())
    [patch] = api.patches
    assert patch["observedGeneration"] == 3 and [e["message"] for e in patch["timeline"]] == ["pass 1", "pass 2", "pass 3"]
    assert api.events == [("Read", "pass 1; pass 2; pass 3")]


class Restorer(StubController):
    """A controller whose passes each ask for the next at once (a restore's batches), noting whether
    each drew on the background share of the AWS budget."""

    def __init__(self):
        self.shares: list[bool] = []

    async def reconcile(self, obj):
        from opex_operator.aws.budget import _background

        self.shares.append(_background.get())
        return 0.0 if len(self.shares) < 4 else None


def test_work_a_restarts_background_recheck_continues_at_once_runs_in_the_foreground():
    api, restorer = ApiServer(), Restorer()
    api.body["status"] = {"observedGeneration": 1}  # reconciled before the restart
    runtime = Runtime({"driftchecks": restorer}, api, workers=1, resync_seconds=0, restart_spread=0.01)

    async def chain():
        runtime.observe("driftchecks", None, api.body)  # the listing at start: a background re-check
        runtime.leading.set()
        for _ in range(500):
            if len(restorer.shares) >= 4:
                break
            await asyncio.sleep(0.01)
        await runtime.stop(grace=1)

    asyncio.run(chain())
    assert restorer.shares == [True, False, False, False]
