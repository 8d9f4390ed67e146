"""Terraform cut off by the operator stopping (issue 29, items 7 and 8), mid-plan and mid-apply, by
SIGKILL and by SIGTERM: no state lock is left unreported (released, or its ID named in status),
no process of the run outlives the next start, and an interrupted apply is never applied again
without a new approval, even under approval Auto."""
from __future__ import annotations

import json
import time

import boto3
import pytest

import procs
import tfrepo
from helpers import wait_for
from support.endpoints import silent_port

# Each run of the provisioner is recorded and leaves a child behind; the first (the apply cut off) lasts
# 20 s, to be cut off mid-run; a later one (the apply a person approves) ends at once.
APPLY_MARKER = """
variable "marker" {
  type = string
}

resource "terraform_data" "slow" {
  triggers_replace = var.size
  provisioner "local-exec" {
    command = "echo ran >> ${var.marker}; sleep 300 > /dev/null 2>&1 & echo $! > ${var.marker}.child; [ $(grep -c ran ${var.marker}) -gt 1 ] || sleep 20"
  }
}
"""

# A plan that holds the state lock while it reads a remote state from an endpoint that never
# answers (and ignores SIGINT while it waits: the worst case, killed after the grace).
SLOW_PLAN = """
data "terraform_remote_state" "upstream" {
  backend = "http"
  config = {
    address = "http://127.0.0.1:%(port)s/state"
  }
}
"""


@pytest.fixture
def silent_endpoint():
    """A TCP port that accepts connections and never answers."""
    with silent_port() as port:
        yield port


def status_of(kubectl, ns):
    return kubectl.get("driftcheck", "network", ns).get("status") or {}


def lock_ids(infra) -> list[str]:
    s3 = boto3.client("s3")
    return [json.loads(s3.get_object(Bucket=infra.bucket, Key=o["Key"])["Body"].read())["ID"]
            for o in s3.list_objects_v2(Bucket=infra.bucket).get("Contents", []) if o["Key"].endswith(".tflock")]


def run_group(solo_operator, ns) -> int:
    """The process group of the Terraform command running now, from its record in the run directory."""
    record = solo_operator.workdir / "work" / ns / "network" / "check" / "process.json"
    return wait_for(lambda: record.exists() and json.loads(record.read_text())["pgid"], timeout=30,
                    what="the running Terraform's record")


def stop(solo_operator, how: str) -> None:
    if how == "SIGKILL":
        solo_operator.kill()
    else:  # SIGTERM, waiting as long as the pod's terminationGracePeriodSeconds would
        procs.terminate(solo_operator.proc.pid, 60.0, solo_operator.proc)
        solo_operator.proc = None


