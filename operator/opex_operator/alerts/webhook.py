"""Read an Alertmanager webhook notification (pure; no I/O).

The payload (Alertmanager's webhook_config, version 4): ``version``, ``groupKey``,
``truncatedAlerts``, ``receiver``, ``status``, ``alerts``, ``groupLabels``, ``commonLabels``,
``commonAnnotations``, ``externalURL``; each alert ``status``, ``labels``, ``annotations``,
``startsAt``, ``endsAt``, ``generatorURL``, ``fingerprint``. Older senders omit an alert's
``status`` (it is then read from ``endsAt``) or ``fingerprint`` (computed from the labels exactly
as Alertmanager computes it, so both kinds of sender name the same Incident); version 3 (before
Alertmanager 0.5) sent ``groupKey`` as a number, read as its decimal string. Grafana's webhook
notifier sends the same shape with fields of its own (``orgId``, ``values``, ``silenceURL``), which
are ignored. A resolved alert
may carry the zero ``endsAt`` (``0001-01-01T00:00:00Z``): its ``status`` is trusted.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# prometheus/common model.SeparatorByte and its FNV-1a 64 constants (model/fnv.go).
_SEPARATOR = 0xFF
_FNV_OFFSET, _FNV_PRIME, _MASK = 14695981039346656037, 1099511628211, (1 << 64) - 1
_HEX = re.compile(r"^[0-9a-fA-F]{1,64}$")


class PayloadError(ValueError):
    """The body is not an Alertmanager notification; the message is one line naming the field."""


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Alert:
    """One alert of a notification, normalised: status decided, fingerprint present, zero times None."""

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str]
    fingerprint: str
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    generator_url: str | None = None

    @property
    def name(self) -> str:
        """The ``alertname`` label (empty when the sender left it out)."""
        return self.labels.get("alertname", "")


@dataclass(frozen=True)
class Notification:
    """A webhook notification: one Alertmanager group's alerts (``truncated``: how many it left out)."""

    receiver: str
    status: AlertStatus
    alerts: list[Alert]
    group_key: str = ""
    truncated: int = 0
    external_url: str = ""
    common_labels: dict[str, str] = field(default_factory=dict)


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint of a label set: FNV-1a 64 over the labels sorted by name, each
    name and value followed by the byte 0xff (prometheus/common ``model.LabelSet.Fingerprint``),
    as 16 lower-case hex digits."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * _FNV_PRIME) & _MASK
            h = ((h ^ _SEPARATOR) * _FNV_PRIME) & _MASK
    return f"{h:016x}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _Alert(_Model):
    status: AlertStatus | None = None
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: dt.datetime | None = Field(default=None, alias="startsAt")
    ends_at: dt.datetime | None = Field(default=None, alias="endsAt")
    generator_url: str | None = Field(default=None, alias="generatorURL")
    fingerprint: str | None = None


class _Payload(_Model):
    version: str | None = None
    group_key: str | int | None = Field(default=None, alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    receiver: str | None = None
    status: AlertStatus | None = None
    alerts: list[_Alert]
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    external_url: str | None = Field(default=None, alias="externalURL")


def _time(value: dt.datetime | None) -> dt.datetime | None:
    """None for Go's zero time (year 1), which Alertmanager sends for "not set"."""
    if value is None or value.year <= 1:
        return None
    return value.astimezone(dt.timezone.utc)


def _where(err: ValidationError) -> str:
    first = err.errors()[0]
    path = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p))
                   for i, p in enumerate(first["loc"]))
    return f"{path or 'body'}: {first['msg']}"


def _check_text(data: Any) -> None:
    """Raise PayloadError for a string JSON allows but UTF-8 cannot hold (a lone surrogate such as
    ``\ud800``): nothing downstream (fingerprints, names, the API server) could encode it."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise PayloadError(f"the body holds text that is not valid Unicode (a lone surrogate) in "
                                   f"{item.encode('utf-8', 'backslashreplace').decode()[:80]!r}") from None


def parse(body: bytes, now: dt.datetime) -> Notification:
    """The notification in ``body`` (JSON bytes); ``now`` (UTC) decides the status of an alert
    whose sender gave none (``endsAt`` in the past: resolved). Raises PayloadError naming the
    first field that is wrong, e.g. ``alerts[2].labels: Input should be a valid dictionary``."""
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PayloadError(f"the body is not JSON: {err}") from None
    except RecursionError:
        raise PayloadError("the body is not an Alertmanager notification: JSON nested too deeply") from None
    _check_text(data)
    if not isinstance(data, dict):
        raise PayloadError("the body is not an Alertmanager notification: expected a JSON object with alerts")
    try:
        payload = _Payload.model_validate(data)
    except ValidationError as err:
        raise PayloadError(_where(err)) from None
    alerts = []
    for raw in payload.alerts:
        ends_at = _time(raw.ends_at)
        status = raw.status or (AlertStatus.RESOLVED if ends_at is not None and ends_at <= now else AlertStatus.FIRING)
        given = raw.fingerprint or ""
        alerts.append(Alert(status=status, labels=raw.labels, annotations=raw.annotations,
                            fingerprint=given.lower() if _HEX.match(given) else fingerprint(raw.labels),
                            starts_at=_time(raw.starts_at), ends_at=ends_at, generator_url=raw.generator_url or None))
    group_status = payload.status or (AlertStatus.FIRING if any(a.status == AlertStatus.FIRING for a in alerts)
                                      else AlertStatus.RESOLVED)
    return Notification(receiver=payload.receiver or "", status=group_status, alerts=alerts,
                        group_key=str(payload.group_key or ""), truncated=payload.truncated_alerts,
                        external_url=payload.external_url or "", common_labels=payload.common_labels)
