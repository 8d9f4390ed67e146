"""A crash mid-remediation: the operator is SIGKILLed while its UpdateFunctionCode is in flight.

The restarted operator resumes from the checkpoints in status and must not repeat the call.
Counting happens in moto's backend (in this process), i.e. what AWS received.
"""
from __future__ import annotations

from pathlib import Path

import boto3
import pytest

import estate
from helpers import wait_for
from support.counters import CallCounter

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "incident-deployment-failure.yaml"


@pytest.fixture
def lambda_calls(monkeypatch):
    return CallCounter(monkeypatch)


def test_restart_mid_remediation_runs_each_mutating_call_once(kubectl, solo_namespace, aws, solo_operator,
                                                               lambda_calls):
    ns = solo_namespace
    scenario = estate.deployment_failure("checkout")
    lambda_calls.arm()  # after seeding: count only the operator's calls
    solo_operator.start()
    kubectl("apply", "-n", ns, "-f", str(EXAMPLE))
    wait_for(lambda: (kubectl.get("incident", "checkout-deploy-failed", ns).get("status") or {}).get("phase")
             == "AwaitingApproval", what="AwaitingApproval")
    kubectl("patch", "incident", "checkout-deploy-failed", "-n", ns, "--type=merge",
            "-p", '{"spec":{"remediation":{"approvedSteps":["rollback-lambda-checkout-api"]}}}')

    assert lambda_calls.in_flight.wait(60), "the operator never called UpdateFunctionCode"
    solo_operator.kill()  # SIGKILL while the call is in flight: no chance to record its outcome
    rollback = kubectl.get("rollback", "checkout-deploy-failed-rollback-lambda-checkout-api", ns)
    apply_step = next(s for s in rollback["status"]["steps"] if s["id"] == "apply")
    assert apply_step["state"] == "Running", "intent must be on record before the call"
    assert lambda_calls.completed.wait(10), "the call never completed on the AWS side"
    assert lambda_calls["update_function_code"] == 1

    solo_operator.start()
    wait_for(lambda: (kubectl.get("incident", "checkout-deploy-failed", ns).get("status") or {}).get("phase")
             == "Resolved", timeout=60, what="Resolved after the restart")
    assert dict(lambda_calls) == {"update_function_code": 1}
    assert boto3.client("lambda").get_function(FunctionName="checkout-api")["Configuration"]["CodeSha256"] \
        == scenario.shas[0]
    rollback = kubectl.get("rollback", "checkout-deploy-failed-rollback-lambda-checkout-api", ns)
    apply_step = next(s for s in rollback["status"]["steps"] if s["id"] == "apply")
    assert apply_step["state"] == "Skipped" and "already at the target" in apply_step["message"]
    assert len(kubectl.json("get", "rollbacks", "-n", ns)["items"]) == 1
    step = next(s for s in kubectl.get("incident", "checkout-deploy-failed", ns)["status"]["steps"]
                if s["id"] == "rollback-lambda-checkout-api")
    assert step["attempts"] == 1 and step["state"] == "Succeeded"
    # the call cut off was the child Rollback's (the Incident's step only waits on it): it says so
    assert any(t["reason"] == "Interrupted" and "step apply" in t["message"] for t in rollback["status"]["timeline"])
