"""The event intake's AWS side on the local stack: examples/aws/opex-events.yaml deployed as it is.

moto's CloudFormation creates the queue, its dead-letter queue, the EventBridge rules with their
SQS targets and the operator's managed policy from the example template (moto does not model
``AWS::SQS::QueuePolicy``: it skips it, and its EventBridge sends to SQS without one). Events put
with ``PutEvents`` (:mod:`aws_events`) then reach the queue through the rules' patterns, as on AWS.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import boto3

TEMPLATE = Path(__file__).resolve().parent.parent / "examples" / "aws" / "opex-events.yaml"


@dataclass(frozen=True)
class EventQueues:
    queue_url: str
    dead_letter_url: str


def deploy(stack: str = "opex-events", max_receive_count: int = 5, visibility_timeout: int = 60) -> EventQueues:
    """Create the example stack (once per fake AWS) and return its queues' URLs as boto3 reaches them."""
    cfn = boto3.client("cloudformation")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "AWS::SQS::QueuePolicy is not supported by moto's CloudFormation"
        cfn.create_stack(StackName=stack, TemplateBody=TEMPLATE.read_text(), Capabilities=["CAPABILITY_IAM"],
                         Parameters=[{"ParameterKey": "MaxReceiveCount", "ParameterValue": str(max_receive_count)},
                                     {"ParameterKey": "VisibilityTimeout", "ParameterValue": str(visibility_timeout)}])
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]}
    sqs = boto3.client("sqs")
    name = lambda url: url.rstrip("/").rsplit("/", 1)[1]  # noqa: E731 - moto's URLs name its own host
    return EventQueues(sqs.get_queue_url(QueueName=name(outputs["QueueUrl"]))["QueueUrl"],
                       sqs.get_queue_url(QueueName=name(outputs["DeadLetterQueueUrl"]))["QueueUrl"])
