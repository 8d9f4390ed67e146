"""How each remediation step of an Incident is carried out: one executor per action, each checking
the current state first, acting only if needed, and saying whether the step is done. Safe to call
again for a step already Running.

A Lambda rollback is delegated to a ``Rollback`` resource the Incident owns (ownerReference),
so it gets the Rollback's capture/verify/undo record; its outcome is reported back here.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from .. import API_VERSION
from ..api import ROLLBACK
from ..api.rollback import RollbackPhase
from ..aws.pipeline import FINISHED, PipelineStart
from ..errors import AwsError
from ..kube import child_name, label_value
from ..runbooks.steps import (LambdaConfigurationParams, LambdaRollbackParams, PerformanceInsightsParams,
                              RetryStageParams, StageSettingsParams, StartPipelineParams, StepAction, params_of,
                              request_token)
from ..sharding import SHARD_LABEL
from . import incident_security as security
from .incident_terraform import force_unlock, import_existing
from .steps import Executor, Outcome, StepContext

log = logging.getLogger(__name__)
PIPELINE_POLL = 10.0


async def rollback_lambda(ctx: StepContext, p: LambdaRollbackParams) -> Outcome:
    """A child Rollback (created once, found again by its deterministic name) and its outcome."""
    name = child_name(ctx.ref.name, ctx.step.id)
    child = await asyncio.to_thread(ctx.objects.get, ROLLBACK.plural, ctx.ref.namespace, name)
    if child is None:
        spec: dict[str, Any] = {
            "lambda": {"functionName": p.function_name, "to": {"version": p.to_version},
                       **({"alias": p.alias} if p.alias else {})},
            "incidentRef": {"name": ctx.ref.name},
            "approval": "Auto",  # approved on the Incident (or the Incident runs in Auto)
        }
        if ctx.spec.targets.region:
            spec["region"] = ctx.spec.targets.region
        if ctx.spec.targets.role_key:
            spec["roleKey"] = ctx.spec.targets.role_key
        body = {"apiVersion": API_VERSION, "kind": ROLLBACK.kind,
                "metadata": {"name": name, "namespace": ctx.ref.namespace,
                             "labels": {"opex.dev/incident": label_value(ctx.ref.name),
                                        # the shard that reconciles the Incident reconciles its Rollback
                                        **({SHARD_LABEL: ctx.labels[SHARD_LABEL]} if SHARD_LABEL in ctx.labels else {})},
                             "ownerReferences": [ctx.ref.owner_reference()]},
                "spec": spec}
        await asyncio.to_thread(ctx.objects.create, ROLLBACK.plural, ctx.ref.namespace, body)
        return Outcome(done=False, outputs=f"created Rollback {name}", rollback_ref=name)
    status = child.get("status") or {}
    phase = status.get("phase")
    if phase == RollbackPhase.SUCCEEDED:
        return Outcome(done=True, ok=True, outputs=status.get("message"), rollback_ref=name)
    if phase in (RollbackPhase.FAILED, RollbackPhase.ABORTED):
        return Outcome(done=True, ok=False, error=f"Rollback {name} {phase}: {status.get('message')}",
                       rollback_ref=name)
    return Outcome(done=False, outputs=f"Rollback {name} is {phase or 'Pending'}", rollback_ref=name)


async def update_configuration(ctx: StepContext, p: LambdaConfigurationParams) -> Outcome:
    """UpdateFunctionConfiguration of what the step sets: the spec's environment variables
    (``keys``), then the memory size. Each part is left alone once the function has it."""
    if p.keys is not None:
        outcome = await update_environment(ctx, p)
        if p.memory_size_mb is None or not (outcome.done and outcome.ok):
            return outcome
    return await set_memory(ctx, p)


async def set_memory(ctx: StepContext, p: LambdaConfigurationParams) -> Outcome:
    """The function's memory to ``p.memory_size_mb``; done once it is set and the function settled.

    The time the new size is first set (or first seen set, after a restart or by a person) is
    recorded as ``changed_at``: verification compares the Duration of the first whole period
    after it with ``before_p99_ms``.
    """
    fn = p.function_name
    change = await asyncio.to_thread(ctx.aws.perf_actions(*ctx.region_role()).set_lambda_memory, fn, p.memory_size_mb)
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


async def enable_insights(ctx: StepContext, p: PerformanceInsightsParams) -> Outcome:
    """ModifyDBInstance turning Performance Insights on, unless it is on with that retention."""
    change = await asyncio.to_thread(ctx.aws.perf_actions(*ctx.region_role()).enable_performance_insights, p)
    return Outcome(done=True, outputs=f"{p.db_instance_identifier}: {change.summary}")


async def update_api_stage(ctx: StepContext, p: StageSettingsParams) -> Outcome:
    """UpdateStage with the patch operations the stage still needs (none when it has them)."""
    change = await asyncio.to_thread(ctx.aws.perf_actions(*ctx.region_role()).update_stage, p)
    return Outcome(done=True, outputs=f"stage {p.stage_name}: {change.summary}")


async def update_environment(ctx: StepContext, p: LambdaConfigurationParams) -> Outcome:
    """Merge the spec's variables into the function's environment once it has settled."""
    wanted_all = next(e.variables for e in ctx.spec.remediation.lambda_environment
                      if e.function_name == p.function_name)
    lam = ctx.aws.lambda_(*ctx.region_role())
    current = await asyncio.to_thread(lam.current, p.function_name)
    wanted = {k: v for k, v in wanted_all.items() if current.environment.get(k) != v}
    if current.update_failed:
        return Outcome(done=True, ok=False, error=f"{p.function_name}: last update failed: {current.last_update_reason}")
    if not current.settled:
        return Outcome(done=False, outputs=f"waiting for {p.function_name} to settle ({current.last_update_status})")
    if wanted:
        await asyncio.to_thread(lam.set_environment, p.function_name, wanted, current.environment)
        return Outcome(done=False, outputs=f"UpdateFunctionConfiguration issued for {', '.join(sorted(wanted))}")
    return Outcome(done=True, outputs=f"{p.function_name} has {', '.join(sorted(wanted_all))} set")


async def retry_stage(ctx: StepContext, p: RetryStageParams) -> Outcome:
    """RetryStageExecution, only while the stage is still Failed in that execution."""
    actions = ctx.aws.pipeline(*ctx.region_role())
    status = await asyncio.to_thread(actions.stage_status, p.pipeline, p.stage, p.execution_id)
    if status == "Failed":
        await asyncio.to_thread(actions.retry_stage, p.pipeline, p.stage, p.execution_id)
        return Outcome(done=True, outputs=f"RetryStageExecution of {p.stage} in {p.execution_id} issued")
    # Not failed any more: retried already (by us before a restart, or by a person).
    return Outcome(done=True, outputs=f"stage {p.stage} of {p.execution_id} is {status or 'superseded'}; "
                                      f"no retry needed")


async def start_execution(ctx: StepContext, p: StartPipelineParams) -> Outcome:
    """StartPipelineExecution (with this step's token), unless an execution started since the step
    did (a restart); then follow the execution to its end: done when it Succeeded, failed when it
    ended otherwise."""
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
        return Outcome(done=False, outputs=text, params=p.model_copy(update={"execution_id": execution}), requeue=0.0,
                       undo=PipelineStart(changed=True, pipeline=p.pipeline, execution_id=execution).undo())
    status = await asyncio.to_thread(actions.execution_status, p.pipeline, p.execution_id)
    text = f"execution {p.execution_id} of {p.pipeline} is {status}"
    if status == "Succeeded":
        return Outcome(done=True, outputs=text)
    if status in FINISHED:
        return Outcome(done=True, ok=False, error=text)
    return Outcome(done=False, outputs=text, requeue=PIPELINE_POLL)


EXECUTORS: dict[StepAction, Executor] = {
    StepAction.UPDATE_FUNCTION_CODE: rollback_lambda,
    StepAction.UPDATE_ALIAS: rollback_lambda,
    StepAction.UPDATE_FUNCTION_CONFIGURATION: update_configuration,
    StepAction.RETRY_STAGE_EXECUTION: retry_stage,
    StepAction.START_PIPELINE_EXECUTION: start_execution,
    StepAction.TERRAFORM_FORCE_UNLOCK: force_unlock,
    StepAction.TERRAFORM_IMPORT: import_existing,
    StepAction.DEACTIVATE_ACCESS_KEY: security.deactivate_access_key,
    StepAction.DELETE_ACCESS_KEY: security.delete_access_key,
    StepAction.DELETE_LOGIN_PROFILE: security.remove_login_profile,
    StepAction.UPDATE_IP_SET: security.block_ips,
    StepAction.REVOKE_SECURITY_GROUP_INGRESS: security.revoke_ingress,
    StepAction.ROTATE_SECRET: security.rotate_secret,
    StepAction.MODIFY_DB_INSTANCE: enable_insights,
    StepAction.UPDATE_STAGE: update_api_stage,
    **security.EXECUTORS,
}


async def run_step(ctx: StepContext) -> Outcome:
    """Carry out ``ctx.step`` with the executor of its action. An AwsError becomes a failed Outcome
    (retryable when transient: throttling, 5xx, no answer), as does a LookupError (an adapter naming
    a target that does not exist); other errors reach the runtime."""
    params = params_of(ctx.step)
    executor = EXECUTORS.get(StepAction(ctx.step.action))
    if executor is None:
        return Outcome(done=True, ok=False, error=f"no executor for action {ctx.step.action}")
    try:
        return await executor(ctx, params)
    except AwsError as err:
        log.info("step %s of %s: %s", ctx.step.id, ctx.ref.key, err)
        return Outcome(done=True, ok=False, error=str(err), retryable=err.transient)
    except LookupError as err:
        if type(err) is not LookupError:  # KeyError, IndexError: a bug, not a missing target
            raise
        log.info("step %s of %s: %s", ctx.step.id, ctx.ref.key, err)
        return Outcome(done=True, ok=False, error=str(err))
