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
        change = await asyncio.to_thread(ctx.aws.perf_actions(*ctx.region_role()).update_stage, p)
        return Outcome(done=True, outputs=f"stage {p.stage_name}: {change.summary}")

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


register(UpdateApiStage())
