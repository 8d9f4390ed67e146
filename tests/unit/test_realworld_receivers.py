"""Real PagerDuty webhook deliveries and Slack interaction bodies (tests/realworld/receivers) posted to
the on-call receivers' HTTP endpoints on a real socket, the Kubernetes port faked: the status the sender
gets, what became of it, and what was read."""
from __future__ import annotations

import json
import time
import urllib.parse

import pytest

from opex_operator.config import ReceiverSettings
from opex_operator.policy import OnCall
from opex_operator.receivers import pagerduty, slack
from opex_operator.receivers.actions import Actions
from opex_operator.receivers.server import PAGERDUTY_PATH, SLACK_PATH, ReceiverServer
from opex_operator.receivers.signatures import sign_slack
from realworld.corpus import Case, params
from support.endpoints import post_once
from support.oncall_fakes import FakeIncidentWriter, FakeSlackPort
import procs

SLACK_TEST_SECRET = "slack-test-signing-secret"


def serve_and_post(case: Case, tmp_path) -> tuple[int, str, FakeIncidentWriter]:
    secret = tmp_path / "secret"
    body = case.path.read_bytes()
    if case.id.startswith("pagerduty"):
        secret.write_text(case.extra["secret"])
        path, headers = PAGERDUTY_PATH, {"X-PagerDuty-Signature": case.extra["signature"],
                                         "Content-Type": "application/json"}
        settings = ReceiverSettings(port=procs.free_port(), pagerduty_secret_file=secret)
        clock = time.time
    elif "signature" in case.extra:  # a form body signed at a documented time
        secret.write_text(case.extra["secret"])
        path, headers = SLACK_PATH, {"X-Slack-Signature": case.extra["signature"],
                                     "X-Slack-Request-Timestamp": str(case.extra["timestamp"]),
                                     "Content-Type": "application/x-www-form-urlencoded"}
        settings = ReceiverSettings(port=procs.free_port(), slack_secret_file=secret)
        clock = lambda: float(case.extra["timestamp"]) + 10  # noqa: E731 - the request came 10 s ago
    else:  # a payload, posted as Slack posts it
        secret.write_text(SLACK_TEST_SECRET)
        body = f"payload={urllib.parse.quote(json.dumps(json.loads(body)))}".encode()
        now = int(time.time())
        path, headers = SLACK_PATH, {"X-Slack-Signature": sign_slack(SLACK_TEST_SECRET, now, body),
                                     "X-Slack-Request-Timestamp": str(now),
                                     "Content-Type": "application/x-www-form-urlencoded"}
        settings = ReceiverSettings(port=procs.free_port(), slack_secret_file=secret)
        clock = time.time
    writer = FakeIncidentWriter()
    writer.add({"metadata": {"namespace": "payments", "name": "checkout", "uid": "7f0b1c4e-8a55-4b0e-9a7e-2d3c4b5a6f70"},
                "spec": {}, "status": {"phase": "AwaitingApproval"}})
    server = ReceiverServer(Actions(writer), OnCall(), settings, FakeSlackPort(), clock=clock)
    status, text = post_once(server, path, body, headers)
    return status, text, writer


@pytest.mark.parametrize("case", params("receivers"))
def test_real_delivery_is_verified_and_read_as_its_source_says(case: Case, tmp_path):
    status, text, writer = serve_and_post(case, tmp_path)
    expect = case.expect
    assert status == expect["status"], (case.why, text)
    assert not writer.writes  # none of these is about an opex Incident: nothing is written
    if status != 200:
        return
    if case.id.startswith("pagerduty"):
        assert json.loads(text)["outcome"] == expect["outcome"]
        event = pagerduty.parse(case.path.read_bytes())
        assert (event.event_type, event.incident_key, event.agent) == (
            expect["event_type"], expect["incident_key"], expect["agent"])
    else:
        body = f"payload={urllib.parse.quote(case.path.read_text())}".encode()
        click = slack.parse(body)
        assert (click.user_id, click.team_id, click.action is not None) == (expect["user"], expect["team"],
                                                                             expect["ours"])
