"""Incidents the event intake opened, as the Incident controller works them: detected when the event says,
AlarmResolved when the alarm is back to OK (and nothing else changes), no alert condition for events that never
resolve; the intake's record as the CRD's schema takes it."""
from __future__ import annotations

import datetime as dt
import json

import aws_events as aws
from opex_operator.api.incident import ALERT_STATE_ANNOTATION, AlertRecord, IncidentSpec, IncidentStatus
from opex_operator.controllers.incident import IncidentController
from opex_operator.events.envelope import events_in
from opex_operator.events.mapping import EventRules, map_event
from opex_operator.policy import Policy
from opex_operator.runbooks import engine
from support.builders import SHA1, SHA2, erroring_lambda
from support.fakes import (T0, Clock, FakeAws, FakeObjects, FakeReader, FakeWorkspaces, IncidentWorld, condition,
                           observed)

SINCE = T0 - dt.timedelta(minutes=3, microseconds=-250000)


def spec_of(published: aws.Published) -> dict:
    [event] = events_in(json.dumps(published.event()))
    return map_event(event, EventRules(), "ns").spec


def alarm(went_to: str = "ALARM") -> aws.Published:
    return aws.alarm_changed("checkout-api-errors", "AWS/Lambda", "Errors", {"FunctionName": "checkout-api"}, went_to,
                             SINCE, SINCE + dt.timedelta(minutes=10))


class World(IncidentWorld):
    def __init__(self, spec: dict):
        self.aws = FakeAws(FakeReader(lambdas=[erroring_lambda()]))
        self.aws.the_lambda.add("checkout-api", [SHA1, SHA2])
        self.objects, self.clock = FakeObjects(), Clock()
        self.ctl = IncidentController(self.aws, self.objects, FakeWorkspaces(),
                                      Policy.model_validate({"rules": [{"namespaces": ["*"]}]}), webhook=None,
                                      clock=self.clock)
        self.status = IncidentStatus()
        self.obj = observed(self.status, spec, "incidents", name="alarm-checkout")


def test_an_alarms_incident_is_detected_when_the_alarm_fired_and_records_alarm_resolved_when_it_is_back_to_ok():
    w = World(spec_of(alarm()))
    w.status.alert = AlertRecord(state="Firing", first_seen=T0, last_seen=T0, starts_at=SINCE)
    w.drive()
    assert abs(w.status.detected_at - SINCE) < dt.timedelta(milliseconds=1)  # the alarm's own state change
    firing = condition(w.status, "AlarmResolved")
    assert (firing.status, firing.reason) == ("False", "Firing") and "checkout-api-errors" in firing.message
    assert condition(w.status, "AlertResolved") is None
    phase = w.status.phase
    back = SINCE + dt.timedelta(minutes=10)
    w.status.alert = AlertRecord(state="Resolved", first_seen=T0, last_seen=T0, starts_at=SINCE, resolved_at=back)
    w.obj.annotations[ALERT_STATE_ANNOTATION] = "Resolved"
    w.drive()
    resolved = condition(w.status, "AlarmResolved")
    assert (resolved.status, resolved.reason) == ("True", "Resolved")
    assert "CloudWatch reports" in resolved.message and "back to OK" in resolved.message
    assert w.status.phase == phase and not w.obj.spec.get("closed")
    assert w.reasons().count("AlarmFiring") == 1 and w.reasons().count("AlarmResolved") == 1


def test_a_failed_pipelines_incident_has_no_alert_condition():
    spec = IncidentSpec.model_validate(spec_of(aws.pipeline_failed("orders-pipeline",
                                                                   "2c6b3f6e-8a1d-4b53-9c1e-5d7f0a9b8e21")))
    record = AlertRecord(state="Firing", first_seen=T0, last_seen=T0, occurrences=4)
    assert engine.alert_condition(spec, record) is None


def test_the_intakes_record_of_events_fits_the_schema_bounds():
    ids = [f"sha256:{i:016x}" for i in range(20)]
    record = AlertRecord(state="Firing", first_seen=T0, last_seen=T0, event_ids=ids, receiver="opex-events")
    assert record.model_dump(mode="json", by_alias=True)["eventIds"] == ids
