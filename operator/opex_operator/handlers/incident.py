"""Kopf registration of the Incident reconcile loop (see handlers/runtime.py)."""
from __future__ import annotations

import kopf

from .. import GROUP, VERSION
from . import runtime


@kopf.daemon(GROUP, VERSION, "incidents", cancellation_timeout=30)
async def reconcile_incident(body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_) -> None:
    await runtime.run(memo.controllers["incidents"], body, stopped, memo.kube, memo.settings.resync_seconds)


@kopf.on.event(GROUP, VERSION, "incidents")
def wake_incident(uid: str, **_) -> None:
    runtime.wake(uid)
