"""Approvals and acknowledgements with a name, enforced by the real API server: the chart's
ValidatingAdmissionPolicies, rendered by helm and applied, judged with impersonated users
(``kubectl --as``, ``opex --as``) as a person's own kubectl would be.

The policies' bindings select namespaces by a label only this module's namespaces carry, so the
rest of the suite runs without them; they are removed at the end.
"""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from helpers import admission_policies, admitted_people

OPEX = str(Path(sys.executable).with_name("opex"))
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
STEP = "rollback-lambda-checkout-api"
CHECKSUM = "sha256:" + "ab" * 32
RUN = uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def policies(kubectl, helm):
    """The chart's two policies, bound to namespaces labelled for this module's run."""
    yield from admission_policies(kubectl, helm, RUN)


def opex(cluster, user: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([OPEX, "--kubeconfig", str(cluster.kubeconfig), "--as", user, *args], capture_output=True,
                          text=True, timeout=120)


def incident(name: str, severity: str = "critical", creator: str | None = ALICE, **spec) -> str:
    meta = {"name": name, "annotations": {"opex.dev/created-by": creator} if creator else {}}
    return json.dumps({"apiVersion": "opex.dev/v1alpha1", "kind": "Incident", "metadata": meta,
                       "spec": {"type": "DeploymentFailure", "severity": severity, "title": "checkout deploy failed",
                                "environment": "production", "targets": {"lambda": {"functionNames": ["checkout-api"]}},
                                **spec}})


@pytest.fixture
def people(kubectl, namespace, policies):
    """``namespace`` under the named-approvals policy; alice and bob may create and patch the opex kinds."""
    admitted_people(kubectl, namespace, RUN, (ALICE, BOB))
    return namespace


@pytest.fixture
def two_person(kubectl, namespace, policies):
    """``namespace`` under both policies: the two-person rule too."""
    admitted_people(kubectl, namespace, RUN, (ALICE, BOB), two_person=True)
    return namespace


def _as(kubectl, user: str, *args: str, input_: str | None = None) -> subprocess.CompletedProcess:
    return kubectl("--as", user, *args, check=False, input=input_)


def patch(kubectl, user: str, kind: str, name: str, namespace: str, body: dict) -> subprocess.CompletedProcess:
    return _as(kubectl, user, "patch", kind, name, "-n", namespace, "--type=merge", "-p", json.dumps(body))


def test_an_approval_in_someone_elses_name_is_refused_with_a_clear_message(kubectl, people):
    assert _as(kubectl, ALICE, "create", "-n", people, "-f", "-", input_=incident("checkout")).returncode == 0
    forged = patch(kubectl, ALICE, "incident", "checkout", people,
                   {"spec": {"remediation": {"approvals": [{"step": STEP, "by": BOB}]}}})
    assert forged.returncode != 0
    assert (f"spec.remediation.approvals: an approval is recorded in its approver's own name; {STEP} by {BOB} is "
            f"not in yours ({ALICE})") in forged.stderr, forged.stderr
    own = patch(kubectl, ALICE, "incident", "checkout", people,
                {"spec": {"remediation": {"approvals": [{"step": STEP, "by": ALICE}]}}})
    assert own.returncode == 0, own.stderr
    # Bob may approve another step beside Alice's, and leaves hers as it is: what was admitted stays admitted.
    beside = patch(kubectl, BOB, "incident", "checkout", people, {"spec": {"remediation": {"approvals": [
        {"step": STEP, "by": ALICE}, {"step": "revoke-ingress-sg-1", "by": BOB}]}}})
    assert beside.returncode == 0, beside.stderr
    # ...but may not rewrite hers into his name, or his into hers.
    rewritten = patch(kubectl, BOB, "incident", "checkout", people, {"spec": {"remediation": {"approvals": [
        {"step": STEP, "by": BOB}, {"step": "revoke-ingress-sg-1", "by": ALICE}]}}})
    assert rewritten.returncode != 0 and f"revoke-ingress-sg-1 by {ALICE} is not in yours ({BOB})" in rewritten.stderr
    approvals = kubectl.get("incident", "checkout", people)["spec"]["remediation"]["approvals"]
    assert approvals == [{"step": STEP, "by": ALICE}, {"step": "revoke-ingress-sg-1", "by": BOB}]


def test_an_acknowledgement_is_admitted_only_in_its_authors_name_and_shows_in_kubectl_get(kubectl, people):
    assert _as(kubectl, ALICE, "create", "-n", people, "-f", "-", input_=incident("checkout")).returncode == 0
    forged = patch(kubectl, BOB, "incident", "checkout", people, {"spec": {"acknowledgement": {"by": ALICE}}})
    assert forged.returncode != 0
    assert f"spec.acknowledgement.by is {ALICE}: an acknowledgement is recorded in its author's own name, yours is " \
           f"{BOB} (opex ack fills it in)" in forged.stderr, forged.stderr
    assert patch(kubectl, ALICE, "incident", "checkout", people,
                 {"spec": {"acknowledgement": {"by": ALICE, "note": "rolling back"}}}).returncode == 0
    # Bob cannot put words in Alice's acknowledgement; he can take it over in his own name.
    assert patch(kubectl, BOB, "incident", "checkout", people,
                 {"spec": {"acknowledgement": {"note": "nothing to see"}}}).returncode != 0
    assert patch(kubectl, BOB, "incident", "checkout", people,
                 {"spec": {"acknowledgement": {"by": BOB, "note": None}}}).returncode == 0
    listed = kubectl("get", "incident", "checkout", "-n", people).stdout
    assert "ACKED BY" in listed and BOB in listed


def test_the_creator_annotation_is_the_creators_own_username_and_never_changes(kubectl, people):
    forged = _as(kubectl, ALICE, "create", "-n", people, "-f", "-", input_=incident("checkout", creator=BOB))
    assert forged.returncode != 0
    assert f"records who created the object: it must be your own username, {ALICE}" in forged.stderr, forged.stderr
    assert _as(kubectl, ALICE, "create", "-n", people, "-f", "-", input_=incident("checkout")).returncode == 0
    for change in ({"metadata": {"annotations": {"opex.dev/created-by": BOB}}},
                   {"metadata": {"annotations": {"opex.dev/created-by": None}}}):
        changed = patch(kubectl, BOB, "incident", "checkout", people, change)
        assert changed.returncode != 0 and "cannot change" in changed.stderr, changed.stderr
    # Without the annotation (outside the two-person rule) an Incident is created as before.
    assert _as(kubectl, ALICE, "create", "-n", people, "-f", "-",
               input_=incident("unrecorded", creator=None)).returncode == 0


def add_step(kubectl, name: str, namespace: str) -> None:
    """The step the operator would have planned (written to status as the operator does)."""
    kubectl("patch", "incident", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"phase": "AwaitingApproval", "steps": [{"id": STEP, "action": "lambda:UpdateFunctionCode",
                                                            "mutating": True, "state": "AwaitingApproval"}]}}))


