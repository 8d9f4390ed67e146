"""The event intake on a fake of the Kubernetes port: one Incident per occurrence exactly once, whichever of
its events comes first and however often each is delivered; the rules; what is refused, passed over or tried
again; and the envelopes events come in."""
from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

import aws_events as aws
from opex_operator import metrics
from opex_operator.api.incident import ALERT_STATE_ANNOTATION
from opex_operator.errors import AwsError, KubeError
from opex_operator.events.envelope import EnvelopeError, events_in
from opex_operator.events.intake import EventIntake
from opex_operator.events.mapping import EventRules, Ignored, Lookup, Mapped, Refused, map_event
from opex_operator.mapping import MappingError
from support.fakes import Clock, FakeIncidentStore, T0

EXECUTION = "2c6b3f6e-8a1d-4b53-9c1e-5d7f0a9b8e21"
BUILD = "orders-build:9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
SINCE = dt.datetime(2026, 11, 29, 9, 14, 0, 512000, tzinfo=dt.timezone.utc)


def body(*published: aws.Published) -> str:
    events = [p.event() for p in published]
    return json.dumps(events[0] if len(events) == 1 else events)


class Lookups:
    """``ports.BuildLookup``: the execution CodePipeline names for a build, or an error."""

    def __init__(self, execution: str | None = EXECUTION, error: AwsError | None = None):
        self.execution, self.error, self.asked = execution, error, 0

    def execution_of_build(self, pipeline, build_id, region, role_key):
        self.asked += 1
        if self.error:
            raise self.error
        return self.execution


class World:
    def __init__(self, rules: dict | None = None, lookups: Lookups | None = None):
        self.store, self.clock = FakeIncidentStore(namespaces=("ops", "payments")), Clock(T0)
        self.lookups = lookups or Lookups()
        self.intake = EventIntake(self.store, self.lookups, EventRules.model_validate(rules or {}), "ops",
                                  ("ops", "payments"), clock=self.clock)

    def take(self, text: str, receives: int = 1, last: int | None = 5):
        return asyncio.run(self.intake.take(text, "opex-events", receives, last))

    def incident(self, name: str, namespace: str = "ops") -> dict:
        return self.store.objects[(namespace, name)]

    def names(self) -> list[str]:
        return sorted(name for _, name in self.store.objects)


def failed_run() -> list[aws.Published]:
    """What AWS publishes when the Build stage's CodeBuild action of execution EXECUTION fails."""
    return [aws.build_failed("orders-build", BUILD, "codepipeline/orders-pipeline"),
            aws.pipeline_failed("orders-pipeline", EXECUTION, "action", "Build", "BuildAndTest", BUILD),
            aws.pipeline_failed("orders-pipeline", EXECUTION, "stage", "Build"),
            aws.pipeline_failed("orders-pipeline", EXECUTION)]


# -- one failure, one Incident --------------------------------------------------------------------------

@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0], [1, 0, 3, 2], [2, 3, 0, 1]])
def test_a_failed_executions_build_action_stage_and_pipeline_events_open_one_incident_whichever_comes_first(order):
    w = World()
    run = failed_run()
    outcomes = [w.take(body(run[i])).taken[0].outcome for i in order]
    assert outcomes == ["created", "updated", "updated", "updated"]
    [name] = w.names()
    assert name == f"orders-pipeline-{EXECUTION}"
    obj = w.incident(name)
    assert obj["spec"]["type"] == "PipelineFailure" and obj["spec"]["severity"] == "high"
    assert obj["spec"]["targets"]["pipeline"] == {"name": "orders-pipeline", "executionId": EXECUTION}
    record = obj["status"]["alert"]
    assert record["occurrences"] == 4 and record["state"] == "Firing" and len(record["eventIds"]) == 4
    assert obj["metadata"]["labels"] == {"opex.dev/source": "eventbridge", "opex.dev/event-source":
                                         f"aws-{run[order[0]].source.split('.')[1]}"}


