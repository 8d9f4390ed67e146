"""DriftCheck on the local stack: real terraform, a local bare git repository, the S3 backend on moto."""
from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest

import tfrepo
from helpers import bump, wait_for


def driftcheck(repo, name="network", **spec) -> str:
    doc = {"apiVersion": "opex.dev/v1alpha1", "kind": "DriftCheck", "metadata": {"name": name},
           "spec": {"schedule": ["0 9 * * *"], "source": {"git": {"url": repo.url, "ref": "main", "path": "network"}},
                    "backendConfig": repo.config, "timeoutSeconds": 120, **spec}}
    return json.dumps(doc)


def run_now(kubectl, namespace, name="network") -> str:
    token = uuid.uuid4().hex[:8]
    kubectl("annotate", "driftcheck", name, "-n", namespace, f"opex.dev/run-requested={token}", "--overwrite")
    return token


def last_result(kubectl, namespace, name="network") -> dict:
    return (kubectl.get("driftcheck", name, namespace).get("status") or {}).get("lastResult") or {}


def resolution(kubectl, namespace, name="network") -> dict:
    return (kubectl.get("driftcheck", name, namespace).get("status") or {}).get("lastResolution") or {}


def wait_run(kubectl, namespace, token, name="network", timeout=90) -> dict:
    return wait_for(lambda: (r := last_result(kubectl, namespace, name)).get("trigger", "").endswith(f"={token})")
                    and "finishedAt" in r and r, timeout=timeout, what=f"the run {token}")


def conditions(kubectl, namespace, name="network") -> dict:
    return {c["type"]: c for c in (kubectl.get("driftcheck", name, namespace).get("status") or {}).get("conditions", [])}


def test_cron_slot_runs_and_reports_no_drift(kubectl, namespace, infra, operator):
    kubectl.apply(driftcheck(infra, schedule=["* * * * *"]), namespace)
    status = kubectl.get("driftcheck", "network", namespace).get("status") or {}
    wait_for(lambda: last_result(kubectl, namespace).get("finishedAt"), timeout=100, what="the first scheduled run")
    status = kubectl.get("driftcheck", "network", namespace)["status"]
    assert status["lastResult"]["outcome"] == "NoDrift" and status["lastResult"]["exitCode"] == 0
    assert status["lastResult"]["trigger"].startswith("schedule ")
    assert status["lastResult"]["sourceRevision"] == infra.first_commit
    assert status["lastResult"]["terraformVersion"].startswith("1.")
    assert status["lastScheduleTime"].endswith(":00Z") and status["nextScheduleTime"] > status["lastScheduleTime"]
    assert status["driftedCount"] == 0 and "lock" not in status
    cond = conditions(kubectl, namespace)
    assert (cond["Drifted"]["status"], cond["Drifted"]["reason"]) == ("False", "NoDrift")
    assert cond["Ready"]["status"] == "True"
    assert operator.metric("opex_driftchecks", result="NoDrift") >= 1  # per-object state is in status, not series


