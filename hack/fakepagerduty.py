"""A local stand-in for PagerDuty: the Events API v2 (``POST /v2/enqueue``) checking every event
against PagerDuty's documented schema and limits, and v3 webhook deliveries signed as PagerDuty
signs them (to post to the operator's receiver).

Source: PagerDuty developer docs (PagerDuty/developer-docs): "Send an Alert Event" (fields, the
32-character routing key, dedup_key at most 255 characters, payload.summary at most 1024,
severity critical/error/warning/info, links {href, text}, images {src https, href, alt}), "Events
API v2 Overview" (202 accepted, 400 invalid, 429 too many; bodies up to 512 KB), "Events API
Rate Limits" (about 120 events a minute per routing key), "Webhooks" (the v3 body) and "Verifying
Signatures" (``X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the body>``).

Usage::

    pd = FakePagerDuty().start()      # pd.url is the Events API endpoint
    ...                               # pd.events: every accepted event; pd.alerts: state per dedup key
    pd.throttle(1, retry_after=2)     # the next request gets 429 with Retry-After: 2
    body, headers = pd.webhook("incident.acknowledged", dedup_key, secret, agent=("PVE0ZR9", "Ben"))
    pd.stop()
"""
from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from typing import Any

from localhttp import LocalServer
from opex_operator.receivers.signatures import sign_pagerduty

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
TOP_LEVEL = {"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"}
PAYLOAD = {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}
MAX_BODY = 512 * 1024
PER_MINUTE = 120


def problems(event: Any) -> list[str]:
    """What is wrong with an Events API v2 event, as PagerDuty's 400 lists it (empty: valid)."""
    if not isinstance(event, dict):
        return ["Event object is invalid: not a JSON object"]
    out = [f"'{k}' is not a known field" for k in sorted(set(event) - TOP_LEVEL)]
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        out.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in ACTIONS:
        out.append(f"'event_action' is invalid (must be one of {', '.join(ACTIONS)})")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or not 0 < len(dedup) <= 255):
        out.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        out.append(f"'dedup_key' is required for {action}")
    if action == "trigger":
        out += _payload_problems(event.get("payload"))
    for link in event.get("links") or []:
        if not isinstance(link, dict) or not isinstance(link.get("href"), str) or set(link) - {"href", "text"}:
            out.append("each link is {href, text?}")
    for image in event.get("images") or []:
        if not isinstance(image, dict) or not str(image.get("src", "")).startswith("https://"):
            out.append("each image needs a src served over https")
    return out


