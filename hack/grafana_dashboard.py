"""The operator's Grafana dashboard, built as code with grafana-foundation-sdk (typed builders).

``python hack/grafana_dashboard.py`` (``make dashboard``) writes
``charts/opex-operator/files/grafana-dashboard.json``, which the chart ships in a ConfigMap for
Grafana's sidecar. The JSON is committed; a unit test fails when it differs from what this file
builds, and an e2e test runs every panel's query against the real Prometheus after a scenario
(no panel on a metric that does not exist).

Every query is built on docs/metrics.md. No metric carries an object's name, so "drift per
check" is drift per environment and planned action; the checks themselves are in
``kubectl get driftchecks -A`` (the text panel says so).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, text, timeseries
from grafana_foundation_sdk.builders.common import StackingConfig
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import StackingMode
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUTPUT = Path(__file__).resolve().parent.parent / "charts" / "opex-operator" / "files" / "grafana-dashboard.json"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
RANGE = "$__range"


def _query(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)


def series(title: str, queries: list[tuple[str, str]], unit: str = "short", stacked: bool = False,
           description: str = "", width: int = 8) -> timeseries.Panel:
    """A time series panel of ``queries`` ((PromQL, legend) pairs)."""
    panel = (timeseries.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
             .height(8).span(width).fill_opacity(20 if stacked else 0))
    if stacked:
        panel = panel.stacking(StackingConfig().mode(StackingMode.NORMAL))
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_query(expr, legend, chr(ord("A") + i)))
    return panel


def figure(title: str, queries: list[tuple[str, str]], unit: str = "short", description: str = "",
           width: int = 4) -> stat.Panel:
    """A stat panel: the current value of each query (instant queries)."""
    panel = stat.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE).height(4).span(width)
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_query(expr, legend, chr(ord("A") + i)).instant())
    return panel


def quantiles(histogram: str, by: str = "", window: str = RATE) -> list[tuple[str, str]]:
    """p50/p90/p99 of ``histogram`` (its ``_bucket`` series) over ``window``, optionally split ``by`` a label."""
    group = f"le, {by}" if by else "le"
    legend = f"{{{{{by}}}}} " if by else ""
    return [(f"histogram_quantile({q}, sum by ({group}) (increase({histogram}_bucket[{window}])))", f"{legend}p{p}")
            for q, p in ((0.5, 50), (0.9, 90), (0.99, 99))]


def build() -> dashboard.Dashboard:
    """The dashboard (see the module docstring)."""
    up = 'up{job=~".*opex-operator.*"}'
    return (
        dashboard.Dashboard("opex-operator")
        .uid("opex-operator")
        .description("Incidents, drift, rollbacks, AWS and Terraform calls and reconciles of opex-operator "
                     "(metrics: docs/metrics.md).")
        .tags(["opex", "operator", "kubernetes", "aws"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
        .with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_row(dashboard.Row("Operator"))
        .with_panel(figure("Replicas up", [(f"sum({up})", "up")], width=3))
        .with_panel(figure("Open incidents", [('sum(opex_incidents{phase!~"Resolved|Closed"})', "open")], width=3))
        .with_panel(figure("Oldest unassessed critical incident", [(
            'max(opex_incident_oldest_unassessed_seconds{severity="critical"})', "seconds")], unit="s", width=4,
            description="Seconds since detection; OpexCriticalIncidentNotAssessed fires above 60."))
        .with_panel(figure("Oldest unacknowledged critical incident", [(
            'max(opex_incident_oldest_unacknowledged_seconds{severity="critical"})', "seconds")], unit="s", width=4,
            description="Seconds since detection of the oldest critical Incident nobody acknowledged; "
                        "OpexCriticalIncidentUnacknowledged fires above 900."))
        .with_panel(figure("Incidents past escalation window", [("sum(opex_incidents_past_escalation_window)",
                                                                 "incidents")], width=4))
        .with_panel(figure("Production DriftChecks with drift", [(
            'sum(opex_driftchecks{result="DriftDetected", environment=~"(?i)production|prod|prd|live"}) '
            'or vector(0)', "drifted")], width=3))
        .with_panel(figure("Overdue DriftChecks", [("sum(opex_driftchecks_overdue) or vector(0)", "overdue")],
                           width=3))
        .with_row(dashboard.Row("Incidents"))
        .with_panel(series("Incidents by phase", [("sum by (phase) (opex_incidents)", "{{phase}}")], stacked=True))
        .with_panel(series("Incidents by severity", [("sum by (severity) (opex_incidents)", "{{severity}}")],
                           stacked=True))
        .with_panel(series("Incidents by type", [("sum by (type) (opex_incidents)", "{{type}}")], stacked=True))
        .with_panel(series("Time to assess over the range", quantiles("opex_incident_time_to_assess_seconds",
                                                                      window=RANGE), unit="s", width=6,
                           description="Detection to the end of the operator's initial assessment (its own speed, "
                                       "not MTTA), quantiles of the incidents assessed in the selected time range."))
        .with_panel(series("Time to acknowledge (MTTA) over the range",
                           quantiles("opex_incident_time_to_acknowledge_seconds", window=RANGE), unit="s", width=6,
                           description="Detection to acknowledgement (opex ack, PagerDuty, Slack): how fast a person "
                                       "took the incident on, quantiles of the incidents acknowledged in the "
                                       "selected time range."))
        .with_panel(series("Time to resolve (MTTR) over the range",
                           quantiles("opex_incident_time_to_resolve_seconds", window=RANGE), unit="s", width=6,
                           description="Detection to verified resolution, quantiles of the incidents resolved in the "
                                       "selected time range."))
        .with_panel(series("Escalations and runbook steps", [
            (f"sum by (level) (increase(opex_escalations_total[{RATE}]))", "level {{level}} pages"),
            (f"sum by (outcome) (increase(opex_runbook_actions_total[{RATE}]))", "steps {{outcome}}")], width=6))
        .with_row(dashboard.Row("Drift"))
        .with_panel(series("DriftChecks by last result and environment",
                           [("sum by (environment, result) (opex_driftchecks)", "{{environment}} {{result}}")],
                           stacked=True))
        .with_panel(series("Drifted resources by environment and planned action", [(
            "sum by (environment, action) (opex_driftcheck_drifted_resources)", "{{environment}} {{action}}")],
            stacked=True))
        .with_panel(series("DriftCheck runs and their duration", [
            (f"sum by (outcome) (increase(opex_driftcheck_runs_total[{RATE}]))", "{{outcome}} runs"),
            (f"histogram_quantile(0.9, sum by (le) (increase(opex_driftcheck_run_duration_seconds_bucket[{RATE}])))",
             "p90 seconds")]))
        .with_panel(text.Panel().title("Which DriftCheck").height(8).span(24).content(
            "No metric carries an object's name (docs/metrics.md): drift is shown per environment and "
            "planned action. Which check drifted, and the resources, are in `kubectl get driftchecks -A` "
            "(columns Last Result, Drifted) and `kubectl describe dc NAME`."))
        .with_row(dashboard.Row("Automation guard rails"))
        .with_panel(figure("Namespaces with the circuit breaker open", [(
            "count(max by (resource_namespace) (opex_circuit_breaker_open) > 0) or vector(0)", "namespaces")],
            width=8, description="Namespaces whose limit of automated changes per hour is reached: their Auto "
                                 "waits for a person (OpexCircuitBreakerOpen). `opex breaker status NAMESPACE` "
                                 "lists the changes counted."))
        .with_panel(series("Automated changes admitted", [(
            f"sum(increase(opex_automated_changes_total[{RATE}]))", "changes")], width=16,
            description="Changes made without a person's approval, as the circuit breaker counted them (only "
                        "namespaces with limits.automatedChangesPerHour)."))
        .with_row(dashboard.Row("Rollbacks"))
        .with_panel(series("Rollbacks by target type and outcome", [(
            f"sum by (target_type, outcome) (increase(opex_rollbacks_total[{RATE}]))", "{{target_type}} {{outcome}}")],
            width=12))
        .with_panel(series("Rollback duration", quantiles("opex_rollback_duration_seconds", "target_type"),
                           unit="s", width=12))
        .with_row(dashboard.Row("AWS and Terraform"))
        .with_panel(series("AWS API calls by service and outcome", [(
            f"sum by (service, outcome) (rate(opex_aws_api_calls_total[{RATE}]))", "{{service}} {{outcome}}")],
            unit="reqps", width=12))
        .with_panel(series("Terraform runs by command and outcome", [(
            f"sum by (command, outcome) (increase(opex_terraform_runs_total[{RATE}]))", "{{command}} {{outcome}}")],
            width=12))
        .with_row(dashboard.Row("Reconciles"))
        .with_panel(series("Reconcile latency", quantiles("opex_reconcile_duration_seconds", "kind"), unit="s"))
        .with_panel(series("Work queue: wait for a worker (p90) and keys waiting", [
            ("histogram_quantile(0.9, sum by (le, kind) (increase(opex_workqueue_queue_duration_seconds_bucket"
             f"[{RATE}])))", "{{kind}} p90 wait"),
            ("sum(opex_workqueue_depth)", "keys waiting")], unit="s"))
        .with_panel(series("Reconcile passes by result", [(
            f"sum by (kind, result) (rate(opex_reconcile_total[{RATE}]))", "{{kind}} {{result}}")], unit="ops"))
        .with_panel(series("Reconcile error ratio", [(
            f"(sum by (kind) (rate(opex_reconcile_errors_total[{RATE}])) or sum by (kind) "
            f"(rate(opex_reconcile_total[{RATE}])) * 0) / sum by (kind) (rate(opex_reconcile_total[{RATE}]))",
            "{{kind}}")], unit="percentunit", description="OpexReconcileErrorsRising fires above 10% for 10 minutes."))
        .with_row(dashboard.Row("Alert intake"))
        .with_panel(series("Alerts received by status and outcome", [(
            f"sum by (status, outcome) (increase(opex_alert_intake_alerts_total[{RATE}]))", "{{status}} {{outcome}}")],
            width=12))
        .with_panel(series("Intake replies by HTTP status", [(
            f"sum by (code) (increase(opex_alert_intake_requests_total[{RATE}]))", "{{code}}")], width=12))
    )


def render() -> str:
    """The dashboard's JSON, as committed (panel ids numbered in order: Grafana wants them unique)."""
    model = build().build()
    for number, panel in enumerate(model.panels or [], start=1):
        panel.id_val = number
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def queries(document: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query in a dashboard JSON document."""
    return [(panel.get("title", ""), target["expr"]) for panel in document.get("panels", [])
            for target in panel.get("targets") or [] if target.get("expr")]


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT.relative_to(Path.cwd()) if OUTPUT.is_relative_to(Path.cwd()) else OUTPUT}", file=sys.stderr)
