"""The on-call receivers: signatures checked with the documented test vectors, and what a PagerDuty
acknowledgement or a Slack click writes, in whose name, through a fake of the Kubernetes port that
judges writes as the API server and the chart's admission policy would."""
from __future__ import annotations

import json
import time

import pytest

from fakepagerduty import FakePagerDuty
from fakeslack import FakeSlack
from opex_operator.config import ReceiverSettings
from opex_operator.notify.pagerduty import dedup_key
from opex_operator.notify.slack import ACKNOWLEDGE, APPROVE, ActionValue, SlackSender
from opex_operator.policy import OnCall
from opex_operator.receivers.actions import Actions, Outcome
from opex_operator.receivers.server import PAGERDUTY_PATH, SLACK_PATH, ReceiverServer
from opex_operator.receivers.signatures import (SignatureError, sign_pagerduty, sign_slack, verify_pagerduty,
                                                verify_slack)
from realworld.corpus import ROOT as CORPUS
from support.endpoints import post_once
from support.oncall_fakes import FakeIncidentWriter, FakeSlackPort
import procs

UID = "7f0b1c4e-8a55-4b0e-9a7e-2d3c4b5a6f70"
OPERATOR = "system:serviceaccount:opex-system:opex"
ONCALL = OnCall.model_validate({"users": [
    {"kubernetes": "alice@example.com", "slack": "U0ALICE", "pagerduty": "PALICE"},
    {"kubernetes": "bob@example.com", "slack": "U0BOB"}]})
STEP = "rollback-lambda-checkout-api"
PD_SECRET, SLACK_SECRET = "pd-subscription-secret", "slack-signing-secret"


# -- signatures: the documented vectors ----------------------------------------------------------------
SLACK_DOC = ("8f742231b10e8888abcd99yyyzzz85a5", "1531420618",
             b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
             b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
             b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXa"
             b"IFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
             "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")


def test_slacks_documented_signature_example_verifies_and_a_changed_byte_does_not():
    secret, ts, body, signature = SLACK_DOC  # Slack API docs, "Verifying requests from Slack"
    assert sign_slack(secret, ts, body) == signature
    verify_slack(secret, body, ts, signature, now=1531420618 + 299)
    for changed, now, reason in ((body + b"-", 1531420618, "does not match"),
                                 (body, 1531420618 + 301, "more than 300s"),
                                 (body, 1531420618 - 301, "more than 300s")):
        with pytest.raises(SignatureError, match=reason):
            verify_slack(secret, changed, ts, signature, now=now)
    with pytest.raises(SignatureError, match="missing"):
        verify_slack(secret, body, ts, None, now=1531420618)
    with pytest.raises(SignatureError, match="not a Unix time"):
        verify_slack(secret, body, "yesterday", signature, now=1531420618)


def test_pagerdutys_client_library_vector_verifies_among_several_signatures():
    # PagerDuty/go-pagerduty webhookv3/webhookv3_test.go: its secret and body, the "valid" signature.
    secret = "lDQHScfUeXUKaQRNF+8XIiDKZ7XX3itBAYzwU0TARw8lJqRnkKl2iB1anSb0Z+IK"
    body = (CORPUS / "receivers" / "pagerduty-go-client-priority-updated.json").read_bytes()
    valid = "v1=0c0b9495b893a39e70d1fea2fe11fbe0a825f88b9f67846f6cc07dd2bc5476cd"
    assert sign_pagerduty(secret, body) == valid
    verify_pagerduty(secret, body, f"v1=7020c8a7ec668a9b7012bc3dd82e483394b038f4230acc6785efbf2a7d8bcaf5,{valid}")
    for header, reason in ((None, "missing"), ("", "missing"), ("v0=abc", "no v1 signature"),
                           ("v1=7020c8a7ec668a9b7012bc3dd82e483394b038f4230acc6785efbf2a7d8bcaf5", "matches")):
        with pytest.raises(SignatureError, match=reason):
            verify_pagerduty(secret, body, header)


