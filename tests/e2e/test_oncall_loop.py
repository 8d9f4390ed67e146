"""The on-call loop end to end: the operator (its own process, on the real API server, the chart's
admission policies enforced) pages each escalation level through the PagerDuty and Slack stand-ins
(hack/fakepagerduty.py, hack/fakeslack.py); an acknowledgement from PagerDuty's signed webhook
holds escalation until reEscalateAfter; an Approve click in Slack, in the mapped person's name,
runs the step once; the resolution resolves PagerDuty's alert and updates the Slack message.
"""
from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
import yaml

import estate
import procs
from fakepagerduty import FakePagerDuty
from fakeslack import FakeSlack
from helpers import admission_policies, admitted_people, wait_for
from opex_operator.notify.pagerduty import dedup_key
from opex_operator.notify.slack import APPROVE, ActionValue

ROOT = Path(__file__).resolve().parents[2]
RUN = uuid.uuid4().hex[:6]
ALICE, BOB = "alice@example.com", "bob@example.com"
USERS = [{"kubernetes": ALICE, "slack": "U0ALICE", "pagerduty": "PALICE"}, {"kubernetes": BOB, "slack": "U0BOB"}]
PD_SECRET, SLACK_SECRET = "pd-subscription-secret", "slack-signing-secret"
KEY1, KEY2 = "1" * 32, "2" * 32
PREFIX = f"oncall{RUN[:4]}"
STEP = f"rollback-lambda-{PREFIX}-api"
LEVEL2_AFTER, RE_ESCALATE_AFTER = 45, 60


@pytest.fixture(scope="module")
def policies(kubectl, helm):
    yield from admission_policies(kubectl, helm, RUN)


@pytest.fixture
def fakes():
    pd, slack = FakePagerDuty().start(), FakeSlack().start()
    yield pd, slack
    pd.stop()
    slack.stop()


@pytest.fixture
def oncall_operator(solo_operator, fakes, tmp_path):
    """The test's operator paging the stand-ins, its receivers on, the policy mapping alice and bob."""
    pd, slack = fakes
    policy = yaml.safe_load((ROOT / "hack" / "policy-local.yaml").read_text())
    policy["oncall"] = {"users": USERS}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    (tmp_path / "pd-secret").write_text(PD_SECRET)
    (tmp_path / "slack-secret").write_text(SLACK_SECRET)
    solo_operator.receivers_port = procs.free_port()
    solo_operator.env.update({
        "OPEX_POLICY_FILE": str(tmp_path / "policy.yaml"), "OPEX_RECEIVERS_PORT": str(solo_operator.receivers_port),
        "OPEX_PAGERDUTY_WEBHOOK_SECRET_FILE": str(tmp_path / "pd-secret"),
        "OPEX_SLACK_SIGNING_SECRET_FILE": str(tmp_path / "slack-secret"),
        "OPEX_PAGERDUTY_EVENTS_URL": pd.url, "OPEX_SLACK_API_URL": slack.api_url})
    solo_operator.start()
    return solo_operator


