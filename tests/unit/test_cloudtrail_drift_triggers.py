"""Drift checked when CloudTrail shows a change to a managed resource (issue 24, part 2): the event
intake's routing of a real CloudTrail record (tests/realworld/cloudtrail) to the DriftCheck whose last
plan manages the resource, the debounced run it owes, and who changed the drifted resource, through the
DriftCheck controller on fakes of Terraform and Kubernetes."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

from opex_operator import metrics
from opex_operator.api.driftcheck import CHANGES_ANNOTATION, DriftCheckSpec, DriftCheckStatus
from opex_operator.events.envelope import events_in
from opex_operator.events.trail import TrailTrigger
from opex_operator.policy import Policy
from opex_operator.runbooks import drift, trail_changes
from opex_operator.runbooks.drift import Move
from support.fakes import T0, Clock, FakeWorkspaces, condition, plan_doc
from test_driftcheck_controller import World

CORPUS = Path(__file__).resolve().parent.parent / "realworld" / "cloudtrail"
SG = "sg-003dc7f1f1c686164"   # the group stratus-sg-open-port-22.json opens to the world
DEPLOYER = "arn:aws:iam::111122223333:role/ci-deploy"
POLICY = Policy.model_validate({"rules": [{"namespaces": ["*"], "actions": ["terraform:*"], "terraform": {
    "backends": [{"type": "s3"}], "deployers": [DEPLOYER]}}]})


def prior(*changes):
    """A plan whose prior state manages the security group (and a terraform_data nothing calls)."""
    doc = plan_doc(*changes)
    doc["prior_state"] = {"values": {"root_module": {"resources": [
        {"address": "aws_security_group.app", "mode": "managed", "type": "aws_security_group", "name": "app",
         "values": {"id": SG, "name": "app", "arn": f"arn:aws:ec2:us-east-1:111122223333:security-group/{SG}"}},
        {"address": "terraform_data.other", "mode": "managed", "type": "terraform_data", "name": "other",
         "values": {"id": "c0ffee00-0000-4000-8000-000000000000"}}]}}}
    return doc


def eventbridge(record: dict, **changes) -> str:
    """The record as EventBridge delivers it ("AWS API Call via CloudTrail": CloudTrail User Guide,
    "Working with CloudTrail events in EventBridge")."""
    detail = {**record, **changes}
    return json.dumps({"version": "0", "id": f"eb-{detail['eventID']}", "detail-type": "AWS API Call via CloudTrail",
                       "source": "aws.ec2", "account": "111122223333", "time": detail["eventTime"],
                       "region": "us-east-1", "resources": [], "detail": detail})


def open_ssh(at: dt.datetime | None = None, **changes) -> str:
    """The real record; ``at`` moves its eventTime to after the tests' first check (a call made before a
    check that found no drift is not what a later drift is attributed to)."""
    [record] = json.loads((CORPUS / "stratus-sg-open-port-22.json").read_text())
    if at is not None:
        changes["eventTime"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return eventbridge(record, **changes)


class Store:
    """``ports.DriftCheckStore`` over the World's one DriftCheck and its fake ConfigMaps."""

    def __init__(self, *worlds: World):
        self.worlds = worlds

    def list_objects(self, plural, namespace=None):
        return [{"metadata": {"namespace": w.obj.ref.namespace, "name": w.obj.ref.name, "uid": w.obj.ref.uid,
                              "annotations": dict(w.obj.annotations)},
                 "spec": w.spec, "status": w.status.model_dump(mode="json", by_alias=True, exclude_none=True)}
                for w in self.worlds if namespace in (None, w.obj.ref.namespace)]

    def config_map_data(self, namespace, name):
        for w in self.worlds:
            if (namespace, name) in w.objects.config_maps:
                return w.objects.config_maps[(namespace, name)]["data"]
        return None

    def annotate(self, ref, annotations):
        [w] = [w for w in self.worlds if w.obj.ref.name == ref.name]
        w.obj.annotations.update(annotations)


def deliver(trigger: TrailTrigger, body: str):
    [event] = events_in(body)
    return asyncio.run(trigger.take(event))


def watched(**spec) -> World:
    w = World(FakeWorkspaces(plans=[prior()]), policy=POLICY, triggers={"cloudTrail": True}, **spec)
    w.run_now()  # the first check: its report carries the prior state's ids
    return w


