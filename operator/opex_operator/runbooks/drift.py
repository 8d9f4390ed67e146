"""Decide a DriftCheck's next move from its spec, checkpointed status and the time (pure; no I/O).

Runbook: "Infrastructure Drift Detection" (production daily at 09:00 UTC, development at 18:00
UTC; ``terraform plan -detailed-exitcode``: 0 no changes, 1 error, 2 changes) and its
resolutions (import, configuration update, apply, refresh). The moves, in priority order:

* a run was asked for (``opex.dev/run-requested``) or a cron slot is due → run a plan;
* a run is owed (``status.pendingRun``: to verify a resolution that succeeded, or after a
  force-unlock) → run it;
* a lock seen on runs at least ``orphanedAfter`` apart and older than that, with ``forceUnlock:
  IfOrphaned`` → force-unlock it (once per lock; see :func:`orphaned`);
* drift with a resolution strategy → resolve it when the approval allows (``Manual``: only the
  plan whose checksum was approved; ``Auto``: with backoff, see :func:`auto_backoff`, and only a
  plan that passes its gates, ``status.lastResult.gateFailures``, else like ``Manual``; after an
  interrupted apply, ``status.interruptedApply``, only a plan approved since, whatever the
  approval), or say that it waits for approval;
* otherwise wait for the next slot.

Each reconcile pass carries out one move and the next pass decides again; nothing recurses.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from .. import schedule
from ..api.common import ConditionStatus, duration_seconds
from ..api.driftcheck import (RUN_ANNOTATION, Approval, ConcurrencyPolicy, DriftCheckSpec, DriftCheckStatus,
                              ForceUnlock, ObservedLock, Outcome, ResolutionOutcome, ResolutionStrategy)
from ..api.gates import GateFailureRecord
from ..guardrails.gates import Gate, GateFailure
# Auto resolution: a plan that still differs after an apply is resolved again only after
# BACKOFF doubling per attempt, and not at all after MAX_AUTO_ATTEMPTS (a plan that changes on
# every run, e.g. a timestamp() in a tag, would otherwise be applied forever).
AUTO_BACKOFF = dt.timedelta(minutes=5)
MAX_AUTO_ATTEMPTS = 3


class Move(StrEnum):
    RUN = "Run"                        # terraform plan (``trigger`` says why)
    FORCE_UNLOCK = "ForceUnlock"       # release the orphaned lock in status.lock
    RESOLVE = "Resolve"                # apply / refresh-only / import the last plan
    AWAIT_APPROVAL = "AwaitApproval"   # the resolution waits for approvedPlanChecksum
    BACK_OFF = "BackOff"               # Auto resolution paused (``message``), until ``until`` or for good
    WAIT = "Wait"                      # nothing to do before the next slot


@dataclass(frozen=True)
class Decision:
    move: Move
    trigger: str | None = None         # RUN: the slot or request, for status and Events
    request: str | None = None         # RUN on demand: the annotation value it answers
    slot: dt.datetime | None = None    # RUN on schedule (or a skipped slot): recorded before the run
    skipped: dt.datetime | None = None  # a slot missed beyond startingDeadlineSeconds, to record
    message: str = ""
    reason: str = "AwaitingApproval"  # AWAIT_APPROVAL: the Remediating condition's reason (GateFailed: a gate holds Auto)
    until: dt.datetime | None = None   # BACK_OFF: when Auto may resolve again (None: not without approval)


FAILED_SCHEDULED, FAILED_SUSPENDED = "the next scheduled run still happens)", "suspended: no scheduled run)"


def scheduled_text(status: DriftCheckStatus) -> str:
    """The Scheduled condition's message before the first check: when it comes, or how to run now."""
    upcoming = status.next_schedule_time
    how = f"annotate {RUN_ANNOTATION}=<any value> (or opex run driftcheck) to run now"
    return (f"first check at {upcoming:%Y-%m-%d %H:%M} UTC (or {how})" if upcoming
            else f"suspended: no scheduled check; {how}")


def checked_condition(status: DriftCheckStatus) -> tuple[ConditionStatus, str, str] | None:
    """(status, reason, message) of the Checked condition that the last run (``status.lastResult``,
    its ``reason``) and the schedule (``status.nextScheduleTime``) make: True/Checked after a run that
    worked, False/<reason> with what the schedule does next after one that failed; None when the
    condition is not derived from status: no run yet, or a held lock whose id the run named
    (``status.lock``: its condition says how to release it)."""
    last, upcoming = status.last_result, status.next_schedule_time
    if last is None or last.reason is None:
        return None
    if last.reason == "Checked" and last.finished_at is not None:
        return ConditionStatus.TRUE, "Checked", f"last check {last.finished_at:%Y-%m-%d %H:%M:%S} UTC; " + (
            f"next {upcoming:%Y-%m-%d %H:%M} UTC" if upcoming else "suspended: no scheduled check")
    if not (last.outcome == Outcome.LOCK_HELD and status.lock is not None):
        return ConditionStatus.FALSE, last.reason, (
            f"{last.reason}: {last.message} (failed {status.consecutive_failures} runs in a row; "
            f"{FAILED_SCHEDULED if upcoming else FAILED_SUSPENDED}")
    return None


