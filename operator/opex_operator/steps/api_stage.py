"""update-api-stage-<stage>: the API Gateway section's detailed monitoring and cache configuration,
done as ``apigateway:UpdateStage`` patch operations (its ``put-method-response`` line does not
enable monitoring). Holds while the stage has the settings asked."""
from __future__ import annotations

import asyncio

from ..api.incident import Step
from ..ports.performance import StageConfig, StageSettingsParams
from .base import Held, Outcome, StepAction, StepContext, register

UPDATE_STAGE = "apigateway:UpdateStage"


class UpdateApiStage(StepAction[StageSettingsParams]):
    """UpdateStage with the patch operations the stage still needs (none when it has them)."""

    names = (UPDATE_STAGE,)
    params = StageSettingsParams

    async def execute(self, ctx: StepContext, p: StageSettingsParams) -> Outcome:
        """One UpdateStage; on a first attempt not resumed (no call of this step can have gone
        through yet) the settings it replaces are read first and recorded for :meth:`undo`."""
        params = None
        if not ctx.resumed and ctx.step.attempts == 1 and not self.undoable(p):
            seen = await asyncio.to_thread(self.observe, ctx, p)
            params = p.model_copy(update=replaced(p, seen))
        change = await asyncio.to_thread(ctx.aws.perf_actions(*ctx.region_role()).update_stage, p)
        return Outcome(done=True, outputs=f"stage {p.stage_name}: {change.summary}", params=params)

    def observe(self, ctx: StepContext, p: StageSettingsParams) -> StageConfig:
        return ctx.aws.perf_reader(*ctx.region_role()).stage_config(p.rest_api_id, p.stage_name)

    def holds(self, step: Step, p: StageSettingsParams, seen: StageConfig) -> list[Held]:
        missing = [what for what, wanted, has in (
            ("caching", p.caching_enabled, seen.cache_cluster_enabled and seen.caching_enabled),
            ("detailed metrics", p.metrics_enabled, seen.metrics_enabled)) if wanted is not None and wanted != has]
        if missing:
            return [Held(None, f"stage {seen.stage} of {seen.api_name} does not show {' and '.join(missing)} as "
                               f"asked yet")]
        return [Held(True, f"stage {seen.stage} of {seen.api_name} has the settings asked")]

    def undoable(self, p: StageSettingsParams) -> bool:
        """Undone when what it replaced was recorded for every setting it asked."""
        asked = [(p.caching_enabled, p.was_caching_enabled), (p.metrics_enabled, p.was_metrics_enabled)]
        return any(want is not None for want, _ in asked) and all(
            was is not None for want, was in asked if want is not None)

    async def undo(self, ctx: StepContext, p: StageSettingsParams) -> Outcome | None:
        """UpdateStage back to the recorded settings (caching off again turns the cache cluster off, so
        the cluster size it set no longer applies). The port reads the stage first and patches only
        what differs: a resumed undo finds them back and makes no call."""
        if not self.undoable(p):
            return None
        back = StageSettingsParams(rest_api_id=p.rest_api_id, stage_name=p.stage_name,
                                   caching_enabled=p.was_caching_enabled if p.caching_enabled is not None else None,
                                   metrics_enabled=p.was_metrics_enabled if p.metrics_enabled is not None else None)
        change = await asyncio.to_thread(ctx.aws.perf_actions(*ctx.region_role()).update_stage, back)
        return Outcome(done=True, outputs=f"undo: stage {p.stage_name}: {change.summary}")


def replaced(p: StageSettingsParams, seen: StageConfig) -> dict[str, bool]:
    """The ``was_*`` values of the settings ``p`` asks, from the stage as it is before the call;
    caching left out when the cluster and the methods' caching differ (one flag cannot set that back)."""
    was: dict[str, bool] = {}
    if p.caching_enabled is not None and seen.cache_cluster_enabled == seen.caching_enabled:
        was["was_caching_enabled"] = seen.caching_enabled
    if p.metrics_enabled is not None:
        was["was_metrics_enabled"] = seen.metrics_enabled
    return was


register(UpdateApiStage())