def start_check(kubectl, ns, infra, solo_operator, **spec) -> None:
    solo_operator.env["OPEX_SHUTDOWN_GRACE"] = "18"  # SIGTERM: cancel at once, leaving Terraform its SIGINT grace
    solo_operator.start()
    kubectl.apply(json.dumps({
        "apiVersion": "opex.dev/v1alpha1", "kind": "DriftCheck", "metadata": {"name": "network"},
        "spec": {"schedule": ["0 9 * * *"], "source": {"git": {"url": infra.url, "ref": "main", "path": "network"}},
                 "backendConfig": infra.config, "timeoutSeconds": 300, **spec}}), ns)
    kubectl("annotate", "driftcheck", "network", "-n", ns, "opex.dev/run-requested=1")


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_an_apply_cut_off_is_never_applied_again_without_a_new_approval(kubectl, solo_namespace, infra,
                                                                        solo_operator, tmp_path, how):
    ns, marker = solo_namespace, tmp_path / "ran.txt"
    infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "large"} + APPLY_MARKER}, "network: a slow resource")
    start_check(kubectl, ns, infra, solo_operator, vars={"marker": str(marker)},
                resolution={"strategy": "Apply", "approval": "Auto"})
    wait_for(lambda: marker.exists() and (tmp_path / "ran.txt.child").exists(), timeout=90,
             what="the provisioner to run")
    child = int((tmp_path / "ran.txt.child").read_text())
    stop(solo_operator, how)
    if how == "SIGTERM":
        stopped = status_of(kubectl, ns)["lastResolution"]
        assert stopped["outcome"] == "Interrupted" and "outcome is unknown" in stopped["message"], stopped
        assert "released its state lock" in stopped["message"] or lock_ids(infra)[0] in stopped["message"]

    solo_operator.start()
    wait_for(lambda: not procs.alive(child), timeout=30, what="the provisioner's child stopped")
    waiting = wait_for(lambda: (c := {c["type"]: c for c in status_of(kubectl, ns).get("conditions", [])}.get(
        "Remediating")) and c["reason"] == "AwaitingApproval" and c, timeout=120, what="approval asked for")
    assert "outcome is unknown" in waiting["message"]
    st = status_of(kubectl, ns)
    assert st["lastResolution"]["outcome"] == "Interrupted" and st["interruptedApply"]
    assert not lock_ids(infra) or st["lastResult"]["outcome"] == "LockHeld"
    kubectl("annotate", "driftcheck", "network", "-n", ns, "opex.dev/run-requested=2", "--overwrite")
    wait_for(lambda: status_of(kubectl, ns).get("answeredRunRequest") == "2", timeout=120, what="another run")
    assert marker.read_text().count("ran") == 1, "the interrupted apply ran again without a new approval"

    # A person approves the plan made since: it is applied, once. Whether the provisioner runs again
    # depends on what that plan shows (the interrupted apply may have created the resource or not).
    before = status_of(kubectl, ns)
    new = before["lastResult"]["planChecksum"]
    again = any(r["address"] == "terraform_data.slow" and "create" in r["actions"] for r in before["driftedResources"])
    kubectl("patch", "driftcheck", "network", "-n", ns, "--type=merge",
            "-p", json.dumps({"spec": {"resolution": {"approvedPlanChecksum": new}}}))
    final = wait_for(lambda: (s := status_of(kubectl, ns)).get("lastResolution", {}).get("outcome") == "Succeeded"
                     and s.get("lastResult", {}).get("outcome") == "NoDrift" and s, timeout=150,
                     what="the approved plan applied and verified")
    assert "interruptedApply" not in final and marker.read_text().count("ran") == 1 + again
    assert not lock_ids(infra)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_plan_cut_off_leaves_no_process_and_no_lock_unreported(kubectl, solo_namespace, infra, solo_operator,
                                                                 silent_endpoint, how):
    ns = solo_namespace
    infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "small"} + SLOW_PLAN % {"port": silent_endpoint}},
                 "network: reads a remote state that never answers")
    # A lock the killed Terraform left is reported once the next plan has waited lock.timeout for it:
    # the next start stopped every process of the old run before that plan, so none is left to release
    # it, and waiting longer than a second proves nothing more.
    start_check(kubectl, ns, infra, solo_operator, lock={"timeout": "1s"})
    group = run_group(solo_operator, ns)
    wait_for(lambda: lock_ids(infra), timeout=60, what="the plan to hold the state lock")
    stop(solo_operator, how)
    if how == "SIGTERM":
        checked = {c["type"]: c for c in status_of(kubectl, ns)["conditions"]}["Checked"]
        # This Terraform ignores SIGINT while it waits: it is killed, and status says so, not "released".
        assert checked["reason"] == "Interrupted" and "killed before it could release its state lock" in \
            checked["message"], checked
    # The next run must be able to finish: the remote state it read is gone from the configuration.
    infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "small"}}, "network: no remote state")
    solo_operator.start()
    wait_for(lambda: not [p for p in procs_in_group(group)], timeout=40, what="the old run's processes stopped")
    st = wait_for(lambda: (s := status_of(kubectl, ns)).get("answeredRunRequest") == "1" and s, timeout=120,
                  what="the run after the restart")
    held = lock_ids(infra)
    if held:   # left behind: status names it
        assert st["lastResult"]["outcome"] == "LockHeld" and held[0] in st["lastResult"]["message"], st["lastResult"]


def procs_in_group(pgid: int) -> list[int]:
    from opex_operator.process import group_members

    return group_members(pgid)
