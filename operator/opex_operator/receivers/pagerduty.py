"""A PagerDuty v3 webhook body, read (pure).

Source: PagerDuty developer docs, "Webhooks" overview (PagerDuty/developer-docs
docs/webhooks/01-Overview.md): ``{"event": {"id", "event_type", "resource_type", "occurred_at",
"agent", "client", "data"}}``; for ``incident.*`` events ``data`` is the incident, whose
``incident_key`` is the dedup key of the Events API alert that opened it (this operator's
``opex/<namespace>/<uid>``, ``notify.pagerduty.dedup_key``); ``agent`` is who did it (a
``user_reference`` with ``id`` and ``summary``, the user's name), null for PagerDuty itself.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from ..api.common import parse_time
from . import PayloadError

ACKNOWLEDGED = "incident.acknowledged"


@dataclass(frozen=True)
class WebhookEvent:
    """What one delivery says: the event, the incident's key and link, and who did it."""

    id: str
    event_type: str
    incident_key: str | None
    incident_url: str | None
    agent_id: str | None
    agent_name: str | None
    occurred_at: dt.datetime | None

    @property
    def agent(self) -> str:
        """``Ben (PVE0ZR9)``, ``PVE0ZR9``, or ``PagerDuty`` (no agent: PagerDuty itself)."""
        if self.agent_name and self.agent_id:
            return f"{self.agent_name} ({self.agent_id})"
        return self.agent_name or self.agent_id or "PagerDuty"


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse(body: bytes) -> WebhookEvent:
    """The event in ``body``. Raises PayloadError for a body that is not ``{"event": {...}}`` with an
    ``event_type``."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise PayloadError(f"the body is not JSON: {err}") from None
    event = doc.get("event") if isinstance(doc, dict) else None
    if not isinstance(event, dict):
        raise PayloadError("no event object (a v3 webhook is {\"event\": {...}})")
    event_type = _text(event.get("event_type"))
    if event_type is None:
        raise PayloadError("event.event_type is missing")
    data = _object(event.get("data"))
    agent = _object(event.get("agent"))
    incident = data if data.get("type") == "incident" else {}
    return WebhookEvent(id=_text(event.get("id")) or "", event_type=event_type,
                        incident_key=_text(incident.get("incident_key")), incident_url=_text(incident.get("html_url")),
                        agent_id=_text(agent.get("id")), agent_name=_text(agent.get("summary")),
                        occurred_at=parse_time(event.get("occurred_at")))
