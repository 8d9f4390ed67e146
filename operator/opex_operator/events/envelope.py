"""Read an SQS message body into the EventBridge events it carries (pure; no I/O).

What reaches the queue (and ``opex event explain``), by shape:

* an EventBridge event, as an EventBridge rule's SQS target delivers it: ``version``, ``id``,
  ``detail-type``, ``source``, ``account``, ``time``, ``region``, ``resources``, ``detail``
  (EventBridge User Guide, "Amazon EventBridge events"); also with raw message delivery from SNS;
* an SNS notification (an SNS topic's SQS subscription without raw delivery): ``Type:
  Notification`` with the event as the JSON text of ``Message`` (SNS Developer Guide, "Amazon SNS
  message and JSON formats");
* a CodeStar Notifications message (a notification rule's SNS target): the event's fields with
  ``detailType`` for ``detail-type``, ``notificationRuleArn`` and ``additionalAttributes``, and no
  ``id`` (AWS Developer Tools Console User Guide, "Notifications concepts");
* for ``opex event explain``: a JSON array of any of these, ``aws sqs receive-message`` output
  (``Messages[].Body``), and Lambda's SQS and SNS events (``Records[].body``, ``Records[].Sns.Message``).

An event without an ``id`` (CodeStar Notifications) is given one from its content
(``sha256:<16 hex>``), so the same message delivered again is recognised.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 4          # envelopes inside envelopes
MAX_RESOURCES = 10


class EnvelopeError(ValueError):
    """The body carries no EventBridge event; ``reason`` is a metric label (``not_json``,
    ``not_an_event``), the message one line saying what was found instead."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class AwsEvent:
    """An EventBridge event, its top level normalised. ``via`` says how it came: ``eventbridge``,
    ``sns`` or ``codestar-notifications``."""

    id: str
    detail_type: str
    source: str
    detail: dict[str, Any]
    account: str | None = None
    region: str | None = None
    time: dt.datetime | None = None
    resources: tuple[str, ...] = ()
    via: str = "eventbridge"
    extra: dict[str, Any] = field(default_factory=dict)   # additionalAttributes of a CodeStar notification


def parse_time(value: Any) -> dt.datetime | None:
    """An AWS timestamp as UTC: ISO 8601 with ``Z``, an offset (``+0000`` as CloudWatch writes it)
    or none (UTC), or epoch seconds; None when it is none of these."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=when.tzinfo or dt.timezone.utc).astimezone(dt.timezone.utc)


def _digest(value: dict[str, Any]) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _event(value: dict[str, Any], via: str) -> AwsEvent:
    codestar = "detail-type" not in value
    detail = value.get("detail")
    if isinstance(detail, str):   # some forwarders send it as text
        try:
            detail = json.loads(detail)
        except ValueError:
            detail = None
    resources = value.get("resources")
    return AwsEvent(
        id=str(value.get("id") or _digest(value))[:128], detail_type=str(value.get("detail-type") or
                                                                         value.get("detailType")),
        source=str(value.get("source") or ""), detail=detail if isinstance(detail, dict) else {},
        account=str(value["account"]) if value.get("account") else None,
        region=str(value["region"]) if value.get("region") else None, time=parse_time(value.get("time")),
        resources=tuple(str(r) for r in resources[:MAX_RESOURCES]) if isinstance(resources, list) else (),
        via="codestar-notifications" if codestar else via,
        extra=_object(value.get("additionalAttributes")))


def _is_event(value: dict[str, Any]) -> bool:
    kind = value.get("detail-type", value.get("detailType"))
    return isinstance(kind, str) and bool(kind) and "detail" in value


_NOT_JSON = object()


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _unwrap(value: Any, via: str, depth: int, out: list[AwsEvent | EnvelopeError]) -> None:
    if depth > MAX_DEPTH:
        out.append(EnvelopeError("not_an_event", "envelopes nested too deeply"))
        return
    if isinstance(value, list):
        for item in value:
            _unwrap(item, via, depth + 1, out)
        return
    if not isinstance(value, dict):
        out.append(EnvelopeError("not_an_event", f"a JSON {type(value).__name__}, not an EventBridge event"))
        return
    if _is_event(value):
        out.append(_event(value, via))
        return
    inner: list[tuple[Any, str]] = []
    if isinstance(value.get("Message"), str) and value.get("Type") in ("Notification", None) and "TopicArn" in value:
        inner = [(value["Message"], "sns")]                                   # an SNS notification
    elif isinstance(value.get("Messages"), list):                            # aws sqs receive-message
        inner = [(m.get("Body"), via) for m in value["Messages"] if isinstance(m, dict)]
    elif isinstance(value.get("Records"), list) and all(isinstance(r, dict) and ("body" in r or "Sns" in r)
                                                          for r in value["Records"]):
        inner = [(r["body"], via) if "body" in r else ((r.get("Sns") or {}).get("Message"), "sns")
                 for r in value["Records"]]                                   # Lambda's SQS and SNS events
    if not inner:
        keys = ", ".join(sorted(value)[:6]) or "none"
        if "AlarmName" in value and "NewStateValue" in value:
            out.append(EnvelopeError("not_an_event", "a CloudWatch alarm action's SNS notification (AlarmName, "
                                     "NewStateValue), not an EventBridge event: route the alarm's state changes "
                                     "through an EventBridge rule (examples/aws)"))
        else:
            out.append(EnvelopeError("not_an_event", f"a JSON object without detail-type and detail (keys: {keys}), "
                                     "not an EventBridge event"))
        return
    for text, how in inner:
        parsed = _json(text) if isinstance(text, str) else text
        if parsed is _NOT_JSON:
            out.append(EnvelopeError("not_json", "an envelope whose message is not JSON"))
        else:
            _unwrap(parsed, how, depth + 1, out)


def events_in(body: str | bytes) -> list[AwsEvent | EnvelopeError]:
    """Every event in ``body`` (one SQS message body, or what ``opex event explain`` reads), in
    order, with an :class:`EnvelopeError` in place of each part that is not one. A body that is not
    JSON at all is one ``not_json`` error."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    value = _json(body.removeprefix("\ufeff"))
    if value is _NOT_JSON:
        return [EnvelopeError("not_json", "the message body is not JSON")]
    out: list[AwsEvent | EnvelopeError] = []
    _unwrap(value, "eventbridge", 0, out)
    return out


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
