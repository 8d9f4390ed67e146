"""The one Prometheus registry of the operator and every metric it exposes (DESIGN.md §6).

Names carry the ``opex_`` prefix and base units (seconds); labels are bounded: kinds, phases,
severities, types, outcomes, actions, environments. Never an object's name or free text: what
one object is doing is in its status. prometheus-client appends ``_total`` to counters.
docs/metrics.md lists every metric with its labels and meaning; the alert rules and the
dashboard (charts/opex-operator/files/) are built on these names.
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Callable, Iterable

from prometheus_client import (CollectorRegistry, Counter, Gauge, GCCollector, Histogram, PlatformCollector,
                               ProcessCollector, disable_created_metrics, start_http_server)
from prometheus_client.core import GaugeMetricFamily

from . import __version__

disable_created_metrics()  # *_created series double every counter and histogram; no dashboard uses them
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# Minutes-long runbook work and sub-second reconciles share these buckets.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# Time to assess, MTTA and MTTR: seconds to hours.
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

AWS_API_CALLS = Counter("opex_aws_api_calls", "AWS API requests (each attempt, retries included) by service, "
                        "operation and outcome (success, denied, throttled, client_error, server_error, "
                        "network_error).",
                        ["service", "operation", "outcome"], registry=REGISTRY)

# Incidents (DESIGN.md §6). Gauges are recomputed from the operator's view of every Incident.
INCIDENTS = Gauge("opex_incidents", "Incidents by phase, severity and type.", ["phase", "severity", "type"],
                  registry=REGISTRY)
TIME_TO_ASSESS = Histogram("opex_incident_time_to_assess_seconds", "Detection to the end of the initial assessment "
                           "(the operator's speed; MTTA is opex_incident_time_to_acknowledge_seconds).",
                           ["type", "severity"], buckets=INCIDENT_BUCKETS, registry=REGISTRY)
TIME_TO_ACKNOWLEDGE = Histogram("opex_incident_time_to_acknowledge_seconds", "Detection to acknowledgement (MTTA): "
                                "how fast a person took the Incident on.", ["type", "severity"],
                                buckets=INCIDENT_BUCKETS, registry=REGISTRY)
TIME_TO_RESOLVE = Histogram("opex_incident_time_to_resolve_seconds", "Detection to verified resolution (MTTR).",
                            ["type", "severity"], buckets=INCIDENT_BUCKETS, registry=REGISTRY)
ASSESSMENT_AWS_CALLS = Histogram("opex_incident_assessment_aws_calls", "AWS calls one initial assessment made "
                                 "(reads shared with other Incidents not counted).", ["type"],
                                 buckets=(0, 5, 10, 15, 20, 30, 50, 100), registry=REGISTRY)
RUNBOOK_ACTIONS = Counter("opex_runbook_actions", "Runbook steps by action and outcome "
                          "(succeeded, failed, denied, dry_run).", ["action", "outcome"], registry=REGISTRY)
ESCALATIONS = Counter("opex_escalations", "Escalations by level.", ["level"], registry=REGISTRY)
NOTIFICATIONS = Counter("opex_notifications", "Notifications by channel (sns, webhook, pagerduty, slack) and outcome.",
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
TERRAFORM_DURATION = Histogram("opex_terraform_command_duration_seconds", "Wall time of one Terraform CLI "
                               "invocation by command (plan, apply, init, ...): how much of a DriftCheck run is "
                               "Terraform's own work.", ["command"], buckets=DURATION_BUCKETS, registry=REGISTRY)
DRIFT_RUNS = Counter("opex_driftcheck_runs", "DriftCheck runs by outcome (NoDrift, DriftDetected, PlanFailed, "
                     "LockHeld).", ["outcome"], registry=REGISTRY)
DRIFT_RUN_DURATION = Histogram("opex_driftcheck_run_duration_seconds", "Duration of one DriftCheck run "
                               "(fetch, init, plan, show).", ["outcome"], buckets=DURATION_BUCKETS, registry=REGISTRY)
DRIFT_ACTIONS = ("create", "update", "delete", "replace", "import", "read", "forget")
DRIFTCHECKS = PhaseGauge(Gauge("opex_driftchecks", "DriftChecks by the outcome of their last run (NoDrift, "
                               "DriftDetected, PlanFailed, LockHeld) and spec.environment.", ["result", "environment"],
                               registry=REGISTRY))
DRIFTED_RESOURCES = ObjectGauge(Gauge("opex_driftcheck_drifted_resources", "Resources that differ in the last run of "
                                      "every DriftCheck, by planned action (create, update, delete, replace, import, "
                                      "read, forget) and spec.environment.", ["action", "environment"],
                                      registry=REGISTRY))
OUT_OF_BAND_CHANGES = Counter("opex_driftcheck_out_of_band_changes", "CloudTrail calls by a principal that is not a "
                              "deployer on resources a DriftCheck found drifted, by spec.environment.", ["environment"],
                              registry=REGISTRY)
DRIFT_TRIGGERS = Counter("opex_driftcheck_cloudtrail_triggers", "CloudTrail calls the event intake matched to a "
                         "DriftCheck's managed resources, by outcome (recorded, duplicate).", ["outcome"],
                         registry=REGISTRY)
DRIFT_RESOLUTIONS = Counter("opex_driftcheck_resolutions", "Drift resolutions by strategy (Apply, RefreshOnly, "
                            "Import, ForceUnlock) and outcome (succeeded, failed, skipped, interrupted).", ["strategy", "outcome"],
                            registry=REGISTRY)
STATE_LOCKS_HELD = ObjectGauge(Gauge("opex_terraform_state_locks_held", "DriftChecks whose last run found the "
                                     "state lock held by another process.", registry=REGISTRY))


# -- times that pass with no event: reduced at scrape time ---------------------------------------

class _ObjectTimes:
    """A gauge family computed at each scrape from one time per object (objects keyed by uid).

    Controllers record a time when they look at an object (a deadline, a start); what the
    series say depends on *now*, so an alert fires when nothing happens, e.g. while the
    operator never gets round to an Incident. ``label_sets`` are reported (as 0) even before
    any object has them, so a rule over them is never "no data". Thread-safe: the scrape runs
    on the metrics server's thread.
    """

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...],
                 label_sets: Iterable[tuple[str, ...]] = (), registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.time):
        self.name, self.documentation, self.labelnames, self.clock = name, documentation, labelnames, clock
        self._known = set(label_sets)
        self._times: dict[str, tuple[tuple[str, ...], float]] = {}
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def track(self, uid: str, labels: tuple[str, ...], at: dt.datetime | None) -> None:
        """Record ``at`` for the object (None: it no longer counts)."""
        with self._lock:
            if at is None:
                self._times.pop(uid, None)
                return
            self._known.add(labels)
            self._times[uid] = (labels, at.timestamp())

    def forget(self, uid: str) -> None:
        self.track(uid, (), None)

    def _value(self, times: list[float], now: float) -> float:
        raise NotImplementedError

    def describe(self):
        return [GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self):
        now = self.clock()
        with self._lock:
            grouped: dict[tuple[str, ...], list[float]] = {labels: [] for labels in self._known}
            for labels, at in self._times.values():
                grouped[labels].append(at)
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, times in sorted(grouped.items()):
            family.add_metric(labels, self._value(times, now))
        yield family


class OverdueGauge(_ObjectTimes):
    """How many objects are past the deadline recorded for them (``track(uid, labels, deadline)``)."""

    def _value(self, times: list[float], now: float) -> float:
        return float(sum(1 for deadline in times if deadline <= now))


class UntilGauge(_ObjectTimes):
    """1 while any object's recorded time (``track(uid, labels, until)``) is still ahead, else 0."""

    def _value(self, times: list[float], now: float) -> float:
        return 1.0 if any(until > now for until in times) else 0.0