def test_the_creator_cannot_approve_alone_under_the_two_person_rule_and_a_second_person_can(cluster, kubectl,
                                                                                            two_person):
    ns = two_person
    unrecorded = _as(kubectl, ALICE, "create", "-n", ns, "-f", "-", input_=incident("checkout", creator=None))
    assert unrecorded.returncode != 0
    assert f"record the creator at creation, add metadata.annotations[opex.dev/created-by]: {ALICE}" in \
        unrecorded.stderr, unrecorded.stderr
    assert _as(kubectl, ALICE, "create", "-n", ns, "-f", "-", input_=incident("checkout")).returncode == 0
    add_step(kubectl, "checkout", ns)

    alone = opex(cluster, ALICE, "approve", "incident", "checkout", STEP, "-n", ns)
    assert alone.returncode == 1
    assert f"the two-person rule applies here: {ALICE} created this Incident and cannot approve it too; another " \
           f"person must approve" in alone.stderr, alone.stderr
    nameless = patch(kubectl, BOB, "incident", "checkout", ns, {"spec": {"remediation": {"approvedSteps": [STEP]}}})
    assert nameless.returncode != 0 and "use spec.remediation.approvals" in nameless.stderr, nameless.stderr

    second = opex(cluster, BOB, "approve", "incident", "checkout", STEP, "-n", ns)
    assert second.returncode == 0, second.stderr
    assert f"approved {STEP} as {BOB}" in second.stdout
    assert kubectl.get("incident", "checkout", ns)["spec"]["remediation"]["approvals"] == [{"step": STEP, "by": BOB}]