def test_a_redelivered_message_finds_its_incident_and_is_counted_once():
    w = World()
    message = body(failed_run()[3])
    first, again = w.take(message), w.take(message, receives=2)
    assert first.done and again.done  # both deleted
    assert [t.outcome for t in again.taken] == ["duplicate"]
    assert w.incident(f"orders-pipeline-{EXECUTION}")["status"]["alert"]["occurrences"] == 1


def test_the_same_event_in_two_messages_of_two_rules_is_counted_once():
    w = World()
    event = failed_run()[1]
    w.take(body(event))
    assert w.take(body(event)).taken[0].outcome == "duplicate"  # EventBridge delivers one event per matching rule


def test_a_build_whose_action_sets_the_execution_variable_needs_no_lookup():
    w = World(lookups=Lookups(error=AwsError("codepipeline", "GetPipelineState", "AccessDeniedException", "no")))
    event = aws.build_failed("orders-build", BUILD, "codepipeline/orders-pipeline",
                             variables={"CODEPIPELINE_EXECUTION_ID": EXECUTION})
    assert w.take(body(event)).done and w.names() == [f"orders-pipeline-{EXECUTION}"] and w.lookups.asked == 0


def test_a_build_codepipeline_does_not_show_yet_is_kept_then_opens_its_own_incident_before_the_dead_letter_queue():
    w = World(lookups=Lookups(execution=None))
    message = body(failed_run()[0])
    first, second = w.take(message, 1, last=5), w.take(message, 2, last=5)
    assert [t.outcome for t in first.taken + second.taken] == ["deferred", "deferred"]
    assert not first.done and not second.done and w.names() == []
    third = w.take(message, 3, last=5)
    assert third.done and w.names() == ["orders-build-9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"]
    spec = w.incident(w.names()[0])["spec"]
    assert spec["targets"]["codeBuild"] == {"project": "orders-build"}
    assert spec["targets"]["pipeline"] == {"name": "orders-pipeline"} and "could not be found" in spec["summary"]


def test_a_queue_that_gives_up_after_two_receives_makes_the_second_the_last_try():
    w = World(lookups=Lookups(execution=None))
    message = body(failed_run()[0])
    assert not w.take(message, 1, last=2).done and w.take(message, 2, last=2).done


def test_codepipeline_unreadable_defers_the_build():
    w = World(lookups=Lookups(error=AwsError("codepipeline", "GetPipelineState", "ThrottlingException", "slow")))
    verdict = w.take(body(failed_run()[0]))
    assert [t.outcome for t in verdict.taken] == ["deferred"] and "ThrottlingException" in verdict.taken[0].note


def test_a_build_no_pipeline_started_opens_a_pipeline_failure_on_its_project():
    w = World()
    w.take(body(aws.build_failed("nightly-tests", "nightly-tests:7e57e7e5-0000-4000-8000-000000000001", "ci-user",
                                 status="TIMED_OUT")))
    [name] = w.names()
    spec = w.incident(name)["spec"]
    assert spec["type"] == "PipelineFailure" and spec["targets"]["codeBuild"] == {"project": "nightly-tests"}
    assert "pipeline" not in spec["targets"] and "TIMED_OUT" in spec["title"] and w.lookups.asked == 0


# -- alarms ---------------------------------------------------------------------------------------------

def lambda_errors(went_to: str, at: dt.datetime | None = None, name: str = "invoice-api-errors") -> aws.Published:
    return aws.alarm_changed(name, "AWS/Lambda", "Errors", {"FunctionName": "invoice-api"}, went_to, SINCE, at)


