"""Deliver a notification: SNS ``Publish`` with message attributes, or an HTTP POST to a webhook."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


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
    """POST ``payload`` as JSON; returns the HTTP status. Raises RuntimeError on a non-2xx answer or
    no answer. The URL may carry a token: it never appears in the error."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "opex-operator"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"webhook answered HTTP {err.code}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise RuntimeError(f"webhook unreachable: {type(reason).__name__}") from None
