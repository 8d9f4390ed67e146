"""The PagerDuty and Slack senders against local stand-ins that check every request against the
services' documented schemas and limits (hack/fakepagerduty.py, hack/fakeslack.py), over a real
socket; what the pages say; which senders page which level; rate limits honoured."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from fakepagerduty import FakePagerDuty, problems
from fakeslack import FakeSlack, block_problems
from support.builders import NOW, spec
from opex_operator.api.incident import (EscalationLevel, EscalationStatus, Finding, FindingSeverity, IncidentPhase,
                                        IncidentStatus, Notification, RootCause, RootCauseCategory, Step, StepState)
from opex_operator.notify import message, pagerduty, routing
from opex_operator.notify.http import RateLimited, SendError, retry_after
from opex_operator.notify.slack import ACKNOWLEDGE, APPROVE, ActionValue, SlackSender, incident_message

UID = "7f0b1c4e-8a55-4b0e-9a7e-2d3c4b5a6f70"
KEY = "0123456789abcdef0123456789abcdef"  # a 32-character integration key
STEP = "rollback-lambda-checkout-api"


def diagnosed(steps: int = 1, findings: int = 3, title_len: int = 0, **kw) -> tuple:
    s = spec(severity="critical", title="x" * title_len if title_len else "checkout deploy failed", **kw)
    st = IncidentStatus(
        phase=IncidentPhase.AWAITING_APPROVAL, detected_at=NOW,
        root_cause=RootCause(category=RootCauseCategory.LAMBDA_DEPLOYMENT,
                             summary="checkout-api v2 fails at import: No module named 'pg8000' <& co>"),
        findings=[Finding(id=f"F{i}", source="Lambda", resource="function/checkout-api",
                          severity=FindingSeverity.ERROR, observed=f"error {i}") for i in range(1, findings + 1)],
        steps=[Step(id=STEP if i == 0 else f"rollback-lambda-fn-{i}", action="lambda:UpdateFunctionCode",
                    mutating=True, state=StepState.AWAITING_APPROVAL) for i in range(steps)])
    return s, st


@pytest.fixture
def pd():
    fake = FakePagerDuty().start()
    yield fake
    fake.stop()


@pytest.fixture
def slack():
    fake = FakeSlack(tokens={"xoxb-opex"}, channels={"C0OPEX"}).start()
    yield fake
    fake.stop()


# -- PagerDuty ---------------------------------------------------------------------------------------------
def test_the_trigger_names_the_incident_by_its_uid_and_carries_severity_findings_and_links(pd):
    s, st = diagnosed()
    event = pagerduty.trigger(KEY, "payments", "checkout", UID, s, st,
                              links=[("https://console.example.com/incidents/payments/checkout", "Incident")])
    assert problems(event) == []
    assert event["dedup_key"] == f"opex/payments/{UID}" and pagerduty.incident_of(event["dedup_key"]) == ("payments", UID)
    payload = event["payload"]
    assert payload["severity"] == "critical" and payload["source"] == "pipeline:checkout-pipeline"
    assert payload["summary"] == "[CRITICAL] checkout deploy failed" and payload["class"] == "LambdaDeployment"
    details = payload["custom_details"]
    assert details["findings"][0] == "F1 [Error] Lambda function/checkout-api: error 1"
    assert details["waiting_for_approval"] == [STEP]
    assert details["approve_with"] == f"opex approve incident checkout -n payments {STEP}"
    assert event["links"] == [{"href": "https://console.example.com/incidents/payments/checkout", "text": "Incident"}]
    assert pagerduty.PagerDutySender(pd.url).send(event) == event["dedup_key"]
    assert pd.alerts[(KEY, event["dedup_key"])] == "triggered"


@pytest.mark.parametrize("severity,expected", [("critical", "critical"), ("high", "error"), ("medium", "warning"),
                                               ("low", "info")])
def test_severity_is_mapped_onto_pagerdutys(severity, expected):
    s, st = diagnosed()
    s = spec(severity=severity)
    assert pagerduty.trigger(KEY, "ns", "n", UID, s, st)["payload"]["severity"] == expected


def test_acknowledge_and_resolve_follow_the_trigger_through_its_routing_key(pd):
    s, st = diagnosed()
    sender = pagerduty.PagerDutySender(pd.url)
    sender.send(pagerduty.trigger(KEY, "payments", "checkout", UID, s, st))
    key = pagerduty.dedup_key("payments", UID)
    sender.send(pagerduty.follow_up(KEY, "payments", UID, "acknowledge"))
    assert pd.alerts[(KEY, key)] == "acknowledged"
    sender.send(pagerduty.follow_up(KEY, "payments", UID, "resolve"))
    assert pd.alerts[(KEY, key)] == "resolved"
    with pytest.raises(ValueError):
        pagerduty.follow_up(KEY, "payments", UID, "snooze")


def test_a_huge_incident_still_makes_a_valid_event():
    s, st = diagnosed(steps=40, findings=40, title_len=200)
    st.root_cause.summary = "y" * 1024
    event = pagerduty.trigger(KEY, "p" * 63, "n" * 253, UID, s, st)
    assert problems(event) == [] and len(json.dumps(event)) < pagerduty.MAX_BODY_BYTES
    assert len(event["payload"]["custom_details"]["findings"]) == pagerduty.MAX_FINDINGS


def test_pagerduty_refusing_an_event_says_why(pd):
    with pytest.raises(SendError, match="Length of 'routing_key' is incorrect") as err:
        pagerduty.PagerDutySender(pd.url).send(pagerduty.follow_up("short", "payments", UID, "resolve"))
    assert err.value.status == 400 and not pd.events


def test_a_short_rate_limit_is_waited_out_and_the_event_delivered_once(pd):
    pd.throttle(1, retry_after=1)
    s, st = diagnosed()
    pagerduty.PagerDutySender(pd.url).send(pagerduty.trigger(KEY, "payments", "checkout", UID, s, st))
    assert len(pd.events) == 1 and len(pd.requests) == 2
    assert pd.requests[1] - pd.requests[0] >= 1.0  # it came back after Retry-After, not before


def test_a_long_rate_limit_is_handed_back_with_its_wait_and_nothing_is_retried_now(pd):
    pd.throttle(1, retry_after=120)
    with pytest.raises(RateLimited) as err:
        pagerduty.PagerDutySender(pd.url, max_wait=30).send(pagerduty.follow_up(KEY, "payments", UID, "resolve"))
    assert err.value.retry_after == 120 and len(pd.requests) == 1 and not pd.events


def test_retry_after_is_read_as_seconds_or_an_http_date():
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc).timestamp()
    assert retry_after("7", now) == 7
    assert retry_after("Tue, 01 Dec 2026 12:00:30 GMT", now) == 30
    assert retry_after("soon", now) is None and retry_after(None, now) is None


def test_an_unreachable_service_is_a_send_error_without_the_url():
    with pytest.raises(SendError, match="PagerDuty unreachable") as err:
        pagerduty.PagerDutySender("http://127.0.0.1:9/v2/enqueue", timeout=2).send({})
    assert "127.0.0.1" not in str(err.value)


# -- Slack -------------------------------------------------------------------------------------------------
def test_the_message_says_what_happened_and_offers_acknowledge_and_each_step_waiting():
    s, st = diagnosed(steps=2)
    text, blocks = incident_message("payments", "checkout", UID, s, st)
    assert block_problems(blocks) == []
    assert blocks[0]["text"]["text"] == "[CRITICAL] checkout deploy failed"
    assert "No module named 'pg8000' &lt;&amp; co&gt;" in blocks[2]["text"]["text"]  # escaped for mrkdwn
    actions = blocks[-1]["elements"]
    assert [a["action_id"] for a in actions] == [ACKNOWLEDGE, f"{APPROVE}:{STEP}", f"{APPROVE}:rollback-lambda-fn-1"]
    assert ActionValue.decode(actions[1]["value"]) == ActionValue("payments", "checkout", UID, STEP)
    assert text.startswith("[CRITICAL] checkout deploy failed (payments/checkout): AwaitingApproval")


def test_once_acknowledged_the_message_says_by_whom_and_offers_only_approvals():
    s, st = diagnosed(acknowledgement={"by": "alice@example.com", "note": "rolling back"})
    text, blocks = incident_message("payments", "checkout", UID, s, st)
    assert "Acknowledged by alice@example.com: rolling back" in blocks[-2]["elements"][0]["text"]
    assert [a["action_id"] for a in blocks[-1]["elements"]] == [f"{APPROVE}:{STEP}"]
    ended = st.model_copy(update={"phase": IncidentPhase.RESOLVED})
    assert incident_message("payments", "checkout", UID, s, ended)[1][-1]["type"] == "context"  # no buttons


def test_a_huge_incident_still_fits_slacks_limits():
    s, st = diagnosed(steps=40, title_len=200)
    st.root_cause.summary = "<" * 1024
    _, blocks = incident_message("p" * 63, "n" * 253, UID, s, st)
    assert block_problems(blocks) == []
    assert len(blocks[-1]["elements"]) == 25


def test_the_stand_in_refuses_what_slack_refuses():
    assert block_problems([{"type": "divider"}] * 51) == ["51 blocks, over 50"]
    assert "over 150" in block_problems([{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}])[0]
    button = {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "x" * 76}}
    assert "over 75" in block_problems([{"type": "actions", "elements": [button]}])[0]
    twice = {"type": "actions", "elements": [{**button, "text": {"type": "plain_text", "text": "ok"}}] * 2}
    assert "unique" in block_problems([twice])[0]


def test_one_message_per_incident_updated_in_place_and_threaded(slack):
    sender = SlackSender(slack.api_url)
    s, st = diagnosed()
    posted = sender.post_message("xoxb-opex", "C0OPEX", *incident_message("payments", "checkout", UID, s, st))
    acked = diagnosed(acknowledgement={"by": "alice@example.com"})[0]
    sender.update_message("xoxb-opex", posted.channel, posted.ts, *incident_message("payments", "checkout", UID, acked,
                                                                                    st))
    sender.post_message("xoxb-opex", posted.channel, "Acknowledged by alice@example.com.", thread_ts=posted.ts)
    parent = slack.messages["C0OPEX"][posted.ts]
    assert "Acknowledged by alice@example.com" in parent["text"]
    assert [r["text"] for r in parent["replies"]] == ["Acknowledged by alice@example.com."]
    assert [c[0] for c in slack.calls] == ["chat.postMessage", "chat.update", "chat.postMessage"]


@pytest.mark.parametrize("token,channel,error", [("xoxb-wrong", "C0OPEX", "invalid_auth"),
                                                 ("xoxb-opex", "C0NOPE", "channel_not_found")])
def test_slack_refusing_a_message_says_why(slack, token, channel, error):
    with pytest.raises(SendError, match=error):
        SlackSender(slack.api_url).post_message(token, channel, "hello")


def test_an_update_of_a_message_slack_does_not_have_is_refused(slack):
    with pytest.raises(SendError, match="message_not_found"):
        SlackSender(slack.api_url).update_message("xoxb-opex", "C0OPEX", "1.000001", "x", [{"type": "divider"}])


def test_an_incoming_webhook_takes_the_same_message_post_only(slack):
    s, st = diagnosed()
    SlackSender(slack.api_url).post_webhook(slack.webhook_url, *incident_message("payments", "checkout", UID, s, st))
    assert slack.webhook_posts[0]["blocks"][0]["type"] == "header"
    with pytest.raises(SendError, match="HTTP 400: invalid_blocks"):
        SlackSender(slack.api_url).post_webhook(slack.webhook_url, "x", [{"type": "divider"}] * 51)


def test_slacks_429_is_waited_out_per_its_retry_after(slack):
    slack.throttle(1, retry_after=1)
    SlackSender(slack.api_url).post_message("xoxb-opex", "C0OPEX", "hello")
    assert len(slack.requests) == 2 and slack.requests[1] - slack.requests[0] >= 1.0
    assert len(slack.messages["C0OPEX"]) == 1


def test_a_burst_past_slacks_rate_is_handed_back_when_the_wait_is_too_long(slack):
    slack.throttle(1, retry_after=60)
    with pytest.raises(RateLimited) as err:
        SlackSender(slack.api_url).post_message("xoxb-opex", "C0OPEX", "hello")
    assert err.value.retry_after == 60 and not slack.messages["C0OPEX"]


# -- which senders page a level ----------------------------------------------------------------------------
def notify_all(**kw):
    return spec(notify={"snsTopicArns": ["arn:aws:sns:us-east-1:123456789012:oncall"],
                        "webhook": {"urlSecretRef": {"name": "hooks", "key": "url"}},
                        "pagerDuty": {"routes": [{"level": 1, "routingKeySecretRef": {"name": "pd", "key": "l1"}},
                                                 {"level": 2, "routingKeySecretRef": {"name": "pd", "key": "l2"}}]},
                        "slack": {"channel": "C0OPEX", "tokenSecretRef": {"name": "slack", "key": "token"}}}, **kw)


def test_a_level_without_senders_pages_through_every_sender_configured():
    s = notify_all()
    level = EscalationLevel(level=1, contact="DevOps lead")
    got = [(c.sender.value, c.target) for c in routing.channels(level, s.notify, ["arn:aws:sns:us-east-1:1:policy"])]
    assert got == [("SNS", "arn:aws:sns:us-east-1:123456789012:oncall"), ("SNS", "arn:aws:sns:us-east-1:1:policy"),
                   ("Webhook", "webhook"), ("PagerDuty", "pd/l1"), ("Slack", "C0OPEX")]


def test_a_level_naming_its_senders_pages_only_through_those_and_its_own_routing_key():
    s = notify_all()
    level = EscalationLevel(level=2, contact="EM", senders=["PagerDuty", "Slack"])
    got = [(c.sender.value, c.target, c.secret.key) for c in routing.channels(level, s.notify)]
    assert got == [("PagerDuty", "pd/l2", "l2"), ("Slack", "C0OPEX", "token")]
    level3 = EscalationLevel(level=3, contact="CTO", senders=["PagerDuty"])
    assert routing.channels(level3, s.notify) == []  # no routing key for level 3: nothing pages it


def test_acknowledge_and_resolve_go_through_the_routing_keys_a_trigger_was_delivered_through():
    s = notify_all()
    st = EscalationStatus(current_level=2, notified=[
        Notification(level=1, contact="a", channel="PagerDuty", target="pd/l1", time=NOW),
        Notification(level=2, contact="b", channel="PagerDuty", target="pd/l2", time=NOW, error="HTTP 500")])
    assert [r.key for r in routing.pagerduty_follow_ups(s.notify, st)] == ["l1"]


def test_a_slack_webhook_is_the_channel_when_no_token_is_given():
    s = spec(notify={"slack": {"webhookUrlSecretRef": {"name": "slack", "key": "url"}}})
    (only,) = routing.channels(EscalationLevel(level=1, contact="x"), s.notify)
    assert (only.target, only.secret.key) == ("slack-webhook", "url")


def test_pages_say_who_acknowledged_and_how_to_approve():
    s, st = diagnosed(acknowledgement={"by": "alice@example.com", "note": "on it"})
    _, body, payload = message.escalation("payments", "checkout", s, st, EscalationLevel(level=2, contact="EM"))
    assert "Acknowledged by alice@example.com: on it" in body and payload["acknowledgedBy"] == "alice@example.com"
    assert f"opex approve incident checkout -n payments {STEP}" in body