def test_committed_change_is_drift_with_a_report_then_approved_apply_converges(kubectl, namespace, infra, operator):
    kubectl.apply(driftcheck(infra, resolution={"strategy": "Apply", "approval": "Manual"}), namespace)
    assert wait_run(kubectl, namespace, run_now(kubectl, namespace))["outcome"] == "NoDrift"

    # The branch moved since the run that exported it: that revision is planned while git asks, and
    # thrown away; the new one is fetched and planned, and the result is its.
    moved = infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "large"}}, "network: large")
    result = wait_run(kubectl, namespace, run_now(kubectl, namespace))
    assert result["outcome"] == "DriftDetected" and result["exitCode"] == 2 and result["change"] == 1
    assert result["sourceRevision"] == moved
    status = kubectl.get("driftcheck", "network", namespace)["status"]
    assert status["driftedResources"] == [{"address": "terraform_data.network", "actions": ["update"],
                                           "reason": "change"}]
    assert status["driftedCount"] == 1
    cond = conditions(kubectl, namespace)
    assert cond["Drifted"]["reason"] == "DriftDetected" and "terraform_data.network" in cond["Drifted"]["message"]
    assert "~" not in cond["Drifted"]["message"] and "resource \"" not in cond["Drifted"]["message"]  # no plan text
    assert cond["Remediating"]["reason"] == "AwaitingApproval" and result["planChecksum"] in cond["Remediating"]["message"]
    report = kubectl.get("configmap", status["reportRef"]["name"], namespace)
    summary = json.loads(report["data"]["summary.json"])
    assert summary["summary"]["changes"][0]["address"] == "terraform_data.network"
    assert summary["planChecksum"] == result["planChecksum"]
    plan = gzip.decompress(base64.b64decode(report["binaryData"]["plan.json.gz"])).decode()
    assert json.loads(plan)["resource_changes"] and "not-the-real-one" not in plan  # the sensitive default is masked
    assert report["metadata"]["ownerReferences"][0]["kind"] == "DriftCheck"
    assert boto3.client("s3").get_object(Bucket=infra.bucket, Key="network/terraform.tfstate")["Body"].read() \
        .count(b'"small"') >= 1

    kubectl("patch", "driftcheck", "network", "-n", namespace, "--type=merge", "-p",
            json.dumps({"spec": {"resolution": {"approvedPlanChecksum": result["planChecksum"]}}}))
    wait_for(lambda: resolution(kubectl, namespace).get("outcome") == "Succeeded", timeout=90,
             what="the approved apply")
    wait_for(lambda: last_result(kubectl, namespace).get("trigger", "").startswith("verification")
             and last_result(kubectl, namespace).get("finishedAt"), timeout=90, what="the verification run")
    status = kubectl.get("driftcheck", "network", namespace)["status"]
    assert status["lastResult"]["outcome"] == "NoDrift"
    assert status["lastResolution"]["planChecksum"] == result["planChecksum"]
    state = boto3.client("s3").get_object(Bucket=infra.bucket, Key="network/terraform.tfstate")["Body"].read()
    assert b'"large"' in state
    reasons = [e["reason"] for e in kubectl.events(namespace, "network")]
    for reason in ("RunStarted", "NoDrift", "DriftDetected", "AwaitingApproval", "ResolutionStarted",
                   "ResolutionSucceeded"):
        assert reason in reasons
    assert operator.metric("opex_driftcheck_resolutions_total", strategy="Apply", outcome="succeeded") >= 1


def test_a_plan_that_changes_after_approval_is_not_applied(kubectl, namespace, infra, operator):
    kubectl.apply(driftcheck(infra, resolution={"strategy": "Apply"}), namespace)
    infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "large"}}, "large")
    first = wait_run(kubectl, namespace, run_now(kubectl, namespace))
    infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "huge"}}, "huge")
    second = wait_run(kubectl, namespace, run_now(kubectl, namespace))
    assert first["planChecksum"] != second["planChecksum"]
    status = bump(kubectl, "driftcheck", "network", namespace,
                  json.dumps({"spec": {"resolution": {"approvedPlanChecksum": first["planChecksum"]}}}))
    assert "lastResolution" not in status
    state = boto3.client("s3").get_object(Bucket=infra.bucket, Key="network/terraform.tfstate")["Body"].read()
    assert b'"small"' in state and b'"large"' not in state


