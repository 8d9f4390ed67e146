"""A Slack interactivity request, read (pure): which button of an Incident's message who clicked.

Source: Slack API docs, "Handling user interaction" and "Reference: block_actions payload": Slack
POSTs ``application/x-www-form-urlencoded`` with one field, ``payload``, a JSON document with
``type: block_actions``, ``user`` (``id``, ``username``, ``team_id``), ``team``, ``response_url``
(where to reply, for 30 minutes) and ``actions[]`` (``action_id``, ``value``, ``block_id``). The
buttons are ``notify.slack``'s: ``opex.acknowledge`` and ``opex.approve:<step>``, their value an
``ActionValue``. Anything else (another app's buttons, shortcuts, modals) is not ours.
"""
from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..notify.slack import ACKNOWLEDGE, APPROVE, ActionValue
from . import PayloadError


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    APPROVE = "approve"


@dataclass(frozen=True)
class Interaction:
    """Who clicked (``user_id``, in ``team_id``), where to reply, and the opex action clicked (None
    when the click was not on an opex button)."""

    user_id: str
    user_name: str | None
    team_id: str | None
    response_url: str | None
    action: Action | None = None
    value: ActionValue | None = None


def _action(actions: Any) -> tuple[Action | None, ActionValue | None]:
    for item in actions if isinstance(actions, list) else []:
        action_id = item.get("action_id") if isinstance(item, dict) else None
        kind = (Action.ACKNOWLEDGE if action_id == ACKNOWLEDGE else
                Action.APPROVE if isinstance(action_id, str) and action_id.startswith(APPROVE + ":") else None)
        if kind is None:
            continue
        try:
            value = ActionValue.decode(item.get("value") or "")
        except ValueError as err:
            raise PayloadError(f"action {action_id}: {err}") from None
        if kind == Action.APPROVE and not value.step:
            raise PayloadError(f"action {action_id} names no step")
        return kind, value
    return None, None


def parse(body: bytes) -> Interaction:
    """The interaction in a form-encoded ``body``. Raises PayloadError when there is no ``payload``
    field, it is not a JSON object, or it names no user."""
    try:
        fields = urllib.parse.parse_qs(body.decode(), strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as err:
        raise PayloadError(f"the body is not a form: {err}") from None
    if "payload" not in fields:
        raise PayloadError("no payload field (Slack posts payload=<JSON>)")
    try:
        doc = json.loads(fields["payload"][0])
    except ValueError as err:
        raise PayloadError(f"payload is not JSON: {err}") from None
    user = doc.get("user") if isinstance(doc, dict) else None
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        raise PayloadError("payload.user.id is missing")
    team = doc.get("team") if isinstance(doc.get("team"), dict) else {}
    action, value = _action(doc.get("actions")) if doc.get("type") == "block_actions" else (None, None)
    return Interaction(user_id=user["id"], user_name=user.get("username") or user.get("name"),
                       team_id=user.get("team_id") or team.get("id"), response_url=doc.get("response_url"),
                       action=action, value=value)
