"""How Argo CD and Flux read the health of live objects the operator reconciled.

* Argo CD: the chart's Lua health check (charts/opex-operator/docs/argocd/health.lua) run in
  Lua 5.1 (lupa), the dialect Argo CD's gopher-lua speaks, with the live object as ``obj``.
* Flux: sigs.k8s.io/cli-utils kstatus itself (hack/kstatus, built from the Go module proxy), the
  library kustomize-controller's ``wait: true`` calls: Current (done), InProgress (keep waiting),
  Failed (stop waiting, report the error).
"""
from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
import yaml

import estate
import gotools
import tfrepo
from helpers import CHART, argocd_health, wait_for
from test_crd_validation import DRIFTCHECK, ROLLBACK
from test_driftcheck import driftcheck, run_now, wait_run

ARGOCD = CHART / "docs" / "argocd"
HEALTH_LUA = (ARGOCD / "health.lua").read_text()


@pytest.fixture(scope="module")
def kstatus():
    binary = gotools.ensure_kstatus()

    def read(*objs: dict) -> list[tuple[str, str]]:
        out = subprocess.run([str(binary)], input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}),
                             capture_output=True, text=True, check=True, timeout=30)
        return [(v["status"], v["message"]) for v in json.loads(out.stdout)]

    return read


def live(kubectl, kind: str, name: str, namespace: str, *phases: str) -> dict:
    """The object once the operator has observed it (and, if given, reached one of ``phases``)."""
    def ready():
        obj = kubectl.get(kind, name, namespace)
        status = obj.get("status") or {}
        if status.get("observedGeneration") == obj["metadata"]["generation"] and (
                not phases or status.get("phase") in phases):
            return obj
        return None
    return wait_for(ready, timeout=90, what=f"{kind}/{name} observed{' in ' + str(phases) if phases else ''}")


def manifest(base: dict, name: str, **spec) -> str:
    doc = copy.deepcopy(base)
    doc["metadata"]["name"] = name
    doc["spec"].update(spec)
    return json.dumps(doc)


def test_the_argocd_config_patch_carries_the_health_check_for_each_kind():
    data = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())["data"]
    assert data == {f"resource.customizations.health.opex.dev_{kind}": HEALTH_LUA
                    for kind in ("Incident", "DriftCheck", "Rollback")}


def test_a_scheduled_driftcheck_is_healthy_to_argo_cd(kubectl, namespace, operator):
    kubectl.create(json.dumps(DRIFTCHECK), namespace)
    obj = live(kubectl, "driftcheck", "bad", namespace)
    status, message = argocd_health(obj)
    assert status == "Healthy" and message.startswith("first check at")


def test_a_scheduled_driftcheck_is_current_to_flux(kubectl, namespace, operator, kstatus):
    kubectl.create(json.dumps(DRIFTCHECK), namespace)
    obj = live(kubectl, "driftcheck", "bad", namespace)
    assert kstatus(obj)[0][0] == "Current", obj["status"]["conditions"]


def plan_failed(kubectl, namespace, infra) -> dict:
    infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "small"} + '\nresource "terraform_data" {\n'}, "broken")
    wait_run(kubectl, namespace, run_now(kubectl, namespace))
    obj = kubectl.get("driftcheck", "network", namespace)
    assert obj["status"]["lastResult"]["outcome"] == "PlanFailed"
    return obj


def test_a_driftcheck_is_healthy_after_a_clean_run_and_degraded_when_its_plan_fails(kubectl, namespace, infra,
                                                                                    operator, kstatus):
    kubectl.apply(driftcheck(infra), namespace)
    wait_run(kubectl, namespace, run_now(kubectl, namespace))
    clean = kubectl.get("driftcheck", "network", namespace)
    assert clean["status"]["lastResult"]["outcome"] == "NoDrift"
    assert argocd_health(clean)[0] == "Healthy"
    assert kstatus(clean)[0][0] == "Current"
    status, message = argocd_health(plan_failed(kubectl, namespace, infra))
    assert status == "Degraded" and "main.tf" in message


def test_a_failed_plan_is_failed_to_flux(kubectl, namespace, infra, operator, kstatus):
    kubectl.apply(driftcheck(infra), namespace)
    obj = plan_failed(kubectl, namespace, infra)
    assert kstatus(obj)[0][0] == "Failed", obj["status"]["conditions"]