class OldestGauge(_ObjectTimes):
    """Seconds since the oldest start recorded (``track(uid, labels, since)``); 0 when there is none."""

    def _value(self, times: list[float], now: float) -> float:
        return max((now - since for since in times), default=0.0)


SEVERITIES = (("critical",), ("high",), ("medium",), ("low",))
INCIDENTS_UNASSESSED = OldestGauge(
    "opex_incident_oldest_unassessed_seconds", "Seconds since detection of the oldest open Incident of this severity "
    "whose initial assessment has not finished (0 when none waits).", ("severity",), SEVERITIES, REGISTRY)
INCIDENTS_UNACKNOWLEDGED = OldestGauge(
    "opex_incident_oldest_unacknowledged_seconds", "Seconds since detection of the oldest open Incident of this "
    "severity that nobody has acknowledged (0 when none waits).", ("severity",), SEVERITIES, REGISTRY)
INCIDENTS_PAST_ESCALATION = OverdueGauge(
    "opex_incidents_past_escalation_window", "Open (not Resolved or Closed) Incidents past their escalation window: "
    "the last level of their escalation matrix is due and they are still unresolved.", ("severity",), SEVERITIES,
    REGISTRY)
DRIFTCHECKS_OVERDUE = OverdueGauge(
    "opex_driftchecks_overdue", "DriftChecks (not suspended) that have not run within two schedule periods, by "
    "spec.environment.", ("environment",), (), REGISTRY)

# -- guard rails of automation: the circuit breaker -------------------------------------------------
AUTOMATED_CHANGES = Counter("opex_automated_changes", "Changes the circuit breaker admitted to run without a "
                            "person's approval (Auto), each counted once (limits.automatedChangesPerHour).",
                            registry=REGISTRY)
