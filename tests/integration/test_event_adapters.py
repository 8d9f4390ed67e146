"""The event intake's AWS adapters against moto's server: the example stack's queue long-polled, deleted from
and its redrive policy read; the execution of a pipeline's build found in the pipeline's state."""
from __future__ import annotations

import boto3
import pytest

import estate
import estate_events
from opex_operator.aws.clients import AwsClients
from opex_operator.aws.events import PipelineLookup, SqsQueue
from opex_operator.ports.events import QueueRef
from opex_operator.errors import AwsError


@pytest.fixture
def clients(aws):
    return AwsClients("us-east-1")


def test_a_queue_is_received_from_with_receive_counts_and_deleted_from(clients):
    queues = estate_events.deploy(max_receive_count=4)
    boto3.client("sqs").send_message(QueueUrl=queues.queue_url, MessageBody='{"hello": 1}')
    queue = SqsQueue(clients, QueueRef.parse(queues.queue_url))
    assert queue.max_receive_count() == 4
    [first] = queue.receive(10, 1, 1)
    assert (first.body, first.receives) == ('{"hello": 1}', 1) and first.sent_at is not None
    [again] = queue.receive(10, 3, 1)  # visible again after its 1 s
    assert again.id == first.id and again.receives == 2
    assert queue.delete([again]) == [] and queue.receive(10, 2, 1) == []


def test_a_queue_given_by_its_arn_is_found_by_name(clients):
    estate_events.deploy()
    queue = SqsQueue(clients, QueueRef.parse("arn:aws:sqs:us-east-1:123456789012:opex-events-dlq"))
    assert queue.max_receive_count() is None  # the dead-letter queue has no redrive policy of its own


def test_a_missing_queue_is_an_aws_error_naming_the_operation(clients):
    queue = SqsQueue(clients, QueueRef.parse("arn:aws:sqs:us-east-1:123456789012:nowhere"))
    with pytest.raises(AwsError) as err:
        queue.receive(10, 0, 30)
    assert err.value.operation == "GetQueueUrl"


def test_the_execution_of_a_pipelines_build_is_found_in_the_pipelines_state(clients):
    run = estate.pipeline_failure("orders")
    lookup = PipelineLookup(clients)
    assert lookup.execution_of_build(run.pipeline, run.build_id, None, None) == run.execution_id
    assert lookup.execution_of_build(run.pipeline, "orders-build:00000000-0000-4000-8000-000000000000", None,
                                     None) is None
