"""The event intake's AWS calls: an SQS queue read by long polling, and which pipeline execution ran a build.

* :class:`SqsQueue`: ``ReceiveMessage`` (up to 10 messages, long polling up to 20 s, the visibility
  timeout the intake asks for, the receive count and sent time of each), ``DeleteMessageBatch``
  (needs ``sqs:DeleteMessage``) and ``GetQueueAttributes`` (the redrive policy's
  ``maxReceiveCount``). Source: Amazon SQS Developer Guide, "Amazon SQS short and long polling",
  "Amazon SQS visibility timeout", "Using dead-letter queues in Amazon SQS".
* :class:`PipelineLookup`: ``GetPipelineState``: the stage whose action's latest execution names
  the build as its ``externalExecutionId`` gives the pipeline execution (CodePipeline API
  reference, ``ActionExecution.externalExecutionId``: the CodeBuild build id of a CodeBuild action).
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ..ports.events import Message, QueueRef
from .clients import AwsClients


class SqsQueue:
    """``ports.EventQueue`` over boto3's SQS client."""

    def __init__(self, clients: AwsClients, ref: QueueRef):
        self.ref, self.name, self.role_key = ref, ref.name, ref.role_key
        self.client = clients.client("sqs", ref.region, ref.role_key)
        self._url: str | None = None

    def url(self) -> str:
        """The queue URL (an ARN is resolved once with ``GetQueueUrl``)."""
        if self._url is None:
            if self.ref.url.startswith("arn:"):
                self._url = self.client.get_queue_url(QueueName=self.ref.name,
                                                      QueueOwnerAWSAccountId=self.ref.account)["QueueUrl"]
            else:
                self._url = self.ref.url
        return self._url

    def receive(self, max_messages: int, wait_seconds: int, visibility_seconds: int) -> list[Message]:
        """Long-poll for up to ``max_messages`` messages, hidden from other receivers for
        ``visibility_seconds``."""
        answer = self.client.receive_message(
            QueueUrl=self.url(), MaxNumberOfMessages=max_messages, WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=visibility_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"])
        out = []
        for raw in answer.get("Messages") or []:
            attrs = raw.get("Attributes") or {}
            sent = attrs.get("SentTimestamp")
            out.append(Message(raw["MessageId"], raw["ReceiptHandle"], raw.get("Body") or "",
                               int(attrs.get("ApproximateReceiveCount") or 1),
                               dt.datetime.fromtimestamp(int(sent) / 1000, dt.timezone.utc) if sent else None))
        return out

    def delete(self, messages: list[Message]) -> list[str]:
        """Delete ``messages`` (at most 10); returns the ids SQS did not delete (they come back)."""
        if not messages:
            return []
        answer = self.client.delete_message_batch(QueueUrl=self.url(), Entries=[
            {"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(messages)])
        return [messages[int(f["Id"])].id for f in answer.get("Failed") or []]

    def max_receive_count(self) -> int | None:
        """The redrive policy's ``maxReceiveCount`` (None: the queue has no dead-letter queue)."""
        attrs = self.client.get_queue_attributes(QueueUrl=self.url(), AttributeNames=["RedrivePolicy"])
        raw: Any = (attrs.get("Attributes") or {}).get("RedrivePolicy")
        if not raw:
            return None
        try:
            return int(json.loads(raw)["maxReceiveCount"])
        except (ValueError, KeyError, TypeError):
            return None


class PipelineLookup:
    """``ports.BuildLookup``: the execution a build belongs to, from the pipeline's current state."""

    def __init__(self, clients: AwsClients):
        self.clients = clients

    def execution_of_build(self, pipeline: str, build_id: str, region: str | None,
                           role_key: str | None) -> str | None:
        """The pipeline execution whose stage ran ``build_id`` (``project:uuid``), or None when the
        pipeline's state names it nowhere (not recorded yet, or already replaced by a newer run)."""
        state = self.clients.client("codepipeline", region, role_key).get_pipeline_state(name=pipeline)
        for stage in state.get("stageStates") or []:
            for action in stage.get("actionStates") or []:
                external = (action.get("latestExecution") or {}).get("externalExecutionId") or ""
                if external and (external == build_id or build_id.endswith(external)):
                    return (stage.get("latestExecution") or {}).get("pipelineExecutionId")
        return None