def test_a_rollback_awaiting_approval_is_suspended_to_argo_cd_and_in_progress_to_flux(
        kubectl, namespace, aws, operator, kstatus):
    estate.lambda_with_versions("pricing-api", versions=3, broken_latest=False)
    kubectl.apply(manifest(ROLLBACK, "pricing-previous", **{"lambda": {"functionName": "pricing-api",
                                                                      "to": {"previous": True}}}), namespace)
    obj = live(kubectl, "rollback", "pricing-previous", namespace, "AwaitingApproval")
    status, message = argocd_health(obj)
    assert status == "Suspended" and "spec.approved: true" in message
    assert kstatus(obj) == [("InProgress", message)]


def test_a_succeeded_rollback_is_healthy_and_current(kubectl, namespace, aws, operator, kstatus):
    site = estate.static_site()
    kubectl.apply(json.dumps({
        "apiVersion": "opex.dev/v1alpha1", "kind": "Rollback", "metadata": {"name": "www-restore"},
        "spec": {"approval": "Auto", "staticSite": {"bucket": site.bucket, "backupPrefix": site.backup_prefix,
                                                     "cloudFront": {"distributionId": site.distribution_id}}}}),
        namespace)
    obj = live(kubectl, "rollback", "www-restore", namespace, "Succeeded", "Failed")
    assert obj["status"]["phase"] == "Succeeded"
    assert argocd_health(obj)[0] == "Healthy"
    assert kstatus(obj)[0][0] == "Current"


def failed_rollback(kubectl, namespace) -> dict:
    kubectl.apply(manifest(ROLLBACK, "no-such-function", approval="Auto",
                           **{"lambda": {"functionName": "no-such-function", "to": {"previous": True}}}), namespace)
    obj = live(kubectl, "rollback", "no-such-function", namespace, "Succeeded", "Failed")
    assert obj["status"]["phase"] == "Failed"
    return obj


def test_a_failed_rollback_is_degraded_to_argo_cd(kubectl, namespace, aws, operator):
    status, message = argocd_health(failed_rollback(kubectl, namespace))
    assert status == "Degraded" and "no-such-function" in message


def test_a_failed_rollback_is_failed_to_flux(kubectl, namespace, aws, operator, kstatus):
    obj = failed_rollback(kubectl, namespace)
    stalled = next(c for c in obj["status"]["conditions"] if c["type"] == "Stalled")
    assert kstatus(obj) == [("Failed", stalled["message"])]  # Flux stops waiting and reports why


def test_a_generation_the_operator_has_not_observed_is_progressing_to_both(kubectl, namespace, operator, kstatus):
    kubectl.create(json.dumps(DRIFTCHECK), namespace)
    obj = live(kubectl, "driftcheck", "bad", namespace)
    obj["metadata"]["generation"] += 1  # a spec change the operator has not seen yet
    assert argocd_health(obj)[0] == "Progressing"
    assert kstatus(obj)[0][0] == "InProgress"


def test_an_object_no_operator_has_seen_is_progressing_to_argo_cd(kubectl, solo_namespace, kstatus):
    kubectl.create(json.dumps(DRIFTCHECK), solo_namespace)  # no operator watches solo-* namespaces here
    obj = kubectl.get("driftcheck", "bad", solo_namespace)
    assert "status" not in obj
    assert argocd_health(obj) == ("Progressing", "Waiting for the opex operator to observe this DriftCheck")
    # kstatus's documented limit: without status.observedGeneration or conditions it cannot tell
    # a resource that reports no status from one not yet reconciled, and says Current.
    assert kstatus(obj)[0][0] == "Current"


def test_an_incident_awaiting_approval_is_suspended_then_healthy_once_resolved(kubectl, namespace, aws, operator,
                                                                                kstatus):
    estate.deployment_failure("checkout")
    kubectl("apply", "-n", namespace, "-f", str(Path(__file__).resolve().parents[2] / "examples" /
                                                 "incident-deployment-failure.yaml"))
    waiting = live(kubectl, "incident", "checkout-deploy-failed", namespace, "AwaitingApproval")
    assert argocd_health(waiting)[0] == "Suspended"
    assert kstatus(waiting)[0][0] == "InProgress"
    kubectl("patch", "incident", "checkout-deploy-failed", "-n", namespace, "--type=merge", "-p",
            '{"spec":{"remediation":{"approvedSteps":["rollback-lambda-checkout-api"]}}}')
    resolved = live(kubectl, "incident", "checkout-deploy-failed", namespace, "Resolved", "Failed")
    assert resolved["status"]["phase"] == "Resolved"
    assert argocd_health(resolved)[0] == "Healthy"
    assert kstatus(resolved)[0][0] == "Current"
