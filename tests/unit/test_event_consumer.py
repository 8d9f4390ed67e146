"""The SQS long-poll loop on a fake queue: a message is deleted only once its Incident is written, a refused
one stays for the dead-letter queue, failed calls are retried, and what the operator is configured with."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import time

import pytest

import aws_events as aws
from opex_operator import metrics
from opex_operator.ports.events import Message, QueueRef
from opex_operator.config import EventIntakeSettings
from opex_operator.errors import AwsError
from opex_operator.events import consumer as consumer_module
from opex_operator.events.consumer import QueueConsumer
from opex_operator.events.intake import EventIntake
from opex_operator.events.mapping import EventRules
from support.fakes import Clock, FakeIncidentStore, T0

EXECUTION = "2c6b3f6e-8a1d-4b53-9c1e-5d7f0a9b8e21"


class FakeQueue:
    """``ports.EventQueue``: batches handed out in turn (an AwsError in the list is raised by that
    receive), then empty long polls; what was deleted."""

    def __init__(self, batches: list, max_receive: int | None = 5, delete_error: AwsError | None = None):
        self.name, self.role_key = "opex-events", None
        self.batches, self.max_receive, self.delete_error = list(batches), max_receive, delete_error
        self.deleted: list[str] = []
        self.receives = 0
        self.visibility: list[int] = []
        self.drained = asyncio.Event()

    def receive(self, max_messages, wait_seconds, visibility_seconds):
        self.receives += 1
        self.visibility.append(visibility_seconds)
        assert (max_messages, wait_seconds) == (10, 20)
        if not self.batches:
            self.loop.call_soon_threadsafe(self.drained.set)
            time.sleep(0.05)
            return []
        batch = self.batches.pop(0)
        if isinstance(batch, AwsError):
            raise batch
        return batch

    def delete(self, messages):
        if self.delete_error:
            raise self.delete_error
        self.deleted += [m.id for m in messages]
        return []

    def max_receive_count(self):
        return self.max_receive


def message(ident: str, text: str, receives: int = 1, age: float = 30.0) -> Message:
    return Message(ident, f"receipt-{ident}", text, receives, T0 - dt.timedelta(seconds=age))


def run(queue: FakeQueue, store: FakeIncidentStore | None = None) -> FakeIncidentStore:
    store = store or FakeIncidentStore(namespaces=("ops",))
    intake = EventIntake(store, None, EventRules(), "ops", clock=Clock(T0))

    async def go():
        queue.loop = asyncio.get_running_loop()
        consumer = QueueConsumer(intake, [queue], visibility_seconds=45, clock=Clock(T0))
        consumer.start()
        await asyncio.wait_for(queue.drained.wait(), 10)
        await consumer.stop()

    asyncio.run(go())
    return store


def test_written_and_passed_over_messages_are_deleted_and_a_refused_one_is_kept_for_the_dead_letter_queue():
    failed = json.dumps(aws.pipeline_failed("orders-pipeline", EXECUTION).event())
    started = json.dumps(aws.pipeline_failed("orders-pipeline", EXECUTION, state="STARTED").event())
    kept_before = metrics.REGISTRY.get_sample_value("opex_event_intake_messages_total", {"outcome": "kept"})
    queue = FakeQueue([[message("a", failed, age=12.5), message("b", started, age=3), message("c", "{oops")]])
    store = run(queue)
    assert sorted(queue.deleted) == ["a", "b"]  # c stays: the redrive policy moves it after maxReceiveCount
    assert [name for _, name in store.objects] == [f"orders-pipeline-{EXECUTION}"]
    assert queue.visibility[0] == 45
    assert metrics.REGISTRY.get_sample_value("opex_event_intake_messages_total", {"outcome": "kept"}) == kept_before + 1


def test_the_age_of_the_oldest_message_of_each_batch_is_recorded(monkeypatch):
    queue = FakeQueue([[message("a", "{}", age=12.5), message("b", "{}", age=3)], []])
    ages = []
    original = consumer_module.metrics.EVENT_QUEUE_OLDEST.labels("opex-events").set
    monkeypatch.setattr(consumer_module.metrics.EVENT_QUEUE_OLDEST.labels("opex-events"), "set",
                        lambda value: (ages.append(value), original(value)))
    run(queue)
    assert ages[:2] == [12.5, 0.0]  # the next batch was empty


def test_a_failed_receive_is_counted_and_retried_and_nothing_is_lost(monkeypatch):
    monkeypatch.setattr(consumer_module, "BACKOFF_FIRST", 0.01)
    failed = json.dumps(aws.pipeline_failed("orders-pipeline", EXECUTION).event())
    error = AwsError("sqs", "ReceiveMessage", "AWS.SimpleQueueService.NonExistentQueue", "gone", 400)
    before = metrics.REGISTRY.get_sample_value("opex_event_intake_queue_errors_total",
                                               {"queue": "opex-events", "operation": "ReceiveMessage"}) or 0
    queue = FakeQueue([error, [message("a", failed)]])
    run(queue)
    assert queue.deleted == ["a"]
    assert metrics.REGISTRY.get_sample_value("opex_event_intake_queue_errors_total",
                                             {"queue": "opex-events", "operation": "ReceiveMessage"}) == before + 1


def test_a_failed_delete_leaves_the_message_to_come_back_as_a_duplicate():
    failed = json.dumps(aws.pipeline_failed("orders-pipeline", EXECUTION).event())
    queue = FakeQueue([[message("a", failed)]], delete_error=AwsError("sqs", "DeleteMessageBatch", "InternalError",
                                                                      "x", 500))
    store = run(queue)
    queue2 = FakeQueue([[message("a", failed, receives=2)]])
    run(queue2, store)
    assert queue2.deleted == ["a"]
    assert store.objects[("ops", f"orders-pipeline-{EXECUTION}")]["status"]["alert"]["occurrences"] == 1


def test_event_queues_are_urls_or_arns_with_an_optional_role_of_the_policy(monkeypatch):
    monkeypatch.setenv("OPEX_EVENT_QUEUES", "https://sqs.eu-west-1.amazonaws.com/123456789012/opex-events, "
                                            "payments=arn:aws:sqs:us-east-2:111122223333:payments-events,"
                                            "http://127.0.0.1:5000/123456789012/local-events")
    monkeypatch.setenv("POD_NAMESPACE", "opex-system")
    settings = EventIntakeSettings.from_env()
    assert [(q.name, q.region, q.account, q.role_key) for q in settings.queues] == [
        ("opex-events", "eu-west-1", "123456789012", None), ("payments-events", "us-east-2", "111122223333", "payments"),
        ("local-events", None, "123456789012", None)]
    assert settings.default_namespace == "opex-system" and settings.visibility_seconds == 60
    monkeypatch.setenv("OPEX_EVENT_QUEUES", "opex-events")
    with pytest.raises(ValueError, match="OPEX_EVENT_QUEUES: 'opex-events' is neither an SQS queue URL"):
        EventIntakeSettings.from_env()
    monkeypatch.delenv("OPEX_EVENT_QUEUES")
    assert EventIntakeSettings.from_env() is None


def test_a_queue_ref_parses_the_documented_url_forms():
    assert QueueRef.parse("https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo").region == "us-east-1"
    assert QueueRef.parse("https://us-west-2.queue.amazonaws.com/123456789012/q").region == "us-west-2"
