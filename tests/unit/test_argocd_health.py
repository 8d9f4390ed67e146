"""The Argo CD health check's rules for states the e2e suite cannot reach today (Flux-style
Stalled/Reconciling conditions, aborts, reconcile errors); live objects are in
tests/e2e/test_gitops_health.py."""
from __future__ import annotations

import pytest

from helpers import argocd_health


def obj(kind: str, phase: str | None = None, generation: int = 2, observed: int = 2, **conditions: tuple) -> dict:
    conds = [{"type": t, "status": s, "reason": r, "message": m} for t, (s, r, m) in conditions.items()]
    status = {"observedGeneration": observed, "conditions": conds, **({"phase": phase} if phase else {})}
    return {"apiVersion": "opex.dev/v1alpha1", "kind": kind, "metadata": {"name": "x", "generation": generation},
            "status": status}


@pytest.mark.parametrize("case,expected", [
    (obj("Incident", "Remediating", Ready=("False", "Remediating", "rolling back"),
         Stalled=("True", "StepFailed", "step rollback failed")), ("Degraded", "step rollback failed")),
    (obj("DriftCheck", Ready=("True", "Checked", "no drift"), Reconciling=("True", "Planning", "planning")),
     ("Progressing", "planning")),
    (obj("Rollback", "Aborted", Ready=("False", "Aborted", "aborted after 2 of 5 batches")),
     ("Degraded", "aborted after 2 of 5 batches")),
    (obj("Incident", "Failed", Ready=("False", "StepFailed", "no such function")), ("Degraded", "no such function")),
    (obj("Incident", "Assessing", Ready=("False", "ReconcileError", "ApiException: 500")),
     ("Degraded", "ReconcileError: ApiException: 500")),
    (obj("Incident", "Assessing", Ready=("Unknown", "Assessing", "reading 6 targets")),
     ("Progressing", "reading 6 targets")),
    (obj("Incident", "Closed", Ready=("True", "Closed", "closed by on-call")), ("Healthy", "closed by on-call")),
    (obj("DriftCheck", Ready=("False", "LockHeld", "state locked by ci@runner")),
     ("Degraded", "LockHeld: state locked by ci@runner")),
    (obj("Rollback", "InProgress", observed=1, Ready=("True", "Succeeded", "done")),
     ("Progressing", "Waiting for the opex operator to observe generation 2")),
], ids=["stalled", "reconciling", "aborted", "failed", "reconcile-error", "unknown", "closed", "lock-held",
        "stale-generation"])
def test_argocd_health_of_each_state(case, expected):
    assert argocd_health(case) == expected
