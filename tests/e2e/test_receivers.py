"""The on-call receivers against the real API server: a PagerDuty acknowledgement and Slack button clicks
written on the Incident in the mapped person's name, the operator running as the chart's ServiceAccount
(impersonating only the policy's on-call users), judged by the chart's admission policies.

The receivers run in this process (their HTTP endpoints on a real socket); Slack's replies go to the
local Slack stand-in (hack/fakeslack.py), PagerDuty's deliveries come from the PagerDuty stand-in's
signed webhooks (hack/fakepagerduty.py).
"""
from __future__ import annotations

import json
import uuid

import kubernetes
import pytest

from fakepagerduty import FakePagerDuty
from fakeslack import FakeSlack
from helpers import admission_policies, admitted_people, chart_service_account, wait_for
from opex_operator.config import ReceiverSettings
from opex_operator.errors import KubeError
from opex_operator.kube import Kube, ObjectRef
from opex_operator.notify.pagerduty import dedup_key
from opex_operator.notify.slack import ACKNOWLEDGE, APPROVE, ActionValue, SlackSender
from opex_operator.policy import OnCall
from opex_operator.receivers.actions import Actions
from opex_operator.receivers.server import PAGERDUTY_PATH, SLACK_PATH, ReceiverServer
from support.endpoints import post_once
import procs

RUN = uuid.uuid4().hex[:6]
ALICE, BOB = "alice@example.com", "bob@example.com"
STEP = "rollback-lambda-checkout-api"
PD_SECRET, SLACK_SECRET = "pd-subscription-secret", "slack-signing-secret"
USERS = [{"kubernetes": ALICE, "slack": "U0ALICE", "pagerduty": "PALICE"}, {"kubernetes": BOB, "slack": "U0BOB"}]


@pytest.fixture(scope="module")
def policies(kubectl, helm):
    yield from admission_policies(kubectl, helm, RUN)


@pytest.fixture(scope="module")
def operator_kube(kubectl, helm, tmp_path_factory) -> tuple[Kube, str]:
    """The Kubernetes port as the chart's ServiceAccount, with the RBAC the chart renders when the receivers
    are on and the policy maps alice and bob; and that ServiceAccount's username."""
    workdir = tmp_path_factory.mktemp("receivers")
    namespace, release = f"opex-recv-{RUN}", f"recv{RUN}"
    sets = ["watch.namespaces={e2e-*}", "receivers.enabled=true", "receivers.slack.signingSecret.name=slack",
            "receivers.pagerDuty.secret.name=pagerduty"]
    for i, user in enumerate(USERS):
        sets += [f"policy.oncall.users[{i}].{k}={v}" for k, v in user.items()]
    identity = chart_service_account(kubectl, helm, workdir, namespace, release, sets=tuple(sets))
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(identity), client_configuration=config)
    return Kube(kubernetes.client.ApiClient(config)), f"system:serviceaccount:{namespace}:{release}-opex-operator"


@pytest.fixture
def slack():
    fake = FakeSlack().start()
    yield fake
    fake.stop()


@pytest.fixture
def incident(kubectl, namespace, policies):
    """An Incident alice created in a namespace under both policies, its rollback step planned."""
    admitted_people(kubectl, namespace, RUN, (ALICE, BOB), two_person=True)
    body = {"apiVersion": "opex.dev/v1alpha1", "kind": "Incident",
            "metadata": {"name": "checkout", "annotations": {"opex.dev/created-by": ALICE}},
            "spec": {"type": "DeploymentFailure", "severity": "critical", "title": "checkout deploy failed",
                     "environment": "production", "targets": {"lambda": {"functionNames": ["checkout-api"]}}}}
    kubectl("--as", ALICE, "create", "-n", namespace, "-f", "-", input=json.dumps(body))
    kubectl("patch", "incident", "checkout", "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"phase": "AwaitingApproval", "steps": [{"id": STEP, "action": "lambda:UpdateFunctionCode",
                                                            "mutating": True, "state": "AwaitingApproval"}]}}))
    return kubectl.get("incident", "checkout", namespace)


def post(operator_kube, slack: FakeSlack, tmp_path, path: str, body: bytes, headers: dict) -> tuple[int, str]:
    """Serve the receivers as the operator would (its identity, the policy's users), post one request."""
    kube, _ = operator_kube
    (pd := tmp_path / "pd").write_text(PD_SECRET)
    (sl := tmp_path / "slack").write_text(SLACK_SECRET)
    settings = ReceiverSettings(port=procs.free_port(), pagerduty_secret_file=pd, slack_secret_file=sl)
    server = ReceiverServer(Actions(kube, ("e2e-*",)), OnCall.model_validate({"users": USERS}), settings,
                            SlackSender(slack.api_url))
    return post_once(server, path, body, headers)