def deliver(operator, path: str, body: bytes, headers: dict) -> tuple[int, str]:
    """POST to the operator's receivers, as PagerDuty or Slack would."""
    request = urllib.request.Request(f"http://127.0.0.1:{operator.receivers_port}{path}", data=body,
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def incident(namespace: str) -> dict:
    return {"apiVersion": "opex.dev/v1alpha1", "kind": "Incident",
            "metadata": {"name": "checkout", "namespace": namespace, "annotations": {"opex.dev/created-by": ALICE}},
            "spec": {"type": "DeploymentFailure", "severity": "high", "environment": "production",
                     "title": "checkout deployment failed",
                     "targets": {"region": "us-east-1", "pipeline": {"name": f"{PREFIX}-pipeline"},
                                 "codeBuild": {"project": f"{PREFIX}-deploy"},
                                 "lambda": {"functionNames": [f"{PREFIX}-api"]}},
                     "remediation": {"mode": "Manual"},
                     "escalation": {"reEscalateAfter": f"{RE_ESCALATE_AFTER}s", "levels": [
                         {"level": 1, "contact": "on-call engineer", "senders": ["PagerDuty", "Slack"]},
                         {"level": 2, "contact": "DevOps lead", "afterSeconds": LEVEL2_AFTER,
                          "senders": ["PagerDuty", "Slack"]}]},
                     "notify": {"pagerDuty": {"routes": [
                                    {"level": 1, "routingKeySecretRef": {"name": "pagerduty", "key": "level1"}},
                                    {"level": 2, "routingKeySecretRef": {"name": "pagerduty", "key": "level2"}}]},
                                "slack": {"channel": "C0OPEX", "tokenSecretRef": {"name": "slack", "key": "token"}}}}}


def triggers(pd: FakePagerDuty, key: str) -> list[dict]:
    return [e for e in pd.events if e["routing_key"] == key and e["event_action"] == "trigger"]


def events_of(kubectl, namespace: str, reason: str) -> list[str]:
    items = kubectl.json("get", "events", "-n", namespace, "--field-selector",
                         f"involvedObject.name=checkout,reason={reason}")["items"]
    return [e["message"] for e in items]


def test_paged_in_pagerduty_and_slack_acknowledged_from_pagerduty_approved_from_slack_then_resolved(
        kubectl, aws, oncall_operator, fakes, policies, solo_namespace):
    pd, slack = fakes
    ns = solo_namespace
    scenario = estate.deployment_failure(PREFIX)
    admitted_people(kubectl, ns, RUN, (ALICE, BOB), two_person=True)
    kubectl("create", "secret", "generic", "pagerduty", "-n", ns, f"--from-literal=level1={KEY1}",
            f"--from-literal=level2={KEY2}")
    kubectl("create", "secret", "generic", "slack", "-n", ns, "--from-literal=token=xoxb-opex-test")
    kubectl("--as", ALICE, "create", "-f", "-", input=json.dumps(incident(ns)))
    created = time.monotonic()

    # Level 1: one PagerDuty trigger through level 1's routing key, one Slack message.
    [page] = wait_for(lambda: triggers(pd, KEY1), timeout=60, what="the level 1 trigger in PagerDuty")
    inc = kubectl.get("incident", "checkout", ns)
    assert page["dedup_key"] == dedup_key(ns, inc["metadata"]["uid"]) and page["payload"]["severity"] == "error"
    assert "LambdaDeployment" in page["payload"]["custom_details"]["root_cause"]
    posted = wait_for(lambda: ((kubectl.get("incident", "checkout", ns).get("status") or {}).get("escalation")
                               or {}).get("slack"), timeout=20, what="status.escalation.slack")
    replies = {r["ts"] for m in slack.messages["C0OPEX"].values() for r in m["replies"]}
    assert [ts for ts in slack.messages["C0OPEX"] if ts not in replies] == [posted["ts"]]  # one message
    assert "checkout deployment failed" in slack.messages["C0OPEX"][posted["ts"]]["text"]

    # Acknowledged in PagerDuty by alice: the receiver writes it in her name; escalation holds.
    body, headers = FakePagerDuty.webhook("incident.acknowledged", page["dedup_key"], PD_SECRET,
                                          agent=("PALICE", "Alice"))
    status, text = deliver(oncall_operator, "/pagerduty", body, headers)
    assert status == 200 and json.loads(text)["outcome"] == "recorded", text
    acked = wait_for(lambda: (kubectl.get("incident", "checkout", ns).get("status") or {}).get("acknowledgement"),
                     timeout=30, what="status.acknowledgement")
    assert acked["by"] == ALICE
    assert ALICE in kubectl("get", "incident", "checkout", "-n", ns).stdout  # the Acked By column
    [said] = wait_for(lambda: events_of(kubectl, ns, "Acknowledged"), timeout=20, what="the Acknowledged Event")
    assert ALICE in said and "holds at level 1" in said
    wait_for(lambda: [e for e in pd.events if e["event_action"] == "acknowledge" and e["routing_key"] == KEY1],
             timeout=20, what="PagerDuty's alert acknowledged")
    mtta = oncall_operator.metric("opex_incident_time_to_acknowledge_seconds_count", type="DeploymentFailure",
                                  severity="high")
    assert mtta == 1.0

    # Level 2 is due LEVEL2_AFTER seconds after detection: held, nothing paged.
    time.sleep(max(0.0, LEVEL2_AFTER + 5 - (time.monotonic() - created)))
    assert triggers(pd, KEY2) == []
    escalation = kubectl.get("incident", "checkout", ns)["status"]["escalation"]
    assert escalation["currentLevel"] == 1 and escalation["nextLevel"] == 2
    acked_at = dt.datetime.fromisoformat(acked["acknowledgedAt"].replace("Z", "+00:00"))
    due = dt.datetime.fromisoformat(escalation["nextEscalationAt"].replace("Z", "+00:00"))
    assert abs((due - acked_at).total_seconds() - RE_ESCALATE_AFTER) <= 1

    # Still unresolved RE_ESCALATE_AFTER after the acknowledgement: level 2 is paged, naming who acknowledged.
    [again] = wait_for(lambda: triggers(pd, KEY2), timeout=RE_ESCALATE_AFTER + 30, what="the re-escalation")
    assert again["dedup_key"] == page["dedup_key"] and ALICE in again["payload"]["custom_details"]["acknowledgement"]
    # the page in the message's thread (the senders of a level page side by side: PagerDuty may answer first)
    wait_for(lambda: any("level 2" in r["text"].lower() and ALICE in r["text"]
                         for r in slack.messages["C0OPEX"][posted["ts"]]["replies"]),
             timeout=20, what="level 2's page in the Slack thread, naming who acknowledged")
    assert wait_for(lambda: events_of(kubectl, ns, "ReEscalated"), timeout=20, what="the ReEscalated Event")
    assert kubectl.get("incident", "checkout", ns)["status"]["escalation"]["reEscalatedAt"]

    # Approve in Slack: alice created the Incident (two-person rule), bob may; the step runs once, as bob's.
    value = ActionValue(ns, "checkout", inc["metadata"]["uid"], STEP).encode()
    assert deliver(oncall_operator, "/slack/interactions", *slack.click(SLACK_SECRET, "U0ALICE", f"{APPROVE}:{STEP}",
                                                                         value))[0] == 200
    refused = wait_for(lambda: slack.responses, timeout=15, what="Slack's reply to alice")[0]["text"]
    assert "two-person rule" in refused
    assert deliver(oncall_operator, "/slack/interactions", *slack.click(SLACK_SECRET, "U0BOB", f"{APPROVE}:{STEP}",
                                                                         value))[0] == 200
    wait_for(lambda: (kubectl.get("incident", "checkout", ns).get("status") or {}).get("phase") == "Resolved",
             timeout=90, what="Resolved")
    status = kubectl.get("incident", "checkout", ns)["status"]
    assert [(a["step"], a.get("by")) for a in status["approvals"]] == [(STEP, BOB)]
    step = next(s for s in status["steps"] if s["id"] == STEP)
    assert step["state"] == "Succeeded" and step["attempts"] == 1
    [child] = kubectl.json("get", "rollbacks", "-n", ns)["items"]  # created once, admitted under the two-person
    assert child["metadata"]["annotations"]["opex.dev/created-by"]  # rule: its creator (the operator) recorded
    lam = boto3.client("lambda")
    assert lam.get_function(FunctionName=f"{PREFIX}-api")["Configuration"]["CodeSha256"] == scenario.shas[0]
    assert any(BOB in m for m in events_of(kubectl, ns, "StepApproved"))
    assert status["postIncident"]["acknowledgedBy"] == ALICE
    assert [(a["step"], a.get("by")) for a in status["postIncident"]["approvals"]] == [(STEP, BOB)]

    # PagerDuty's alert resolved through both routing keys that triggered it; the Slack message says so.
    wait_for(lambda: {e["routing_key"] for e in pd.events if e["event_action"] == "resolve"} == {KEY1, KEY2},
             timeout=20, what="PagerDuty's alert resolved")
    assert pd.alerts[(KEY1, page["dedup_key"])] == "resolved" and pd.refused == []
    message = slack.messages["C0OPEX"][status["escalation"]["slack"]["ts"]]
    assert "Resolved" in message["text"] and slack.errors == []
    assert not [b for b in message["blocks"] if b["type"] == "actions"]  # no buttons once it ended