# -- actions, through the fake of the Kubernetes port ---------------------------------------------------
def incident(creator: str = "carol@example.com", phase: str = "AwaitingApproval", **spec) -> dict:
    return {"metadata": {"namespace": "payments", "name": "checkout", "uid": UID,
                         "annotations": {"opex.dev/created-by": creator}},
            "spec": {"severity": "critical", **spec},
            "status": {"phase": phase, "steps": [{"id": STEP, "mutating": True, "state": "AwaitingApproval"},
                                                  {"id": "verify", "mutating": False, "state": "Pending"}]}}


def test_an_acknowledgement_is_written_in_the_persons_name_once():
    kube = FakeIncidentWriter()
    actions = Actions(kube)
    found = actions.find("payments", UID)
    assert found is None
    kube.add(incident())
    found = actions.find("payments", UID)
    result = actions.acknowledge(found, "alice@example.com", "acknowledged in Slack")
    assert result.outcome == Outcome.RECORDED
    assert kube.writes == [("alice@example.com", {"spec": {"acknowledgement": {"by": "alice@example.com",
                                                                               "note": "acknowledged in Slack"}}})]
    again = actions.acknowledge(found, "bob@example.com", "acknowledged in Slack")
    assert again.outcome == Outcome.UNCHANGED and "alice@example.com" in again.message and len(kube.writes) == 1


def test_an_acknowledgement_without_a_mapped_person_is_the_operators_own():
    kube = FakeIncidentWriter()
    kube.add(incident())
    Actions(kube).acknowledge(kube.get("incidents", "payments", "checkout"), None, "acknowledged in PagerDuty by Ben")
    assert kube.writes[0][0] == OPERATOR and kube.writes[0][1]["spec"]["acknowledgement"]["by"] == OPERATOR


def test_an_approval_appends_to_the_approvals_written_meanwhile_and_keeps_them():
    kube = FakeIncidentWriter()
    kube.add(incident(remediation={"approvals": [{"step": "revoke-x", "by": "dave"}]}))
    # Someone approves another step between our read and our write: the write is read and made again.
    kube.races.append({"remediation": {"approvals": [{"step": "revoke-x", "by": "dave"},
                                                     {"step": "rotate-y", "by": "erin"}]}})
    result = Actions(kube).approve(kube.get("incidents", "payments", "checkout"), STEP, "bob@example.com")
    assert result.outcome == Outcome.RECORDED
    final = kube.get("incidents", "payments", "checkout")["spec"]["remediation"]["approvals"]
    assert final == [{"step": "revoke-x", "by": "dave"}, {"step": "rotate-y", "by": "erin"},
                     {"step": STEP, "by": "bob@example.com"}]


@pytest.mark.parametrize("setup,step,outcome,phrase", [
    ({}, "typo-step", Outcome.REFUSED, "has no remediation step typo-step"),
    ({"remediation": {"approvedSteps": [STEP]}}, STEP, Outcome.UNCHANGED, "already approved"),
    ({"remediation": {"approvals": [{"step": STEP, "by": "dave"}]}}, STEP, Outcome.UNCHANGED, "by dave"),
], ids=["unknown-step", "approved-without-a-name", "approved-by-someone"])
def test_an_approval_of_nothing_waiting_changes_nothing(setup, step, outcome, phrase):
    kube = FakeIncidentWriter()
    kube.add(incident(**setup))
    result = Actions(kube).approve(kube.get("incidents", "payments", "checkout"), step, "bob@example.com")
    assert result.outcome == outcome and phrase in result.message and not kube.writes


def test_the_creator_cannot_approve_alone_under_the_two_person_rule_and_the_refusal_is_told():
    kube = FakeIncidentWriter(two_person=True)
    kube.add(incident(creator="alice@example.com"))
    actions = Actions(kube)
    refused = actions.approve(kube.get("incidents", "payments", "checkout"), STEP, "alice@example.com")
    assert refused.outcome == Outcome.REFUSED and "two-person rule" in refused.message and not kube.writes
    assert actions.approve(kube.get("incidents", "payments", "checkout"), STEP, "bob@example.com").outcome == \
        Outcome.RECORDED