CIRCUIT_OPEN = UntilGauge(
    "opex_circuit_breaker_open", "1 while the namespace's circuit breaker holds automated changes (its limit of "
    "automated changes per hour is reached; Auto waits for a person), else 0, by the namespace of the held objects "
    "(resource_namespace: a scrape through a ServiceMonitor sets namespace to the operator's own).",
    ("resource_namespace",), (), REGISTRY)

# -- the Alertmanager intake and the on-call receivers ----------------------------------------------
ALERT_REQUESTS = Counter("opex_alert_intake_requests", "Webhook requests to the alert intake by HTTP status code "
                         "(200, 400, 401, 413, 422, 500, 503).", ["code"], registry=REGISTRY)
ALERTS_RECEIVED = Counter("opex_alert_intake_alerts", "Alerts received by status (firing, resolved) and what became "
                          "of them (created, updated, ignored, refused).", ["status", "outcome"], registry=REGISTRY)
RECEIVER_REQUESTS = Counter("opex_receiver_requests", "Requests to the on-call receivers by receiver (pagerduty, "
                            "slack) and HTTP status code (200, 400, 401, 413, 500, 503).", ["receiver", "code"],
                            registry=REGISTRY)
RECEIVER_ACTIONS = Counter("opex_receiver_actions", "What the on-call receivers did by receiver, action (acknowledge, "
                           "approve) and outcome (recorded, unchanged, refused, ignored).",
                           ["receiver", "action", "outcome"], registry=REGISTRY)
ALERTS_TRUNCATED = Counter("opex_alert_intake_truncated_alerts", "Alerts Alertmanager left out of notifications "
                           "(truncatedAlerts: its max_alerts was reached); they opened no Incident.", registry=REGISTRY)

# -- the EventBridge intake (events/) -----------------------------------------------------------------
EVENT_MESSAGES = Counter("opex_event_intake_messages", "SQS messages the event intake received, by what became of "
                         "them: deleted (every event written, found written already or passed over) or kept (left "
                         "for a later receive, or for the dead-letter queue).", ["outcome"], registry=REGISTRY)
EVENTS = Counter("opex_event_intake_events", "AWS events received, by source (aws.codepipeline, aws.codebuild, "
                 "aws.cloudwatch, aws.guardduty, other) and outcome (created: an Incident opened; updated; duplicate: "
                 "a redelivery its Incident holds already; ignored; refused; deferred: tried again later).",
                 ["source", "outcome"], registry=REGISTRY)
EVENTS_REFUSED = Counter("opex_event_intake_refused", "Events that can never open an Incident as the rules stand, by "
                         "reason (not_json, not_an_event, unknown_detail_type, bad_detail, namespace, no_incident_type, "
                         "no_target, invalid_spec, api_refused); their messages go to the dead-letter queue.",
                         ["reason"], registry=REGISTRY)
EVENT_QUEUE_OLDEST = Gauge("opex_event_intake_oldest_message_age_seconds", "Age of the oldest message in the last "
                           "batch received from each queue (0 when the batch was empty).", ["queue"],
                           registry=REGISTRY)
EVENT_QUEUE_ERRORS = Counter("opex_event_intake_queue_errors", "Failed SQS calls by queue and operation "
                             "(ReceiveMessage, DeleteMessageBatch, GetQueueAttributes).", ["queue", "operation"],
                             registry=REGISTRY)


def _initialize() -> None:
    """Known label sets start at 0 (Prometheus' "avoid missing metrics"): the first event then shows
    as an increase (a series born at 1 does not), and MTTA/MTTR quantiles see the first incident."""
    from .api.driftcheck import Outcome
    from .api.incident import IncidentType, Severity

    for kind in ("Incident", "DriftCheck", "Rollback"):
        RECONCILE_DURATION.labels(kind)
        for result in ("success", "error"):
            RECONCILES.labels(kind, result)
    for type_ in IncidentType:
        for severity in Severity:
            TIME_TO_ASSESS.labels(type_.value, severity.value)
            TIME_TO_ACKNOWLEDGE.labels(type_.value, severity.value)
            TIME_TO_RESOLVE.labels(type_.value, severity.value)
    for level in ("1", "2", "3"):
        ESCALATIONS.labels(level)
    for target_type in ("lambda", "static_site"):
        ROLLBACK_DURATION.labels(target_type)
        for outcome in ("succeeded", "failed", "aborted", "dry_run"):
            ROLLBACKS.labels(target_type, outcome)
    for result in Outcome:
        DRIFT_RUNS.labels(result.value)
        DRIFT_RUN_DURATION.labels(result.value)
    for status in ("firing", "resolved"):
        for outcome in ("created", "updated", "ignored", "refused"):
            ALERTS_RECEIVED.labels(status, outcome)
    for outcome in ("deleted", "kept"):
        EVENT_MESSAGES.labels(outcome)
    for source in ("aws.codepipeline", "aws.codebuild", "aws.cloudwatch", "aws.guardduty"):
        for outcome in ("created", "updated", "duplicate", "refused"):
            EVENTS.labels(source, outcome)


_initialize()
