"""The one Prometheus registry of the operator and every metric it exposes (DESIGN.md §6).

Names carry the ``opex_`` prefix and base units (seconds); labels are bounded: kinds, phases,
severities, types, outcomes, actions. Never an incident name or free text. prometheus-client
appends ``_total`` to counters.
"""
from __future__ import annotations

from prometheus_client import (CollectorRegistry, Counter, Gauge, GCCollector, Histogram, PlatformCollector,
                               ProcessCollector, disable_created_metrics, start_http_server)

from . import __version__

disable_created_metrics()  # *_created series double every counter and histogram; no dashboard uses them
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
WORKQUEUE_ADDS = Counter("opex_workqueue_adds", "Keys added to the work queue by watch events, by kind.", ["kind"],
                         registry=REGISTRY)
WORKQUEUE_DEPTH = Gauge("opex_workqueue_depth", "Keys ready in the work queue, waiting for a worker.",
                        registry=REGISTRY)
WORKQUEUE_WAIT = Histogram("opex_workqueue_queue_duration_seconds", "Time a key waited in the work queue before a "
                           "worker took it.", ["kind"], buckets=DURATION_BUCKETS, registry=REGISTRY)


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` for :data:`REGISTRY` on ``addr:port`` from a daemon thread."""
    start_http_server(port, addr=addr, registry=REGISTRY)

AWS_API_CALLS = Counter("opex_aws_api_calls", "AWS API calls by service, operation and outcome "
                        "(success, denied, throttled, client_error, server_error, network_error).",
                        ["service", "operation", "outcome"], registry=REGISTRY)

# Incidents (DESIGN.md §6). Gauges are recomputed from the operator's view of every Incident.
INCIDENTS = Gauge("opex_incidents", "Incidents by phase, severity and type.", ["phase", "severity", "type"],
                  registry=REGISTRY)
TIME_TO_ASSESS = Histogram("opex_incident_time_to_assess_seconds", "Detection to completed assessment (MTTA).",
                           ["type", "severity"], buckets=INCIDENT_BUCKETS, registry=REGISTRY)
TIME_TO_RESOLVE = Histogram("opex_incident_time_to_resolve_seconds", "Detection to verified resolution (MTTR).",
                            ["type", "severity"], buckets=INCIDENT_BUCKETS, registry=REGISTRY)
ASSESSMENT_AWS_CALLS = Histogram("opex_incident_assessment_aws_calls", "AWS calls one initial assessment made "
                                 "(reads shared with other Incidents not counted).", ["type"],
                                 buckets=(0, 5, 10, 15, 20, 30, 50, 100), registry=REGISTRY)
RUNBOOK_ACTIONS = Counter("opex_runbook_actions", "Runbook steps by action and outcome "
                          "(succeeded, failed, denied, dry_run, skipped).", ["action", "outcome"], registry=REGISTRY)
ESCALATIONS = Counter("opex_escalations", "Escalations by level.", ["level"], registry=REGISTRY)
NOTIFICATIONS = Counter("opex_notifications", "Notifications by channel (sns, webhook) and outcome.",
                        ["channel", "outcome"], registry=REGISTRY)

# Rollbacks.
ROLLBACKS = Counter("opex_rollbacks", "Finished rollbacks by target type (lambda, static_site) and outcome "
                    "(succeeded, failed, aborted, dry_run).", ["target_type", "outcome"], registry=REGISTRY)
ROLLBACK_DURATION = Histogram("opex_rollback_duration_seconds", "Start to verified end of a rollback.",
                              ["target_type"], buckets=DURATION_BUCKETS, registry=REGISTRY)
ROLLBACK_ABORTS = Counter("opex_rollback_aborts", "Aborted rollbacks by reason.", ["reason"], registry=REGISTRY)


class ObjectGauge:
    """A labelled gauge that is the sum of what each object contributes (objects keyed by uid).

    Per-object state lives in each object's status; the series here stay bounded by their
    labels, whatever the number of objects. ``contribute`` replaces an object's contribution,
    given as {label values: value}; ``forget`` removes it (the object is gone).
    """

    def __init__(self, gauge: Gauge):
        self.gauge = gauge
        self._parts: dict[str, dict[tuple[str, ...], float]] = {}

    def contribute(self, uid: str, part: dict[tuple[str, ...], float]) -> None:
        old = self._parts.get(uid, {})
        if old == part:
            return
        for labels, value in old.items():
            self._child(labels).dec(value)
        for labels, value in part.items():
            self._child(labels).inc(value)
        self._parts[uid] = part

    def _child(self, labels: tuple[str, ...]) -> Gauge:
        return self.gauge.labels(*labels) if labels else self.gauge

    def forget(self, uid: str) -> None:
        self.contribute(uid, {})
        self._parts.pop(uid, None)


class PhaseGauge(ObjectGauge):
    """Counts objects per label set (each object counts once, under its current labels)."""

    def set(self, uid: str, *labels: str) -> None:
        self.contribute(uid, {labels: 1})


INCIDENT_PHASES = PhaseGauge(INCIDENTS)

# Terraform and DriftCheck.
TERRAFORM_RUNS = Counter("opex_terraform_runs", "Terraform CLI invocations by command and outcome "
                         "(success, error, timeout).", ["command", "outcome"], registry=REGISTRY)
DRIFT_RUNS = Counter("opex_driftcheck_runs", "DriftCheck runs by outcome (NoDrift, DriftDetected, PlanFailed, "
                     "LockHeld).", ["outcome"], registry=REGISTRY)
DRIFT_RUN_DURATION = Histogram("opex_driftcheck_run_duration_seconds", "Duration of one DriftCheck run "
                               "(fetch, init, plan, show).", ["outcome"], buckets=DURATION_BUCKETS, registry=REGISTRY)
DRIFT_ACTIONS = ("create", "update", "delete", "replace", "import", "read", "forget")
DRIFTCHECKS = PhaseGauge(Gauge("opex_driftchecks", "DriftChecks by the outcome of their last run (NoDrift, "
                               "DriftDetected, PlanFailed, LockHeld).", ["result"], registry=REGISTRY))
DRIFTED_RESOURCES = ObjectGauge(Gauge("opex_driftcheck_drifted_resources", "Resources that differ in the last run of "
                                      "every DriftCheck, by planned action (create, update, delete, replace, import, "
                                      "read, forget).", ["action"], registry=REGISTRY))
DRIFT_REMEDIATIONS = Counter("opex_driftcheck_remediations", "Drift resolutions by strategy and result.",
                             ["strategy", "result"], registry=REGISTRY)
STATE_LOCKS_HELD = ObjectGauge(Gauge("opex_terraform_state_locks_held", "DriftChecks whose last run found the "
                                     "state lock held by another process.", registry=REGISTRY))
