"""lambda:UpdateFunctionConfiguration of what a step sets: the spec's environment variables
(update-lambda-env-<fn>, the runbook's "update environment variables if needed") and/or the
memory size (raise-lambda-memory-<fn>, the runbook's ``update-function-configuration
--memory-size 512``; Lambda gives CPU in proportion to memory).

Verified like a rollback (Active, Successful, no ERROR since), and a memory raise when Lambda
Duration p99 dropped in the first whole metrics period after the change (CloudWatch aligns periods
to the epoch for a query starting on such a boundary: GetMetricData API reference).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import math
from dataclasses import dataclass
from enum import StrEnum

from pydantic import Field

from ..api.incident import LAMBDA_NAME, Step
from ..api.performance import LAMBDA_MAX_MB, LAMBDA_MIN_MB, MetricsQuery, retention_seconds
from ..ports.performance import Series, SeriesSpec
from .base import Held, Outcome, Params, StepAction, StepContext, register
from .lambda_code import FunctionSeen, function_holds, observe_function

UPDATE_FUNCTION_CONFIGURATION = "lambda:UpdateFunctionConfiguration"


class LambdaConfigurationParams(Params):
    """What is set: ``keys`` (comma-separated) of the spec's remediation.lambdaEnvironment, and/or
    ``memory_size_mb``. For a memory raise, ``from_mb`` is the size when it was planned and
    ``before_p99_ms`` the window's worst Duration p99 then (milliseconds); ``changed_at`` is
    recorded when the new size is first seen set, so verification compares the first whole period
    after it."""

    function_name: str = Field(max_length=64, pattern=LAMBDA_NAME)
    keys: str | None = None
    memory_size_mb: int | None = Field(default=None, ge=LAMBDA_MIN_MB, le=LAMBDA_MAX_MB)
    from_mb: int | None = None
    before_p99_ms: int | None = None
    changed_at: dt.datetime | None = None


# ---- did the memory raise work? (pure) ------------------------------------------------------------

class Verdict(StrEnum):
    PENDING = "Pending"          # no complete period after the change yet
    DROPPED = "Dropped"
    NOT_DROPPED = "NotDropped"


def fmt_ms(value: float) -> str:
    """``2,850 ms``, ``91.5 ms``: whole numbers without decimals."""
    number = f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.1f}"
    return f"{number} ms"


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
            text = (f"Duration {after.spec.stat} {fmt_ms(v)} in the period from {t:%H:%M} UTC, "
                    f"{fmt_ms(before_ms)} before the change ({drop:.0f}% lower)")
            return (Verdict.DROPPED if drop >= min_drop_percent else Verdict.NOT_DROPPED), text
    return Verdict.PENDING, f"no complete {period_seconds}-second period with data since {changed_at:%H:%M:%S} UTC yet"


def first_period(changed_at: dt.datetime, period_seconds: int) -> dt.datetime:
    """The start of the first whole period at or after ``changed_at``: periods aligned to the epoch."""
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


def memory_holds(check: DurationCheck) -> Held:
    fn = check.function
    if check.before_ms is None:
        return Held(True, f"{fn}: memory raised; no Duration p99 before the change to compare with")
    if check.after is None:
        return Held(None, f"{fn}: waiting for the first whole {check.period_seconds}-second period after the change "
                          f"(ends {check.due:%H:%M:%S} UTC)")
    verdict, text = duration_dropped(check.before_ms, check.after, check.changed_at, check.period_seconds, check.now)
    return Held({Verdict.DROPPED: True, Verdict.NOT_DROPPED: False, Verdict.PENDING: None}[verdict], f"{fn}: {text}")


def duration_p99(function_name: str) -> SeriesSpec:
    """The series a memory raise is judged by: the function's Duration p99 (AWS/Lambda)."""
    return SeriesSpec(f"function/{function_name}:Duration:p99", "AWS/Lambda", "Duration",
                      (("FunctionName", function_name),), "p99", "Milliseconds", f"function/{function_name}")


@dataclass
class ConfigurationSeen:
    function: FunctionSeen
    duration: DurationCheck | None = None


