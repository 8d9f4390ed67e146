"""The Incident controller's on-call loop on fakes of every port: an acknowledgement holds
escalation (and re-escalates after reEscalateAfter), MTTA is observed once, approvals are recorded
with their approver's name, and each level pages PagerDuty and Slack, which hear of the
acknowledgement and the resolution."""
from __future__ import annotations

from opex_operator import metrics
from opex_operator.api.incident import StepState
from opex_operator.controllers.incident import IncidentController
from support.fakes import FakeWorkspaces, condition, sink_of
from support.oncall_fakes import FakePagerDutyPort, FakeSlackPort
from test_incident_controller import STEP, World, incident, policy

KEY1, KEY2 = "a" * 32, "b" * 32


def acknowledge(w: World, by: str = "alice", note: str | None = "rolling back") -> None:
    w.obj.spec["acknowledgement"] = {"by": by, **({"note": note} if note else {})}
    w.obj.generation += 1
    w.obj.recorder.generation = w.obj.generation


def mtta_count() -> float:
    return metrics.REGISTRY.get_sample_value("opex_incident_time_to_acknowledge_seconds_count",
                                             {"type": "DeploymentFailure", "severity": "high"}) or 0.0


def test_an_acknowledged_incident_pages_no_further_level_and_says_who_and_when():
    w = World(incident())
    w.drive()
    assert len(w.aws.the_sns.published) == 1
    before = mtta_count()
    w.clock.advance(300)
    acknowledge(w)
    assert w.drive() is None  # waits for the approval; no escalation deadline any more
    st = w.status
    assert st.acknowledgement.by == "alice" and st.acknowledgement.acknowledged_at == w.clock.now
    assert st.escalation.next_escalation_at is None and st.escalation.current_level == 1
    assert mtta_count() == before + 1
    [text] = [m for r, m in sink_of_events(w) if r == "Acknowledged"]
    assert "alice" in text and "rolling back" in text and "holds at level 1" in text
    w.clock.advance(3600)
    w.drive()
    assert len(w.aws.the_sns.published) == 1 and w.status.escalation.current_level == 1
    assert mtta_count() == before + 1  # one sample per acknowledgement, not per pass


def test_after_reescalateafter_an_acknowledged_incident_pages_the_next_level_naming_who_acknowledged():
    w = World(incident(escalation={"reEscalateAfter": "10m"}))
    w.drive()
    acknowledge(w)
    wait = w.drive()
    assert 590 <= wait <= 600 and w.status.escalation.next_level == 2
    w.clock.advance(600)
    w.drive()
    st = w.status
    assert st.escalation.current_level == 2 and st.escalation.re_escalated_at == w.clock.now
    assert "ReEscalated" in w.reasons()
    assert len(w.aws.the_sns.published) == 2 and w.aws.the_sns.published[-1][1].startswith("[HIGH] L2")
    # the hold starts over from the re-escalation: the next page (level 2 again, the top) 10 minutes later
    assert (st.escalation.next_escalation_at - w.clock.now).total_seconds() == 600


def test_a_withdrawn_acknowledgement_lets_the_matrix_page_again():
    w = World(incident())
    w.drive()
    acknowledge(w)
    w.drive()
    del w.obj.spec["acknowledgement"]
    w.obj.generation += 1
    w.clock.advance(1800)
    w.drive()
    assert w.status.acknowledgement is None and w.status.escalation.current_level == 2
    assert "AcknowledgementWithdrawn" in w.reasons()


def test_a_named_approval_is_recorded_with_its_approver_and_runs_the_step_once():
    w = World(incident())
    w.drive()
    w.change_spec(approvals=[{"step": STEP, "by": "bob@example.com"}])
    w.drive()
    [record] = w.status.approvals
    assert (record.step, record.by) == (STEP, "bob@example.com") and w.step(STEP).state == StepState.RUNNING
    assert f"step {STEP} approved by bob@example.com" in [m for r, m in sink_of_events(w) if r == "StepApproved"]
    first_seen = record.approved_at
    w.objects.custom[("rollbacks", "ns", f"checkout-{STEP}")]["status"] = {"phase": "Succeeded"}
    w.clock.advance(30)
    w.drive()
    assert w.status.phase == "Resolved" and len(w.objects.created) == 1
    assert w.status.approvals[0].approved_at == first_seen
    assert [(a.step, a.by) for a in w.status.post_incident.approvals] == [(STEP, "bob@example.com")]
    report = w.objects.config_maps[("ns", "checkout-postincident")]["data"]["report.md"]
    assert f"Step {STEP} approved by bob@example.com" in report


def test_an_id_in_approvedsteps_still_approves_and_is_recorded_without_a_name():
    w = World(incident())
    w.drive()
    w.change_spec(approvedSteps=[STEP])
    w.drive()
    [record] = w.status.approvals
    assert record.by is None and w.step(STEP).state == StepState.RUNNING