def test_an_alarm_in_alarm_opens_an_incident_and_its_return_to_ok_resolves_it_and_wakes_its_loop():
    w = World()
    w.take(body(lambda_errors("ALARM")))
    [name] = w.names()
    assert name.startswith("alarm-invoice-api-errors-")
    obj = w.incident(name)
    assert obj["spec"]["type"] == "DeploymentFailure" and obj["spec"]["targets"]["lambda"] == {
        "functionNames": ["invoice-api"]}
    assert obj["spec"]["source"]["event"]["time"].startswith("2026-11-29T09:14:00.512")
    back = SINCE + dt.timedelta(minutes=7)
    assert w.take(body(lambda_errors("OK", back))).taken[0].outcome == "updated"
    record = w.incident(name)["status"]["alert"]
    assert record["state"] == "Resolved" and record["resolvedAt"].startswith("2026-11-29T09:21:00")
    assert record["occurrences"] == 1 and w.incident(name)["metadata"]["annotations"][ALERT_STATE_ANNOTATION] == \
        "Resolved"


def test_the_alarms_next_alarm_is_another_occurrence_and_another_incident():
    w = World()
    w.take(body(lambda_errors("ALARM")))
    later = aws.alarm_changed("invoice-api-errors", "AWS/Lambda", "Errors", {"FunctionName": "invoice-api"}, "ALARM",
                              SINCE + dt.timedelta(hours=3))
    w.take(body(later))
    assert len(w.names()) == 2


def test_an_ok_with_no_incident_opens_nothing_and_is_deleted():
    w = World()
    verdict = w.take(body(lambda_errors("OK", SINCE + dt.timedelta(minutes=5))))
    assert verdict.done and [t.outcome for t in verdict.taken] == ["ignored"] and w.names() == []


@pytest.mark.parametrize(("namespace", "metric", "dimensions", "kind", "target"), [
    ("AWS/Lambda", "Duration", {"FunctionName": "catalog-api"}, "PerformanceDegradation",
     {"lambda": {"functionNames": ["catalog-api"]}}),
    ("AWS/RDS", "CPUUtilization", {"DBInstanceIdentifier": "orders-db"}, "PerformanceDegradation",
     {"rds": {"instanceId": "orders-db"}}),
    ("AWS/CloudFront", "5xxErrorRate", {"DistributionId": "E2CHECKOUTCDN", "Region": "Global"},
     "PerformanceDegradation", {"cloudFront": {"distributionId": "E2CHECKOUTCDN"}}),
])
def test_an_alarms_type_and_targets_come_from_its_metric(namespace, metric, dimensions, kind, target):
    m = map_event(event_of(aws.alarm_changed("a", namespace, metric, dimensions, "ALARM", SINCE)), EventRules(), "ops")
    assert isinstance(m, Mapped) and m.spec["type"] == kind
    assert {k: v for k, v in m.spec["targets"].items() if k != "region"} == target


def event_of(published: aws.Published):
    [event] = events_in(json.dumps(published.event()))
    return event


def test_an_api_gateway_alarm_needs_the_apis_id_from_the_rules():
    alarm = aws.alarm_changed("checkout-latency", "AWS/ApiGateway", "Latency", {"ApiName": "checkout", "Stage": "prod"},
                              "ALARM", SINCE)
    refused = map_event(event_of(alarm), EventRules(), "ops")
    assert isinstance(refused, Refused) and refused.reason == "no_target" and "restApiIds" in refused.message
    mapped = map_event(event_of(alarm), EventRules.model_validate({"restApiIds": {"checkout": "a1b2c3d4e5"}}), "ops")
    assert mapped.spec["targets"]["apiGateway"] == {"restApiId": "a1b2c3d4e5", "stage": "prod"}


# -- GuardDuty ------------------------------------------------------------------------------------------

