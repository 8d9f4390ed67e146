"""The changes the performance causes call for, planned as gated typed steps, and the check that
a memory raise worked (pure; no I/O).

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

import datetime as dt
import math
from dataclasses import dataclass, field
from enum import StrEnum

from ..api.incident import RootCauseCategory as Cat, Step
from ..api.performance import DEFAULT_MEMORY_CAP_MB, LAMBDA_MAX_MB, PerformanceRemediation, retention_seconds
from .perf_facts import PerformanceFacts, RdsConfig, Series, StageConfig
from .performance import Cause, fmt, key
from .plan import slug
from .steps import (LambdaConfigurationParams, Params, PerformanceInsightsParams, StageSettingsParams, StepAction,
                    step)

# The actions of the changes planned here (their steps are verified by :func:`holds`).
ACTIONS = {StepAction.UPDATE_FUNCTION_CONFIGURATION, StepAction.MODIFY_DB_INSTANCE, StepAction.UPDATE_STAGE}
# The memory ladder "the next step up" climbs (MB); the runbook's example raises to 512.
MEMORY_STEPS = (128, 256, 512, 1024, 1536, 2048, 3008, 4096, 6144, 8192, LAMBDA_MAX_MB)


@dataclass
class PlannedChange:
    """A gated remediation step: stable ``id``, IAM-style ``action``, its typed ``params`` and a
    one-line ``summary`` of what it will do."""

    id: str
    action: StepAction
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
            f"raise-lambda-memory-{slug(fn.name)}", StepAction.UPDATE_FUNCTION_CONFIGURATION,
            LambdaConfigurationParams(function_name=fn.name, memory_size_mb=target, from_mb=fn.memory_mb,
                                      before_p99_ms=before),
            f"raise the memory of {fn.name} from {fn.memory_mb} MB to {target} MB (cap {cap} MB)"))
    db = facts.rds
    if db is not None and not db.performance_insights and any(
            cat in (Cat.DATABASE_CPU, Cat.DATABASE_CONNECTIONS, Cat.PERFORMANCE_INSIGHTS_OFF) and r == f"db/{db.instance_id}"
            for cat, r in categories):
        params = PerformanceInsightsParams(db_instance_identifier=db.instance_id)
        out.changes.append(PlannedChange(
            f"enable-performance-insights-{slug(db.instance_id)}", StepAction.MODIFY_DB_INSTANCE, params,
            f"enable Performance Insights on {db.instance_id} with {params.retention_days} days' retention"))
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
                f"update-api-stage-{slug(st.stage)}", StepAction.UPDATE_STAGE, params,
                f"enable {' and '.join(what)} on stage {st.stage} of {st.api_name}"
                + (f" ({params.cache_size_gb} GB cache)" if params.cache_size_gb else "")))
    return out


# ---- verification ---------------------------------------------------------------------------

class Verdict(StrEnum):
    PENDING = "Pending"          # no complete period after the change yet
    DROPPED = "Dropped"
    NOT_DROPPED = "NotDropped"


def duration_dropped(before_ms: float, after: Series, changed_at: dt.datetime, period_seconds: int,
                     now: dt.datetime, min_drop_percent: float = 10.0) -> tuple[Verdict, str]:
    """Did Lambda Duration fall in the first whole period after ``changed_at``?

    ``before_ms`` is the same statistic before the change (e.g. the window's worst p99);
    ``after`` the series read since the change. Dropped when the first period that starts at
    or after the change and has ended by ``now`` is at least ``min_drop_percent`` lower.
    """
    period = dt.timedelta(seconds=period_seconds)
    for t, v in zip(after.timestamps, after.values):
        if t >= changed_at and t + period <= now:
            drop = 100 * (before_ms - v) / before_ms if before_ms else 0.0
            text = (f"Duration {after.spec.stat} {fmt(v, 'ms')} in the period from {t:%H:%M} UTC, "
                    f"{fmt(before_ms, 'ms')} before the change ({drop:.0f}% lower)")
            return (Verdict.DROPPED if drop >= min_drop_percent else Verdict.NOT_DROPPED), text
    return Verdict.PENDING, f"no complete {period_seconds}-second period with data since {changed_at:%H:%M:%S} UTC yet"


def first_period(changed_at: dt.datetime, period_seconds: int) -> dt.datetime:
    """The start of the first whole period at or after ``changed_at``: periods aligned to the epoch,
    as CloudWatch aligns them for a query starting on such a boundary (GetMetricData API reference)."""
    start = math.ceil(changed_at.timestamp() / period_seconds) * period_seconds
    return dt.datetime.fromtimestamp(start, tz=dt.timezone.utc)


def periods_ended(changed_at: dt.datetime, period_seconds: int,
                  now: dt.datetime) -> tuple[dt.datetime, int] | None:
    """(end, length in seconds) of the whole periods after ``changed_at`` that have ended by ``now``:
    the window to read the Duration in (at most CloudWatch's retention); None until the first of
    them has ended."""
    start = first_period(changed_at, period_seconds)
    # Never longer than CloudWatch keeps datapoints at this period (a verification left waiting for hours).
    whole = min(int((now - start).total_seconds() // period_seconds),
                retention_seconds(period_seconds) // period_seconds)
    if whole < 1:
        return None
    return start + dt.timedelta(seconds=whole * period_seconds), whole * period_seconds


@dataclass
class DurationCheck:
    """A memory raise to verify: the function, its Duration p99 before the change (ms; None when
    there was no data), when the change was made, the period (s), when it was looked at, and the
    Duration p99 read over :func:`periods_ended` (None: no whole period has ended yet)."""

    function: str
    before_ms: float | None
    changed_at: dt.datetime
    period_seconds: int
    now: dt.datetime
    after: Series | None = None

    @property
    def due(self) -> dt.datetime:
        """When the first whole period after the change ends (the earliest answer)."""
        return first_period(self.changed_at, self.period_seconds) + dt.timedelta(seconds=self.period_seconds)


@dataclass
class TuningFacts:
    """What verifying the performance steps observed: memory raises by step id, RDS configurations
    by instance id, stages by ``<rest api id>/<stage>``."""

    durations: dict[str, DurationCheck] = field(default_factory=dict)
    insights: dict[str, RdsConfig] = field(default_factory=dict)
    stages: dict[str, StageConfig] = field(default_factory=dict)


def holds(step_id: str, p: Params, facts: TuningFacts) -> tuple[bool | None, str] | None:
    """Whether a performance step's change holds: (True, what was seen), (False, why it failed) or
    (None, what is awaited); None for a step that is no performance change.

    A memory raise holds when Lambda Duration p99 dropped in the first whole period after the
    change (:func:`duration_dropped`); Performance Insights when it is on with the retention asked;
    stage settings when the stage has them.
    """
    if isinstance(p, LambdaConfigurationParams) and step_id in facts.durations:
        return _memory_holds(facts.durations[step_id])
    if isinstance(p, PerformanceInsightsParams):
        db = facts.insights.get(p.db_instance_identifier)
        if db is None:
            return None, f"{p.db_instance_identifier}: not read yet"
        kept = db.performance_insights_retention_days or 0
        if db.performance_insights and kept >= p.retention_days:
            return True, f"{db.instance_id} has Performance Insights on ({kept} days)"
        return None, f"{db.instance_id} does not show Performance Insights on ({p.retention_days} days) yet"
    if isinstance(p, StageSettingsParams):
        st = facts.stages.get(f"{p.rest_api_id}/{p.stage_name}")
        if st is None:
            return None, f"stage {p.stage_name}: not read yet"
        missing = [what for what, wanted, has in (
            ("caching", p.caching_enabled, st.cache_cluster_enabled and st.caching_enabled),
            ("detailed metrics", p.metrics_enabled, st.metrics_enabled)) if wanted is not None and wanted != has]
        if missing:
            return None, f"stage {st.stage} of {st.api_name} does not show {' and '.join(missing)} as asked yet"
        return True, f"stage {st.stage} of {st.api_name} has the settings asked"
    return None


def _memory_holds(check: DurationCheck) -> tuple[bool | None, str]:
    fn = check.function
    if check.before_ms is None:
        return True, f"{fn}: memory raised; no Duration p99 before the change to compare with"
    if check.after is None:
        return None, (f"{fn}: waiting for the first whole {check.period_seconds}-second period after the change "
                      f"(ends {check.due:%H:%M:%S} UTC)")
    verdict, text = duration_dropped(check.before_ms, check.after, check.changed_at, check.period_seconds, check.now)
    return {Verdict.DROPPED: True, Verdict.NOT_DROPPED: False, Verdict.PENDING: None}[verdict], f"{fn}: {text}"
