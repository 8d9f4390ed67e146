"""Slack: one message per Incident in Block Kit, updated in place and threaded as the Incident moves.

Through the Web API with a bot token (``chat.postMessage``, then ``chat.update`` of the same
message and replies with ``thread_ts``), or through an incoming webhook (post only: each change is
a new message). The message carries Acknowledge and Approve buttons; Slack posts the click to the
operator's interactivity endpoint (``receivers/slack.py``), which records it in the clicking
person's Kubernetes name.

Source: Slack API docs, "chat.postMessage" and "chat.update" (``Authorization: Bearer xoxb-...``,
JSON body; ``{"ok": false, "error": ...}`` with HTTP 200 on failure; at most 50 blocks; HTTP 429
with ``Retry-After`` when rate-limited), "Reference: blocks" (header text at most 150 characters,
section text 3000, fields at most 10 of 2000 each, context at most 10 elements, actions at most
25 elements) and "Reference: block elements" (button text 75 characters, value 2000, action_id
255; confirmation dialog title 100, text 300, buttons 30), "Formatting text" (``&``, ``<`` and
``>`` escaped in mrkdwn).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..api.common import truncate
from ..api.incident import IncidentPhase, IncidentSpec, IncidentStatus, effective_severity
from ..ports.notify import Posted
from .http import SendError, post_json
from .message import acknowledgement_line, waiting_steps

API_URL = "https://slack.com/api"
HEADER_MAX, SECTION_MAX, FIELD_MAX, BUTTON_TEXT_MAX, VALUE_MAX, ACTION_ID_MAX = 150, 3000, 2000, 75, 2000, 255
MAX_BLOCKS, MAX_ACTIONS = 50, 25
TEXT_MAX = 3000  # the notification text: Slack truncates beyond 40000, clients show far less
ACKNOWLEDGE = "opex.acknowledge"
APPROVE = "opex.approve"  # action_id prefix: "opex.approve:<step>" (unique in its block)
ENDED = (IncidentPhase.RESOLVED, IncidentPhase.FAILED, IncidentPhase.CLOSED)


def escape(text: str) -> str:
    """Text as Slack mrkdwn shows it literally (``&``, ``<``, ``>`` escaped)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class ActionValue:
    """What a button carries back: which Incident (its uid too: a new one of the same name is not
    it) and, for Approve, which step."""

    namespace: str
    name: str
    uid: str
    step: str | None = None

    def encode(self) -> str:
        data = {"ns": self.namespace, "name": self.name, "uid": self.uid}
        if self.step:
            data["step"] = self.step
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def decode(cls, value: str) -> "ActionValue":
        """Raises ValueError when ``value`` is not a button value this module made."""
        try:
            data = json.loads(value)
            return cls(str(data["ns"]), str(data["name"]), str(data["uid"]), data.get("step"))
        except (TypeError, ValueError, KeyError) as err:
            raise ValueError(f"not an opex button value: {err}") from None


def _text(kind: str, text: str) -> dict[str, Any]:
    return {"type": kind, "text": text}


def incident_message(namespace: str, name: str, uid: str, spec: IncidentSpec,
                     status: IncidentStatus) -> tuple[str, list[dict[str, Any]]]:
    """(notification text, blocks) of the Incident's message: title, severity, type, environment,
    phase, root cause, who acknowledged, and buttons to acknowledge it and approve each step that
    waits for approval (none once it ended). Within Slack's limits whatever the Incident holds."""
    severity = effective_severity(spec, status).value
    phase = (status.phase or IncidentPhase.DETECTED).value
    title = f"[{severity.upper()}] {spec.title}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _text("plain_text", truncate(title, HEADER_MAX))},
        {"type": "section", "fields": [_text("mrkdwn", truncate(f"*{label}*\n{escape(value)}", FIELD_MAX))
                                       for label, value in (("Severity", severity), ("Type", spec.type.value),
                                                            ("Environment", spec.environment), ("Phase", phase))]},
    ]
    cause = status.root_cause
    if cause is not None:
        blocks.append({"type": "section", "text": _text("mrkdwn", truncate(
            f"*Root cause* ({cause.category.value})\n{escape(cause.summary)}", SECTION_MAX))})
    ack = acknowledgement_line(spec, status)
    context = f"Incident `{escape(namespace)}/{escape(name)}`" + (f" · {escape(ack)}" if ack else "")
    blocks.append({"type": "context", "elements": [_text("mrkdwn", truncate(context, SECTION_MAX))]})
    buttons = [] if status.phase in ENDED else _buttons(namespace, name, uid, spec, status, ack is None)
    if buttons:
        blocks.append({"type": "actions", "block_id": "opex", "elements": buttons})
    text = truncate(f"{title} ({namespace}/{name}): {phase}" + (f". {ack}" if ack else ""), TEXT_MAX)
    return text, blocks[:MAX_BLOCKS]


