"""The on-call receivers' HTTP endpoints: their own port (``OPEX_RECEIVERS_PORT``), aiohttp.

``POST /pagerduty`` takes PagerDuty v3 webhooks (a subscription with ``incident.acknowledged``
pointed at it). Replies: 401 without a valid ``X-PagerDuty-Signature`` (nothing changes); 413
over ``OPEX_RECEIVERS_MAX_BODY_BYTES``; 400 for a body that is not a webhook; 503 when the API
server did not take the write (PagerDuty retries); else 200 with what became of it (an event of
another type, or about an incident this operator did not page, is ignored).

``POST /slack/interactions`` is the Slack app's Interactivity Request URL. Replies: 401 without a
valid signature or with a timestamp more than five minutes off; 413; 400; else 200 at once, the
outcome told to the person who clicked through the interaction's ``response_url`` (ephemeral).
A Slack user the policy does not map to a Kubernetes user can do nothing.

The signing secrets are files (mounted from Secrets), read on every request: a rotated Secret
takes effect without a restart.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Callable

from aiohttp import web

from .. import metrics
from ..config import ReceiverSettings
from ..endpoint import Endpoint
from ..errors import KubeError
from ..notify.http import SendError
from ..notify.pagerduty import incident_of
from ..ports.notify import SlackPort
from ..policy import OnCall
from . import PayloadError, pagerduty, slack
from .actions import Actions, Outcome, Result
from .pagerduty import WebhookEvent
from ..notify.slack import ActionValue
from .signatures import SignatureError, verify_pagerduty, verify_slack

log = logging.getLogger(__name__)

PAGERDUTY_PATH, SLACK_PATH = "/pagerduty", "/slack/interactions"


def _secret(path: Path | None) -> str:
    try:
        return path.read_text().strip() if path else ""
    except OSError as err:  # a Secret being rotated: nobody gets in until it is back
        log.error("receiver secret unreadable: %s", err)
        return ""


def _reply(receiver: str, status: int, text: str = "", **json_body: str) -> web.Response:
    metrics.RECEIVER_REQUESTS.labels(receiver, str(status)).inc()
    if json_body:
        return web.json_response(json_body, status=status)
    return web.Response(status=status, text=text + "\n" if text else "")


class ReceiverServer(Endpoint):
    """Serves the receivers whose secret ``settings`` names, on ``settings.port``; ``oncall`` maps
    Slack and PagerDuty users to Kubernetes users; ``slack_port`` sends the replies."""

    def __init__(self, actions: Actions, oncall: OnCall, settings: ReceiverSettings, slack_port: SlackPort,
                 clock: Callable[[], float] = time.time):
        super().__init__(settings.port, settings.max_body_bytes)
        self.actions, self.oncall, self.settings, self.slack, self.clock = actions, oncall, settings, slack_port, clock
        self._replies: set[asyncio.Task] = set()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        if self.settings.pagerduty_secret_file:
            app.router.add_post(PAGERDUTY_PATH, self.pagerduty)
        if self.settings.slack_secret_file:
            app.router.add_post(SLACK_PATH, self.slack_interaction)
        return app

    async def stop(self) -> None:
        if self._replies:  # the replies to Slack still on their way
            await asyncio.wait(self._replies, timeout=5)
        await super().stop()

    # -- PagerDuty ------------------------------------------------------------------------------------
    async def pagerduty(self, request: web.Request) -> web.Response:
        """One v3 webhook delivery (see the module docstring for the replies)."""
        body = await self.body(request)
        if body is None:
            return _reply("pagerduty", 413, f"the body is over {self.settings.max_body_bytes} bytes")
        try:
            verify_pagerduty(_secret(self.settings.pagerduty_secret_file), body,
                             request.headers.get("X-PagerDuty-Signature"))
        except SignatureError as err:
            return _reply("pagerduty", 401, f"unauthorized: {err}")
        try:
            event = pagerduty.parse(body)
        except PayloadError as err:
            return _reply("pagerduty", 400, f"not a PagerDuty v3 webhook: {err}")
        try:
            result = await self._acknowledged(event) if event.event_type == pagerduty.ACKNOWLEDGED else Result(
                Outcome.IGNORED, f"{event.event_type} changes nothing here")
        except KubeError as err:
            log.warning("PagerDuty %s: the API server did not take it (%s); PagerDuty retries", event.id, err)
            return _reply("pagerduty", 503, f"not written, retry: {err}")
        metrics.RECEIVER_ACTIONS.labels("pagerduty", "acknowledge", result.outcome.value).inc()
        log.info("PagerDuty %s %s by %s: %s", event.event_type, event.incident_key, event.agent, result.message)
        return _reply("pagerduty", 200, outcome=result.outcome.value, message=result.message)

    async def _acknowledged(self, event: WebhookEvent) -> Result:
        key = incident_of(event.incident_key)
        if key is None:
            return Result(Outcome.IGNORED, f"incident key {event.incident_key!r} is not an opex Incident's")
        namespace, uid = key
        incident = await asyncio.to_thread(self.actions.find, namespace, uid)
        if incident is None:
            return Result(Outcome.IGNORED, f"no Incident {uid} in namespace {namespace} here")
        user = self.oncall.by_pagerduty(event.agent_id)
        note = f"acknowledged in PagerDuty by {event.agent}" + (f": {event.incident_url}" if event.incident_url else "")
        return await asyncio.to_thread(self.actions.acknowledge, incident, user, note)

    # -- Slack ----------------------------------------------------------------------------------------
    async def slack_interaction(self, request: web.Request) -> web.Response:
        """One click on an Incident message's button (see the module docstring for the replies)."""
        body = await self.body(request)
        if body is None:
            return _reply("slack", 413, f"the body is over {self.settings.max_body_bytes} bytes")
        try:
            verify_slack(_secret(self.settings.slack_secret_file), body, request.headers.get("X-Slack-Request-Timestamp"),
                         request.headers.get("X-Slack-Signature"), self.clock())
        except SignatureError as err:
            return _reply("slack", 401, f"unauthorized: {err}")
        try:
            click = slack.parse(body)
        except PayloadError as err:
            return _reply("slack", 400, f"not a Slack interaction: {err}")
        if click.action is None or click.value is None:
            return _reply("slack", 200)
        try:
            result = await self._clicked(click)
        except KubeError as err:
            log.warning("Slack %s by %s: the API server did not take it (%s)", click.action, click.user_id, err)
            result = Result(Outcome.REFUSED, f"the API server is not answering ({err.message or err}); try again")
        metrics.RECEIVER_ACTIONS.labels("slack", click.action.value, result.outcome.value).inc()
        log.info("Slack %s on %s/%s by %s: %s", click.action, click.value.namespace, click.value.name, click.user_id,
                 result.message)
        if click.response_url:
            task = asyncio.create_task(self._tell(click.response_url, click.value, result))
            self._replies.add(task)
            task.add_done_callback(self._replies.discard)
        return _reply("slack", 200)

    async def _clicked(self, click: slack.Interaction) -> Result:
        value = click.value
        if value is None:  # the caller answers clicks on no opex button before this
            return Result(Outcome.IGNORED, "not an opex button")
        user = self.oncall.by_slack(click.user_id)
        if user is None:
            return Result(Outcome.REFUSED, f"your Slack user {click.user_id} is not mapped to a Kubernetes user in "
                                           f"the operator's policy (oncall.users): nothing was changed")
        incident = await asyncio.to_thread(self.actions.find, value.namespace, value.uid, value.name)
        if incident is None:
            return Result(Outcome.IGNORED, f"Incident {value.namespace}/{value.name} is gone, or not this operator's")
        if click.action == slack.Action.ACKNOWLEDGE:
            return await asyncio.to_thread(self.actions.acknowledge, incident, user, "acknowledged in Slack")
        return await asyncio.to_thread(self.actions.approve, incident, value.step or "", user)

    async def _tell(self, response_url: str, value: ActionValue, result: Result) -> None:
        text = f"Incident {value.namespace}/{value.name}: {result.message}"
        try:
            await asyncio.to_thread(self.slack.respond, response_url, text)
        except SendError as err:
            log.warning("could not reply in Slack: %s", err)
