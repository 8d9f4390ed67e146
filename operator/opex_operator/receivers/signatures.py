"""Verify that a request came from PagerDuty or Slack (pure): HMAC-SHA256 with a shared secret.

* PagerDuty v3 webhooks (PagerDuty developer docs, "Verifying Signatures"): ``X-PagerDuty-Signature``
  holds one or more comma-separated ``v1=<hex>`` signatures (several during a secret's rotation),
  each HMAC-SHA256 of the raw body keyed with the subscription's secret; the request is genuine
  when one matches.
* Slack (Slack API docs, "Verifying requests from Slack"): ``X-Slack-Signature`` is ``v0=`` and the
  hex HMAC-SHA256, keyed with the app's signing secret, of ``v0:<X-Slack-Request-Timestamp>:<raw
  body>``; a timestamp more than five minutes from now is refused (a replayed request).

Signatures are compared in constant time.
"""
from __future__ import annotations

import hashlib
import hmac

SLACK_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The request is not signed as it must be; the message says how (never the secret)."""


def _hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_pagerduty(secret: str, body: bytes) -> str:
    """The ``X-PagerDuty-Signature`` value PagerDuty sends for ``body`` (one secret)."""
    return f"v1={_hex(secret, body)}"


def sign_slack(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Slack-Signature`` value Slack sends for ``body`` at ``timestamp`` (Unix seconds)."""
    return f"v0={_hex(secret, f'v0:{timestamp}:'.encode() + body)}"


def verify_pagerduty(secret: str, body: bytes, header: str | None) -> None:
    """Raises SignatureError unless one ``v1`` signature in ``header`` signs ``body`` with ``secret``."""
    if not header or not header.strip():
        raise SignatureError("X-PagerDuty-Signature is missing")
    expected = sign_pagerduty(secret, body)
    offered = [s.strip() for s in header.split(",") if s.strip().startswith("v1=")]
    if not offered:
        raise SignatureError("X-PagerDuty-Signature has no v1 signature")
    if not any(hmac.compare_digest(expected, s) for s in offered):
        raise SignatureError("no v1 signature in X-PagerDuty-Signature matches the body")


def verify_slack(secret: str, body: bytes, timestamp: str | None, signature: str | None, now: float) -> None:
    """Raises SignatureError unless ``signature`` signs ``body`` at ``timestamp``, and ``timestamp``
    is within five minutes of ``now`` (Unix seconds)."""
    if not signature:
        raise SignatureError("X-Slack-Signature is missing")
    if not timestamp:
        raise SignatureError("X-Slack-Request-Timestamp is missing")
    if not timestamp.strip().isdigit():
        raise SignatureError("X-Slack-Request-Timestamp is not a Unix time")
    if abs(now - int(timestamp)) > SLACK_TOLERANCE_SECONDS:
        raise SignatureError(f"X-Slack-Request-Timestamp is more than {SLACK_TOLERANCE_SECONDS}s from now "
                             f"(a replay, or a clock off)")
    if not hmac.compare_digest(sign_slack(secret, timestamp.strip(), body), signature.strip()):
        raise SignatureError("X-Slack-Signature does not match the body")
