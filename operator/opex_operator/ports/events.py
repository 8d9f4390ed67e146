"""The types crossing the event intake's ports (``ports.EventQueue``): a queue as configured and one
received SQS message."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass


# https://sqs.<region>.amazonaws.com/<account>/<name>, the legacy <region>.queue.amazonaws.com, or an ARN.
_URL = re.compile(r"^https?://(?:sqs\.)?([a-z0-9-]+)\.(?:queue\.)?amazonaws\.com(?:\.cn)?/(\d{12})/([\w-]+(?:\.fifo)?)$")
_ARN = re.compile(r"^arn:aws[a-z-]*:sqs:([a-z0-9-]+):(\d{12}):([\w-]+(?:\.fifo)?)$")


@dataclass(frozen=True)
class QueueRef:
    """A queue as configured (``OPEX_EVENT_QUEUES``): its URL (or ARN), region when it says one, name,
    and the policy role it is read as (None: the operator's own credentials)."""

    url: str
    name: str
    region: str | None = None
    account: str | None = None
    role_key: str | None = None

    @classmethod
    def parse(cls, text: str, role_key: str | None = None) -> "QueueRef":
        """A queue URL or ARN. Raises ValueError for anything else."""
        text = text.strip()
        for pattern in (_URL, _ARN):
            m = pattern.match(text)
            if m:
                region, account, name = m.groups()
                return cls(text, name, None if region == "sqs" else region, account, role_key)
        if re.match(r"^https?://[^/]+/\d{12}/[\w-]+(\.fifo)?$", text):   # an endpoint of one's own (moto, a VPC endpoint)
            return cls(text, text.rsplit("/", 1)[1], None, text.rsplit("/", 2)[1], role_key)
        raise ValueError(f"{text!r} is neither an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>) "
                         f"nor a queue ARN (arn:aws:sqs:<region>:<account>:<name>)")


@dataclass(frozen=True)
class Message:
    """One received message: its id, receipt handle (for the delete), body, how often it was
    received (``ApproximateReceiveCount``) and when it was sent."""

    id: str
    receipt: str
    body: str
    receives: int
    sent_at: dt.datetime | None