def overdue_at(spec: DriftCheckSpec, status: DriftCheckStatus, created: dt.datetime) -> dt.datetime | None:
    """When the check has not run within two schedule periods: the second slot after its last run
    started (or after its creation), plus the run's own ``timeoutSeconds``. None while suspended or
    while the schedule is invalid (the Stalled condition says so instead)."""
    if spec.suspend or schedule.invalid(spec.schedule, spec.time_zone):
        return None
    last = status.last_result.started_at if status.last_result and status.last_result.started_at else created
    first = schedule.next_slot(spec.schedule, spec.time_zone, last)
    return schedule.next_slot(spec.schedule, spec.time_zone, first) + dt.timedelta(seconds=spec.timeout_seconds)


def decide(spec: DriftCheckSpec, status: DriftCheckStatus, now: dt.datetime, created: dt.datetime,
           requested: str | None) -> Decision:
    """The next move (see the module docstring). ``requested`` is the run annotation's value; the
    schedule must be valid (``schedule.invalid`` is checked first, by the controller)."""
    if requested and requested != status.last_run_request:
        return Decision(Move.RUN, trigger=f"on demand ({RUN_ANNOTATION}={requested})", request=requested)
    due = schedule.due(spec.schedule, spec.time_zone, status.last_schedule_time, created, now,
                       spec.starting_deadline_seconds)
    if due.skipped is not None:
        return Decision(Move.WAIT, skipped=due.skipped)
    if due.slot is not None and not spec.suspend:
        return Decision(Move.RUN, trigger=f"schedule {due.slot:%Y-%m-%dT%H:%M}Z", slot=due.slot)
    if status.pending_run:
        return Decision(Move.RUN, trigger=status.pending_run)
    last, lock = status.last_result, status.lock
    if (last is not None and last.outcome == Outcome.LOCK_HELD and lock is not None and lock.unlock_attempted_at is None
            and spec.lock.force_unlock == ForceUnlock.IF_ORPHANED and orphaned(spec, status, now)):
        return Decision(Move.FORCE_UNLOCK)
    if not drift_to_resolve(spec, status):
        return Decision(Move.WAIT, slot=due.slot if spec.suspend else None)
    r, planned = spec.resolution, last.plan_checksum
    interrupted = status.interrupted_apply if r.strategy == ResolutionStrategy.APPLY else None
    if interrupted is not None and r.approved_plan_checksum != planned:
        # Its outcome is unknown (a provisioner may have run): only a person approving the plan
        # made since applies anything, under Auto too.
        return Decision(Move.AWAIT_APPROVAL, message=(
            f"the apply of plan {interrupted.plan_checksum} was interrupted at {interrupted.time:%Y-%m-%d %H:%M:%S} "
            f"UTC and its outcome is unknown (changes may be partly made, provisioners may have run); the plan made "
            f"since ({last.add} to add, {last.change} to change, {last.remove} to destroy) is {planned}: read report "
            f"{status.report_ref.name if status.report_ref else '(none)'}, then set "
            f"spec.resolution.approvedPlanChecksum to {planned} to apply it"))
    if (r.approval == Approval.AUTO and r.strategy != ResolutionStrategy.REFRESH_ONLY and last.gate_failures
            and r.approved_plan_checksum != planned):
        return Decision(Move.AWAIT_APPROVAL, reason="GateFailed", message=(
            f"approval Auto does not apply plan {planned}: it fails {gates_text(last.gate_failures)}; read report "
            f"{status.report_ref.name if status.report_ref else '(none)'}, then set "
            f"spec.resolution.approvedPlanChecksum to {planned} to apply it"))
    if r.approval == Approval.MANUAL:
        if r.approved_plan_checksum != planned:
            return Decision(Move.AWAIT_APPROVAL, message=(
                f"{r.strategy.value} waits for approval: set spec.resolution.approvedPlanChecksum to {planned} "
                f"(status.lastResult.planChecksum) after reading report "
                f"{status.report_ref.name if status.report_ref else '(none)'}"))
        return Decision(Move.RESOLVE)
    # Import only adds what the state lacks, so repeating it cannot loop; the others back off.
    paused, until = auto_backoff(status, now) if r.strategy != ResolutionStrategy.IMPORT else (None, None)
    if paused:
        return Decision(Move.BACK_OFF, message=paused, until=until)
    return Decision(Move.RESOLVE)