def test_an_auto_plan_that_would_replace_a_resource_waits_with_the_gate_named(kubectl, namespace, infra, operator):
    kubectl.apply(driftcheck(infra, resolution={"strategy": "Apply", "approval": "Auto",
                                                "gates": {"denyActions": ["replace"]}}), namespace)
    replacing = tfrepo.MAIN_TF.replace("  input = var.size\n", "  input = var.size\n  triggers_replace = var.size\n")
    infra.commit({"network/main.tf": replacing % {"size": "large"}}, "network: replaced when its size changes")
    result = wait_run(kubectl, namespace, run_now(kubectl, namespace))
    assert result["outcome"] == "DriftDetected"
    assert result["gateFailures"] == [{"gate": "denyActions", "source": "spec.resolution.gates", "detail": "replace",
                                       "resources": ["terraform_data.network"]}]
    held = wait_for(lambda: (c := conditions(kubectl, namespace).get("Remediating")) and c["reason"] == "GateFailed"
                    and c, timeout=30, what="the gate holding the plan")
    assert "denyActions of spec.resolution.gates: replace of terraform_data.network" in held["message"]
    assert result["planChecksum"] in held["message"]
    event = next(e for e in kubectl.events(namespace, "network") if e["reason"] == "GateFailed")
    assert event["type"] == "Warning" and "terraform_data.network" in event["message"]
    status = bump(kubectl, "driftcheck", "network", namespace, json.dumps({"spec": {"timeoutSeconds": 121}}))
    assert "lastResolution" not in status  # not applied, not even tried
    state = boto3.client("s3").get_object(Bucket=infra.bucket, Key="network/terraform.tfstate")["Body"].read()
    assert b'"small"' in state and b'"large"' not in state

    kubectl("patch", "driftcheck", "network", "-n", namespace, "--type=merge", "-p",
            json.dumps({"spec": {"resolution": {"approvedPlanChecksum": result["planChecksum"]}}}))
    wait_for(lambda: resolution(kubectl, namespace).get("outcome") == "Succeeded", timeout=90,
             what="the apply a person approved")
    state = boto3.client("s3").get_object(Bucket=infra.bucket, Key="network/terraform.tfstate")["Body"].read()
    assert b'"large"' in state


