"""AWS events open Incidents, end to end: examples/aws/opex-events.yaml deployed on the fake AWS (its rules send
to its queue, with its dead-letter queue), events put to EventBridge as AWS publishes them, and an operator that
long-polls the queue writing Incidents the controllers work. One Incident per occurrence, however often a message
comes and even when the operator dies between the write and the delete; a poison message ends in the DLQ."""
from __future__ import annotations

import datetime as dt
import json
import threading

import boto3
import pytest

import aws_events as eb
import estate
import estate_events
from helpers import wait_for

VISIBILITY = "2"  # seconds: messages a test leaves come back quickly


def start(operator, namespace: str, queues: estate_events.EventQueues) -> None:
    operator.env.update({"OPEX_EVENT_QUEUES": queues.queue_url, "OPEX_EVENT_NAMESPACE": namespace,
                         "OPEX_EVENT_VISIBILITY_SECONDS": VISIBILITY})
    operator.start()


def incidents(kubectl, namespace: str) -> dict[str, dict]:
    items = kubectl.json("get", "incidents", "-n", namespace, "-l", "opex.dev/source=eventbridge")["items"]
    return {i["metadata"]["name"]: i for i in items}


def messages(url: str) -> int:
    attrs = boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                                   "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in attrs["Attributes"].values())


def conditions(obj: dict) -> dict[str, dict]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}


def test_each_kind_of_event_opens_its_incident_and_an_alarm_back_to_ok_resolves_its_own(
        kubectl, aws, solo_namespace, solo_operator):
    queues = estate_events.deploy(max_receive_count=3)
    run = estate.pipeline_failure("orders")  # a failed execution whose Build action ran run.build_id
    start(solo_operator, solo_namespace, queues)
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=2)
    errors = eb.alarm_changed("invoice-api-errors", "AWS/Lambda", "Errors", {"FunctionName": "invoice-api"},
                               "ALARM", since)
    eb.publish([eb.build_failed("orders-build", run.build_id, f"codepipeline/{run.pipeline}"),
                 eb.pipeline_failed(run.pipeline, run.execution_id, "action", "Build", "BuildAndTest", run.build_id),
                 eb.pipeline_failed(run.pipeline, run.execution_id, "stage", "Build"),
                 eb.pipeline_failed(run.pipeline, run.execution_id),
                 eb.pipeline_failed(run.pipeline, run.execution_id, state="STARTED"),  # the rule lets no STARTED in
                 errors,
                 eb.guardduty_finding("60b8a4e4f0d2c3b1a9e8d7c6b5a49382",
                                       "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS", 8.0,
                                       "ci-deployer", "AKIAIOSFODNN7EXAMPLE", "198.51.100.23", since)])

    execution = f"{run.pipeline}-{run.execution_id}"
    opened = wait_for(lambda: len(found := incidents(kubectl, solo_namespace)) == 3
                      and found[execution]["status"].get("alert", {}).get("occurrences") == 4 and found,
                      timeout=60, what="three Incidents, the pipeline's counting its four events")
    pipeline, = [opened[execution]]
    assert pipeline["spec"]["type"] == "PipelineFailure"
    assert pipeline["spec"]["targets"]["pipeline"] == {"name": run.pipeline, "executionId": run.execution_id}
    [alarm_name] = [n for n in opened if n.startswith("alarm-invoice-api-errors-")]
    alarm = opened[alarm_name]["spec"]
    assert alarm["type"] == "DeploymentFailure" and alarm["targets"]["lambda"] == {"functionNames": ["invoice-api"]}
    finding = opened["guardduty-60b8a4e4f0d2c3b1a9e8d7c6b5a49382"]["spec"]
    assert finding["type"] == "SecurityIncident" and finding["severity"] == "high"
    assert finding["targets"]["security"]["iamUsers"] == [{"userName": "ci-deployer",
                                                           "accessKeyIds": ["AKIAIOSFODNN7EXAMPLE"]}]
    assessed = wait_for(lambda: (s := kubectl.get("incident", execution, solo_namespace).get("status") or {})
                        .get("rootCause") and s, timeout=60, what="the pipeline Incident's assessment")
    assert assessed["rootCause"]["category"] != "Unknown"  # the seeded npm timeout, read from the build's log

    eb.publish([eb.alarm_changed("invoice-api-errors", "AWS/Lambda", "Errors", {"FunctionName": "invoice-api"},
                                   "OK", since, at=since + dt.timedelta(minutes=1))])
    resolved = wait_for(lambda: (c := conditions(kubectl.get("incident", alarm_name, solo_namespace))
                                 .get("AlarmResolved")) and c["status"] == "True" and c,
                        timeout=60, what="AlarmResolved=True")
    assert "back to OK" in resolved["message"]
    # Events are posted after the status write that carries the condition
    wait_for(lambda: "AlarmResolved" in [e["reason"] for e in kubectl.events(solo_namespace, alarm_name)],
             timeout=15, what="the AlarmResolved Event")
    wait_for(lambda: messages(queues.queue_url) == 0, timeout=30, what="every message deleted")
    assert solo_operator.metric("opex_event_intake_events_total", source="aws.codepipeline", outcome="created") + \
        solo_operator.metric("opex_event_intake_events_total", source="aws.codebuild", outcome="created") == 1