def test_without_an_approval_the_step_waits_and_the_slack_message_offers_it():
    w = pd_slack_world()
    w.drive()
    assert w.status.phase == "AwaitingApproval" and w.objects.created == []
    [message] = [m for m in w.slack.messages.values() if m["thread_ts"] is None]
    actions = [b for b in message["blocks"] if b["type"] == "actions"][0]["elements"]
    assert [a["action_id"] for a in actions] == ["opex.acknowledge", f"opex.approve:{STEP}"]


def pd_slack_world(**extra) -> World:
    spec = incident(notify={"pagerDuty": {"routes": [
                                {"level": 1, "routingKeySecretRef": {"name": "pd", "key": "level1"}},
                                {"level": 2, "routingKeySecretRef": {"name": "pd", "key": "level2"}}]},
                            "slack": {"channel": "C0123456789", "tokenSecretRef": {"name": "slack", "key": "token"}}},
                    **extra)
    w = World(spec)
    w.pagerduty, w.slack = FakePagerDutyPort(), FakeSlackPort()
    w.ctl = IncidentController(w.aws, w.objects, FakeWorkspaces(), policy("lambda:*", "codepipeline:*"), webhook=None,
                               clock=w.clock, pagerduty=w.pagerduty, slack=w.slack)
    w.objects.secrets[("ns", "pd")] = {"level1": KEY1, "level2": KEY2}
    w.objects.secrets[("ns", "slack")] = {"token": "xoxb-test"}
    return w


def test_each_level_triggers_its_own_pagerduty_route_and_one_slack_message_is_updated_and_threaded():
    w = pd_slack_world()
    w.drive()
    [first] = w.pagerduty.events
    assert first["event_action"] == "trigger" and first["routing_key"] == KEY1
    assert first["dedup_key"] == "opex/ns/uid-checkout"
    assert w.status.escalation.slack.channel == "C0123456789"
    w.clock.advance(1800)
    w.drive()
    assert [(e["event_action"], e["routing_key"]) for e in w.pagerduty.events] == [("trigger", KEY1),
                                                                                  ("trigger", KEY2)]
    parents = [ts for ts, m in w.slack.messages.items() if m["thread_ts"] is None]
    replies = [m for m in w.slack.messages.values() if m["thread_ts"] == w.status.escalation.slack.ts]
    assert parents == [w.status.escalation.slack.ts] and any("level 2" in m["text"] for m in replies)
    channels = {(n.channel, n.level) for n in w.status.escalation.notified if not n.error}
    assert channels == {("PagerDuty", 1), ("Slack", 1), ("PagerDuty", 2), ("Slack", 2)}


def test_a_level_naming_its_senders_pages_only_through_them():
    levels = [{"level": 1, "contact": "on-call", "senders": ["PagerDuty"]},
              {"level": 2, "contact": "lead", "afterSeconds": 1800, "senders": ["Slack"]}]
    w = pd_slack_world(escalation={"levels": levels})
    w.drive()
    assert len(w.pagerduty.events) == 1 and w.slack.messages == {} and w.aws.the_sns.published == []
    w.clock.advance(1800)
    w.drive()
    assert len(w.pagerduty.events) == 1 and len(w.slack.messages) == 1


def test_the_acknowledgement_reaches_pagerduty_and_slack_and_resolution_resolves_the_alert():
    w = pd_slack_world()
    w.drive()
    acknowledge(w, note=None)
    w.drive()
    assert [e["event_action"] for e in w.pagerduty.events] == ["trigger", "acknowledge"]
    parent = w.slack.messages[w.status.escalation.slack.ts]
    assert "Acknowledged by alice" in parent["text"]
    assert [a["action_id"] for b in parent["blocks"] if b["type"] == "actions" for a in b["elements"]] == [
        f"opex.approve:{STEP}"]  # no Acknowledge button once acknowledged
    w.change_spec(approvals=[{"step": STEP, "by": "alice"}])
    w.drive()
    w.objects.custom[("rollbacks", "ns", f"checkout-{STEP}")]["status"] = {"phase": "Succeeded"}
    w.clock.advance(30)
    w.drive()
    assert w.status.phase == "Resolved"
    assert [(e["event_action"], e["routing_key"]) for e in w.pagerduty.events][-1] == ("resolve", KEY1)
    assert "Resolved" in w.slack.messages[w.status.escalation.slack.ts]["text"]


def test_a_failed_page_is_recorded_and_the_other_senders_still_page():
    w = pd_slack_world()
    del w.objects.secrets[("ns", "pd")]
    w.drive()
    notes = {n.channel: n for n in w.status.escalation.notified}
    assert "has no key level1" in notes["PagerDuty"].error and notes["Slack"].error is None
    assert condition(w.status, "Escalated").status == "True" and "failed: PagerDuty" in condition(
        w.status, "Escalated").message


def sink_of_events(w: World) -> list[tuple[str, str]]:
    return [(reason, message) for _, reason, message in sink_of(w.obj).events]
