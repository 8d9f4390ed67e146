"""Deliver a notification: SNS ``Publish`` with message attributes, or an HTTP POST to a webhook
(PagerDuty and Slack have their own modules)."""
from __future__ import annotations

from typing import Any

from .http import SendError, post_json


class SnsSender:
    """SNS Publish of pages (``ports.SnsPort``) with one region's client."""

    def __init__(self, sns: Any):
        self.sns = sns

    def publish(self, topic_arn: str, subject: str, body: str, attributes: dict[str, str]) -> str:
        """Publish to ``topic_arn``; returns the MessageId. ``attributes`` become String message attributes
        (severity, level, type) so subscribers can filter. Raises AwsError."""
        response = self.sns.publish(TopicArn=topic_arn, Subject=subject, Message=body,
                                    MessageAttributes={k: {"DataType": "String", "StringValue": str(v)}
                                                       for k, v in attributes.items()})
        return response["MessageId"]


def post_webhook(url: str, payload: dict[str, Any], timeout: float = 10.0) -> int:
    """POST ``payload`` as JSON; returns the HTTP status. Raises SendError (a RuntimeError) on a non-2xx
    answer or no answer, RateLimited when it keeps answering 429. The URL may carry a token: it never
    appears in the error."""
    response = post_json(url, payload, what="webhook", timeout=timeout)
    if not 200 <= response.status < 300:
        raise SendError(f"webhook answered HTTP {response.status}", response.status)
    return response.status