def _buttons(namespace: str, name: str, uid: str, spec: IncidentSpec, status: IncidentStatus,
             acknowledge: bool) -> list[dict[str, Any]]:
    out = []
    if acknowledge:
        out.append({"type": "button", "action_id": ACKNOWLEDGE, "text": _text("plain_text", "Acknowledge"),
                    "value": ActionValue(namespace, name, uid).encode()})
    for step in waiting_steps(spec, status)[:MAX_ACTIONS - len(out)]:
        out.append({"type": "button", "action_id": f"{APPROVE}:{step}"[:ACTION_ID_MAX], "style": "primary",
                    "text": _text("plain_text", truncate(f"Approve {step}", BUTTON_TEXT_MAX)),
                    "value": ActionValue(namespace, name, uid, step).encode(),
                    "confirm": {"title": _text("plain_text", "Approve this step?"),
                                "text": _text("plain_text", truncate(f"{step} changes AWS in {spec.environment}; "
                                                                     f"it runs in your name.", 300)),
                                "confirm": _text("plain_text", "Approve"), "deny": _text("plain_text", "Cancel")}})
    return out


class SlackSender:
    """Slack's Web API and incoming webhooks (``ports.notify.SlackPort``); ``api_url`` points
    elsewhere in tests (the local stand-in, ``hack/fakeslack.py``). Tokens and webhook URLs are
    passed per call (each Incident's namespace has its own Secret) and never appear in errors."""

    def __init__(self, api_url: str = API_URL, timeout: float = 10.0, max_wait: float = 30.0):
        self.api_url, self.timeout, self.max_wait = api_url.rstrip("/"), timeout, max_wait

    def _call(self, method: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        response = post_json(f"{self.api_url}/{method}", body, {"Authorization": f"Bearer {token}"},
                             what=f"Slack {method}", timeout=self.timeout, max_wait=self.max_wait)
        answer = response.json()
        if response.status != 200 or not isinstance(answer, dict):
            raise SendError(f"Slack {method} answered HTTP {response.status}", response.status)
        if not answer.get("ok"):
            raise SendError(f"Slack {method}: {answer.get('error') or 'not ok'}", response.status)
        return answer

    def post_message(self, token: str, channel: str, text: str, blocks: list[dict[str, Any]] | None = None,
                     thread_ts: str | None = None) -> Posted:
        """chat.postMessage; a reply in a thread with ``thread_ts``. Raises SendError, RateLimited."""
        body: dict[str, Any] = {"channel": channel, "text": text}
        if blocks:
            body["blocks"] = blocks
        if thread_ts:
            body["thread_ts"] = thread_ts
        answer = self._call("chat.postMessage", token, body)
        return Posted(answer["channel"], answer["ts"])

    def update_message(self, token: str, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        """chat.update of a message posted before. Raises SendError, RateLimited."""
        self._call("chat.update", token, {"channel": channel, "ts": ts, "text": text, "blocks": blocks})

    def post_webhook(self, url: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """POST to an incoming webhook (it answers ``ok``, or an error word such as
        ``invalid_blocks`` with a 4xx). Raises SendError, RateLimited."""
        body: dict[str, Any] = {"text": text}
        if blocks:
            body["blocks"] = blocks
        response = post_json(url, body, what="Slack webhook", timeout=self.timeout, max_wait=self.max_wait)
        if response.status != 200:
            word = response.body.decode(errors="replace").strip()[:64]
            raise SendError(f"Slack webhook answered HTTP {response.status}" + (f": {word}" if word else ""),
                            response.status)

    def respond(self, response_url: str, text: str) -> None:
        """An ephemeral reply to the person who clicked (the interaction's ``response_url``), leaving
        the message as it is. Raises SendError, RateLimited."""
        response = post_json(response_url, {"response_type": "ephemeral", "replace_original": False, "text": text},
                             what="Slack response_url", timeout=self.timeout, max_wait=self.max_wait)
        if response.status != 200:
            raise SendError(f"Slack response_url answered HTTP {response.status}", response.status)