def click(slack: FakeSlack, incident: dict, user: str, action_id: str, step: str | None = None) -> tuple[bytes, dict]:
    meta = incident["metadata"]
    return slack.click(SLACK_SECRET, user, action_id, ActionValue(meta["namespace"], meta["name"], meta["uid"],
                                                                  step).encode())


def reply(slack: FakeSlack) -> str:
    wait_for(lambda: slack.responses, timeout=10, what="the reply in Slack")
    return slack.responses.pop(0)["text"]


def test_slack_approve_is_recorded_in_the_clicking_persons_name_and_the_creator_cannot_approve_alone(
        kubectl, operator_kube, slack, incident, tmp_path):
    ns = incident["metadata"]["namespace"]
    status, _ = post(operator_kube, slack, tmp_path, SLACK_PATH, *click(slack, incident, "U0ALICE", f"{APPROVE}:{STEP}",
                                                                       STEP))
    assert status == 200
    refused = reply(slack)
    assert f"the two-person rule applies here: {ALICE} created this Incident and cannot approve it too" in refused
    assert "approvals" not in (kubectl.get("incident", "checkout", ns)["spec"].get("remediation") or {})

    assert post(operator_kube, slack, tmp_path, SLACK_PATH, *click(slack, incident, "U0BOB", f"{APPROVE}:{STEP}",
                                                                  STEP))[0] == 200
    assert f"approved {STEP} as {BOB}" in reply(slack)
    spec = kubectl.get("incident", "checkout", ns)["spec"]
    assert spec["remediation"]["approvals"] == [{"step": STEP, "by": BOB}]


def test_slack_acknowledge_is_recorded_in_the_clicking_persons_name(kubectl, operator_kube, slack, incident, tmp_path):
    ns = incident["metadata"]["namespace"]
    assert post(operator_kube, slack, tmp_path, SLACK_PATH, *click(slack, incident, "U0BOB", ACKNOWLEDGE))[0] == 200
    assert f"acknowledged as {BOB}" in reply(slack)
    assert kubectl.get("incident", "checkout", ns)["spec"]["acknowledgement"] == {"by": BOB,
                                                                                 "note": "acknowledged in Slack"}
    assert BOB in kubectl("get", "incident", "checkout", "-n", ns).stdout  # the Acked By column


def test_a_pagerduty_acknowledgement_is_written_in_the_mapped_persons_name_and_a_forged_one_changes_nothing(
        kubectl, operator_kube, slack, incident, tmp_path):
    ns, uid = incident["metadata"]["namespace"], incident["metadata"]["uid"]
    forged, headers = FakePagerDuty.webhook("incident.acknowledged", dedup_key(ns, uid), "not-the-secret",
                                            agent=("PALICE", "Alice"))
    status, text = post(operator_kube, slack, tmp_path, PAGERDUTY_PATH, forged, headers)
    assert status == 401 and "acknowledgement" not in kubectl.get("incident", "checkout", ns)["spec"]
    body, headers = FakePagerDuty.webhook("incident.acknowledged", dedup_key(ns, uid), PD_SECRET,
                                          agent=("PALICE", "Alice"))
    status, text = post(operator_kube, slack, tmp_path, PAGERDUTY_PATH, body, headers)
    assert status == 200 and json.loads(text)["outcome"] == "recorded", text
    ack = kubectl.get("incident", "checkout", ns)["spec"]["acknowledgement"]
    assert ack["by"] == ALICE and ack["note"].startswith("acknowledged in PagerDuty by Alice (PALICE)")
    # PagerDuty delivers again (a retry): nothing changes.
    again = post(operator_kube, slack, tmp_path, PAGERDUTY_PATH, body, headers)
    assert json.loads(again[1])["outcome"] == "unchanged"


def test_a_pagerduty_acknowledgement_by_someone_unmapped_is_recorded_as_the_operator(kubectl, operator_kube, slack,
                                                                                     incident, tmp_path):
    ns, uid = incident["metadata"]["namespace"], incident["metadata"]["uid"]
    body, headers = FakePagerDuty.webhook("incident.acknowledged", dedup_key(ns, uid), PD_SECRET, agent=("PZOE", "Zoe"))
    assert post(operator_kube, slack, tmp_path, PAGERDUTY_PATH, body, headers)[0] == 200
    ack = kubectl.get("incident", "checkout", ns)["spec"]["acknowledgement"]
    assert ack["by"] == operator_kube[1] and "by Zoe (PZOE)" in ack["note"]


def test_the_operator_may_impersonate_only_the_policys_on_call_users(operator_kube, incident):
    kube, _ = operator_kube
    meta = incident["metadata"]
    ref = ObjectRef("incidents", meta["namespace"], meta["name"], meta["uid"], "Incident")
    with pytest.raises(KubeError) as err:
        kube.as_user("mallory@example.com").patch(ref, {"spec": {"acknowledgement": {"by": "mallory@example.com"}}})
    assert err.value.forbidden and "cannot impersonate" in err.value.message
    assert kube.as_user(BOB).whoami() == BOB and kube.whoami() == operator_kube[1]
