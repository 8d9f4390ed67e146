"""The one Prometheus registry of the operator and every metric it exposes (DESIGN.md §6).

Names carry the ``opex_`` prefix and base units (seconds); labels are bounded: kinds, phases,
severities, types, outcomes, actions. Never an incident name or free text. prometheus-client
appends ``_total`` to counters.
"""
from __future__ import annotations

from prometheus_client import (CollectorRegistry, Counter, Gauge, GCCollector, Histogram, PlatformCollector,
                               ProcessCollector, start_http_server)

from . import __version__

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# Minutes-long runbook work and sub-second reconciles share these buckets.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# MTTA / MTTR: seconds to hours.
INCIDENT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)

BUILD_INFO = Gauge("opex_build_info", "Operator build; the value is always 1.", ["version"], registry=REGISTRY)
BUILD_INFO.labels(version=__version__).set(1)

RECONCILES = Counter("opex_reconcile", "Reconcile passes by kind and result (success, error).",
                     ["kind", "result"], registry=REGISTRY)
RECONCILE_ERRORS = Counter("opex_reconcile_errors", "Reconcile passes that raised, by kind and error class.",
                           ["kind", "error"], registry=REGISTRY)
RECONCILE_DURATION = Histogram("opex_reconcile_duration_seconds", "Duration of one reconcile pass.",
                               ["kind"], buckets=DURATION_BUCKETS, registry=REGISTRY)


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` for :data:`REGISTRY` on ``addr:port`` from a daemon thread."""
    start_http_server(port, addr=addr, registry=REGISTRY)