class UpdateConfiguration(StepAction[LambdaConfigurationParams]):
    """The spec's environment variables (``keys``), then the memory size; each part is left alone
    once the function has it."""

    names = (UPDATE_FUNCTION_CONFIGURATION,)
    params = LambdaConfigurationParams

    async def execute(self, ctx: StepContext, p: LambdaConfigurationParams) -> Outcome:
        if p.keys is not None:
            outcome = await self._environment(ctx, p)
            if p.memory_size_mb is None or not (outcome.done and outcome.ok):
                return outcome
        return await self._memory(ctx, p)

    async def _memory(self, ctx: StepContext, p: LambdaConfigurationParams) -> Outcome:
        """The function's memory to ``p.memory_size_mb``; done once it is set and the function settled.
        The time the new size is first set (or first seen set, after a restart or by a person) is
        recorded as ``changed_at``."""
        fn, size = p.function_name, p.memory_size_mb
        assert size is not None
        change = await asyncio.to_thread(ctx.aws.perf_actions(*ctx.region_role()).set_lambda_memory, fn, size)
        has_it = change.changed or change.before == change.after
        params = p.model_copy(update={"changed_at": ctx.now}) if has_it and p.changed_at is None else None
        if change.changed:
            return Outcome(done=False, outputs=f"UpdateFunctionConfiguration issued: memory of {fn} {change.summary}",
                           params=params)
        if change.settling:
            return Outcome(done=False, params=params,
                           outputs=f"waiting for {fn} to settle (memory {change.before}, wanted {change.after})")
        was = f" (it had {p.from_mb} MB when planned)" if p.from_mb else ""
        return Outcome(done=True, outputs=f"{fn} has {change.after} of memory{was}", params=params)

    async def _environment(self, ctx: StepContext, p: LambdaConfigurationParams) -> Outcome:
        """Merge the spec's variables into the function's environment once it has settled."""
        wanted_all = next(e.variables for e in ctx.spec.remediation.lambda_environment
                          if e.function_name == p.function_name)
        lam = ctx.aws.lambda_(*ctx.region_role())
        current = await asyncio.to_thread(lam.current, p.function_name)
        wanted = {k: v for k, v in wanted_all.items() if current.environment.get(k) != v}
        if current.update_failed:
            return Outcome(done=True, ok=False,
                           error=f"{p.function_name}: last update failed: {current.last_update_reason}")
        if not current.settled:
            return Outcome(done=False, outputs=f"waiting for {p.function_name} to settle ({current.last_update_status})")
        if wanted:
            await asyncio.to_thread(lam.set_environment, p.function_name, wanted, current.environment)
            return Outcome(done=False, outputs=f"UpdateFunctionConfiguration issued for {', '.join(sorted(wanted))}")
        return Outcome(done=True, outputs=f"{p.function_name} has {', '.join(sorted(wanted_all))} set")

    def observe(self, ctx: StepContext, p: LambdaConfigurationParams) -> ConfigurationSeen:
        seen = ConfigurationSeen(observe_function(ctx, p.function_name))
        if p.memory_size_mb and p.changed_at:
            period = (ctx.spec.targets.metrics or MetricsQuery()).period_seconds
            check = DurationCheck(p.function_name, p.before_p99_ms, p.changed_at, period, ctx.now)
            window = periods_ended(p.changed_at, period, ctx.now)
            if window is not None:
                end, seconds = window
                [check.after] = ctx.aws.cloudwatch(*ctx.region_role()).read([duration_p99(p.function_name)], end,
                                                                            seconds, period)
            seen.duration = check
        return seen

    def holds(self, step: Step, p: LambdaConfigurationParams, seen: ConfigurationSeen) -> list[Held]:
        return [function_holds(p.function_name, seen.function)] + (
            [memory_holds(seen.duration)] if seen.duration is not None else [])

    def undoable(self, p: LambdaConfigurationParams) -> bool:
        """A memory change alone, with the size it replaced recorded (``from_mb``), is undone by setting
        that size back; environment variables keep no previous values, so they are not."""
        return p.keys is None and p.memory_size_mb is not None and p.from_mb is not None

    async def undo(self, ctx: StepContext, p: LambdaConfigurationParams) -> Outcome | None:
        """The function's memory back to ``from_mb`` (check first: a size already back is done with no
        call, so a resumed undo never acts twice); done once it is set and the function settled."""
        if not self.undoable(p):
            return None
        assert p.from_mb is not None
        fn = p.function_name
        change = await asyncio.to_thread(ctx.aws.perf_actions(*ctx.region_role()).set_lambda_memory, fn, p.from_mb)
        if change.changed or change.settling:
            return Outcome(done=False, outputs=f"undo: memory of {fn} {change.summary}")
        return Outcome(done=True, outputs=f"{fn} has {change.after} of memory again, as before the step")

    def settles_at(self, ctx: StepContext, p: LambdaConfigurationParams) -> dt.datetime | None:
        """A memory raise cannot be judged before the first whole metrics period after it ends."""
        if p.memory_size_mb is None or p.changed_at is None:
            return None
        period = (ctx.spec.targets.metrics or MetricsQuery()).period_seconds
        return first_period(p.changed_at, period) + dt.timedelta(seconds=period)


register(UpdateConfiguration())
