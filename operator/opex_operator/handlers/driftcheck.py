"""Kopf registration of the DriftCheck reconcile loop (see handlers/runtime.py)."""
from __future__ import annotations

import kopf

from .. import GROUP, VERSION
from . import runtime


@kopf.daemon(GROUP, VERSION, "driftchecks", cancellation_timeout=30)
async def reconcile_driftcheck(body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_) -> None:
    await runtime.run(memo.controllers["driftchecks"], body, stopped, memo.kube, memo.settings.resync_seconds)


@kopf.on.event(GROUP, VERSION, "driftchecks")
def wake_driftcheck(uid: str, **_) -> None:
    runtime.wake(uid)
