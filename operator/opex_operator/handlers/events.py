"""Kopf registration of the EventBridge intake: it consumes once this replica leads, and stops with it.

Leader only (``events.consumer`` says why): with leader election on it waits for the Lease; the
Incidents it writes wake their reconcile loops like any other.
"""
from __future__ import annotations

import asyncio
from typing import Any

import kopf



@kopf.on.startup()
async def start_event_intake(memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Long-poll ``OPEX_EVENT_QUEUES`` once this replica leads (``memo.event_rules``: the mapping
    read once by ``runner.run``; ``memo.build_event_consumer``: the composition root, ``wiring``)."""
    settings = memo.settings
    config = settings.event_intake
    if config is None:
        return
    runtime = getattr(memo, "runtime", None)
    if runtime is None:  # lifecycle.configure registers first; retried if it has not run yet
        raise kopf.TemporaryError("the runtime is not configured yet", delay=1)
    memo.event_consumer = memo.build_event_consumer(settings, memo.policy, memo.kube, memo.event_rules)

    async def consume_when_leading() -> None:
        await runtime.leading.wait()
        memo.event_consumer.start()
        logger.info("event intake polling %s (Incidents no rule places go to %s)",
                    ", ".join(q.name for q in config.queues), config.default_namespace)

    memo.event_start = asyncio.create_task(consume_when_leading())


@kopf.on.cleanup()
async def stop_event_intake(memo: kopf.Memo, **_: Any) -> None:
    start = getattr(memo, "event_start", None)
    if start is not None:
        start.cancel()
    consumer = getattr(memo, "event_consumer", None)
    if consumer is not None:
        await consumer.stop()
