"""The Incident's Terraform steps, in a DriftCheck's workspace: ``terraform-force-unlock`` (a dead
run's state lock, safely) and ``terraform-import-<addr>`` (adopt an object that already exists).

Runbook: "Terraform state lock held → terraform force-unlock LOCK_ID". The operator unlocks only
the lock the diagnosis named (``lockId``), only once it is older than
``spec.remediation.forceUnlock.minLockAgeSeconds``, and checks first: a probe plan with
``-lock-timeout=0s`` tells whether the lock is still held, and by whom. A lock already released
is success with nothing done; a lock now held by another run is never touched.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..api import DRIFTCHECK
from ..api.driftcheck import DriftCheckSpec
from ..terraform.locks import parse_state_lock
from ..ports.terraform import TerraformError
from ..ports.terraform import SourceError
from .base import Outcome, Params, StepAction, StepContext, register

if TYPE_CHECKING:
    from ..ports import TerraformSession

TERRAFORM_FORCE_UNLOCK, TERRAFORM_IMPORT = "terraform:ForceUnlock", "terraform:Import"
PROBE_TIMEOUT = 300.0


class ForceUnlockParams(Params):
    """terraform-force-unlock of ``lock_id`` in DriftCheck ``drift_check``'s workspace."""

    lock_id: str
    drift_check: str
    path: str = ""


class ImportParams(Params):
    """terraform-import-<addr>: ``terraform import ADDRESS ID`` in DriftCheck ``drift_check``'s workspace."""

    drift_check: str
    address: str
    id: str


async def _session(ctx: StepContext, drift_check: str, purpose: str,
                   action: str) -> tuple[TerraformSession | None, Outcome | None]:
    """The DriftCheck's workspace ready to run ``action`` under the operator policy (its backend
    checked before any Terraform runs), or the failed Outcome saying why not."""
    ns = ctx.ref.namespace
    dc = await asyncio.to_thread(ctx.objects.get, DRIFTCHECK.plural, ns, drift_check)
    if dc is None:
        return None, Outcome(done=True, ok=False, error=f"DriftCheck {drift_check} (spec.targets.driftCheckRef) "
                                                        f"does not exist; it names the Terraform workspace")
    spec = DriftCheckSpec.model_validate(dc["spec"])
    try:
        grant = ctx.policy.terraform_grant(ns, action, spec.workspace)
        return await ctx.workspaces.open(ns, drift_check, spec, PROBE_TIMEOUT, grant, purpose), None
    except (SourceError, TerraformError) as err:
        detail = f": {err.result.diagnostic()}" if isinstance(err, TerraformError) else ""
        refused = isinstance(err, SourceError) and err.reason == "PolicyRefused"
        return None, Outcome(done=True, ok=False, error=f"cannot reach the workspace: {err}{detail}",
                             retryable=not refused)


class Import(StepAction[ImportParams]):
    """``terraform import ADDRESS ID`` unless the state already has the address (check first)."""

    names = (TERRAFORM_IMPORT,)
    params = ImportParams

    async def execute(self, ctx: StepContext, p: ImportParams) -> Outcome:
        session, failed = await _session(ctx, p.drift_check, "import", TERRAFORM_IMPORT)
        if session is None:
            return failed or Outcome(done=True, ok=False)
        try:
            present = await session.state_list()
        except TerraformError as err:
            return Outcome(done=True, ok=False, error=f"terraform state list failed: {err.result.diagnostic()}",
                           retryable=True)
        if p.address in present:
            return Outcome(done=True, outputs=f"{p.address} is already in the state; nothing imported")
        imported = await session.import_(p.address, p.id, "60s")
        if not imported.ok:
            return Outcome(done=True, ok=False, error=f"terraform import failed: {imported.diagnostic()}")
        return Outcome(done=True, outputs=f"imported {p.id} as {p.address}")


class ForceUnlock(StepAction[ForceUnlockParams]):
    """Force-unlock the diagnosed lock when still held by it and old enough (see the module docstring)."""

    names = (TERRAFORM_FORCE_UNLOCK,)
    params = ForceUnlockParams

    async def execute(self, ctx: StepContext, p: ForceUnlockParams) -> Outcome:
        session, failed = await _session(ctx, p.drift_check, "unlock", TERRAFORM_FORCE_UNLOCK)
        if session is None:
            return failed or Outcome(done=True, ok=False)
        probe = await session.plan("0s")
        if probe.exit_code in (0, 2):
            return Outcome(done=True, outputs=f"lock {p.lock_id} is already released; nothing unlocked")
        held = parse_state_lock(probe.stderr + probe.stdout)
        if held is None:
            return Outcome(done=True, ok=False, error=f"the probe plan failed for another reason: {probe.diagnostic()}")
        if held.id != p.lock_id:
            holder = held.who or "holder unknown"
            return Outcome(done=True, ok=False, error=f"the state is now locked by {held.id} ({holder}, "
                                                      f"{held.operation}), not the diagnosed {p.lock_id}; not unlocking")
        minimum = ctx.spec.remediation.force_unlock.min_lock_age_seconds
        if held.created is None:  # HCP Terraform / TFE name the workspace, not when or by whom it was locked
            return Outcome(done=True, ok=False, error=f"lock {held.id} does not say when it was taken, so its age "
                                                      f"cannot be checked against {minimum}s; check its holder, then "
                                                      f"run terraform force-unlock {held.id} by hand")
        age = (ctx.now - held.created).total_seconds()
        if age < minimum:
            return Outcome(done=False, outputs=f"lock {held.id} is {age:.0f}s old; unlocking only after {minimum}s "
                                               f"(its holder may still finish)", requeue=min(60.0, minimum - age + 1))
        unlocked = await session.force_unlock(held.id)
        if not unlocked.ok:
            return Outcome(done=True, ok=False, error=f"terraform force-unlock failed: {unlocked.diagnostic()}")
        return Outcome(done=True, outputs=f"force-unlocked {held.id} held by {held.who} ({held.operation}) "
                                          f"for {age:.0f}s")


register(Import())
register(ForceUnlock())