def _payload_problems(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is required for trigger"]
    out = [f"'payload.{k}' is not a known field" for k in sorted(set(payload) - PAYLOAD)]
    summary = payload.get("summary")
    if not isinstance(summary, str) or not 0 < len(summary) <= 1024:
        out.append("'payload.summary' is required, at most 1024 characters")
    if not isinstance(payload.get("source"), str) or not payload["source"]:
        out.append("'payload.source' is required")
    if payload.get("severity") not in SEVERITIES:
        out.append(f"'payload.severity' must be one of {', '.join(SEVERITIES)}")
    if "timestamp" in payload:
        try:
            dt.datetime.fromisoformat(str(payload["timestamp"]).replace("Z", "+00:00"))
        except ValueError:
            out.append("'payload.timestamp' is not ISO 8601")
    for name in ("component", "group", "class"):
        if name in payload and not isinstance(payload[name], str):
            out.append(f"'payload.{name}' must be a string")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        out.append("'payload.custom_details' must be an object")
    return out


class FakePagerDuty(LocalServer):
    """The Events API on 127.0.0.1; ``events`` holds every accepted event in order, ``requests`` the
    time of every request (accepted or not), ``alerts`` the state per (routing key, dedup key)."""

    def __init__(self, per_minute: int = PER_MINUTE):
        self.per_minute = per_minute
        self.events: list[dict[str, Any]] = []
        self.refused: list[tuple[int, list[str]]] = []
        self.requests: list[float] = []
        self.alerts: dict[tuple[str, str], str] = {}
        self._throttled: list[float] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.base}/v2/enqueue"

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"events": [{k: v for k, v in e.items() if k != "_at"} for e in self.events],
                    "alerts": [{"routing_key": k, "dedup_key": d, "state": s} for (k, d), s in self.alerts.items()],
                    "refused": self.refused}

    def throttle(self, count: int, retry_after: float | None = 1) -> None:
        """The next ``count`` requests are answered 429 (with ``Retry-After`` unless None)."""
        with self._lock:
            self._throttled += [retry_after] * count

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        return self._enqueue(path, headers.get("Content-Type", ""), body)

    def _enqueue(self, path: str, content_type: str, body: bytes) -> tuple[int, dict, dict[str, str]]:
        now = time.monotonic()
        with self._lock:
            self.requests.append(now)
            if self._throttled:
                wait = self._throttled.pop(0)
                return 429, {"status": "throttle event", "message": "Requests for this service are arriving too "
                             "quickly. Please retry later."}, ({"Retry-After": str(wait)} if wait is not None else {})
        if path != "/v2/enqueue":
            return 404, {"status": "not found", "message": path}, {}
        errors: list[str] = []
        if len(body) > MAX_BODY:
            errors.append(f"the event is over {MAX_BODY} bytes")
        if "application/json" not in content_type:
            errors.append("Content-Type must be application/json")
        try:
            event = json.loads(body)
        except ValueError:
            event = None
            errors.append("the body is not JSON")
        errors += problems(event) if event is not None else []
        if errors:
            self.refused.append((400, errors))
            return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}, {}
        with self._lock:
            recent = [e for e in self.events if e["routing_key"] == event["routing_key"] and now - e["_at"] < 60]
            if len(recent) >= self.per_minute:
                return 429, {"status": "throttle event", "message": "Too many events"}, {"Retry-After": "60"}
            key = event.get("dedup_key") or uuid.uuid4().hex
            self.events.append({**event, "_at": now})
            state = {"trigger": "triggered", "acknowledge": "acknowledged", "resolve": "resolved"}[event["event_action"]]
            if event["event_action"] == "trigger" or (event["routing_key"], key) in self.alerts:
                self.alerts[(event["routing_key"], key)] = state  # PagerDuty drops follow-ups of unknown alerts
        return 202, {"status": "success", "message": "Event processed", "dedup_key": key}, {}

    @staticmethod
    def webhook(event_type: str, incident_key: str, secret: str, agent: tuple[str, str] | None = None,
                incident_id: str = "Q2CKYRLH85UNN4") -> tuple[bytes, dict[str, str]]:
        """A v3 webhook delivery about the incident of ``incident_key``, as PagerDuty sends it: (body,
        headers with ``X-PagerDuty-Signature`` signed with ``secret``). ``agent`` is (user id, name)."""
        event = {"event": {
            "id": uuid.uuid4().hex[:26].upper(), "event_type": event_type, "resource_type": "incident",
            "occurred_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "agent": ({"html_url": f"https://example.pagerduty.com/users/{agent[0]}", "id": agent[0],
                       "self": f"https://api.pagerduty.com/users/{agent[0]}", "summary": agent[1],
                       "type": "user_reference"} if agent else None),
            "client": None,
            "data": {"id": incident_id, "type": "incident", "self": f"https://api.pagerduty.com/incidents/{incident_id}",
                     "html_url": f"https://example.pagerduty.com/incidents/{incident_id}", "number": 37,
                     "status": event_type.removeprefix("incident."), "incident_key": incident_key,
                     "title": "opex incident", "urgency": "high"}}}
        body = json.dumps(event, separators=(",", ":")).encode()
        return body, {"Content-Type": "application/json", "X-PagerDuty-Signature": sign_pagerduty(secret, body)}


if __name__ == "__main__":  # the local stack's PagerDuty (hack/stack.py): python hack/fakepagerduty.py --port N
    from localhttp import serve

    serve(lambda args: FakePagerDuty(), "PagerDuty's Events API v2 on 127.0.0.1 (GET /_state shows the events)")
