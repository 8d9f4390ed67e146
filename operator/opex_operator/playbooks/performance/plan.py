"""The changes the performance causes call for, planned as gated typed steps (pure; no I/O; how
each is verified is its action's: ``steps.lambda_configuration``, ``steps.rds_insights``,
``steps.api_stage``).

Source: the runbook, "Performance Degradation": "Increase memory allocation if needed"
(``update-function-configuration --memory-size 512``), "Enable Performance Insights if not
already enabled" (``--performance-insights-retention-period 7``), and the API Gateway section's
detailed monitoring and cache configuration (done as ``update-stage``; see
``steps.StageSettingsParams``).

=============================  ==================================  ==========================================
step id                        action (policy name)                planned when
=============================  ==================================  ==========================================
raise-lambda-memory-<fn>       lambda:UpdateFunctionConfiguration  the function is memory-bound or near its
                                                                   timeout, and below the memory cap
enable-performance-insights-   rds:ModifyDBInstance                the database's CPU or connections are high,
<db>                                                               or it is blind (Performance Insights off)
update-api-stage-<stage>       apigateway:UpdateStage              spec.remediation.performance.apiStage asks
                                                                   for caching or detailed metrics the stage
                                                                   lacks
=============================  ==================================  ==========================================
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...api.incident import RootCauseCategory as Cat, Step
from ...api.performance import DEFAULT_MEMORY_CAP_MB, LAMBDA_MAX_MB, PerformanceRemediation
from ...ports.performance import PerformanceFacts
from ...steps import Params, slug, step
from ...steps.api_stage import UPDATE_STAGE, StageSettingsParams
from ...steps.lambda_configuration import UPDATE_FUNCTION_CONFIGURATION, LambdaConfigurationParams
from ...steps.rds_insights import MODIFY_DB_INSTANCE, PerformanceInsightsParams
from .metrics import Cause, key
# The memory ladder "the next step up" climbs (MB); the runbook's example raises to 512.
MEMORY_STEPS = (128, 256, 512, 1024, 1536, 2048, 3008, 4096, 6144, 8192, LAMBDA_MAX_MB)


@dataclass
class PlannedChange:
    """A gated remediation step: stable ``id``, IAM-style ``action``, its typed ``params`` and a
    one-line ``summary`` of what it will do."""

    id: str
    action: str
    params: Params
    summary: str

    def step(self) -> Step:
        """The change as a new Pending step of the Incident."""
        return step(self.id, self.action, self.params, self.summary)


@dataclass
class Plan:
    changes: list[PlannedChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # why a wanted change was not planned


def next_memory_step(current_mb: int) -> int:
    """The first size of :data:`MEMORY_STEPS` above ``current_mb`` (10,240 MB at most)."""
    return next((s for s in MEMORY_STEPS if s > current_mb), LAMBDA_MAX_MB)


def memory_target(current_mb: int, wanted: PerformanceRemediation | None, policy_cap_mb: int | None) -> tuple[int, int]:
    """(target MB, cap MB): the spec's ``lambdaMemory.sizeMb`` or the next step up, capped by the
    lower of ``lambdaMemory.maxMb`` (spec, default 3,008) and the operator policy's cap."""
    memory = wanted.lambda_memory if wanted else None
    cap = min(memory.max_mb if memory else DEFAULT_MEMORY_CAP_MB, policy_cap_mb or LAMBDA_MAX_MB)
    target = memory.size_mb if memory and memory.size_mb else next_memory_step(current_mb)
    return min(target, cap), cap


def plan(causes: list[Cause], facts: PerformanceFacts, wanted: PerformanceRemediation | None,
         policy_cap_mb: int | None = None) -> Plan:
    """The gated changes the causes call for, in runbook order: raise a memory-bound or near-timeout
    function's memory; enable Performance Insights (7 days) on a database implicated or blind;
    apply the stage settings ``wanted.apiStage`` asks for where the stage differs."""
    out = Plan()
    categories = {(c.category, c.resource) for c in causes}
    for fn in facts.lambdas:
        res = f"function/{fn.name}"
        if not ({(Cat.LAMBDA_MEMORY_BOUND, res), (Cat.LAMBDA_NEAR_TIMEOUT, res)} & categories):
            continue
        target, cap = memory_target(fn.memory_mb, wanted, policy_cap_mb)
        if target <= fn.memory_mb:
            out.notes.append(f"{fn.name} already has {fn.memory_mb} MB, at or above the {cap} MB cap "
                             f"(remediation.performance.lambdaMemory.maxMb, and the operator policy's cap)")
            continue
        p99 = facts.get(key(res, "Duration", "p99"))
        before = round(max(p99.values)) if p99 is not None and not p99.empty else None
        out.changes.append(PlannedChange(
            f"raise-lambda-memory-{slug(fn.name)}", UPDATE_FUNCTION_CONFIGURATION,
            LambdaConfigurationParams(function_name=fn.name, memory_size_mb=target, from_mb=fn.memory_mb,
                                      before_p99_ms=before),
            f"raise the memory of {fn.name} from {fn.memory_mb} MB to {target} MB (cap {cap} MB)"))
    db = facts.rds
    if db is not None and not db.performance_insights and any(
            cat in (Cat.DATABASE_CPU, Cat.DATABASE_CONNECTIONS, Cat.PERFORMANCE_INSIGHTS_OFF) and r == f"db/{db.instance_id}"
            for cat, r in categories):
        insights = PerformanceInsightsParams(db_instance_identifier=db.instance_id)
        out.changes.append(PlannedChange(
            f"enable-performance-insights-{slug(db.instance_id)}", MODIFY_DB_INSTANCE, insights,
            f"enable Performance Insights on {db.instance_id} with {insights.retention_days} days' retention"))
    settings = wanted.api_stage if wanted else None
    st = facts.stage
    if settings is not None and st is not None:
        params = StageSettingsParams(
            rest_api_id=st.rest_api_id, stage_name=st.stage,
            caching_enabled=True if settings.caching_enabled and not (st.cache_cluster_enabled and st.caching_enabled)
            else None,
            cache_size_gb=settings.cache_size_gb if settings.caching_enabled and not st.cache_cluster_enabled else None,
            metrics_enabled=True if settings.metrics_enabled and not st.metrics_enabled else None)
        what = [w for w, on in (("stage caching", params.caching_enabled), ("detailed metrics", params.metrics_enabled))
                if on]
        if what:
            out.changes.append(PlannedChange(
                f"update-api-stage-{slug(st.stage)}", UPDATE_STAGE, params,
                f"enable {' and '.join(what)} on stage {st.stage} of {st.api_name}"
                + (f" ({params.cache_size_gb} GB cache)" if params.cache_size_gb else "")))
    return out