def leaked(updated: dt.datetime, severity: float = 8.0, count: int = 1,
           finding_type: str = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS") -> aws.Published:
    return aws.guardduty_finding("60b8a4e4f0d2c3b1a9e8d7c6b5a49382", finding_type, severity, "ci-deployer",
                                 "AKIAIOSFODNN7EXAMPLE", "198.51.100.23", updated, count)


def test_a_credential_finding_opens_a_security_incident_on_the_user_key_and_address():
    w = World()
    w.take(body(leaked(SINCE)))
    [name] = w.names()
    spec = w.incident(name)["spec"]
    assert name == "guardduty-60b8a4e4f0d2c3b1a9e8d7c6b5a49382"
    assert spec["type"] == "SecurityIncident" and spec["severity"] == "high"
    assert spec["targets"]["security"] == {"iamUsers": [{"userName": "ci-deployer",
                                                         "accessKeyIds": ["AKIAIOSFODNN7EXAMPLE"]}],
                                           "sourceIps": ["198.51.100.23/32"]}


def test_a_findings_updates_add_to_its_incident_and_after_it_is_closed_open_a_successor():
    w = World()
    w.take(body(leaked(SINCE)))
    w.take(body(leaked(SINCE + dt.timedelta(hours=6), count=40)))
    name = "guardduty-60b8a4e4f0d2c3b1a9e8d7c6b5a49382"
    assert w.names() == [name] and w.incident(name)["status"]["alert"]["occurrences"] == 2
    w.incident(name)["spec"]["closed"] = True
    update = leaked(SINCE + dt.timedelta(hours=12), count=90)
    w.take(body(update))
    successor = f"{name}-uid-guar"  # named after the closed Incident's uid
    assert w.names() == [name, successor] and w.incident(name)["status"]["alert"]["occurrences"] == 2
    assert w.take(body(update), receives=2).taken[0].outcome == "duplicate"  # its redelivery finds the successor


@pytest.mark.parametrize(("score", "severity"), [(9.5, "critical"), (7.0, "high"), (5.0, "medium"), (2.0, "low")])
def test_guardduty_severity_levels_map_to_incident_severities(score, severity):
    assert map_event(event_of(leaked(SINCE, score)), EventRules(), "ops").spec["severity"] == severity


def test_a_finding_of_another_type_is_passed_over_and_a_temporary_key_is_not_a_key_to_deactivate():
    assert isinstance(map_event(event_of(leaked(SINCE, finding_type="Recon:EC2/PortProbeUnprotectedPort")),
                                EventRules(), "ops"), Ignored)
    session = aws.guardduty_finding("ab" * 16, "CredentialAccess:IAMUser/AnomalousBehavior", 5.0, "ci-deployer",
                                    "ASIAEXAMPLESESSION01", "198.51.100.23", SINCE)
    users = map_event(event_of(session), EventRules(), "ops").spec["targets"]["security"]["iamUsers"]
    assert users == [{"userName": "ci-deployer", "accessKeyIds": []}]


# -- rules ----------------------------------------------------------------------------------------------

def test_the_first_matching_rule_places_types_and_rates_an_event():
    rules = {"rules": [{"match": {"source": "aws.codepipeline", "name": "payments-*"}, "namespace": "payments",
                        "type": "DeploymentFailure", "severity": "critical", "environment": "staging",
                        "roleKey": "payments"},
                       {"match": {"source": "aws.codepipeline"}, "severity": "low"}]}
    w = World(rules)
    w.take(body(aws.pipeline_failed("payments-pipeline", EXECUTION)))
    w.take(body(aws.pipeline_failed("orders-pipeline", EXECUTION)))
    payments = w.incident(f"payments-pipeline-{EXECUTION}", "payments")["spec"]
    assert (payments["type"], payments["severity"], payments["environment"]) == ("DeploymentFailure", "critical",
                                                                                   "staging")
    assert payments["targets"]["roleKey"] == "payments"
    assert w.incident(f"orders-pipeline-{EXECUTION}")["spec"]["severity"] == "low"


def test_an_event_for_a_namespace_the_operator_does_not_watch_is_refused_and_its_message_kept():
    w = World({"namespace": "elsewhere"})
    verdict = w.take(body(failed_run()[3]))
    assert not verdict.done and verdict.taken[0].reason == "namespace" and w.names() == []


def test_a_rules_file_with_an_unknown_key_or_type_is_refused_naming_the_field(tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text("rules:\n  - match: {name: x}\n    type: Outage\n")
    with pytest.raises(MappingError, match=r"mapping.yaml: rules.0.type: Input should be"):
        EventRules.load(path)
    path.write_text("findingtypes: []\n")
    with pytest.raises(MappingError, match="findingtypes"):
        EventRules.load(path)


# -- refusals, the API server and envelopes ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "reason"), [
    ("not json {", "not_json"),
    ('{"hello": "world"}', "not_an_event"),
    (json.dumps({"version": "0", "id": "1", "detail-type": "EC2 Instance State-change Notification",
                 "source": "aws.ec2", "detail": {"state": "stopped"}}), "unknown_detail_type"),
    (json.dumps({"version": "0", "id": "1", "detail-type": "CodePipeline Pipeline Execution State Change",
                 "source": "aws.codepipeline", "detail": {"state": "FAILED"}}), "bad_detail"),
])
def test_a_message_that_can_never_map_is_counted_by_reason_and_left_for_the_dead_letter_queue(text, reason):
    before = metrics.REGISTRY.get_sample_value("opex_event_intake_refused_total", {"reason": reason}) or 0
    verdict = World().take(text)
    assert not verdict.done and [t.reason for t in verdict.taken] == [reason]
    assert metrics.REGISTRY.get_sample_value("opex_event_intake_refused_total", {"reason": reason}) == before + 1


