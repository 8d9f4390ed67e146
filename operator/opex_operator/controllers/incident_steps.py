"""How each remediation step of an Incident is carried out: check the current state, act only if
needed, and report whether the step is done. Safe to call again for a step already Running.

A Lambda rollback is delegated to a ``Rollback`` resource the Incident owns (ownerReference),
so it gets the Rollback's capture/verify/undo record; its outcome is reported back here.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from .. import API_VERSION
from ..api.incident import IncidentSpec, Step
from ..errors import AwsError
from ..aws.clients import AwsClients
from ..aws.lambda_ import LambdaActions
from ..aws.pipeline import PipelineActions
from ..kube import Kube, ObjectRef


@dataclass
class Outcome:
    """``done`` False: still in progress (ask again after ``requeue`` seconds)."""

    done: bool
    ok: bool = True
    outputs: str | None = None
    error: str | None = None
    retryable: bool = False
    requeue: float = 2.0
    rollback_ref: str | None = None


@dataclass(frozen=True)
class TerraformSettings:
    """Where Terraform-backed steps run (the operator's OPEX_TERRAFORM, OPEX_WORK_DIR, OPEX_CACHE_DIR)."""

    binary: str
    work_dir: Path
    cache_dir: Path


@dataclass
class StepContext:
    ref: ObjectRef
    spec: IncidentSpec
    step: Step
    aws: AwsClients
    kube: Kube
    now: dt.datetime
    terraform: TerraformSettings


def child_name(incident: str, step_id: str) -> str:
    """The Rollback an incident's step creates: deterministic, so a restart finds it again."""
    name = f"{incident}-{step_id}"
    if len(name) <= 253:
        return name
    return f"{name[:240]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


async def run_step(ctx: StepContext) -> Outcome:
    """Carry out ``ctx.step`` (dispatch on its id); AWS errors become a failed Outcome."""
    step_id = ctx.step.id
    try:
        if step_id.startswith("rollback-lambda-"):
            return await _rollback_lambda(ctx)
        if step_id.startswith("update-lambda-env-"):
            return await asyncio.to_thread(_update_env, ctx)
        if step_id.startswith("retry-stage-"):
            return await asyncio.to_thread(_retry_stage, ctx)
        if step_id == "start-pipeline-execution":
            return await asyncio.to_thread(_start_execution, ctx)
        if step_id.startswith("terraform-"):
            from .incident_terraform import force_unlock, import_existing  # imports this module: import here

            return await (force_unlock(ctx) if step_id == "terraform-force-unlock" else import_existing(ctx))
    except AwsError as err:  # reported on the step, retried when transient
        return Outcome(done=True, ok=False, error=str(err), retryable=err.transient)
    return Outcome(done=True, ok=False, error=f"no executor for step {step_id}")


async def _rollback_lambda(ctx: StepContext) -> Outcome:
    p = ctx.step.params
    name = child_name(ctx.ref.name, ctx.step.id)
    child = await asyncio.to_thread(ctx.kube.get_named, "rollbacks", ctx.ref.namespace, name)
    if child is None:
        spec: dict[str, Any] = {
            "lambda": {"functionName": p["functionName"], "to": {"version": p["toVersion"]},
                       **({"alias": p["alias"]} if p.get("alias") else {})},
            "incidentRef": {"name": ctx.ref.name},
            "approval": "Auto",  # approved on the Incident (or the Incident runs in Auto)
        }
        if ctx.spec.targets.region:
            spec["region"] = ctx.spec.targets.region
        if ctx.spec.targets.role_key:
            spec["roleKey"] = ctx.spec.targets.role_key
        body = {"apiVersion": API_VERSION, "kind": "Rollback",
                "metadata": {"name": name, "namespace": ctx.ref.namespace,
                             "labels": {"opex.dev/incident": ctx.ref.name[:63]},
                             "ownerReferences": [ctx.ref.owner_reference()]},
                "spec": spec}
        try:
            await asyncio.to_thread(ctx.kube.create, "rollbacks", ctx.ref.namespace, body)
        except ApiException as err:
            if err.status != 409:  # 409: created by an earlier attempt we did not see finish
                raise
        return Outcome(done=False, outputs=f"created Rollback {name}", rollback_ref=name)
    status = child.get("status") or {}
    phase = status.get("phase")
    if phase == "Succeeded":
        return Outcome(done=True, ok=True, outputs=status.get("message"), rollback_ref=name)
    if phase in ("Failed", "Aborted"):
        return Outcome(done=True, ok=False, error=f"Rollback {name} {phase}: {status.get('message')}",
                       rollback_ref=name)
    return Outcome(done=False, outputs=f"Rollback {name} is {phase or 'Pending'}", rollback_ref=name)


def _update_env(ctx: StepContext) -> Outcome:
    fn = ctx.step.params["functionName"]
    wanted_all = next(e.variables for e in ctx.spec.remediation.lambda_environment if e.function_name == fn)
    lam = LambdaActions(ctx.aws, ctx.spec.targets.region, ctx.spec.targets.role_key)
    current = lam.current(fn)
    wanted = {k: v for k, v in wanted_all.items() if current.environment.get(k) != v}
    if current.update_failed:
        return Outcome(done=True, ok=False, error=f"{fn}: last update failed: {current.last_update_reason}")
    if not current.settled:
        return Outcome(done=False, outputs=f"waiting for {fn} to settle ({current.last_update_status})")
    if wanted:
        lam.set_environment(fn, wanted, current.environment)
        return Outcome(done=False, outputs=f"UpdateFunctionConfiguration issued for {', '.join(sorted(wanted))}")
    return Outcome(done=True, outputs=f"{fn} has {', '.join(sorted(wanted_all))} set")


def _retry_stage(ctx: StepContext) -> Outcome:
    p = ctx.step.params
    actions = PipelineActions(ctx.aws, ctx.spec.targets.region, ctx.spec.targets.role_key)
    status = actions.stage_status(p["pipeline"], p["stage"], p["executionId"])
    if status == "Failed":
        actions.retry_stage(p["pipeline"], p["stage"], p["executionId"])
        return Outcome(done=True, outputs=f"RetryStageExecution of {p['stage']} in {p['executionId']} issued")
    # Not failed any more: retried already (by us before a restart, or by a person).
    return Outcome(done=True, outputs=f"stage {p['stage']} of {p['executionId']} is {status or 'superseded'}; "
                                      f"no retry needed")


def _start_execution(ctx: StepContext) -> Outcome:
    pipeline = ctx.step.params["pipeline"]
    actions = PipelineActions(ctx.aws, ctx.spec.targets.region, ctx.spec.targets.role_key)
    newest = actions.newest_execution(pipeline)
    started = ctx.step.started_at
    if newest and started and newest[2] and newest[2] >= started - dt.timedelta(seconds=1):
        ctx.step.params["executionId"] = newest[0]
        return Outcome(done=True, outputs=f"execution {newest[0]} already started")
    execution = actions.start(pipeline)
    ctx.step.params["executionId"] = execution
    return Outcome(done=True, outputs=f"started execution {execution} of {pipeline}")
