"""PagerDuty Events API v2: one alert per Incident, triggered, acknowledged and resolved.

Source: PagerDuty developer docs, "Events API v2 Overview" and "Send an Alert Event"
(PagerDuty/developer-docs docs/events-API-v2/): ``POST https://events.pagerduty.com/v2/enqueue``
with ``routing_key`` (the 32-character integration key), ``event_action`` (trigger, acknowledge,
resolve), ``dedup_key`` (at most 255 characters: later events with the same key and routing key
apply to the same alert), and for a trigger a ``payload`` with ``summary`` (at most 1024
characters), ``source``, ``severity`` (critical, error, warning, info), ``timestamp``,
``component``, ``group``, ``class``, ``custom_details``; ``links`` [{href, text}]. 202 accepted,
400 invalid (not retried), 429 and 5xx retried later; bodies up to 512 KB.

The dedup key is ``opex/<namespace>/<uid>`` (:func:`dedup_key`): unique per Incident (a new
Incident of the same name gets a new uid), and it tells the webhook receiver which Incident a
PagerDuty incident is (:func:`incident_of`: ``event.data.incident_key`` of a v3 webhook).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..api.common import truncate
from ..api.incident import IncidentSpec, IncidentStatus, Severity, effective_severity
from .http import SendError, post_json
from .message import acknowledgement_line, affected, waiting_steps

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX = 1024
DEDUP_KEY_MAX = 255
ROUTING_KEY_LENGTH = 32
MAX_BODY_BYTES = 512 * 1024
MAX_FINDINGS = 20  # in custom_details: the alert stays readable; the Incident has them all
# The runbook's severities onto PD-CEF's (PagerDuty Common Event Format): high is an error.
SEVERITY = {Severity.CRITICAL: "critical", Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "info"}
_KEY = re.compile(r"^opex/(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)/(?P<uid>[0-9a-f-]{36})$")


def dedup_key(namespace: str, uid: str) -> str:
    """The Incident's dedup key: ``opex/<namespace>/<uid>`` (at most 104 characters)."""
    return f"opex/{namespace}/{uid}"


def incident_of(key: str | None) -> tuple[str, str] | None:
    """(namespace, uid) of an Incident's dedup key; None for a key this operator did not make."""
    match = _KEY.match(key or "")
    return (match["namespace"], match["uid"]) if match else None


def trigger(routing_key: str, namespace: str, name: str, uid: str, spec: IncidentSpec, status: IncidentStatus,
            links: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """The trigger event of the Incident (pure). ``links`` are (href, text) pairs: the Incident in a
    console, the alert's expression. Sent again as the Incident moves, it updates the same alert."""
    severity = effective_severity(spec, status)
    cause = status.root_cause
    details: dict[str, Any] = {
        "incident": f"{namespace}/{name}", "type": spec.type.value, "severity": severity.value,
        "environment": spec.environment, "phase": status.phase.value if status.phase else "Detected"}
    if cause is not None:
        details["root_cause"] = f"{cause.category.value}: {cause.summary}"
    if status.findings:
        details["findings"] = [f"{f.id} [{f.severity.value}] {f.source} {f.resource}: {f.observed}"
                               for f in status.findings[:MAX_FINDINGS]]
    waiting = waiting_steps(spec, status)
    if waiting:
        details["waiting_for_approval"] = waiting
        details["approve_with"] = f"opex approve incident {name} -n {namespace} {' '.join(waiting)}"
    ack = acknowledgement_line(spec, status)
    if ack:
        details["acknowledgement"] = ack
    event: dict[str, Any] = {
        "routing_key": routing_key, "event_action": "trigger", "dedup_key": dedup_key(namespace, uid),
        "payload": {"summary": truncate(f"[{severity.value.upper()}] {spec.title}", SUMMARY_MAX),
                    "source": affected(namespace, name, spec), "severity": SEVERITY[severity],
                    "timestamp": status.detected_at.isoformat() if status.detected_at else None,
                    "component": spec.type.value, "group": spec.environment,
                    "class": cause.category.value if cause else spec.type.value, "custom_details": details},
        "client": "opex-operator"}
    if not event["payload"]["timestamp"]:
        del event["payload"]["timestamp"]
    if links:
        event["links"] = [{"href": href, "text": text} for href, text in links]
    return event


def follow_up(routing_key: str, namespace: str, uid: str, action: str) -> dict[str, Any]:
    """An ``acknowledge`` or ``resolve`` event for the Incident's alert (it must go through the
    routing key that triggered it: PagerDuty drops it otherwise)."""
    if action not in ("acknowledge", "resolve"):
        raise ValueError(f"a follow-up event is acknowledge or resolve, not {action!r}")
    return {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key(namespace, uid)}


class PagerDutySender:
    """Sends events to the Events API v2 (``ports.notify.PagerDutyPort``); ``url`` points elsewhere
    in tests (the local stand-in, ``hack/fakepagerduty.py``)."""

    def __init__(self, url: str = EVENTS_URL, timeout: float = 10.0, max_wait: float = 30.0):
        self.url, self.timeout, self.max_wait = url, timeout, max_wait

    def send(self, event: dict[str, Any]) -> str:
        """Send one event; returns the dedup key PagerDuty answered with. Raises SendError (400: the
        event is invalid, with PagerDuty's errors; 5xx), RateLimited (429 that lasts)."""
        response = post_json(self.url, event, what="PagerDuty", timeout=self.timeout, max_wait=self.max_wait)
        answer = response.json() or {}
        if response.status == 202:
            return answer.get("dedup_key") or event.get("dedup_key", "")
        errors = "; ".join(answer.get("errors") or []) or answer.get("message") or ""
        raise SendError(f"PagerDuty answered HTTP {response.status}" + (f": {errors}" if errors else ""),
                        response.status)
