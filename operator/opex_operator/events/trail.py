"""CloudTrail calls from the event queue to the DriftChecks whose resources they changed (issue 24, part 2).

An ``AWS API Call via CloudTrail`` event (EventBridge delivers one per management event the trail
records; CloudTrail User Guide, "Working with CloudTrail events in EventBridge") that mutated
something (``trail_changes.mutating``) is matched against the managed resources of every DriftCheck
with ``spec.triggers.cloudTrail`` (the ids and ARNs of its last plan's prior state, ``managed.json``
in its report ConfigMap). Each DriftCheck it names gets the call in its changes annotation
(``api.driftcheck.CHANGES_ANNOTATION``), which wakes it; its controller runs the check (debounced)
and names the caller in the report. A redelivered event finds its entry there and changes nothing.
Read-only and failed calls, and calls naming nothing managed, are passed over (the message is
deleted); the API server unavailable leaves the message for the next receive.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from fnmatch import fnmatchcase
from typing import Any, Callable

from .. import metrics
from ..api import DRIFTCHECK
from ..api.common import now as utcnow
from ..api.driftcheck import CHANGES_ANNOTATION, MAX_CHANGES
from ..intake import Outcome
from ..ports import DriftCheckStore
from ..ports.cloudtrail import TrailEvent
from ..ports.objects import ObjectRef
from ..runbooks import trail_changes
from .envelope import AwsEvent

log = logging.getLogger(__name__)

CLOUDTRAIL_CALL = "AWS API Call via CloudTrail"


class TrailTrigger:
    """Routes CloudTrail calls to DriftChecks through ``store`` (the API server); ``namespaces`` are
    the globs the operator watches (empty: all)."""

    def __init__(self, store: DriftCheckStore, namespaces: tuple[str, ...] = (),
                 clock: Callable[[], dt.datetime] = utcnow):
        self.store, self.namespaces, self.clock = store, namespaces, clock
        self._managed: dict[tuple[str, str, str], list[trail_changes.ManagedResource]] = {}

    async def take(self, event: AwsEvent) -> tuple[str, str]:
        """(outcome, note) for one CloudTrail event: ``updated`` when a DriftCheck got the call,
        ``duplicate`` when every one had it already, ``ignored`` when none is concerned. Raises
        ``errors.KubeError`` when the API server cannot be read or written (the message stays)."""
        call = TrailEvent.from_record(event.detail)
        if not trail_changes.mutating(call):
            return Outcome.IGNORED, f"{call.event_name} changed nothing (read-only, failed or a sign-in)"
        checks = await self._driftchecks()
        recorded, duplicates = [], []
        for check in checks:
            meta = check.get("metadata") or {}
            ns, name = meta.get("namespace", ""), meta.get("name", "")
            if not ((check.get("spec") or {}).get("triggers") or {}).get("cloudTrail"):
                continue
            if self.namespaces and not any(fnmatchcase(ns, g) for g in self.namespaces):
                continue
            managed = await self._managed_of(ns, name, check)
            matches = trail_changes.changed_resources([call], managed)
            if not matches:
                continue
            entry = trail_changes.change_record(call, [m.address for m in matches], self.clock())
            annotation = trail_changes.with_change((meta.get("annotations") or {}).get(CHANGES_ANNOTATION), entry,
                                                   MAX_CHANGES)
            if annotation is None:
                duplicates.append(f"{ns}/{name}")
                metrics.DRIFT_TRIGGERS.labels("duplicate").inc()
                continue
            ref = ObjectRef(DRIFTCHECK.plural, ns, name, meta.get("uid", ""), DRIFTCHECK.kind)
            await asyncio.to_thread(self.store.annotate, ref, {CHANGES_ANNOTATION: annotation})
            metrics.DRIFT_TRIGGERS.labels("recorded").inc()
            recorded.append(f"{ns}/{name} ({', '.join(m.address for m in matches)})")
            log.info("CloudTrail %s by %s (event %s) changed %s: DriftCheck %s/%s runs", call.event_name,
                     call.principal, call.event_id, ", ".join(m.address for m in matches), ns, name)
        if recorded:
            return Outcome.UPDATED, f"{call.event_name} by {call.principal} changed {'; '.join(recorded)}"
        if duplicates:
            return Outcome.DUPLICATE, f"{call.event_name} ({call.event_id}) is recorded on {', '.join(duplicates)}"
        return Outcome.IGNORED, f"{call.event_name} names no resource a DriftCheck with triggers.cloudTrail manages"

    async def _driftchecks(self) -> list[dict[str, Any]]:
        """Across namespaces, or namespace by namespace when the operator watches a fixed list (the
        chart then grants Roles in those namespaces only, no cluster-wide list)."""
        if self.namespaces and not any(c in g for g in self.namespaces for c in "*?["):
            found: list[dict[str, Any]] = []
            for namespace in self.namespaces:
                found += await asyncio.to_thread(self.store.list_objects, DRIFTCHECK.plural, namespace)
            return found
        return await asyncio.to_thread(self.store.list_objects, DRIFTCHECK.plural)

    async def _managed_of(self, namespace: str, name: str, check: dict[str, Any]) -> list[trail_changes.ManagedResource]:
        report = ((check.get("status") or {}).get("reportRef") or {}).get("name")
        if not report:
            return []  # no successful run yet: nothing known to be managed
        key = (namespace, name, report)
        if key not in self._managed:
            data = await asyncio.to_thread(self.store.config_map_data, namespace, report) or {}
            self._managed = {k: v for k, v in self._managed.items() if k[:2] != key[:2]}  # one report per check
            self._managed[key] = trail_changes.managed_from_json(data.get(trail_changes.MANAGED_KEY))
        return self._managed[key]

