"""Kopf registration of the on-call receivers (PagerDuty webhooks, Slack interactivity): started
with the operator, stopped with it.

Like the alert intake they run on every replica (leader or not, any shard): their writes go
through the API server with optimistic concurrency, in the name of the person who acted.
"""
from __future__ import annotations

from typing import Any

import kopf

from ..kube import Kube, load_client_config
from ..notify.slack import SlackSender
from ..receivers.actions import Actions
from ..receivers.server import PAGERDUTY_PATH, SLACK_PATH, ReceiverServer


@kopf.on.startup()
async def start_receivers(memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Listen for PagerDuty and Slack when ``OPEX_RECEIVERS_PORT`` is set (``memo.policy.oncall``
    maps their users to Kubernetes users)."""
    settings = memo.settings
    config = settings.receivers
    if config is None:
        return
    load_client_config()
    memo.receivers = ReceiverServer(Actions(Kube(), settings.namespaces), memo.policy.oncall, config,
                                    SlackSender(settings.slack_api_url))
    await memo.receivers.start(settings.bind_address)
    paths = [p for p, on in ((PAGERDUTY_PATH, config.pagerduty_secret_file), (SLACK_PATH, config.slack_secret_file))
             if on]
    logger.info("on-call receivers on :%d (%s); %d people mapped in oncall.users", config.port, ", ".join(paths),
                len(memo.policy.oncall.users))


@kopf.on.cleanup()
async def stop_receivers(memo: kopf.Memo, **_: Any) -> None:
    server = getattr(memo, "receivers", None)
    if server is not None:
        await server.stop()
