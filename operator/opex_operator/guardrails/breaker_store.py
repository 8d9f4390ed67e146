"""Where the circuit breaker's windows live: one Lease per watched namespace, in the operator's own
namespace, written with optimistic concurrency.

A Lease (coordination.k8s.io/v1) is the Kubernetes object for small coordination state with
conditional writes, and the operator may already create, get and update Leases in its own
namespace (leader election: ``rbac.OWN_NAMESPACE``), where tenants of the watched namespaces
cannot reset their own breaker. ``opex-breaker-<namespace>`` holds that namespace's
:class:`~.breaker.Window` as JSON in the annotation ``opex.dev/automated-changes`` and the label
``opex.dev/circuit-breaker=<namespace>``. Every decision reads the Lease, decides
(:func:`.breaker.admit`) and writes it back only if nobody wrote it since (its resourceVersion);
on a conflict (another replica, a shard, ``opex breaker reset``) it reads again and decides again,
so two changes admitted at once can never both take the last place. Kept in the API server,
the window survives restarts and failovers.
"""
from __future__ import annotations

import datetime as dt
from typing import Callable, Protocol

from .. import metrics
from ..api.common import now as utc_now
from ..errors import KubeError
from ..kube import StoredLease
from .breaker import Admission, ChangeLimit, Verdict, Window, admit, reset

PREFIX = "opex-breaker-"
ANNOTATION = "opex.dev/automated-changes"
LABEL = "opex.dev/circuit-breaker"
MAX_ATTEMPTS = 8   # conditional writes lost to concurrent writers before giving up (KubeError conflict)
_FOREVER = dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)


class LeasePort(Protocol):
    """Leases read and written with optimistic concurrency (``kube.Leases``). Raises KubeError
    (``conflict``: exists already, or changed since it was read)."""

    def lease(self, namespace: str, name: str) -> StoredLease | None: ...
    def create_lease(self, namespace: str, name: str, labels: dict[str, str],
                     annotations: dict[str, str]) -> StoredLease: ...
    def update_lease(self, lease: StoredLease, annotations: dict[str, str]) -> StoredLease: ...
    def leases(self, selector: str, namespace: str | None = None) -> list[StoredLease]: ...


def lease_name(namespace: str) -> str:
    """The Lease holding ``namespace``'s window (namespace names are DNS labels: it always fits)."""
    return f"{PREFIX}{namespace}"


class BreakerStore:
    """The circuit breaker of every namespace, kept in Leases in ``home`` (the operator's namespace).

    Methods block (call them through ``asyncio.to_thread``) and raise KubeError when the API
    server refuses, or after MAX_ATTEMPTS writes lost to concurrent writers.
    """

    def __init__(self, leases: LeasePort, home: str, clock: Callable[[], dt.datetime] = utc_now):
        self.leases, self.home, self.clock = leases, home, clock

    def window(self, namespace: str) -> Window:
        """``namespace``'s window as persisted (empty when nothing was recorded). Raises ValueError
        when the record is unreadable."""
        lease = self.leases.lease(self.home, lease_name(namespace))
        return Window.from_json(lease.annotations.get(ANNOTATION) if lease else None)

    def admit(self, namespace: str, change_id: str, environment: str | None, limits: list[ChangeLimit]) -> Admission:
        """May the automated change ``change_id`` run now (see :func:`.breaker.admit`)? When it may,
        it is recorded before this returns, so the caller runs it only after it counts.

        No limit: admitted without touching the API server. An unreadable record holds the change
        (fail closed) until ``opex breaker reset`` rewrites it.
        """
        if not limits:
            return Admission(Verdict.ADMITTED, Window(), f"automated change {change_id} admitted (no limit)")
        name, conflict = lease_name(namespace), None
        for _ in range(MAX_ATTEMPTS):
            now = self.clock()
            lease = self.leases.lease(self.home, name)
            try:
                window = Window.from_json(lease.annotations.get(ANNOTATION) if lease else None)
            except ValueError as err:
                decision = Admission(Verdict.HELD, Window(), f"circuit open: {err} (Lease {self.home}/{name}); "
                                     f"`opex breaker reset {namespace}` starts a new count")
                self._observe(namespace, decision)
                return decision
            decision = admit(window, namespace, change_id, environment, limits, now)
            if decision.verdict != Verdict.ADMITTED:
                self._observe(namespace, decision)
                return decision
            try:
                self._write(namespace, lease, decision.window)
            except KubeError as err:
                if not err.conflict:
                    raise
                conflict = err
                continue
            metrics.AUTOMATED_CHANGES.inc()
            self._observe(namespace, decision)
            return decision
        raise conflict  # type: ignore[misc]

    def reset(self, namespace: str, by: str) -> Window | None:
        """Forget ``namespace``'s count (``opex breaker reset``): Auto may act again at once. Returns
        the window as it was (None when nothing had been recorded, so there was nothing to reset)."""
        name, conflict = lease_name(namespace), None
        for _ in range(MAX_ATTEMPTS):
            lease = self.leases.lease(self.home, name)
            if lease is None:
                return None
            try:
                before = Window.from_json(lease.annotations.get(ANNOTATION))
            except ValueError:
                before = Window()
            try:
                self._write(namespace, lease, reset(before, by, self.clock()))
            except KubeError as err:
                if not err.conflict:
                    raise
                conflict = err
                continue
            metrics.CIRCUIT_OPEN.track(namespace, (namespace,), None)
            return before
        raise conflict  # type: ignore[misc]

    def _write(self, namespace: str, lease: StoredLease | None, window: Window) -> None:
        annotations = {ANNOTATION: window.to_json()}
        if lease is None:
            self.leases.create_lease(self.home, lease_name(namespace), {LABEL: namespace}, annotations)
        else:
            self.leases.update_lease(lease, annotations)

    @staticmethod
    def _observe(namespace: str, decision: Admission) -> None:
        """``opex_circuit_breaker_open``: 1 while a change of ``namespace`` is held, until the hour frees a place."""
        held = decision.verdict == Verdict.HELD
        metrics.CIRCUIT_OPEN.track(namespace, (namespace,), (decision.reopens_at or _FOREVER) if held else None)
