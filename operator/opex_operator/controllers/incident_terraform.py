"""The Incident's Terraform steps: ``terraform-force-unlock`` (a dead run's state lock, safely) and
``terraform-import-<addr>`` (adopt an object that already exists), in a DriftCheck's workspace.

Runbook: "Terraform state lock held → terraform force-unlock LOCK_ID". The operator unlocks only
the lock the diagnosis named (``params.lockId``), only once it is older than
``spec.remediation.forceUnlock.minLockAgeSeconds``, and checks first: a probe plan with
``-lock-timeout=0s`` tells whether the lock is still held, and by whom. A lock already released
is success with nothing done; a lock now held by another run is never touched.
"""
from __future__ import annotations

import asyncio

from ..api.driftcheck import DriftCheckSpec
from ..terraform.locks import parse_state_lock
from ..terraform.runner import TerraformError
from ..terraform.workspace import RunDir, SourceError
from .incident_steps import Outcome, StepContext
from .tfsession import Session, prepare

PROBE_TIMEOUT = 300.0


async def _session(ctx: StepContext, purpose: str) -> tuple[Session | None, Outcome | None]:
    """The DriftCheck's workspace ready to run, or the failed Outcome saying why not."""
    p, ns = ctx.step.params, ctx.ref.namespace
    dc = await asyncio.to_thread(ctx.kube.get_named, "driftchecks", ns, p["driftCheck"])
    if dc is None:
        return None, Outcome(done=True, ok=False, error=f"DriftCheck {p['driftCheck']} (spec.targets.driftCheckRef) "
                                                        f"does not exist; it names the Terraform workspace")
    spec = DriftCheckSpec.model_validate(dc["spec"])
    settings = ctx.terraform
    run_dir = RunDir(settings.work_dir / ns / f"{p['driftCheck']}-{purpose}")
    try:
        return await prepare(ctx.kube, ns, spec, run_dir, settings.binary, settings.cache_dir, PROBE_TIMEOUT), None
    except (SourceError, TerraformError) as err:
        detail = f": {err.result.diagnostic()}" if isinstance(err, TerraformError) else ""
        return None, Outcome(done=True, ok=False, error=f"cannot reach the workspace: {err}{detail}", retryable=True)


async def import_existing(ctx: StepContext) -> Outcome:
    """``terraform import ADDRESS ID`` unless the state already has the address (check first)."""
    p = ctx.step.params
    session, failed = await _session(ctx, "import")
    if failed:
        return failed
    try:
        present = await session.tf.state_list(timeout=session.remaining())
    except TerraformError as err:
        return Outcome(done=True, ok=False, error=f"terraform state list failed: {err.result.diagnostic()}",
                       retryable=True)
    if p["address"] in present:
        return Outcome(done=True, outputs=f"{p['address']} is already in the state; nothing imported")
    imported = await session.tf.import_(p["address"], p["id"], "60s", session.var_path, timeout=session.remaining())
    if not imported.ok:
        return Outcome(done=True, ok=False, error=f"terraform import failed: {imported.diagnostic()}")
    return Outcome(done=True, outputs=f"imported {p['id']} as {p['address']}")


async def force_unlock(ctx: StepContext) -> Outcome:
    p = ctx.step.params
    session, failed = await _session(ctx, "unlock")
    if failed:
        return failed
    probe = await session.tf.plan(str(session.run_dir.plan), "0s", session.var_path, timeout=session.remaining())
    if probe.exit_code in (0, 2):
        return Outcome(done=True, outputs=f"lock {p['lockId']} is already released; nothing unlocked")
    held = parse_state_lock(probe.stderr + probe.stdout)
    if held is None:
        return Outcome(done=True, ok=False, error=f"the probe plan failed for another reason: {probe.diagnostic()}")
    if held.id != p["lockId"]:
        holder = held.who or "holder unknown"
        return Outcome(done=True, ok=False, error=f"the state is now locked by {held.id} ({holder}, "
                                                  f"{held.operation}), not the diagnosed {p['lockId']}; not unlocking")
    minimum = ctx.spec.remediation.force_unlock.min_lock_age_seconds
    if held.created is None:  # HCP Terraform / TFE name the workspace, not when or by whom it was locked
        return Outcome(done=True, ok=False, error=f"lock {held.id} does not say when it was taken, so its age "
                                                  f"cannot be checked against {minimum}s; check its holder, then "
                                                  f"run terraform force-unlock {held.id} by hand")
    age = (ctx.now - held.created).total_seconds()
    if age < minimum:
        return Outcome(done=False, outputs=f"lock {held.id} is {age:.0f}s old; unlocking only after {minimum}s "
                                           f"(its holder may still finish)", requeue=min(60.0, minimum - age + 1))
    unlocked = await session.tf.force_unlock(held.id, timeout=session.remaining())
    if not unlocked.ok:
        return Outcome(done=True, ok=False, error=f"terraform force-unlock failed: {unlocked.diagnostic()}")
    return Outcome(done=True, outputs=f"force-unlocked {held.id} held by {held.who} ({held.operation}) for {age:.0f}s")