def test_rbac_refusing_the_person_is_a_refusal_not_an_error():
    kube = FakeIncidentWriter(allowed={"alice@example.com"})
    kube.add(incident())
    result = Actions(kube).approve(kube.get("incidents", "payments", "checkout"), STEP, "bob@example.com")
    assert result.outcome == Outcome.REFUSED and "cannot patch" in result.message


def test_an_ended_incident_or_one_in_a_namespace_not_watched_is_left_alone():
    kube = FakeIncidentWriter()
    kube.add(incident(phase="Resolved"))
    assert Actions(kube).acknowledge(kube.get("incidents", "payments", "checkout"), "a", "n").outcome == \
        Outcome.UNCHANGED
    assert Actions(kube, ("e2e-*",)).find("payments", UID, "checkout") is None
    assert Actions(kube).find("payments", "another-uid", "checkout") is None  # recreated under the same name


# -- the HTTP endpoints ----------------------------------------------------------------------------------
class Receivers:
    """The server on a real socket, with the fake Kubernetes port and the Slack stand-in."""

    def __init__(self, tmp_path, kube: FakeIncidentWriter, slack_port=None):
        (pd := tmp_path / "pd").write_text(PD_SECRET)
        (sl := tmp_path / "slack").write_text(SLACK_SECRET + "\n")  # as mounted from a Secret
        self.settings = ReceiverSettings(port=procs.free_port(), pagerduty_secret_file=pd, slack_secret_file=sl,
                                         max_body_bytes=4096)
        self.kube = kube
        self.server = ReceiverServer(Actions(kube), ONCALL, self.settings, slack_port or FakeSlackPort())

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        return post_once(self.server, path, body, headers)


def test_pagerduty_acknowledgement_of_the_incident_it_paged_is_written_in_the_mapped_persons_name(tmp_path):
    kube = FakeIncidentWriter()
    kube.add(incident())
    body, headers = FakePagerDuty.webhook("incident.acknowledged", dedup_key("payments", UID), PD_SECRET,
                                          agent=("PALICE", "Alice"))
    status, text = Receivers(tmp_path, kube).post(PAGERDUTY_PATH, body, headers)
    assert status == 200 and json.loads(text)["outcome"] == "recorded"
    (who, written), = kube.writes
    assert who == "alice@example.com" and written["spec"]["acknowledgement"]["by"] == "alice@example.com"
    assert "acknowledged in PagerDuty by Alice (PALICE): https://example.pagerduty.com/incidents/" in \
        written["spec"]["acknowledgement"]["note"]


def test_pagerduty_acknowledgement_by_someone_not_mapped_is_recorded_as_the_operator_naming_them(tmp_path):
    kube = FakeIncidentWriter()
    kube.add(incident())
    body, headers = FakePagerDuty.webhook("incident.acknowledged", dedup_key("payments", UID), PD_SECRET,
                                          agent=("PZZZ", "Zoe"))
    assert Receivers(tmp_path, kube).post(PAGERDUTY_PATH, body, headers)[0] == 200
    (who, written), = kube.writes
    assert who == OPERATOR and "by Zoe (PZZZ)" in written["spec"]["acknowledgement"]["note"]


@pytest.mark.parametrize("tamper", ["no-signature", "wrong-secret", "body-changed"])
def test_a_pagerduty_webhook_without_a_valid_signature_is_401_and_changes_nothing(tmp_path, tamper):
    kube = FakeIncidentWriter()
    kube.add(incident())
    body, headers = FakePagerDuty.webhook("incident.acknowledged", dedup_key("payments", UID),
                                          "other" if tamper == "wrong-secret" else PD_SECRET, agent=("PALICE", "Al"))
    if tamper == "no-signature":
        del headers["X-PagerDuty-Signature"]
    if tamper == "body-changed":
        body = body.replace(b"PALICE", b"PBOBBY")
    status, text = Receivers(tmp_path, kube).post(PAGERDUTY_PATH, body, headers)
    assert status == 401 and "unauthorized" in text and not kube.writes


