"""The runbook's pipeline recovery: retry-stage-<stage> (``codepipeline:RetryStageExecution`` of the
failed actions) and start-pipeline-execution / redeploy-<pipeline>
(``codepipeline:StartPipelineExecution``, followed to its end). Verified when the execution the
step retried or started Succeeded.
"""
from __future__ import annotations

import asyncio
import datetime as dt

from ..api.incident import Step
from ..ports.pipeline import FINISHED, PipelineStart
from .base import Held, Outcome, Params, StepAction, StepContext, register, request_token

RETRY_STAGE_EXECUTION = "codepipeline:RetryStageExecution"
START_PIPELINE_EXECUTION = "codepipeline:StartPipelineExecution"
PIPELINE_POLL = 10.0
ENDED_BADLY = ("Failed", "Stopped", "Cancelled", "missing")


class RetryStageParams(Params):
    """retry-stage-<stage>: RetryStageExecution of the failed actions of ``stage`` in ``execution_id``."""

    pipeline: str
    stage: str
    execution_id: str


class StartPipelineParams(Params):
    """start-pipeline-execution; ``execution_id`` is recorded once started (so a restart does not start twice)."""

    pipeline: str
    execution_id: str | None = None


def observe_execution(ctx: StepContext, pipeline: str, execution_id: str | None) -> tuple[str | None, str]:
    """(execution, status): the step's execution, else the pipeline's newest ("missing" when none)."""
    actions = ctx.aws.pipeline(*ctx.region_role())
    execution = execution_id or (actions.newest_execution(pipeline) or (None,))[0]
    return execution, (actions.execution_status(pipeline, execution) if execution else "missing")


def execution_holds(pipeline: str, seen: tuple[str | None, str]) -> Held:
    execution, state = seen
    text = f"execution {execution} of {pipeline} is {state}"
    if state in ENDED_BADLY:
        return Held(False, text)
    return Held(True if state == "Succeeded" else None, text)


class RetryStage(StepAction[RetryStageParams]):
    """RetryStageExecution, only while the stage is still Failed in that execution."""

    names = (RETRY_STAGE_EXECUTION,)
    params = RetryStageParams

    async def execute(self, ctx: StepContext, p: RetryStageParams) -> Outcome:
        actions = ctx.aws.pipeline(*ctx.region_role())
        status = await asyncio.to_thread(actions.stage_status, p.pipeline, p.stage, p.execution_id)
        if status == "Failed":
            await asyncio.to_thread(actions.retry_stage, p.pipeline, p.stage, p.execution_id)
            return Outcome(done=True, outputs=f"RetryStageExecution of {p.stage} in {p.execution_id} issued")
        # Not failed any more: retried already (by us before a restart, or by a person).
        return Outcome(done=True, outputs=f"stage {p.stage} of {p.execution_id} is {status or 'superseded'}; "
                                          f"no retry needed")

    def observe(self, ctx: StepContext, p: RetryStageParams) -> tuple[str | None, str]:
        return observe_execution(ctx, p.pipeline, p.execution_id)

    def holds(self, step: Step, p: RetryStageParams, seen: tuple[str | None, str]) -> list[Held]:
        return [execution_holds(p.pipeline, seen)]


class StartExecution(StepAction[StartPipelineParams]):
    """StartPipelineExecution (with this step's token), unless an execution started since the step
    did (a restart); then follow the execution to its end: done when it Succeeded, failed when it
    ended otherwise."""

    names = (START_PIPELINE_EXECUTION,)
    params = StartPipelineParams

    async def execute(self, ctx: StepContext, p: StartPipelineParams) -> Outcome:
        actions = ctx.aws.pipeline(*ctx.region_role())
        if p.execution_id is None:
            newest = await asyncio.to_thread(actions.newest_execution, p.pipeline)
            started = ctx.step.started_at
            if newest and started and newest[2] and newest[2] >= started - dt.timedelta(seconds=1):
                execution, text = newest[0], f"execution {newest[0]} of {p.pipeline} already started"
            else:
                execution = await asyncio.to_thread(actions.start, p.pipeline, request_token(ctx.ref.uid, ctx.step.id))
                text = f"started execution {execution} of {p.pipeline}"
            # The execution id is checkpointed before it is followed: a restart follows it, never starts another.
            return Outcome(done=False, outputs=text, params=p.model_copy(update={"execution_id": execution}),
                           requeue=0.0,
                           undo=PipelineStart(changed=True, pipeline=p.pipeline, execution_id=execution).undo())
        status = await asyncio.to_thread(actions.execution_status, p.pipeline, p.execution_id)
        text = f"execution {p.execution_id} of {p.pipeline} is {status}"
        if status == "Succeeded":
            return Outcome(done=True, outputs=text)
        if status in FINISHED:
            return Outcome(done=True, ok=False, error=text)
        return Outcome(done=False, outputs=text, requeue=PIPELINE_POLL)

    def observe(self, ctx: StepContext, p: StartPipelineParams) -> tuple[str | None, str]:
        return observe_execution(ctx, p.pipeline, p.execution_id)

    def holds(self, step: Step, p: StartPipelineParams, seen: tuple[str | None, str]) -> list[Held]:
        return [execution_holds(p.pipeline, seen)]


register(RetryStage())
register(StartExecution())
