"""What the escalation path needs from PagerDuty and Slack, as Protocols (the senders implement
them; unit tests pass the fakes in ``tests/support/notify_fakes.py``). Every method blocks (call it
through ``asyncio.to_thread``) and raises :class:`~opex_operator.notify.http.SendError` only (its
:class:`~opex_operator.notify.http.RateLimited` says when to come back)."""
from __future__ import annotations

from typing import Any, Protocol

from .slack import Posted


class PagerDutyPort(Protocol):
    """Events API v2 (``notify.pagerduty.PagerDutySender``); events from ``notify.pagerduty.trigger``
    and ``follow_up``."""

    def send(self, event: dict[str, Any]) -> str: ...


class SlackPort(Protocol):
    """Slack's Web API and incoming webhooks (``notify.slack.SlackSender``); messages from
    ``notify.slack.incident_message``."""

    def post_message(self, token: str, channel: str, text: str, blocks: list[dict[str, Any]] | None = None,
                     thread_ts: str | None = None) -> Posted: ...
    def update_message(self, token: str, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None: ...
    def post_webhook(self, url: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None: ...
    def respond(self, response_url: str, text: str) -> None: ...
