"""The circuit breaker's store against the real API server, as the chart's ServiceAccount: its window in
a Lease of the operator's namespace read back by a fresh store, concurrent replicas that never admit
more than the limit, and `opex breaker status/reset` as a person runs them."""
from __future__ import annotations

import json
import threading
import uuid

import kubernetes
import pytest
from click.testing import CliRunner

from opex_operator.cli import cli
from opex_operator.guardrails.breaker import ChangeLimit, Verdict
from opex_operator.guardrails.breaker_store import ANNOTATION, LABEL, BreakerStore, lease_name
from opex_operator.kube import Kube, Leases
from helpers import chart_service_account

THREE = [ChangeLimit(3, None, "operator policy rule 1 (namespaces ['*'])")]


def leases_as(kubeconfig) -> Leases:
    """Leases through a client of its own (each replica has one)."""
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=config)
    return Leases(Kube(kubernetes.client.ApiClient(config)))


@pytest.fixture
def home(kubectl, helm, tmp_path):
    """The operator's own namespace with the chart's RBAC, and a kubeconfig of its ServiceAccount."""
    suffix = uuid.uuid4().hex[:6]
    namespace, release = f"breaker-{suffix}", f"b{suffix}"
    # A release of its own: the session operator's release ("opex") owns the cluster-wide ClusterRole
    # and binding of the same chart, and applying them again here would take them from it.
    identity = chart_service_account(kubectl, helm, tmp_path, namespace, release, sets=("watch.namespaces={e2e-*}",))
    yield namespace, identity
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    kubectl("delete", "clusterrole,clusterrolebinding", f"{release}-opex-operator", check=False)


def test_the_window_lives_in_a_lease_of_the_operators_namespace_and_a_fresh_store_reads_it(kubectl, home):
    namespace, identity = home
    watched = f"team-{uuid.uuid4().hex[:6]}"
    first = BreakerStore(leases_as(identity), namespace)
    assert [first.admit(watched, f"incident/a/step-{i}", "production", THREE).verdict for i in range(3)] == \
        [Verdict.ADMITTED] * 3
    restarted = BreakerStore(leases_as(identity), namespace)  # another process: only the API server remembers
    held = restarted.admit(watched, "incident/a/step-3", "production", THREE)
    assert held.verdict == Verdict.HELD and f"opex breaker reset {watched}" in held.message
    assert restarted.admit(watched, "incident/a/step-0", "production", THREE).verdict == Verdict.ALREADY_COUNTED
    lease = kubectl.json("get", "lease", lease_name(watched), "-n", namespace)
    assert lease["metadata"]["labels"] == {LABEL: watched}
    recorded = json.loads(lease["metadata"]["annotations"][ANNOTATION])
    assert [c["id"] for c in recorded["changes"]] == [f"incident/a/step-{i}" for i in range(3)]


def test_replicas_admitting_at_once_never_take_more_places_than_the_limit(home):
    namespace, identity = home
    watched = f"team-{uuid.uuid4().hex[:6]}"
    stores = [BreakerStore(leases_as(identity), namespace) for _ in range(6)]
    start, verdicts = threading.Barrier(len(stores)), []

    def run(i: int, store: BreakerStore) -> None:
        start.wait()
        verdicts.append(store.admit(watched, f"driftcheck/net-{i}/sha256:{i}", None, THREE).verdict)

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(verdicts) == sorted([Verdict.ADMITTED] * 3 + [Verdict.HELD] * 3)
    assert stores[0].window(watched).count() == 3


def test_a_person_resets_the_breaker_and_the_held_objects_are_looked_at_again(cluster, kubectl, home):
    namespace, identity = home
    watched = f"team-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", watched)
    store = BreakerStore(leases_as(identity), namespace)
    for i in range(3):
        store.admit(watched, f"incident/held/step-{i}", None, THREE)
    assert store.admit(watched, "incident/held/step-3", None, THREE).verdict == Verdict.HELD
    # The Incident the breaker held, as the controller will mark it (condition CircuitOpen), and one it did not.
    for name, held in (("held", "True"), ("other", "False")):
        kubectl.create(json.dumps({
            "apiVersion": "opex.dev/v1alpha1", "kind": "Incident", "metadata": {"name": name},
            "spec": {"type": "PipelineFailure", "severity": "high", "title": "t", "environment": "production",
                     "targets": {"pipeline": {"name": "checkout"}}}}), watched)
        kubectl("patch", "incident", name, "-n", watched, "--subresource=status", "--type=merge", "-p", json.dumps(
            {"status": {"conditions": [{"type": "CircuitOpen", "status": held, "reason": "LimitReached",
                                        "message": "3 automated changes", "lastTransitionTime": "2026-11-29T09:00:00Z"}]}}))
    env = {"KUBECONFIG": str(cluster.kubeconfig)}
    status = CliRunner().invoke(cli, ["breaker", "status", watched], env=env)
    assert status.exit_code == 0 and "3 automated change(s) in the last hour" in status.output, status.output
    assert "incident/held/step-2" in status.output

    reset = CliRunner().invoke(cli, ["breaker", "reset", watched], env=env)  # finds the Lease by its label
    assert reset.exit_code == 0, reset.output
    assert "forgot 3 automated change(s)" in reset.output and "incident held looked at again" in reset.output
    annotations = lambda name: kubectl.get("incident", name, watched)["metadata"].get("annotations") or {}  # noqa: E731
    assert "opex.dev/breaker-reset" in annotations("held") and "opex.dev/breaker-reset" not in annotations("other")
    assert store.admit(watched, "incident/held/step-3", None, THREE).verdict == Verdict.ADMITTED
    assert "last reset" in CliRunner().invoke(cli, ["breaker", "status", watched], env=env).output
    kubectl.delete_opex_objects(watched)
    kubectl("delete", "namespace", watched, "--wait=false", check=False)


def test_reset_of_a_namespace_nothing_was_counted_in_says_so(cluster):
    result = CliRunner().invoke(cli, ["breaker", "reset", f"quiet-{uuid.uuid4().hex[:6]}"],
                                env={"KUBECONFIG": str(cluster.kubeconfig)})
    assert result.exit_code == 0 and "nothing to reset" in result.output