def test_the_api_server_down_defers_and_a_refused_incident_is_refused():
    w = World()
    w.store.fail = KubeError(503, "ServiceUnavailable", "etcd is down", "create")
    verdict = w.take(body(failed_run()[3]))
    assert not verdict.done and verdict.taken[0].outcome == "deferred"
    w.store.fail = KubeError(422, "Invalid", "spec.title: Too long", "create")
    verdict = w.take(body(failed_run()[3]))
    assert not verdict.done and (verdict.taken[0].outcome, verdict.taken[0].reason) == ("refused", "api_refused")


def test_a_message_whose_events_partly_refuse_is_kept_and_its_written_event_is_a_duplicate_next_time():
    w = World()
    mixed = json.dumps([failed_run()[3].event(), {"detail-type": "Nope", "detail": {"x": 1}}])
    assert not w.take(mixed).done
    again = w.take(mixed, receives=2)
    assert [t.outcome for t in again.taken] == ["duplicate", "refused"]


def test_envelopes_sns_raw_codestar_and_receive_message_output_all_yield_the_event():
    event = failed_run()[3].event()
    sns = {"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
           "Message": json.dumps(event)}
    codestar = {k: v for k, v in event.items() if k not in ("id", "version", "detail-type")}
    codestar["detailType"] = event["detail-type"]
    received = {"Messages": [{"MessageId": "1", "ReceiptHandle": "r", "Body": json.dumps(sns)}]}
    found = [events_in(json.dumps(v)) for v in (event, sns, codestar, received)]
    assert [f[0].via for f in found] == ["eventbridge", "sns", "codestar-notifications", "sns"]
    assert {f[0].detail_type for f in found} == {event["detail-type"]}
    assert found[2][0].id.startswith("sha256:") and events_in(json.dumps(codestar))[0].id == found[2][0].id
    assert isinstance(events_in('{"Type": "Notification", "TopicArn": "t", "Message": "oops"}')[0], EnvelopeError)


def test_a_pipeline_that_did_not_fail_is_passed_over():
    for state in ("STARTED", "SUCCEEDED", "CANCELED", "SUPERSEDED", "STOPPED", "RESUMED"):
        result = map_event(event_of(aws.pipeline_failed("orders-pipeline", EXECUTION, state=state)), EventRules(), "ops")
        assert isinstance(result, Ignored) and state in result.why


def test_a_pipelines_build_without_the_execution_is_a_lookup_until_its_last_try():
    event = event_of(failed_run()[0])
    assert isinstance(map_event(event, EventRules(), "ops"), Lookup)
    assert map_event(event, EventRules(), "ops", final=True).name.startswith("orders-build-")
    assert map_event(event, EventRules(), "ops", execution_id=EXECUTION).name == f"orders-pipeline-{EXECUTION}"
