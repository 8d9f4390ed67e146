"""Work cut off when the operator stops: a DriftCheck apply killed (SIGKILL) or stopped (SIGTERM)
midway is recorded Interrupted — never Running for good, never done — Terraform (tied to the
operator's lifetime) stops cleanly without leaving its lock, and the next plan finishes the job."""
from __future__ import annotations

import json

import boto3
import pytest

import tfrepo
from helpers import wait_for

SLOW_APPLY = tfrepo.MAIN_TF % {"size": "large"} + """
resource "terraform_data" "slow" {
  triggers_replace = var.size
  provisioner "local-exec" {
    command = "sleep 8"
  }
}
"""


def status_of(kubectl, ns):
    return kubectl.get("driftcheck", "network", ns).get("status") or {}


def lock_files(infra) -> list[str]:
    return [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=infra.bucket).get("Contents", [])
            if o["Key"].endswith(".tflock")]


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_an_apply_cut_off_by_the_operator_stopping_is_interrupted_then_finished(kubectl, solo_namespace, infra,
                                                                                 solo_operator, how):
    ns = solo_namespace
    infra.commit({"network/main.tf": SLOW_APPLY}, "network: large, with a slow resource")
    solo_operator.env["OPEX_SHUTDOWN_GRACE"] = "18"  # SIGTERM: cancel at once, leaving Terraform its SIGINT grace
    solo_operator.start()
    kubectl.apply(json.dumps({
        "apiVersion": "opex.dev/v1alpha1", "kind": "DriftCheck", "metadata": {"name": "network"},
        "spec": {"schedule": ["0 9 * * *"], "source": {"git": {"url": infra.url, "ref": "main", "path": "network"}},
                 "backendConfig": infra.config, "timeoutSeconds": 120,
                 "resolution": {"strategy": "Apply", "approval": "Auto"}}}), ns)
    kubectl("annotate", "driftcheck", "network", "-n", ns, "opex.dev/run-requested=1")
    wait_for(lambda: (status_of(kubectl, ns).get("lastResolution") or {}).get("outcome") == "Running", timeout=90,
             what="the apply to start")
    if how == "SIGKILL":
        solo_operator.kill()
    else:
        solo_operator.stop()
        stopped = status_of(kubectl, ns)["lastResolution"]
        assert stopped["outcome"] == "Interrupted" and "operator was stopping" in stopped["message"], stopped
    # Terraform outlives nothing unobserved: it got SIGINT with its operator, saved state, released its lock.
    wait_for(lambda: not lock_files(infra), timeout=60, what="the state lock released")

    solo_operator.start()
    final = wait_for(lambda: (s := status_of(kubectl, ns)).get("lastResult", {}).get("outcome") == "NoDrift"
                     and not s.get("pendingRun") and s, timeout=120, what="the drift resolved after the restart")
    assert final["lastResolution"]["outcome"] != "Running"
    # in the timeline always; as an Event too, unless the operator was already shutting its Event poster down
    assert "ResolutionInterrupted" in [t["reason"] for t in final["timeline"]]
    state = json.loads(boto3.client("s3").get_object(Bucket=infra.bucket, Key="network/terraform.tfstate")["Body"]
                       .read())
    assert [r["name"] for r in state["resources"]].count("slow") == 1
    assert not lock_files(infra)
