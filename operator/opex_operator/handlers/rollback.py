"""Kopf registration of the Rollback reconcile loop (see handlers/runtime.py)."""
from __future__ import annotations

import kopf

from .. import GROUP, VERSION
from . import runtime


@kopf.daemon(GROUP, VERSION, "rollbacks", cancellation_timeout=30)
async def reconcile_rollback(body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_) -> None:
    await runtime.run(memo.controllers["rollbacks"], body, stopped, memo.kube, memo.settings.resync_seconds)


@kopf.on.event(GROUP, VERSION, "rollbacks")
def wake_rollback(uid: str, meta: kopf.Meta, **_) -> None:
    runtime.wake(uid)
    for owner in meta.get("ownerReferences") or []:  # an Incident waits on the Rollbacks it created
        if owner.get("kind") == "Incident":
            runtime.wake(owner["uid"])