def test_a_change_to_a_managed_group_runs_the_check_and_the_report_names_who_made_it():
    w = watched()
    assert trail_changes.managed_from_json(w.objects.config_maps[("ns", w.status.report_ref.name)]["data"][
        trail_changes.MANAGED_KEY])[0].ids == {SG}
    before = metrics.OUT_OF_BAND_CHANGES.labels("")._value.get()
    outcome, note = deliver(TrailTrigger(Store(w), clock=lambda: w.clock.now), open_ssh(w.clock.advance(1)))
    assert outcome == "updated" and "ns/network (aws_security_group.app)" in note
    w.ws.plans = [prior(("aws_security_group.app", ["update"]))]
    w.clock.advance(5)
    w.drive()
    st = w.status
    assert st.last_result.trigger.startswith("CloudTrail: AuthorizeSecurityGroupIngress by ")
    assert condition(st, "Drifted").reason == "DriftDetected"
    [change] = st.changes
    assert (change.address, change.event_name, change.event_id, change.source_address, change.deployer) == (
        "aws_security_group.app", "AuthorizeSecurityGroupIngress", "9fd68588-ecbf-4528-a345-199fa6bb0821",
        "253.243.215.253", False)
    assert change.principal in condition(st, "Drifted").message
    assert condition(st, "OutOfBandChange").status == "True" and change.principal in condition(st, "OutOfBandChange").message
    assert "OutOfBandChange" in w.reasons()
    assert metrics.OUT_OF_BAND_CHANGES.labels("")._value.get() == before + 1
    report = json.loads(w.objects.config_maps[("ns", st.report_ref.name)]["data"]["summary.json"])
    assert report["changes"][0]["principal"] == change.principal
    w.run_now()  # the drift stays: the same call is named again, but not counted or announced twice
    assert condition(w.status, "OutOfBandChange").status == "True" and w.reasons().count("OutOfBandChange") == 1
    assert metrics.OUT_OF_BAND_CHANGES.labels("")._value.get() == before + 1
    w.ws.plans = [prior()]
    w.run_now()  # someone put it back: nothing drifted, nothing out of band any more
    assert w.status.changes == [] and condition(w.status, "OutOfBandChange").reason == "NoneDrifted"


def test_the_same_event_delivered_again_changes_nothing_and_owes_no_second_run():
    w = watched()
    trigger = TrailTrigger(Store(w), clock=lambda: w.clock.now)
    assert deliver(trigger, open_ssh())[0] == "updated"
    w.drive()
    runs = w.ws.calls.count("plan")
    assert deliver(trigger, open_ssh())[0] == "duplicate"
    w.clock.advance(600)
    w.drive()
    assert w.ws.calls.count("plan") == runs


def test_a_deployers_change_is_recorded_but_not_out_of_band():
    w = watched()
    record = json.loads(open_ssh())["detail"]
    session = {**record["userIdentity"], "type": "AssumedRole",
               "arn": "arn:aws:sts::111122223333:assumed-role/ci-deploy/pipeline-42"}
    deliver(TrailTrigger(Store(w), clock=lambda: w.clock.now), open_ssh(w.clock.advance(1), userIdentity=session))
    w.ws.plans = [prior(("aws_security_group.app", ["update"]))]
    w.drive()
    [change] = w.status.changes
    assert change.deployer and condition(w.status, "OutOfBandChange").reason == "DeployersOnly"
    assert "OutOfBandChange" not in w.reasons()


def test_reads_failures_and_unmanaged_resources_are_passed_over_and_unopted_checks_untouched():
    w, other = watched(), World(FakeWorkspaces(plans=[prior()]), name="other", policy=POLICY)
    other.run_now()
    trigger = TrailTrigger(Store(w, other), clock=lambda: w.clock.now)
    assert deliver(trigger, open_ssh(readOnly=True))[0] == "ignored"
    assert deliver(trigger, open_ssh(errorCode="Client.UnauthorizedOperation"))[0] == "ignored"
    assert deliver(trigger, open_ssh(requestParameters={"groupId": "sg-0aaaaaaaaaaaaaaaa"}, responseElements={},
                                     eventID="elsewhere"))[0] == "ignored"
    assert CHANGES_ANNOTATION not in w.obj.annotations and CHANGES_ANNOTATION not in other.obj.annotations
    assert deliver(trigger, open_ssh())[0] == "updated"
    assert CHANGES_ANNOTATION in w.obj.annotations and CHANGES_ANNOTATION not in other.obj.annotations


