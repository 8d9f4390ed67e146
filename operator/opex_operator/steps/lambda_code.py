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
from ..ports.facts import FunctionState
from ..sharding import SHARD_LABEL
from .base import Held, Outcome, Params, StepAction, StepContext, register

UPDATE_FUNCTION_CODE, UPDATE_ALIAS = "lambda:UpdateFunctionCode", "lambda:UpdateAlias"
# Errors logged this soon after a step finished may predate it (log delivery lags).
ERROR_GRACE = dt.timedelta(seconds=10)


class LambdaRollbackParams(Params):
    """rollback-lambda-<fn>: $LATEST's code (or ``alias``) back to ``to_version``."""

    function_name: str
    to_version: str
    alias: str | None = None


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
    """A child Rollback (created once, found again by its deterministic name) and its outcome."""

    names = (UPDATE_FUNCTION_CODE, UPDATE_ALIAS)
    params = LambdaRollbackParams

    async def execute(self, ctx: StepContext, p: LambdaRollbackParams) -> Outcome:
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
            shard = {SHARD_LABEL: ctx.labels[SHARD_LABEL]} if SHARD_LABEL in ctx.labels else {}
            body = {"apiVersion": API_VERSION, "kind": ROLLBACK.kind,
                    "metadata": {"name": name, "namespace": ctx.ref.namespace,
                                 # the shard that reconciles the Incident reconciles its Rollback
                                 "labels": {"opex.dev/incident": label_value(ctx.ref.name), **shard},
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

    def observe(self, ctx: StepContext, p: LambdaRollbackParams) -> FunctionSeen:
        return observe_function(ctx, p.function_name)

    def holds(self, step: Step, p: LambdaRollbackParams, seen: FunctionSeen) -> list[Held]:
        return [function_holds(p.function_name, seen)]


register(RollbackLambda())
