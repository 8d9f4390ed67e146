"""An Incident whose deploy died on a Terraform state lock: force-unlock (safely), then retry the stage."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal

import boto3

import estate
import tfrepo
from helpers import wait_for
from test_driftcheck import driftcheck, hold_lock


def stale_lock(terraform_bin, tmp_path, infra, age: dt.timedelta) -> dict:
    """A lock left by an apply that was SIGKILLed ``age`` ago (its LockInfo, as Terraform stored it)."""
    holder = hold_lock(terraform_bin, tmp_path, infra)
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()
    s3 = boto3.client("s3")
    key = "network/terraform.tfstate.tflock"
    info = json.loads(s3.get_object(Bucket=infra.bucket, Key=key)["Body"].read())
    info["Created"] = (dt.datetime.now(dt.timezone.utc) - age).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    s3.put_object(Bucket=infra.bucket, Key=key, Body=json.dumps(info).encode())
    return info


def remediation_end(kubectl, namespace) -> dict:
    """The incident's status once it is Resolved or Failed."""
    return wait_for(lambda: (s := kubectl.get("incident", "network-deploy-locked", namespace).get("status") or {})
                    .get("phase") in ("Resolved", "Failed") and s, timeout=120, what="the end of remediation")


def go_time(rfc3339: str) -> str:
    when = dt.datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    return when.strftime("%Y-%m-%d %H:%M:%S.%f") + "000 +0000 UTC"


INCIDENT = {
    "apiVersion": "opex.dev/v1alpha1", "kind": "Incident", "metadata": {"name": "network-deploy-locked"},
    "spec": {"type": "DeploymentFailure", "severity": "high", "environment": "production",
             "title": "network deploy failed on the state lock",
             "targets": {"pipeline": {"name": "net-pipeline"}, "driftCheckRef": {"name": "network"},
                         "cloudTrail": {"logGroupName": "CloudTrail/none"}},
             "remediation": {"mode": "Auto"}},
}


def test_stale_lock_is_force_unlocked_and_the_stage_retried(kubectl, namespace, infra, operator, terraform_bin,
                                                             tmp_path):
    info = stale_lock(terraform_bin, tmp_path, infra, dt.timedelta(hours=2))
    estate.terraform_deploy_failure("net", estate.lock_error({**info, "Created": go_time(info["Created"])}))
    kubectl.apply(driftcheck(infra), namespace)
    kubectl.apply(json.dumps(INCIDENT), namespace)
    status = remediation_end(kubectl, namespace)
    assert status["phase"] == "Resolved", status.get("conditions")
    assert status["rootCause"]["category"] == "TerraformStateLock"
    assert status["rootCause"]["lock"]["id"] == info["ID"]
    steps = {s["id"]: s for s in status["steps"]}
    assert steps["terraform-force-unlock"]["state"] == "Succeeded"
    assert f"force-unlocked {info['ID']}" in steps["terraform-force-unlock"]["outputs"]
    assert steps["retry-stage-deploy"]["state"] == "Succeeded"
    objects = boto3.client("s3").list_objects_v2(Bucket=infra.bucket).get("Contents", [])
    assert not any(o["Key"].endswith(".tflock") for o in objects)


def test_a_lock_younger_than_the_threshold_is_left_alone(kubectl, namespace, infra, operator, terraform_bin, tmp_path):
    info = stale_lock(terraform_bin, tmp_path, infra, dt.timedelta(seconds=5))
    estate.terraform_deploy_failure("net", estate.lock_error({**info, "Created": go_time(info["Created"])}))
    kubectl.apply(driftcheck(infra), namespace)
    spec = json.loads(json.dumps(INCIDENT))
    spec["spec"]["remediation"]["forceUnlock"] = {"minLockAgeSeconds": 3600}
    kubectl.apply(json.dumps(spec), namespace)
    wait_for(lambda: "unlocking only after 3600s" in (next(
        (s.get("outputs") or "" for s in (kubectl.get("incident", "network-deploy-locked", namespace).get("status")
                                          or {}).get("steps", []) if s["id"] == "terraform-force-unlock"), "")),
             timeout=90, what="the unlock step to wait for the lock's age")
    objects = boto3.client("s3").list_objects_v2(Bucket=infra.bucket).get("Contents", [])
    assert any(o["Key"].endswith(".tflock") for o in objects)


