"""enable-performance-insights-<db>: the runbook's ``modify-db-instance
--enable-performance-insights --performance-insights-retention-period 7`` (``rds:ModifyDBInstance``).
Holds while Performance Insights is on with the retention asked."""
from __future__ import annotations

import asyncio

from ..api.incident import Step
from ..ports.performance import PERFORMANCE_INSIGHTS_RETENTION_DAYS, PerformanceInsightsParams, RdsConfig  # noqa: F401
from .base import Held, Outcome, StepAction, StepContext, register

MODIFY_DB_INSTANCE = "rds:ModifyDBInstance"
class EnablePerformanceInsights(StepAction[PerformanceInsightsParams]):
    """ModifyDBInstance turning Performance Insights on, unless it is on with that retention."""

    names = (MODIFY_DB_INSTANCE,)
    params = PerformanceInsightsParams

    async def execute(self, ctx: StepContext, p: PerformanceInsightsParams) -> Outcome:
        change = await asyncio.to_thread(ctx.aws.perf_actions(*ctx.region_role()).enable_performance_insights, p)
        return Outcome(done=True, outputs=f"{p.db_instance_identifier}: {change.summary}")

    def observe(self, ctx: StepContext, p: PerformanceInsightsParams) -> RdsConfig:
        config, _ = ctx.aws.perf_reader(*ctx.region_role()).rds_config(p.db_instance_identifier)
        return config

    def holds(self, step: Step, p: PerformanceInsightsParams, seen: RdsConfig) -> list[Held]:
        kept = seen.performance_insights_retention_days or 0
        if seen.performance_insights and kept >= p.retention_days:
            return [Held(True, f"{seen.instance_id} has Performance Insights on ({kept} days)")]
        return [Held(None, f"{seen.instance_id} does not show Performance Insights on ({p.retention_days} days) yet")]


register(EnablePerformanceInsights())
