"""The performance playbook (the runbook's "Performance Degradation"): the initial assessment
without the CloudTrail error scan (unless a log group is named), the metrics and configurations
of every target (``metrics``, judged in ``assess``), and the tuning changes of ``plan``, each
verified by its action (a memory raise by the next whole period's Duration p99).
"""
from __future__ import annotations

from ...api.incident import IncidentType
from ..assessment import TrailErrors
from ..deployment.playbook import DeploymentPlaybook


class PerformancePlaybook(DeploymentPlaybook):
    """PerformanceDegradation: the deployment checks, plus metrics (the changes they call for are
    planned with the others by ``Playbook.assess``)."""

    types = (IncidentType.PERFORMANCE_DEGRADATION,)
    trail_errors = TrailErrors.NAMED
    metrics = True