def test_a_fixed_list_of_namespaces_is_read_namespace_by_namespace():
    w = watched()
    assert deliver(TrailTrigger(Store(w), ("elsewhere",), clock=lambda: w.clock.now), open_ssh())[0] == "ignored"
    assert deliver(TrailTrigger(Store(w), ("ns",), clock=lambda: w.clock.now), open_ssh())[0] == "updated"


def entry(received: dt.datetime, event_id: str = "e1") -> dict:
    return {"eventId": event_id, "eventName": "UpdateIPSet", "principal": "arn:aws:iam::1:user/jane",
            "addresses": ["aws_wafv2_ip_set.block"], "receivedAt": received.isoformat()}


def spec(**extra) -> DriftCheckSpec:
    return DriftCheckSpec.model_validate({"schedule": ["0 9 * * *"], "source": {"configMapRef": {"name": "tf"}},
                                          "triggers": {"cloudTrail": True}, **extra})


def test_changes_run_at_most_once_per_debounce_and_the_pass_comes_back_when_it_ends():
    now = T0 + dt.timedelta(hours=1)
    st = DriftCheckStatus(last_change_run_time=now - dt.timedelta(seconds=30), last_schedule_time=T0)
    d = drift.decide(spec(), st, now, T0, None, [entry(now)])
    assert d.move == Move.WAIT and d.until == now + dt.timedelta(seconds=90)
    d = drift.decide(spec(), st, now + dt.timedelta(seconds=90), T0, None, [entry(now)])
    assert d.move == Move.RUN and d.answers == "e1" and "UpdateIPSet by user/jane" in d.trigger


def test_changes_do_not_run_a_check_that_did_not_opt_in_or_is_suspended():
    now = T0 + dt.timedelta(hours=1)
    st = DriftCheckStatus(last_schedule_time=T0)
    unopted = DriftCheckSpec.model_validate({"schedule": ["0 9 * * *"], "source": {"configMapRef": {"name": "tf"}}})
    assert drift.decide(unopted, st, now, T0, None, [entry(now)]).move == Move.WAIT
    assert drift.decide(spec(suspend=True), st, now, T0, None, [entry(now)]).move == Move.WAIT


def test_answered_changes_owe_nothing_and_newer_ones_do_even_within_one_second():
    entries = [entry(T0, "a"), entry(T0, "b")]
    assert [e["eventId"] for e in trail_changes.pending(entries, "a")] == ["b"]
    assert trail_changes.pending(entries, "b") == []
    assert [e["eventId"] for e in trail_changes.pending(entries, "dropped-off")] == ["a", "b"]


def test_a_call_a_check_found_no_drift_after_is_not_who_made_a_later_drift():
    w = watched()
    deliver(TrailTrigger(Store(w), clock=lambda: w.clock.now), open_ssh())
    w.drive()  # the run it triggers finds nothing changed
    assert w.status.last_result.trigger.startswith("CloudTrail:") and w.status.last_result.outcome == "NoDrift"
    w.ws.plans = [prior(("aws_security_group.app", ["update"]))]
    w.run_now()
    assert condition(w.status, "Drifted").reason == "DriftDetected" and w.status.changes == []
    assert condition(w.status, "OutOfBandChange") is None


def test_an_assumed_role_session_is_its_roles_deployer_and_a_user_is_not():
    session = {"principal": "arn:aws:sts::111122223333:assumed-role/ci-deploy/run-7", "issuer": None}
    assert trail_changes.is_deployer(session, [DEPLOYER])
    assert not trail_changes.is_deployer({"principal": "arn:aws:iam::111122223333:user/jane"}, [DEPLOYER])
    assert trail_changes.is_deployer({"principal": "arn:aws:iam::111122223333:user/jane"}, ["*:user/jane"])


def test_explain_says_a_cloudtrail_call_opens_no_incident_and_names_what_it_would_match():
    from opex_operator.events.explain import explain
    from opex_operator.events.mapping import EventRules
    [entry] = explain(open_ssh(), EventRules(), "default")
    assert entry["outcome"] == "drift-trigger" and "AuthorizeSecurityGroupIngress" in entry["message"]
    assert {"value": SG, "kind": "id", "where": "requestParameters.groupId"} in entry["identifiers"]
    [read] = explain(open_ssh(readOnly=True), EventRules(), "default")
    assert read["outcome"] == "ignored"