def hold_lock(terraform_bin, tmp_path, infra, seconds=60):
    """Another terraform process applying to the same state: it holds the lock while it sleeps."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "main.tf").write_text(tfrepo.SLOW_TF % {"token": uuid.uuid4().hex, "seconds": seconds})
    tfrepo.terraform(terraform_bin, other, *tfrepo.init_args(infra.config))
    import os

    env = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_CLI_CONFIG_FILE": os.devnull}
    proc = subprocess.Popen([terraform_bin, "apply", "-auto-approve", "-input=false", "-no-color"], cwd=other, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    s3 = boto3.client("s3")
    wait_for(lambda: any(o["Key"].endswith(".tflock") for o in s3.list_objects_v2(Bucket=infra.bucket)
                         .get("Contents", [])), timeout=30, what="the other process's lock")
    return proc


def test_lock_held_by_another_process_is_reported_with_its_info(kubectl, namespace, infra, operator, terraform_bin,
                                                                 tmp_path):
    holder = hold_lock(terraform_bin, tmp_path, infra)
    try:
        kubectl.apply(driftcheck(infra, lock={"timeout": "1s"}), namespace)
        result = wait_run(kubectl, namespace, run_now(kubectl, namespace))
        assert result["outcome"] == "LockHeld" and result["exitCode"] == 1
        status = kubectl.get("driftcheck", "network", namespace)["status"]
        lock = status["lock"]
        assert lock["operation"] == "OperationTypeApply" and "@" in lock["who"]
        assert lock["path"] == f"{infra.bucket}/network/terraform.tfstate" and lock["seenCount"] == 1
        assert len(lock["id"]) >= 8 and lock["created"]
        cond = conditions(kubectl, namespace)
        assert (cond["Drifted"]["status"], cond["Drifted"]["reason"]) == ("Unknown", "LockHeld")
        assert cond["Ready"]["reason"] == "LockHeld" and lock["id"] in cond["Ready"]["message"]
        assert operator.metric("opex_terraform_state_locks_held") >= 1
    finally:
        import os

        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()


def test_orphaned_lock_is_force_unlocked_only_after_runs_orphaned_after_apart(kubectl, namespace, infra, operator,
                                                                             terraform_bin, tmp_path):
    """Runs seconds apart prove nothing about a long apply; `opex run` then reports the run that answers
    its request: the one after the force-unlock, not the LockHeld that led to it."""
    import os

    holder = hold_lock(terraform_bin, tmp_path, infra)
    os.killpg(holder.pid, signal.SIGKILL)  # a dead apply leaves its lock behind
    holder.wait()
    kubectl.apply(driftcheck(infra, lock={"timeout": "1s", "forceUnlock": "IfOrphaned", "orphanedAfter": "1m"}),
                  namespace)
    for _ in range(2):  # answered: the operator has decided what follows the run (here: nothing)
        token = run_now(kubectl, namespace)
        status = wait_for(lambda: (st := kubectl.get("driftcheck", "network", namespace).get("status") or {})
                          .get("answeredRunRequest") == token and st, timeout=90, what=f"the answer to {token}")
        assert status["lastResult"]["outcome"] == "LockHeld"
    lock = status["lock"]
    assert lock["seenCount"] == 2 and "unlockAttemptedAt" not in lock
    assert not [e for e in kubectl.events(namespace, "network") if e["reason"] == "ForceUnlocked"]
    assert "that still finds it force-unlocks it" in conditions(kubectl, namespace)["Checked"]["message"]
    first_seen = dt.datetime.fromisoformat(lock["firstSeenAt"].replace("Z", "+00:00"))
    time.sleep(max(0.0, (first_seen + dt.timedelta(seconds=61) - dt.datetime.now(dt.timezone.utc)).total_seconds()))
    ran = subprocess.run([str(Path(sys.executable).with_name("opex")), "--kubeconfig", str(kubectl.kubeconfig), "run",
                          "driftcheck", "network", "-n", namespace], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("driftcheck network: NoDrift") and "after force-unlock" in ran.stdout, ran.stdout
    status = kubectl.get("driftcheck", "network", namespace)["status"]
    assert status["lastResult"]["outcome"] == "NoDrift" and "lock" not in status
    unlocked = [e for e in kubectl.events(namespace, "network") if e["reason"] == "ForceUnlocked"]
    assert len(unlocked) == 1 and lock["id"] in unlocked[0]["message"], unlocked
    # the two requested runs and the one after orphanedAfter at least (a cron slot may add one on a slow machine)
    seen = re.search(r"seen on (\d+) runs", unlocked[0]["message"])
    assert seen and int(seen[1]) >= 3, unlocked[0]["message"]


@pytest.mark.parametrize("change,reason,phrase", [
    ({"source": {"git": {"url": "https://git.invalid/infra.git"}}}, "SourceUnavailable", "git could not fetch"),
    ({"source": {"git": {"ref": "release-9"}}}, "RefNotFound", "ref 'release-9' does not exist"),
    ({"source": {"git": {"path": "nowhere"}}}, "InvalidPath", "is not a directory"),
    ({"backendConfig": {"bucket": "no-such-bucket", "region": "us-east-1", "key": "k", "use_path_style": "true",
                        "skip_credentials_validation": "true", "skip_requesting_account_id": "true"}},
     "InitFailed", "terraform init failed"),
])
def test_failures_end_the_run_with_a_reason_and_the_diagnostic(kubectl, namespace, infra, operator, change, reason,
                                                               phrase):
    doc = json.loads(driftcheck(infra))
    for key, value in change.items():
        if key == "source":
            doc["spec"]["source"]["git"].update(value["git"])
        else:
            doc["spec"][key] = value
    kubectl.apply(json.dumps(doc), namespace)
    result = wait_run(kubectl, namespace, run_now(kubectl, namespace))
    assert result["outcome"] == "PlanFailed"
    ready = conditions(kubectl, namespace)["Ready"]
    assert ready["status"] == "False" and ready["reason"] == reason and phrase in ready["message"]
    assert "the next scheduled run still happens" in ready["message"]
    assert kubectl.get("driftcheck", "network", namespace)["status"]["nextScheduleTime"]


def test_invalid_hcl_is_a_plan_failure_with_terraforms_first_lines(kubectl, namespace, infra, operator):
    infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "small"} + '\nresource "terraform_data" {\n'}, "broken")
    kubectl.apply(driftcheck(infra), namespace)
    result = wait_run(kubectl, namespace, run_now(kubectl, namespace))
    ready = conditions(kubectl, namespace)["Ready"]
    assert result["outcome"] == "PlanFailed" and ready["reason"] in ("InitFailed", "PlanFailed")
    assert "Error:" in ready["message"] and "main.tf" in ready["message"]


def test_a_run_past_its_timeout_is_interrupted_and_reported(kubectl, namespace, infra, operator, terraform_bin,
                                                            tmp_path):
    holder = hold_lock(terraform_bin, tmp_path, infra)
    try:
        # plan waits up to lock.timeout for the lock; the run's own timeout is shorter
        kubectl.apply(driftcheck(infra, lock={"timeout": "10m"}, timeoutSeconds=30), namespace)
        result = wait_run(kubectl, namespace, run_now(kubectl, namespace), timeout=120)
        ready = conditions(kubectl, namespace)["Ready"]
        assert result["outcome"] == "PlanFailed" and ready["reason"] == "TimedOut"
        assert "exceeded timeoutSeconds (30s)" in ready["message"]
        assert 25 <= result["durationSeconds"] <= 60
    finally:
        import os

        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()


def test_the_example_driftcheck_with_its_configmap_source(kubectl, namespace, aws, operator, terraform_bin, tmp_path):
    import yaml

    example = Path(__file__).resolve().parents[2] / "examples" / "driftcheck.yaml"
    config_map, dc = yaml.safe_load_all(example.read_text())
    boto3.client("s3").create_bucket(Bucket=dc["spec"]["backendConfig"]["bucket"])
    kubectl("apply", "-n", namespace, "-f", str(example))
    first = wait_run(kubectl, namespace, run_now(kubectl, namespace, "production-network"), "production-network")
    assert first["outcome"] == "DriftDetected" and first["add"] == 2  # nothing applied yet: two to create
    assert first["sourceRevision"] == "configmap/production-network-tf"
    # make the state match, as the team's pipeline would, then the check is clean
    (tmp_path / "main.tf").write_text(config_map["data"]["main.tf"])
    tfrepo.terraform(terraform_bin, tmp_path, *tfrepo.init_args(dc["spec"]["backendConfig"]))
    tfrepo.terraform(terraform_bin, tmp_path, "apply", "-auto-approve", "-input=false", "-no-color")
    again = wait_run(kubectl, namespace, run_now(kubectl, namespace, "production-network"), "production-network")
    assert again["outcome"] == "NoDrift"
    assert conditions(kubectl, namespace, "production-network")["Drifted"]["reason"] == "NoDrift"


def test_import_resolution_adopts_what_exists_then_verifies(kubectl, namespace, infra, operator):
    infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "small"}
                  + '\nresource "terraform_data" "dns" {\n  input = "zone"\n}\n'}, "adopt the dns zone")
    kubectl.apply(driftcheck(infra, resolution={"strategy": "Import", "approval": "Auto", "imports": [
        {"address": "terraform_data.dns", "id": "Z0123456789"}]}), namespace)
    run_now(kubectl, namespace)
    ended = wait_for(lambda: [t for t in kubectl.get("driftcheck", "network", namespace).get("status", {})
                              .get("timeline", []) if t["reason"] in ("ResolutionSucceeded", "ResolutionFailed")],
                     timeout=90, what="the import")  # its record may already be the verification's by now
    assert ended[0]["reason"] == "ResolutionSucceeded" and "imported terraform_data.dns" in ended[0]["message"]
    state = boto3.client("s3").get_object(Bucket=infra.bucket, Key="network/terraform.tfstate")["Body"].read()
    assert b'"dns"' in state and b"Z0123456789" in state
    wait_for(lambda: last_result(kubectl, namespace).get("trigger", "").startswith("verification")
             and last_result(kubectl, namespace).get("finishedAt"), timeout=60, what="the verification run")
    # the adopted object differs from the configuration: that is a change for a person, not a second import
    wait_for(lambda: conditions(kubectl, namespace)["Remediating"]["reason"] == "NothingToDo", what="NothingToDo")
    status = kubectl.get("driftcheck", "network", namespace)["status"]
    assert status["lastResolution"]["outcome"] == "Skipped" and "already in the state" in status["lastResolution"]["message"]
    succeeded = [e["message"] for e in kubectl.events(namespace, "network") if e["reason"] == "ResolutionSucceeded"]
    assert len(succeeded) == 1 and "imported terraform_data.dns" in succeeded[0]
    assert len([e for e in kubectl.events(namespace, "network") if e["reason"] == "ResolutionStarted"]) == 1


def test_refresh_only_runs_once_per_plan_and_reports_are_pruned(kubectl, namespace, infra, operator):
    infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "large"}}, "large")
    kubectl.apply(driftcheck(infra, resolution={"strategy": "RefreshOnly", "approval": "Auto"}, report={"keep": 2}),
                  namespace)
    run_now(kubectl, namespace)
    wait_for(lambda: resolution(kubectl, namespace).get("outcome") == "Succeeded", timeout=90, what="the refresh")
    wait_for(lambda: last_result(kubectl, namespace).get("trigger", "").startswith("verification")
             and last_result(kubectl, namespace).get("finishedAt"), timeout=60, what="the verification run")
    # refresh cannot fix a configuration change: still drift, and the same plan is not refreshed again
    assert last_result(kubectl, namespace)["outcome"] == "DriftDetected"
    for _ in range(2):
        wait_run(kubectl, namespace, run_now(kubectl, namespace))
    refreshes = [e for e in kubectl.events(namespace, "network") if e["reason"] == "ResolutionStarted"]
    assert len(refreshes) == 1
    reports = kubectl.json("get", "configmaps", "-n", namespace, "-l", "opex.dev/driftcheck=network")["items"]
    assert len(reports) == 2
    newest = kubectl.get("driftcheck", "network", namespace)["status"]["reportRef"]["name"]
    assert newest in [r["metadata"]["name"] for r in reports]


def test_a_plan_of_10000_resources_gets_its_report_through_the_api_server(kubectl, namespace, operator):
    """~6,000 changed resources used to make the report ConfigMap too long (422) and leave status half-updated."""
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fleet-tf"}, "data": {"main.tf": (
        'resource "terraform_data" "host" {\n  count = 10000\n  input = "host-${count.index}"\n}\n')}}
    kubectl.apply(json.dumps(config), namespace)
    kubectl.apply(json.dumps({"apiVersion": "opex.dev/v1alpha1", "kind": "DriftCheck", "metadata": {"name": "fleet"},
                              "spec": {"schedule": ["0 9 * * *"], "source": {"configMapRef": {"name": "fleet-tf"}},
                                       "timeoutSeconds": 600}}), namespace)
    result = wait_run(kubectl, namespace, run_now(kubectl, namespace, "fleet"), "fleet", timeout=300)
    status = kubectl.get("driftcheck", "fleet", namespace)["status"]
    assert result["outcome"] == "DriftDetected" and result["add"] == 10_000 and status["driftedCount"] == 10_000
    cond = conditions(kubectl, namespace, "fleet")
    assert cond["Ready"]["status"] == "True" and cond["Drifted"]["reason"] == "DriftDetected"
    assert status["reportRef"]["name"] in cond["Drifted"]["message"] and status["reportRef"]["summaryTruncated"]
    report = kubectl.json("get", "configmap", status["reportRef"]["name"], "-n", namespace)
    summary = json.loads(report["data"]["summary.json"])
    assert summary["planChecksum"] == result["planChecksum"] and summary["summary"]["add"] == 10_000
    assert summary["summary"]["truncated"]["changes"] == {"listed": len(summary["summary"]["changes"]),
                                                          "total": 10_000}
    plan = json.loads(gzip.decompress(base64.b64decode(report["binaryData"]["plan.json.gz"])))
    assert len(plan["resource_changes"]) == 10_000
