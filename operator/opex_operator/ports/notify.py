"""What the escalation path and the receivers need from PagerDuty and Slack, as Protocols (the
adapters ``notify.pagerduty.PagerDutySender`` and ``notify.slack.SlackSender`` implement them,
``wiring`` connects them; unit tests pass the fakes in ``tests/support/oncall_fakes.py``). Every
method blocks (call it through ``asyncio.to_thread``) and raises
:class:`~opex_operator.notify.http.SendError` only (its
:class:`~opex_operator.notify.http.RateLimited` says when to come back)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Posted:
    """Where a Slack message went: its channel and ts (its id there, and its thread's)."""

    channel: str
    ts: str


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