def test_the_two_person_rule_covers_only_the_severities_it_names(kubectl, two_person):
    ns = two_person
    assert _as(kubectl, ALICE, "create", "-n", ns, "-f", "-", input_=incident("minor", severity="low",
                                                                               creator=None)).returncode == 0
    own = patch(kubectl, ALICE, "incident", "minor", ns, {"spec": {"remediation": {"approvals": [
        {"step": STEP, "by": ALICE}]}}})
    assert own.returncode == 0, own.stderr


def test_plan_and_rollback_approvals_are_named_and_not_the_creators_under_the_two_person_rule(kubectl, two_person):
    ns = two_person
    check = {"apiVersion": "opex.dev/v1alpha1", "kind": "DriftCheck",
             "metadata": {"name": "network", "annotations": {"opex.dev/created-by": ALICE}},
             "spec": {"schedule": ["0 9 * * *"], "source": {"git": {"url": "file:///srv/infra.git"}},
                      "resolution": {"strategy": "Apply"}}}
    rollback = {"apiVersion": "opex.dev/v1alpha1", "kind": "Rollback",
                "metadata": {"name": "www", "annotations": {"opex.dev/created-by": ALICE}},
                "spec": {"lambda": {"functionName": "checkout-api", "to": {"previous": True}}}}
    for doc in (check, rollback):
        created = _as(kubectl, ALICE, "create", "-n", ns, "-f", "-", input_=json.dumps(doc))
        assert created.returncode == 0, created.stderr
    cases = [("driftcheck", "network", "spec.resolution.approvedBy",
              lambda by: {"spec": {"resolution": {"approvedPlanChecksum": CHECKSUM,
                                                   **({"approvedBy": by} if by else {})}}}),
             ("rollback", "www", "spec.approvedBy",
              lambda by: {"spec": {"approved": True, **({"approvedBy": by} if by else {})}})]
    for kind, name, field, body in cases:
        nameless = patch(kubectl, BOB, kind, name, ns, body(None))
        assert nameless.returncode != 0 and f"set {field} to your username" in nameless.stderr, nameless.stderr
        forged = patch(kubectl, BOB, kind, name, ns, body(CAROL))
        assert forged.returncode != 0 and f"{field} is {CAROL}" in forged.stderr, forged.stderr
        alone = patch(kubectl, ALICE, kind, name, ns, body(ALICE))
        assert alone.returncode != 0 and "cannot approve it too" in alone.stderr, alone.stderr
        second = patch(kubectl, BOB, kind, name, ns, body(BOB))
        assert second.returncode == 0, second.stderr


def test_opex_ack_and_approve_fill_in_who_you_are(cluster, kubectl, people):
    ns = people
    assert _as(kubectl, ALICE, "create", "-n", ns, "-f", "-", input_=incident("checkout")).returncode == 0
    add_step(kubectl, "checkout", ns)
    acked = opex(cluster, BOB, "ack", "incident", "checkout", "-n", ns, "--note", "looking at the release")
    assert acked.returncode == 0 and f"acknowledged by {BOB}" in acked.stdout, acked.stderr
    assert kubectl.get("incident", "checkout", ns)["spec"]["acknowledgement"] == {
        "by": BOB, "note": "looking at the release"}
    taken = opex(cluster, ALICE, "ack", "incident", "checkout", "-n", ns)
    assert f"acknowledged by {ALICE} (was {BOB})" in taken.stdout
    assert kubectl.get("incident", "checkout", ns)["spec"]["acknowledgement"] == {"by": ALICE}
    approved = opex(cluster, ALICE, "approve", "incident", "checkout", STEP, "-n", ns)
    assert approved.returncode == 0 and f"approved {STEP} as {ALICE}" in approved.stdout, approved.stderr
    again = opex(cluster, BOB, "approve", "incident", "checkout", STEP, "-n", ns)
    assert f"{STEP} is already approved by {ALICE}" in again.stdout
    described = subprocess.run([OPEX, "--kubeconfig", str(cluster.kubeconfig), "describe", "incident", "checkout",
                                "-n", ns], capture_output=True, text=True, timeout=60).stdout
    assert "Approvals" in described and "Acknowledged" in described and ALICE in described
