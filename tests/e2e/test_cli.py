"""The `opex` command on the local stack, as an on-call engineer uses it: the three approval flows."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import boto3
import yaml

import estate
from helpers import wait_for
from test_driftcheck import driftcheck
from test_incident_runbooks import EXAMPLE, phase_of
from test_rollback import rollback, site_spec, wait_phase

OPEX = str(Path(sys.executable).with_name("opex"))


def opex(cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([OPEX, "--kubeconfig", str(cluster.kubeconfig), *args], capture_output=True, text=True,
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"opex {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def test_get_describe_and_approve_an_incident(cluster, kubectl, namespace, aws, operator):
    scenario = estate.deployment_failure("checkout")
    kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
    wait_for(lambda: phase_of(kubectl, namespace) == "AwaitingApproval", what="AwaitingApproval")
    listed = opex(cluster, "get", "incidents", "-n", namespace).stdout
    assert "checkout-deploy-failed" in listed and "AwaitingApproval" in listed and "LambdaDeployment" in listed
    assert "rollback-lambda-checkout-api" in listed
    described = opex(cluster, "describe", "incident", "checkout-deploy-failed", "-n", namespace).stdout
    for section in ("Root cause", "Findings", "Steps", "Escalation", "Timeline", "pg8000"):
        assert section in described
    assert f"Next: opex approve incident checkout-deploy-failed -n {namespace} rollback-lambda-checkout-api" in described
    as_json = json.loads(opex(cluster, "get", "inc", "-n", namespace, "-o", "json").stdout)
    assert as_json["items"][0]["status"]["phase"] == "AwaitingApproval"

    wrong = opex(cluster, "approve", "incident", "checkout-deploy-failed", "rollback-typo", "-n", namespace, check=False)
    assert wrong.returncode == 1 and "has no step rollback-typo" in wrong.stderr and "Traceback" not in wrong.stderr
    assert "rollback-lambda-checkout-api" in wrong.stderr

    opex(cluster, "approve", "incident", "checkout-deploy-failed", "rollback-lambda-checkout-api", "-n", namespace)
    wait_for(lambda: phase_of(kubectl, namespace) == "Resolved", what="Resolved")
    spec = kubectl.get("incident", "checkout-deploy-failed", namespace)["spec"]
    # In the approver's own name (the admin certificate's CN): the named approval alone let the step run.
    assert spec["remediation"]["approvals"] == [{"step": "rollback-lambda-checkout-api", "by": "admin"}]
    assert "approvedSteps" not in spec["remediation"]
    assert boto3.client("lambda").get_function(FunctionName="checkout-api")["Configuration"]["CodeSha256"] == \
        scenario.shas[0]


def test_run_and_approve_a_driftcheck(cluster, kubectl, namespace, infra, operator):
    kubectl.apply(driftcheck(infra, resolution={"strategy": "Apply"}), namespace)
    none_yet = opex(cluster, "approve", "driftcheck", "network", "-n", namespace, check=False)
    assert none_yet.returncode == 1 and "has no plan to approve yet" in none_yet.stderr
    infra.commit({"network/main.tf": __import__("tfrepo").MAIN_TF % {"size": "large"}}, "large")
    ran = opex(cluster, "run", "driftcheck", "network", "-n", namespace)
    assert "DriftDetected (0 to add, 1 to change, 0 to destroy)" in ran.stdout
    checksum = kubectl.get("driftcheck", "network", namespace)["status"]["lastResult"]["planChecksum"]
    approved = opex(cluster, "approve", "driftcheck", "network", "-n", namespace).stdout
    assert checksum in approved  # read before: once approved, the apply and its verification run may follow fast
    assert approved.strip().endswith("as admin")
    assert kubectl.get("driftcheck", "network", namespace)["spec"]["resolution"]["approvedBy"] == "admin"
    wait_for(lambda: (kubectl.get("driftcheck", "network", namespace)["status"].get("lastResolution") or {})
             .get("outcome") == "Succeeded", timeout=90, what="the apply")
    assert "NoDrift" in opex(cluster, "run", "driftcheck", "network", "-n", namespace).stdout


def test_approve_and_abort_rollbacks(cluster, kubectl, namespace, aws, operator):
    site = estate.static_site()
    kubectl.apply(rollback("www", **{**site_spec(site), "approval": "Manual"}), namespace)
    wait_phase(kubectl, namespace, "www", "AwaitingApproval")
    assert "Next: opex approve rollback www" in opex(cluster, "describe", "rb", "www", "-n", namespace).stdout
    opex(cluster, "approve", "rollback", "www", "-n", namespace)
    assert wait_phase(kubectl, namespace, "www", "Succeeded", "Failed")["phase"] == "Succeeded"
    assert kubectl.get("rollback", "www", namespace)["spec"]["approvedBy"] == "admin"
    late = opex(cluster, "abort", "rollback", "www", "-n", namespace, check=False)
    assert late.returncode == 1 and "has already ended (Succeeded); there is nothing to abort" in late.stderr

    estate.lambda_with_versions("pricing-api", versions=3, broken_latest=False)
    kubectl.apply(rollback("pricing", **{"lambda": {"functionName": "pricing-api", "to": {"previous": True}}}),
                  namespace)
    wait_phase(kubectl, namespace, "pricing", "AwaitingApproval")
    opex(cluster, "abort", "rollback", "pricing", "-n", namespace)
    aborted = wait_phase(kubectl, namespace, "pricing", "Aborted")
    assert "nothing was changed" in aborted["message"]


def test_errors_are_one_line_without_a_traceback(cluster, namespace):
    missing = opex(cluster, "describe", "incident", "nope", "-n", namespace, check=False)
    assert missing.returncode == 1 and missing.stderr.strip() == f"opex: incident nope in namespace {namespace} not found"
    no_config = subprocess.run([OPEX, "--kubeconfig", "/nonexistent", "get"], capture_output=True, text=True)
    assert no_config.returncode == 1 and no_config.stderr.startswith("opex: no usable kubeconfig")
    assert "Traceback" not in no_config.stderr + missing.stderr


def test_kubectl_finds_it_as_a_plugin(cluster, namespace):
    import os

    env = {**os.environ, "PATH": f"{Path(OPEX).parent}:{os.environ['PATH']}", "KUBECONFIG": str(cluster.kubeconfig)}
    plugins = subprocess.run(["kubectl", "plugin", "list"], capture_output=True, text=True, env=env)
    assert "kubectl-opex" in plugins.stdout
    listed = subprocess.run(["kubectl", "opex", "get", "-n", namespace], capture_output=True, text=True, env=env)
    assert listed.returncode == 0 and "No incidents or driftchecks or rollbacks found" in listed.stderr


def test_a_misspelt_mode_is_refused_by_kubectl_and_visible_when_a_client_skips_validation(cluster, kubectl, namespace,
                                                                                       aws, operator):
    manifest = yaml.safe_load(EXAMPLE.read_text())
    manifest["spec"]["remediation"] = {"mdoe": "Auto"}
    strict = kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(manifest), check=False)
    assert strict.returncode != 0 and 'unknown field "spec.remediation.mdoe"' in strict.stderr
    kubectl("create", "--validate=false", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    name = manifest["metadata"]["name"]
    status = wait_for(lambda: (kubectl.get("incident", name, namespace).get("status") or {}).get("remediation"),
                      what="the mode in status")
    assert status == {"mode": "Manual"} and "mdoe" not in json.dumps(kubectl.get("incident", name, namespace))
    described = opex(cluster, "describe", "incident", name, "-n", namespace).stdout
    assert re.search(r"Mode\s+Manual\s*\n", described), described
