"""The performance assessment judged as one (pure; no I/O): the metrics, configurations and
endpoint probes become findings of the incident's Diagnosis, every cause they support joins the
deployment classifier's on one scale, and the changes those causes call for are planned.

Source: the runbook, "Performance Degradation", and its deployment section's API and database
checks ("For API Gateway Issues", "Database Connection Issues").
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ...api.incident import RootCause, RootCauseCategory as Cat
from ...api.performance import PerformanceRemediation, Thresholds
from ..diagnose import Diagnosis, classify
from ...ports.facts import Observations
from ...ports.performance import PerformanceFacts
from .plan import Plan, plan
from .metrics import Cause, MetricFinding, add_findings, diagnose, judge, root_cause as metrics_root_cause
from ..probes import add_database_finding, add_http_finding, database_cause


@dataclass
class Analysis:
    """The judged metrics, every cause best first (``Cause.score``), and the plan for them."""

    judged: list[MetricFinding]
    causes: list[Cause]
    plan: Plan


def analyse(facts: PerformanceFacts, thresholds: Thresholds, d: Diagnosis, wanted: PerformanceRemediation | None,
            memory_cap_mb: int | None) -> Analysis:
    """Findings into ``d`` (metrics, configurations, probes), the causes, and the gated changes.

    DatabaseConnections is judged against the database probe's ``max_connections`` when it
    connected; ``memory_cap_mb`` is the operator policy's cap on a Lambda's memory (None: none).
    """
    connected = facts.database if facts.database is not None and facts.database.ok else None
    judged = judge(facts, thresholds, connected.max_connections if connected else None)
    add_findings(d, facts, judged)
    if facts.http is not None:
        add_http_finding(d, facts.http)
    if facts.database is not None:
        add_database_finding(d, facts.database)
    causes = diagnose(facts, judged, thresholds)
    database = database_cause(facts.database, facts.security_groups, facts.operator_sources) if facts.database else None
    if database is not None:
        causes.append(database)
    causes.sort(key=lambda c: -c.score)
    return Analysis(judged, causes, plan(causes, facts, wanted, memory_cap_mb))


def root_cause(obs: Observations, d: Diagnosis, now: dt.datetime, analysis: Analysis | None) -> RootCause:
    """The best cause of the deployment classifier's and the analysis's together (``classify``).

    When none is found and metrics were judged, the summary says what the metrics showed: none
    crossed its threshold, or there were no datapoints.
    """
    cause = classify(obs, d, now, analysis.causes if analysis else ())
    if cause.category == Cat.UNKNOWN and analysis is not None and analysis.judged:
        return metrics_root_cause([], d, analysis.judged, now)
    return cause
