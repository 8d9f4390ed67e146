"""rollback-lambda-<fn>: a function's code (``lambda:UpdateFunctionCode``) or alias
(``lambda:UpdateAlias``) back to a known-good version, the runbook's "Rollback Deployment".

The rollback itself is a ``Rollback`` resource the Incident owns (ownerReference), so it gets the
Rollback's capture/verify/undo record; its outcome is reported back here. Verified when the
function is Active with its last update Successful and has logged no ERROR since the step.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from .. import API_VERSION
from ..api import ROLLBACK
from ..api.incident import Step
from ..api.rollback import RollbackPhase
from ..errors import AwsError
from ..ports.objects import child_name, label_value
from ..ports.facts import FunctionState, running_version
from ..sharding import SHARD_LABEL
from .base import Held, Outcome, Params, StepAction, StepContext, register

UPDATE_FUNCTION_CODE, UPDATE_ALIAS = "lambda:UpdateFunctionCode", "lambda:UpdateAlias"
# Errors logged this soon after a step finished may predate it (log delivery lags).
ERROR_GRACE = dt.timedelta(seconds=10)


class LambdaRollbackParams(Params):
    """rollback-lambda-<fn>: $LATEST's code (or ``alias``) back to ``to_version``. ``from_version``
    is recorded when the child Rollback succeeded: the published version it replaced (the alias's
    version, or the version whose code $LATEST ran), what an undo goes back to."""

    function_name: str
    to_version: str
    alias: str | None = None
    from_version: str | None = None


@dataclass
class FunctionSeen:
    """A function as verification sees it: its state, and the ERROR lines logged since its step."""

    state: FunctionState
    errors: list[str] = field(default_factory=list)


def observe_function(ctx: StepContext, function_name: str) -> FunctionSeen:
    """The function's state and, once it settled, the ERROR lines it logged since the step finished
    (blocking). Raises AwsError."""
    region, role = ctx.region_role()
    state = ctx.aws.lambda_(region, role).current(function_name)
    if not state.settled:
        return FunctionSeen(state)
    since = (ctx.step.finished_at or ctx.now) + ERROR_GRACE
    reader = ctx.aws.reader(region, role)
    try:
        lines = reader.filtered_lines(f"/aws/lambda/{function_name}", since)
    except AwsError as err:
        if not err.not_found:  # no log group: nothing logged
            raise
        lines = []
    return FunctionSeen(state, [line.message for line in lines if line.time > since])


def function_holds(name: str, seen: FunctionSeen) -> Held:
    """Active with its last update Successful, and no ERROR logged since its step."""
    state = seen.state
    if state.update_failed:
        return Held(False, f"{name}: last update failed: {state.last_update_reason}")
    if not state.settled:
        return Held(None, f"{name} is {state.state}/{state.last_update_status}")
    if seen.errors:
        return Held(False, f"{name} logged {len(seen.errors)} ERROR events after its step: {seen.errors[-1]}")
    return Held(True, f"{name} Active/Successful, no ERROR events since its step")


class RollbackLambda(StepAction[LambdaRollbackParams]):
    """A child Rollback (created once, found again by its deterministic name) and its outcome; its
    undo is a second child Rollback back to the version the first one replaced."""

    names = (UPDATE_FUNCTION_CODE, UPDATE_ALIAS)
    params = LambdaRollbackParams

    async def execute(self, ctx: StepContext, p: LambdaRollbackParams) -> Outcome:
        name = child_name(ctx.ref.name, ctx.step.id)
        child = await rollback_to(ctx, name, p, p.to_version)
        if child is None:
            return Outcome(done=False, outputs=f"created Rollback {name}", rollback_ref=name)
        outcome = child_outcome(name, child)
        if outcome.done and outcome.ok and p.from_version is None:
            replaced = await asyncio.to_thread(replaced_version, ctx, p, child)
            if replaced is not None and replaced != p.to_version:
                outcome.params = p.model_copy(update={"from_version": replaced})
                outcome.undo = (f"a Rollback of {p.function_name}{':' + p.alias if p.alias else ''} "
                                f"back to version {replaced}")
        return outcome

    def observe(self, ctx: StepContext, p: LambdaRollbackParams) -> FunctionSeen:
        return observe_function(ctx, p.function_name)

    def holds(self, step: Step, p: LambdaRollbackParams, seen: FunctionSeen) -> list[Held]:
        return [function_holds(p.function_name, seen)]

    def undoable(self, p: LambdaRollbackParams) -> bool:
        """Undone when the version it replaced was recorded (``from_version``): a published version a
        Rollback can go back to. $LATEST code no published version had cannot be put back."""
        return p.from_version is not None

    async def undo(self, ctx: StepContext, p: LambdaRollbackParams) -> Outcome | None:
        """A child Rollback ``<incident>-<step>-undo`` back to ``from_version``: the Rollback machinery
        captures what runs, changes it once (its own checkpoints) and verifies it. Found again by
        name, so an undo resumed after a restart never creates a second one."""
        if p.from_version is None:
            return None
        name = child_name(ctx.ref.name, f"{ctx.step.id}-undo")
        child = await rollback_to(ctx, name, p, p.from_version)
        if child is None:
            return Outcome(done=False, outputs=f"undo: created Rollback {name} back to version {p.from_version}")
        return child_outcome(name, child)


async def rollback_to(ctx: StepContext, name: str, p: LambdaRollbackParams, version: str) -> dict[str, Any] | None:
    """The child Rollback ``name`` of ``p``'s function (or alias) to ``version``: the object when it
    exists, else None after creating it (owned by the Incident, approval Auto: the Incident's
    approval or mode covers it). Raises ApiError when it cannot be read or created."""
    child = await asyncio.to_thread(ctx.objects.get, ROLLBACK.plural, ctx.ref.namespace, name)
    if child is not None:
        return child
    spec: dict[str, Any] = {
        "lambda": {"functionName": p.function_name, "to": {"version": version},
                   **({"alias": p.alias} if p.alias else {})},
        "incidentRef": {"name": ctx.ref.name},
        "approval": "Auto",  # approved on the Incident (or the Incident runs in Auto)
    }
    if ctx.spec.targets.region:
        spec["region"] = ctx.spec.targets.region
    if ctx.spec.targets.role_key:
        spec["roleKey"] = ctx.spec.targets.role_key
    shard = {SHARD_LABEL: ctx.labels[SHARD_LABEL]} if SHARD_LABEL in ctx.labels else {}
    body = {"apiVersion": API_VERSION, "kind": ROLLBACK.kind,
            "metadata": {"name": name, "namespace": ctx.ref.namespace,
                         # the shard that reconciles the Incident reconciles its Rollback
                         "labels": {"opex.dev/incident": label_value(ctx.ref.name), **shard},
                         "ownerReferences": [ctx.ref.owner_reference()]},
            "spec": spec}
    await asyncio.to_thread(ctx.objects.create, ROLLBACK.plural, ctx.ref.namespace, body)
    return None


def child_outcome(name: str, child: dict[str, Any]) -> Outcome:
    """What the child Rollback ``name`` says: done when Succeeded, failed when Failed or Aborted."""
    status = child.get("status") or {}
    phase = status.get("phase")
    if phase == RollbackPhase.SUCCEEDED:
        return Outcome(done=True, ok=True, outputs=status.get("message"), rollback_ref=name)
    if phase in (RollbackPhase.FAILED, RollbackPhase.ABORTED):
        return Outcome(done=True, ok=False, error=f"Rollback {name} {phase}: {status.get('message')}",
                       rollback_ref=name)
    return Outcome(done=False, outputs=f"Rollback {name} is {phase or 'Pending'}", rollback_ref=name)


def replaced_version(ctx: StepContext, p: LambdaRollbackParams, child: dict[str, Any]) -> str | None:
    """The published version the child Rollback replaced (its ``status.from``): the alias's version,
    or the newest version whose code $LATEST ran; None when none had it (or a dry run changed
    nothing, or its versions could not be listed). Blocking."""
    status = child.get("status") or {}
    was = status.get("from") or {}
    if status.get("reason") == "DryRun" or not was:
        return None
    version, sha = was.get("version"), was.get("codeSha256")
    if version and version.isdigit():
        return version
    if p.alias or not sha:
        return None
    try:
        versions = ctx.aws.lambda_(*ctx.region_role()).versions(p.function_name)
    except AwsError:
        return None  # the rollback stands; with nothing recorded a breach of its bake window pages
    return running_version(versions, sha)


register(RollbackLambda())
