"""The Helm chart against the real API server: every manifest accepted, a real install, and the
operator running with nothing but the chart's RBAC (cluster-wide and namespaced).

The session ``operator`` fixture already runs the whole e2e suite as the chart's ServiceAccount
(see conftest.py); these tests check that identity itself and the namespaced mode.
"""
from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path

import pytest
import yaml

import estate
from helpers import CHART, Kubectl, OperatorProcess, chart_service_account, forbidden_lines, wait_for
from test_crd_validation import DRIFTCHECK

FULL = CHART / "ci" / "full-values.yaml"
NAMESPACED = CHART / "ci" / "namespaced-values.yaml"
MONITORING_CRDS = Path(__file__).with_name("monitoring-crds.yaml")


@pytest.fixture(scope="module")
def monitoring_crds(kubectl):
    kubectl("apply", "-f", str(MONITORING_CRDS))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com")


def ensure_namespace(kubectl, name: str) -> None:
    if kubectl("get", "namespace", name, check=False).returncode:
        kubectl("create", "namespace", name)


@pytest.mark.parametrize("values", [(), (FULL,), (NAMESPACED,)], ids=["default", "full", "namespaced"])
def test_every_rendered_manifest_is_accepted_by_the_api_server(kubectl, helm, monitoring_crds, values):
    for ns in ("opex-dryrun", "payments", "checkout", "platform"):  # platform: full-values' watch.namespaces
        ensure_namespace(kubectl, ns)
    docs = helm.template(*values, namespace="opex-dryrun", release="dryrun")
    proc = kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-", input=yaml.safe_dump_all(docs),
                   check=False)
    assert proc.returncode == 0, proc.stderr
    accepted = [line for line in proc.stdout.splitlines() if "(server dry run)" in line]
    assert len(accepted) == len(docs), proc.stdout
    crds = kubectl("apply", "--server-side", "--dry-run=server", "-f", str(CHART / "crds"), check=False)
    assert crds.returncode == 0 and crds.stdout.count("(server dry run)") == 3, crds.stderr


def test_helm_install_creates_the_release_and_says_what_to_do_next(cluster, kubectl, helm, monitoring_crds):
    namespace = f"opex-install-{uuid.uuid4().hex[:5]}"
    ensure_namespace(kubectl, "platform")  # a namespace full-values watches: the plan-Job runner is made there
    env_kube = ["--kubeconfig", str(cluster.kubeconfig)]
    proc = helm.run("install", "opex", str(CHART), "-f", str(FULL), "--namespace", namespace, "--create-namespace",
                    "--set", "fullnameOverride=opex-" + namespace[-5:], *env_kube)
    try:
        assert "kubectl get opex -A" in proc.stdout
        assert "2 Deployments, one per shard" in proc.stdout
        deployments = kubectl.json("get", "deployments", "-n", namespace)["items"]
        assert sorted(d["metadata"]["name"] for d in deployments) == [f"opex-{namespace[-5:]}-default",
                                                                     f"opex-{namespace[-5:]}-payments"]
        assert len(kubectl.json("get", "poddisruptionbudgets", "-n", namespace)["items"]) == 2
        assert kubectl.json("get", "servicemonitor", "-n", namespace)["items"]
        # No policy, no IAM role: the notes say what that means and what to set.
        bare = helm.run("install", "bare", str(CHART), "--namespace", namespace, "--dry-run=server", *env_kube)
        assert "changes nothing" in bare.stdout and "serviceAccount.awsRoleArn" in bare.stdout
    finally:
        helm.run("uninstall", "opex", "--namespace", namespace, *env_kube, check=False)


def test_the_session_operator_is_the_charts_service_account_and_no_more(kubectl, operator):
    as_sa = Kubectl(Path(operator.env["KUBECONFIG"]))
    who = json.loads(as_sa("auth", "whoami", "-o", "json").stdout)
    assert who["status"]["userInfo"]["username"] == "system:serviceaccount:opex-system:opex-opex-operator"

    def can(*args: str) -> bool:
        return as_sa("auth", "can-i", *args, check=False).stdout.strip() == "yes"

    assert can("patch", "incidents.opex.dev", "-n", "e2e-anything")
    assert can("get", "secrets", "-n", "e2e-anything")
    assert not can("list", "secrets", "-n", "e2e-anything")  # by name only, never a listing
    assert not can("delete", "incidents.opex.dev", "-n", "e2e-anything")
    assert not can("create", "deployments.apps", "-n", "opex-system")
    assert not can("update", "leases.coordination.k8s.io", "-n", "default")  # the Lease lives beside it only
    assert can("update", "leases.coordination.k8s.io", "-n", "opex-system")
    lease = wait_for(lambda: kubectl.json("get", "lease", "opex-opex-operator", "-n", "opex-system")["spec"]
                     .get("holderIdentity"), what="the session operator holding its Lease")
    assert lease.startswith(socket.gethostname())
    assert forbidden_lines(operator.log_text()) == []


def test_namespaced_mode_reconciles_with_one_role_and_no_cluster_wide_read(
        cluster, kubectl, helm, aws, solo_namespace, terraform_bin, tmp_path):
    identity = chart_service_account(kubectl, helm, tmp_path, f"opex-{solo_namespace[-5:]}", "team",
                                     sets=("watch.scope=Namespaced", f"watch.namespaces={{{solo_namespace}}}"))
    as_sa = Kubectl(identity)
    assert as_sa("auth", "can-i", "list", "incidents.opex.dev", "-A", check=False).stdout.strip() == "no"
    assert as_sa("auth", "can-i", "list", "namespaces", check=False).stdout.strip() == "no"
    assert as_sa("auth", "can-i", "patch", "incidents.opex.dev", "-n", solo_namespace, check=False).stdout.strip() == "yes"
    site = estate.static_site()
    proc = OperatorProcess(identity, aws, terraform_bin, tmp_path, namespaces=solo_namespace)
    proc.start()
    try:
        manifest = {"apiVersion": "opex.dev/v1alpha1", "kind": "Rollback", "metadata": {"name": "www-restore"},
                    "spec": {"approval": "Auto", "staticSite": {
                        "bucket": site.bucket, "backupPrefix": site.backup_prefix, "deleteExtraneous": True,
                        "cloudFront": {"distributionId": site.distribution_id}}}}
        kubectl.apply(json.dumps(manifest), solo_namespace)
        kubectl.create(json.dumps(DRIFTCHECK), solo_namespace)
        done = wait_for(lambda: (s := kubectl.get("rollback", "www-restore", solo_namespace).get("status") or {})
                        .get("phase") in ("Succeeded", "Failed") and s, timeout=90, what="the rollback to finish")
        assert done["phase"] == "Succeeded", done.get("message")
        wait_for(lambda: (kubectl.get("driftcheck", "bad", solo_namespace).get("status") or {}).get("observedGeneration"),
                 what="the DriftCheck observed")
        reasons = {e["reason"] for e in kubectl.events(solo_namespace, "www-restore")}
        assert {"Captured", "InProgress", "RolledBack"} <= reasons
        assert kubectl("get", "configmaps", "-n", solo_namespace, "-l", "opex.dev/rollback=www-restore",
                       "-o", "name").stdout.strip()
        log = proc.log_text()
        assert forbidden_lines(log) == [] and "Not enough permissions" not in log
    finally:
        kubectl.delete_opex_objects(solo_namespace)
        proc.stop()