@pytest.fixture
def held_deletes(monkeypatch):
    """DeleteMessageBatch on the fake AWS holds until released; released with ``drop``, it deletes nothing (as
    when the operator died before its delete reached SQS)."""
    from moto.sqs.models import SQSBackend

    arrived, release, state = threading.Event(), threading.Event(), {"drop": False, "hold": True}
    original = SQSBackend.delete_message_batch

    def delete_message_batch(self, queue_name, receipts):
        if state["hold"]:
            arrived.set()
            release.wait(30)
            if state["drop"]:
                return [], []
        return original(self, queue_name, receipts)

    monkeypatch.setattr(SQSBackend, "delete_message_batch", delete_message_batch)
    yield arrived, release, state
    release.set()


def test_a_message_delivered_twice_and_an_operator_killed_between_write_and_delete_open_one_incident(
        kubectl, aws, solo_namespace, solo_operator, held_deletes):
    arrived, release, state = held_deletes
    queues = estate_events.deploy(max_receive_count=5)
    event = eb.pipeline_failed("checkout-pipeline", "7705a421-5549-4b28-a4ad-2150fee793e8").event()
    sqs = boto3.client("sqs")
    for _ in range(2):  # EventBridge delivers at least once: the same event in two messages
        sqs.send_message(QueueUrl=queues.queue_url, MessageBody=json.dumps(event))
    start(solo_operator, solo_namespace, queues)

    name = "checkout-pipeline-7705a421-5549-4b28-a4ad-2150fee793e8"
    wait_for(lambda: name in incidents(kubectl, solo_namespace), timeout=60, what="the Incident written")
    assert arrived.wait(30), "the operator never deleted the written messages"
    solo_operator.kill()  # after the write, before the delete reached SQS
    state["drop"] = True
    release.set()
    assert messages(queues.queue_url) == 2

    state["hold"] = False
    solo_operator.start()  # both messages come back after their visibility timeout
    wait_for(lambda: messages(queues.queue_url) == 0, timeout=60, what="the redelivered messages deleted")
    [obj] = incidents(kubectl, solo_namespace).values()
    assert obj["metadata"]["name"] == name and obj["status"]["alert"]["occurrences"] == 1
    assert obj["status"]["alert"]["eventIds"] == [event["id"]]
    assert solo_operator.metric("opex_event_intake_events_total", source="aws.codepipeline", outcome="duplicate") >= 2


def test_a_poison_message_lands_in_the_dead_letter_queue_after_its_receives(kubectl, aws, solo_namespace,
                                                                            solo_operator):
    queues = estate_events.deploy(max_receive_count=3)
    start(solo_operator, solo_namespace, queues)
    boto3.client("sqs").send_message(QueueUrl=queues.queue_url, MessageBody="this is not an event")
    wait_for(lambda: messages(queues.dead_letter_url) == 1, timeout=60, what="the message in the dead-letter queue")
    assert messages(queues.queue_url) == 0 and incidents(kubectl, solo_namespace) == {}
    assert solo_operator.metric("opex_event_intake_refused_total", reason="not_json") == 3  # once per receive
    refusals = [line for line in solo_operator.log_text().splitlines() if "event refused (not_json)" in line]
    assert len(refusals) == 3 and all("left for the dead-letter queue" in line for line in refusals)
