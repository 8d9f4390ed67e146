"""Kopf registration of the Alertmanager intake: started with the operator, stopped with it.

It runs on every replica (leader or not, any shard): its writes go through the API server with
optimistic concurrency, and the annotation it sets wakes the Incident's reconcile loop wherever
that runs.
"""
from __future__ import annotations

import asyncio
from typing import Any
import logging

import kopf

from ..alerts.intake import Intake
from ..alerts.server import AlertIntakeServer
from ..kube import Kube, load_client_config


@kopf.on.startup()
async def start_alert_intake(memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Listen for Alertmanager when ``OPEX_ALERT_INTAKE_PORT`` is set (``memo.alert_rules``: the
    mapping read once by ``runner.run``)."""
    settings = memo.settings
    config = settings.alert_intake
    if config is None:
        return
    load_client_config()
    kube = Kube()
    intake = Intake(kube, memo.alert_rules, config.default_namespace, settings.namespaces,
                    creator=await asyncio.to_thread(kube.whoami))
    memo.alert_intake = AlertIntakeServer(intake, config)
    await memo.alert_intake.start(settings.bind_address)
    logger.info("alert intake on :%d%s (Incidents without a namespace label go to %s)", config.port, config.path,
                config.default_namespace)


@kopf.on.cleanup()
async def stop_alert_intake(memo: kopf.Memo, **_: Any) -> None:
    server = getattr(memo, "alert_intake", None)
    if server is not None:
        await server.stop()
