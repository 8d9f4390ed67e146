"""Kopf registration of the three kinds: watch events go to the runtime's work queue.

No logic here: ``handlers.runtime.Runtime.wants`` (Kopf's ``when=`` filter) and ``observe`` decide
whether an event matters. The handlers are coroutines so that they run on the event loop inside
Kopf's context, which the runtime's workers inherit (Kopf's Event poster needs it).
"""
from __future__ import annotations

from typing import Callable

import kopf

from .. import GROUP, VERSION
from ..api import DRIFTCHECK, INCIDENT, ROLLBACK
from .lifecycle import in_shard


def wanted(plural: str) -> Callable[..., bool]:
    """Kopf's ``when=`` filter of a kind's watch handler: only events the runtime acts on
    (``Runtime.wants``) run the handler; the operator's own status writes stop here."""
    def when(type: str | None, body: kopf.Body, memo: kopf.Memo, **_) -> bool:
        return memo.runtime.wants(plural, type, body)
    return when


@kopf.on.event(GROUP, VERSION, INCIDENT.plural, when=wanted(INCIDENT.plural))
async def watch_incident(type: str | None, body: kopf.Body, memo: kopf.Memo, **_) -> None:
    memo.runtime.observe(INCIDENT.plural, type, dict(body))


@kopf.on.event(GROUP, VERSION, DRIFTCHECK.plural, when=wanted(DRIFTCHECK.plural))
async def watch_driftcheck(type: str | None, body: kopf.Body, memo: kopf.Memo, **_) -> None:
    memo.runtime.observe(DRIFTCHECK.plural, type, dict(body))


# Every event of a Rollback, its own status writes included, tells the Incident that created it how
# it goes: no filter (Rollbacks are few).
@kopf.on.event(GROUP, VERSION, ROLLBACK.plural)
async def watch_rollback(type: str | None, body: kopf.Body, memo: kopf.Memo, **_) -> None:
    memo.runtime.observe(ROLLBACK.plural, type, dict(body))
    meta = body.get("metadata") or {}
    for owner in meta.get("ownerReferences") or []:  # an Incident waits on the Rollbacks it created
        if owner.get("kind") == INCIDENT.kind:
            memo.runtime.wake(INCIDENT.plural, meta.get("namespace", ""), owner["name"])


# A finalizer only where there is something outside Kubernetes to release: a DriftCheck's work
# directory. Incidents and Rollbacks hold nothing else (their reports and child Rollbacks are owned
# objects, collected with them), so a finalizer would only cost a write per object and slow its
# deletion; Kopf takes it off those that still carry one.
@kopf.on.delete(GROUP, VERSION, DRIFTCHECK.plural, when=in_shard)
async def finalize(resource: kopf.Resource, body: kopf.Body, memo: kopf.Memo, **_) -> None:
    """The finalizer's work (Kopf removes ``opex.dev/finalizer`` afterwards): release what the
    object holds outside Kubernetes, even when it was deleted while the operator was down."""
    await memo.runtime.finalize(resource.plural, dict(body))
