"""The operator process on the real API server: it reconciles each kind, posts Events, serves metrics."""
from __future__ import annotations

import json

import pytest

from helpers import wait_for
from test_crd_validation import DRIFTCHECK, INCIDENT, ROLLBACK

KINDS = [("incident", INCIDENT), ("driftcheck", DRIFTCHECK), ("rollback", ROLLBACK)]


def test_operator_serves_liveness_and_metrics(operator):
    text = operator.metrics()
    assert 'opex_build_info{version="0.1.0"} 1.0' in text
    assert "opex_reconcile_duration_seconds" in text


@pytest.mark.parametrize("plural,short,kind", [
    ("incidents", "inc", "Incident"), ("driftchecks", "dc", "DriftCheck"), ("rollbacks", "rb", "Rollback")])
def test_kinds_are_served_with_short_names_in_category_opex(kubectl, plural, short, kind):
    resources = kubectl("api-resources", "--api-group=opex.dev", "-o", "wide").stdout
    row = next(line.split() for line in resources.splitlines() if line.startswith(plural + " "))
    assert row[:5] == [plural, short, "opex.dev/v1alpha1", "true", kind]
    assert row[-1] == "opex"


def test_get_all_kinds_shows_printer_columns(kubectl, namespace, operator):
    for _, manifest in KINDS:
        kubectl.create(json.dumps(manifest), namespace)
    wait_for(lambda: all(kubectl.get(k, "bad", namespace).get("status", {}).get("observedGeneration")
                         for k, _ in KINDS), what="all three kinds reconciled")
    out = kubectl("get", "inc,dc,rb", "-n", namespace).stdout
    assert "TYPE" in out and "SEVERITY" in out and "PHASE" in out and "ROOT CAUSE" in out
    assert "SCHEDULE" in out and "LAST RESULT" in out and "DRIFTED" in out and "NEXT RUN" in out
    assert "TARGET" in out and "FROM" in out and "TO" in out
    assert "PipelineFailure" in out and "high" in out


@pytest.mark.parametrize("kind,manifest", KINDS, ids=[k for k, _ in KINDS])
def test_each_kind_is_observed_with_ready_condition_event_and_a_finalizer_only_where_needed(kubectl, namespace, operator,
                                                                                            kind, manifest):
    """Only a DriftCheck holds something outside Kubernetes (its work directory) to release when it
    goes; the others carry no finalizer (a write per object saved)."""
    before = operator.metric("opex_reconcile_total", kind=manifest["kind"], result="success") or 0
    kubectl.create(json.dumps(manifest), namespace)
    kubectl("wait", f"{kind}/bad", "-n", namespace, "--for=jsonpath={.status.observedGeneration}=1", "--timeout=60s")
    obj = kubectl.get(kind, "bad", namespace)
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] and ready["message"] and ready["observedGeneration"] == 1
    assert ("opex.dev/finalizer" in obj["metadata"].get("finalizers", [])) == (kind == "driftcheck")
    assert not any(a.startswith("opex.dev/last-handled") for a in obj["metadata"].get("annotations") or {})
    events = wait_for(lambda: kubectl.events(namespace, "bad"), what="an event")
    assert {e["source"]["component"] for e in events} == {"opex-operator"}
    assert (operator.metric("opex_reconcile_total", kind=manifest["kind"], result="success") or 0) > before


def test_spec_change_is_reconciled_at_once(kubectl, namespace, operator):
    kubectl.create(json.dumps(INCIDENT), namespace)
    wait_for(lambda: kubectl.get("incident", "bad", namespace).get("status", {}).get("observedGeneration") == 1)
    kubectl("patch", "incident", "bad", "-n", namespace, "--type=merge", "-p", '{"spec":{"severity":"critical"}}')
    wait_for(lambda: kubectl.get("incident", "bad", namespace)["status"]["observedGeneration"] == 2, timeout=10,
             what="generation 2 observed")


def test_deleting_an_object_completes(kubectl, namespace, operator):
    kubectl.create(json.dumps(ROLLBACK), namespace)
    wait_for(lambda: kubectl.get("rollback", "bad", namespace).get("status", {}).get("observedGeneration"))
    kubectl("delete", "rollback", "bad", "-n", namespace, "--timeout=30s")
    assert kubectl("get", "rollback", "-n", namespace, "-o", "name").stdout == ""


def test_a_graceful_stop_logs_nothing_per_object(kubectl, solo_namespace, solo_operator):
    """One daemon per object used to log a cancellation warning for every object at each stop; waiting
    objects now cost nothing and a stop has nothing to cancel."""
    solo_operator.start()
    for i in range(8):
        manifest = {**DRIFTCHECK, "metadata": {"name": f"waiting-{i}"}}
        kubectl.create(json.dumps(manifest), solo_namespace)
    for i in range(8):
        kubectl("wait", f"driftcheck/waiting-{i}", "-n", solo_namespace,
                "--for=jsonpath={.status.observedGeneration}=1", "--timeout=60s")
    proc = solo_operator.proc
    solo_operator.stop()
    assert proc.returncode == 0
    log = solo_operator.log_text()
    assert "Signal SIGTERM is received. Operator is stopping." in log
    stopping = log[log.index("Operator is stopping"):]
    assert [line for line in stopping.splitlines() if " WARNING " in line or " ERROR " in line] == []
    assert "cancel" not in stopping.lower()
