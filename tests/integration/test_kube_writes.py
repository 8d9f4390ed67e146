"""The operator's Kubernetes writes against the real API server: size limits and how a refusal reads."""
from __future__ import annotations

import base64
import json
import random
import uuid

import kubernetes
import pytest

from opex_operator.controllers import drift_report
from opex_operator.errors import KubeError
from opex_operator.kube import Kube, ObjectRef
from opex_operator.terraform.plan import parse_show_json


@pytest.fixture
def kube(cluster, kubectl):
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=config)
    namespace = f"writes-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    yield Kube(kubernetes.client.ApiClient(config)), namespace
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def incompressible_plan(n: int) -> dict:
    """``n`` resources to create, each with 160 random hex digits: its gzip stays over 1 MiB."""
    rng = random.Random(10_000)
    return {"format_version": "1.2", "terraform_version": "1.11.4", "resource_changes": [
        {"address": f"terraform_data.host[{i}]", "mode": "managed", "type": "terraform_data", "name": "host",
         "index": i, "change": {"actions": ["create"], "before": None,
                                "after": {"input": "%0160x" % rng.getrandbits(640)}}} for i in range(n)]}


def owner(namespace: str) -> ObjectRef:
    return ObjectRef("driftchecks", namespace, "fleet", str(uuid.uuid4()), "DriftCheck")


def test_a_config_map_over_1_mib_is_refused_as_too_large_in_one_line(kube):
    """The issue's case: the summary of ~6,000 changed resources, as the report held it before."""
    api, namespace = kube
    summary = parse_show_json(incompressible_plan(6_000))
    unbounded = json.dumps({"summary": summary.to_dict()}, indent=2)  # how the report was written before
    with pytest.raises(KubeError) as refused:
        api.put_config_map(namespace, "fleet-drift-unbounded", {"summary.json": unbounded}, owner(namespace))
    err = refused.value
    assert err.status == 422 and err.too_large
    assert "\n" not in err.describe() and "headers" not in err.describe().lower()
    assert err.describe().startswith("put_config_map: HTTP 422")


def test_the_report_of_10000_incompressible_changes_is_accepted_and_names_the_saved_plan(kube):
    api, namespace = kube
    doc = incompressible_plan(10_000)
    report = drift_report.build({"driftCheck": "fleet", "outcome": "DriftDetected"}, parse_show_json(doc), doc,
                                "/var/lib/opex/work/ns/fleet/check/drift.tfplan")
    assert not report.plan_included and report.summary_truncated
    api.put_config_map(namespace, "fleet-drift-bounded", report.data, owner(namespace), binary=report.binary)
    stored = json.loads(api.config_map_data(namespace, "fleet-drift-bounded")["summary.json"])
    assert stored["planFile"] == "/var/lib/opex/work/ns/fleet/check/drift.tfplan"
    assert stored["summary"]["add"] == 10_000 and stored["summary"]["truncated"]["changes"]["total"] == 10_000


def test_a_report_with_its_plan_uses_the_room_a_config_map_has(kube):
    """The gzipped plan goes in whenever summary and plan together fit the API server's 1 MiB."""
    api, namespace = kube
    doc = incompressible_plan(7_000)
    report = drift_report.build({"driftCheck": "fleet"}, parse_show_json(doc), doc, "/plan")
    assert report.plan_included
    size = len(report.data["summary.json"]) + len(base64.b64decode(report.binary["plan.json.gz"]))
    assert 700 * 1024 < size <= 1024 * 1024  # more than the old fixed 700 KiB allowance for the plan
    api.put_config_map(namespace, "fleet-drift-full", report.data, owner(namespace), binary=report.binary)


def test_a_status_write_answers_with_the_resource_version_its_watch_event_will_carry(kube):
    """The runtime recognises its own writes in the watch by this version (handlers.runtime)."""
    api, namespace = kube
    body = api.create("driftchecks", namespace, {
        "apiVersion": "opex.dev/v1alpha1", "kind": "DriftCheck", "metadata": {"name": "network"},
        "spec": {"schedule": ["0 9 * * *"], "source": {"configMapRef": {"name": "tf"}}}})
    ref = ObjectRef("driftchecks", namespace, "network", body["metadata"]["uid"], "DriftCheck")
    version = api.patch_status(ref, {"observedGeneration": 1})
    assert version != body["metadata"]["resourceVersion"]
    assert api.get("driftchecks", namespace, "network")["metadata"]["resourceVersion"] == version