def gates_text(failures: list[GateFailureRecord]) -> str:
    """The failed gates for a condition or Event: ``denyActions of spec.resolution.gates: replace of
    aws_s3_bucket.logs; ...`` (as ``guardrails.gates.GateFailure.describe``)."""
    return "; ".join(GateFailure(Gate(f.gate), f.source, f.detail, tuple(f.resources)).describe() for f in failures)


def drift_to_resolve(spec: DriftCheckSpec, status: DriftCheckStatus) -> bool:
    """The last run found drift, a strategy resolves it, and this plan was not resolved (or tried) yet."""
    last, done = status.last_result, status.last_resolution
    if spec.resolution.strategy == ResolutionStrategy.REPORT_ONLY or last is None:
        return False
    if last.outcome != Outcome.DRIFT_DETECTED:
        return False
    # An interrupted resolution is never done: the plan made after it decides (an apply's needs a
    # new approval: status.interruptedApply makes its checksum new; refresh-only and import are
    # safe to repeat).
    return done is None or done.plan_checksum != last.plan_checksum or done.outcome == ResolutionOutcome.INTERRUPTED


def auto_backoff(status: DriftCheckStatus, now: dt.datetime) -> tuple[str | None, dt.datetime | None]:
    """Why an Auto resolution must wait, and until when (None: until a person approves a checksum).

    ``status.resolutionAttempts`` counts the resolutions since the last clean run; after the
    first, each further one waits AUTO_BACKOFF doubling, and after MAX_AUTO_ATTEMPTS none runs.
    """
    attempts, last = status.resolution_attempts, status.last_resolution
    if attempts == 0 or last is None:
        return None, None
    if attempts >= MAX_AUTO_ATTEMPTS:
        return (f"the plan still differs after {attempts} automatic resolutions (it changes on every run, e.g. a "
                f"timestamp() in the configuration); approval Auto is paused: fix the configuration, or set "
                f"approval Manual and approve a checksum"), None
    until = last.time + AUTO_BACKOFF * 2 ** (attempts - 1)
    if now >= until:
        return None, None
    return (f"the plan still differs after {attempts} automatic resolution(s); the next one waits until "
            f"{until:%Y-%m-%d %H:%M:%S} UTC (backoff)"), until


def orphaned(spec: DriftCheckSpec, status: DriftCheckStatus, now: dt.datetime) -> bool:
    """The held lock counts as orphaned: runs at least ``lock.orphanedAfter`` apart found it (the
    operator watched it stay held that long, whatever the holder's clock says), and it is older
    than that by its own ``Created``. Two runs seconds apart prove nothing about a long apply."""
    lock = status.lock
    after = duration_seconds(spec.lock.orphaned_after)
    age = (now - lock.created).total_seconds() if lock.created else 0.0
    return lock.seen_count >= 2 and watched(lock) >= after and age > after


def watched(lock: ObservedLock) -> float:
    """Seconds between the first and the last run that found ``lock`` (an ObservedLock) held."""
    if lock.first_seen_at is None or lock.last_seen_at is None:
        return 0.0
    return (lock.last_seen_at - lock.first_seen_at).total_seconds()


def unlockable_from(spec: DriftCheckSpec, lock: ObservedLock) -> dt.datetime | None:
    """The earliest time a run that finds ``lock`` still held lets it be force-unlocked (None when
    its age is unknown: it never counts as orphaned)."""
    if lock.created is None or lock.first_seen_at is None:
        return None
    after = dt.timedelta(seconds=duration_seconds(spec.lock.orphaned_after))
    return max(lock.first_seen_at, lock.created) + after


def run_budget(spec: DriftCheckSpec, status: DriftCheckStatus, now: dt.datetime) -> tuple[float, bool]:
    """Seconds a run may take, and whether the limit is the next slot (concurrencyPolicy Replace)."""
    budget = float(spec.timeout_seconds)
    if spec.concurrency_policy == ConcurrencyPolicy.REPLACE and status.next_schedule_time is not None:
        until_next = (status.next_schedule_time - now).total_seconds()
        if until_next < budget:
            return max(1.0, until_next), True
    return budget, False


def slot_missed_by_run(spec: DriftCheckSpec, started: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """The latest slot that came due while a run (``started`` .. ``now``) was going, which
    concurrencyPolicy Forbid skips (None: no slot came, or Replace runs it next)."""
    if spec.concurrency_policy != ConcurrencyPolicy.FORBID:
        return None
    return schedule.latest_slot(spec.schedule, spec.time_zone, started, now)
