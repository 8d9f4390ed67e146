"""Two operator processes, one active: the standby takes over when the leader dies, and no mutating
step runs twice (counted in moto's backend, i.e. what AWS received)."""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import boto3
import pytest

import estate
from helpers import OperatorProcess, start_together, wait_for
from support.counters import CallCounter

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "incident-deployment-failure.yaml"


@pytest.fixture
def pair(cluster, aws_server, terraform_bin, solo_namespace, tmp_path, kubectl):
    lease = f"opex-{uuid.uuid4().hex[:6]}"
    env = {"OPEX_LEADER_ELECTION": "true", "OPEX_LEASE_NAME": lease, "OPEX_LEASE_NAMESPACE": solo_namespace,
           "OPEX_LEASE_SECONDS": "6"}
    procs = [OperatorProcess(cluster.kubeconfig, aws_server, terraform_bin, tmp_path / name, solo_namespace, env)
             for name in ("a", "b")]
    for proc in procs:
        proc.workdir.mkdir()
    start_together(procs)
    yield procs, lease
    kubectl.delete_opex_objects(solo_namespace)
    for proc in procs:
        proc.stop()


def holder(kubectl, namespace: str, lease: str) -> str:
    return kubectl("get", "lease", lease, "-n", namespace, "-o", "jsonpath={.spec.holderIdentity}",
                   check=False).stdout


def test_the_standby_takes_over_when_the_leader_dies_and_nothing_runs_twice(kubectl, solo_namespace, aws, pair,
                                                                           monkeypatch):
    procs, lease = pair
    ns = solo_namespace
    scenario = estate.deployment_failure("checkout")
    calls = CallCounter(monkeypatch)
    calls.arm()
    leader_id = wait_for(lambda: holder(kubectl, ns, lease), what="a leader")
    leader = next(p for p in procs if leader_id.endswith(f"-{p.proc.pid}"))
    standby = next(p for p in procs if p is not leader)
    kubectl("apply", "-n", ns, "-f", str(EXAMPLE))
    kubectl("patch", "incident", "checkout-deploy-failed", "-n", ns, "--type=merge",
            "-p", '{"spec":{"remediation":{"approvedSteps":["rollback-lambda-checkout-api"]}}}')
    assert calls.in_flight.wait(60), "the leader never called UpdateFunctionCode"
    assert (standby.metric("opex_reconcile_total", kind="Incident", result="success") or 0) == 0, \
        "the standby reconciled while the leader held the Lease"
    killed_at = time.monotonic()
    leader.kill()  # SIGKILL mid-call: the Lease is not released, the standby must wait it out
    assert calls.completed.wait(10)

    wait_for(lambda: holder(kubectl, ns, lease).endswith(f"-{standby.proc.pid}"), timeout=30, what="the takeover")
    took = time.monotonic() - killed_at
    assert took < 20, f"the standby took {took:.0f}s over a 6s Lease"
    wait_for(lambda: (kubectl.get("incident", "checkout-deploy-failed", ns).get("status") or {}).get("phase")
             == "Resolved", timeout=90, what="Resolved by the new leader")
    assert dict(calls) == {"update_function_code": 1}
    assert boto3.client("lambda").get_function(FunctionName="checkout-api")["Configuration"]["CodeSha256"] \
        == scenario.shas[0]