def test_pagerduty_retries_when_the_api_server_is_down(tmp_path):
    kube = FakeIncidentWriter(down=True)
    body, headers = FakePagerDuty.webhook("incident.acknowledged", dedup_key("payments", UID), PD_SECRET)
    kube.store[("payments", "checkout")] = incident()
    status, text = Receivers(tmp_path, kube).post(PAGERDUTY_PATH, body, headers)
    assert status == 503 and "retry" in text


def test_an_oversized_body_is_refused_before_anything_is_read(tmp_path):
    status, _ = Receivers(tmp_path, FakeIncidentWriter()).post(PAGERDUTY_PATH, b"{" + b" " * 5000 + b"}", {})
    assert status == 413


def slack_click(fake: FakeSlack, user: str, action_id: str, step: str | None = None, **kw) -> tuple[bytes, dict]:
    return fake.click(SLACK_SECRET, user, action_id, ActionValue("payments", "checkout", UID, step).encode(), **kw)


@pytest.fixture
def slack():
    fake = FakeSlack().start()
    yield fake
    fake.stop()


def wait_for_reply(slack: FakeSlack) -> str:
    deadline = time.monotonic() + 5
    while not slack.responses and time.monotonic() < deadline:
        time.sleep(0.02)
    (reply,) = slack.responses
    assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
    return reply["text"]


def test_slack_approve_is_written_in_the_mapped_users_name_and_told_to_them(tmp_path, slack):
    kube = FakeIncidentWriter(two_person=True)
    kube.add(incident(creator="alice@example.com"))
    receivers = Receivers(tmp_path, kube, SlackSender(slack.api_url))
    status, _ = receivers.post(SLACK_PATH, *slack_click(slack, "U0BOB", f"{APPROVE}:{STEP}", STEP))
    assert status == 200
    assert "approved rollback-lambda-checkout-api as bob@example.com" in wait_for_reply(slack)
    assert kube.writes == [("bob@example.com", {"spec": {"remediation": {"approvals": [
        {"step": STEP, "by": "bob@example.com"}]}}})]


def test_slack_approve_by_the_creator_is_refused_by_the_two_person_rule_and_told(tmp_path, slack):
    kube = FakeIncidentWriter(two_person=True)
    kube.add(incident(creator="alice@example.com"))
    receivers = Receivers(tmp_path, kube, SlackSender(slack.api_url))
    assert receivers.post(SLACK_PATH, *slack_click(slack, "U0ALICE", f"{APPROVE}:{STEP}", STEP))[0] == 200
    assert "two-person rule" in wait_for_reply(slack) and not kube.writes


def test_a_slack_user_not_in_the_policy_can_do_nothing(tmp_path, slack):
    kube = FakeIncidentWriter()
    kube.add(incident())
    receivers = Receivers(tmp_path, kube, SlackSender(slack.api_url))
    assert receivers.post(SLACK_PATH, *slack_click(slack, "U0MALLORY", ACKNOWLEDGE))[0] == 200
    assert "not mapped to a Kubernetes user" in wait_for_reply(slack) and not kube.writes


@pytest.mark.parametrize("tamper", ["stale", "wrong-secret", "no-timestamp"])
def test_a_slack_request_not_signed_now_by_slack_is_401_and_changes_nothing(tmp_path, slack, tamper):
    kube = FakeIncidentWriter()
    kube.add(incident())
    body, headers = (slack.click("wrong", "U0ALICE", ACKNOWLEDGE, ActionValue("payments", "checkout", UID).encode())
                     if tamper == "wrong-secret" else
                     slack_click(slack, "U0ALICE", ACKNOWLEDGE, timestamp=int(time.time()) - 600
                                 if tamper == "stale" else None))
    if tamper == "no-timestamp":
        del headers["X-Slack-Request-Timestamp"]
    status, text = Receivers(tmp_path, kube).post(SLACK_PATH, body, headers)
    assert status == 401 and not kube.writes and not slack.responses