def already_exists(infra) -> None:
    """The configuration adopts an object that exists; the deploy failed because it exists."""
    infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "small"}
                  + '\nresource "terraform_data" "lambda_exec" {\n  input = "checkout-lambda-exec"\n}\n'},
                 "adopt the lambda execution role")
    estate.terraform_deploy_failure("net", estate.already_exists_error("terraform_data.lambda_exec",
                                                                       "checkout-lambda-exec"))


def test_an_object_that_already_exists_is_imported_then_the_stage_retried(kubectl, namespace, infra, operator):
    already_exists(infra)
    kubectl.apply(driftcheck(infra), namespace)
    kubectl.apply(json.dumps(INCIDENT), namespace)
    status = remediation_end(kubectl, namespace)
    assert status["phase"] == "Resolved", status.get("conditions")
    assert status["rootCause"]["category"] == "DeployNamingConflict"
    steps = {s["id"]: s for s in status["steps"]}
    imported = steps["terraform-import-terraform-data-lambda-exec"]
    assert imported["params"] == {"driftCheck": "network", "address": "terraform_data.lambda_exec",
                                  "id": "checkout-lambda-exec"}
    assert imported["state"] == "Succeeded" and "imported checkout-lambda-exec" in imported["outputs"]
    assert steps["retry-stage-deploy"]["state"] == "Succeeded"
    state = boto3.client("s3").get_object(Bucket=infra.bucket, Key="network/terraform.tfstate")["Body"].read()
    assert b"terraform_data" in state and b"lambda_exec" in state


def test_an_auto_import_its_gates_deny_waits_for_approval_naming_the_gate_then_runs_once_approved(kubectl, namespace,
                                                                                                   infra, operator):
    already_exists(infra)
    kubectl.apply(driftcheck(infra), namespace)
    gated = json.loads(json.dumps(INCIDENT))
    gated["spec"]["remediation"]["gates"] = {"deniedAddresses": ["terraform_data.lambda_*"]}
    kubectl.apply(json.dumps(gated), namespace)
    step_id = "terraform-import-terraform-data-lambda-exec"
    status = wait_for(lambda: (s := kubectl.get("incident", "network-deploy-locked", namespace).get("status") or {})
                      .get("phase") == "AwaitingApproval" and s, timeout=120, what="the gate holding the import")
    held = next(c for c in status["conditions"] if c["type"] == "Remediated")
    assert held["reason"] == "GateFailed"
    assert ("deniedAddresses of spec.remediation.gates: address terraform_data.lambda_*: terraform_data.lambda_exec"
            in held["message"]) and step_id in held["message"]
    assert {s["id"]: s for s in status["steps"]}[step_id]["state"] == "AwaitingApproval"
    event = next(e for e in kubectl.events(namespace, "network-deploy-locked") if e["reason"] == "GateFailed")
    assert event["type"] == "Warning"
    state = boto3.client("s3").get_object(Bucket=infra.bucket, Key="network/terraform.tfstate")["Body"].read()
    assert b"lambda_exec" not in state  # not imported

    kubectl("patch", "incident", "network-deploy-locked", "-n", namespace, "--type=merge", "-p",
            json.dumps({"spec": {"remediation": {"approvedSteps": [step_id]}}}))
    status = remediation_end(kubectl, namespace)
    assert status["phase"] == "Resolved", status.get("conditions")
    assert {s["id"]: s for s in status["steps"]}[step_id]["state"] == "Succeeded"
