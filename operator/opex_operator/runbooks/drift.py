"""Decide a DriftCheck's next move from its spec, checkpointed status and the time (pure; no I/O).

Runbook: "Infrastructure Drift Detection" (production daily at 09:00 UTC, development at 18:00
UTC; ``terraform plan -detailed-exitcode``: 0 no changes, 1 error, 2 changes) and its
resolutions (import, configuration update, apply, refresh). The moves, in priority order:

* a run was asked for (``opex.dev/run-requested``) or a cron slot is due → run a plan;
* a run is owed (``status.pendingRun``: to verify a resolution that succeeded, or after a
  force-unlock) → run it;
* CloudTrail changed a resource of the last plan (``spec.triggers.cloudTrail``; the intake's
  records after ``status.answeredChange``) → run it, at most once per
  ``eventDebounceSeconds`` (counted from ``status.lastChangeRunTime``; until then the other moves
  go on and the pass comes back when the wait is over);
* a lock seen on runs at least ``orphanedAfter`` apart and older than that, with ``forceUnlock:
  IfOrphaned`` → force-unlock it (once per lock; see :func:`orphaned`);
* drift with a resolution strategy → resolve it when the approval allows (``Manual``: only the
  plan whose checksum was approved; ``Auto``: with backoff, see :func:`auto_backoff`, and only a
  plan that passes its gates, ``status.lastResult.gateFailures``, else like ``Manual``; after an
  interrupted apply, ``status.interruptedApply``, only a plan approved since, whatever the
  approval), or say that it waits for approval;
* otherwise wait for the next slot.

Each reconcile pass carries out one move and the next pass decides again; nothing recurses.

What a run's facts mean is decided here too: :func:`judge` turns the typed facts of one run
(:class:`PlanRun`: exit code, timeout, failed command, lock error, plan summary) into its
outcome, reason and whether the DriftCheck is Stalled; :func:`progress_conditions` derives
Scheduled and Checked from the typed status alone, on every status write.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from .. import schedule
from ..api.common import ConditionStatus, StateLock, duration_seconds
from ..api.conditions import ConditionValue
from ..api.driftcheck import (CHECKED, RUN_ANNOTATION, SCHEDULED, Approval, ConcurrencyPolicy, DriftCheckSpec,
                              DriftCheckStatus, ForceUnlock, ObservedLock, Outcome, ResolutionOutcome,
                              ResolutionStrategy)
from ..terraform.locks import LockError, LockProblem
from ..terraform.plan import PlanSummary
from ..api.gates import GateFailureRecord
from ..guardrails.gates import Gate, GateFailure, describe as describe_gates
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
    until: dt.datetime | None = None   # BACK_OFF: when Auto may resolve again (None: not without approval);
                                       # WAIT: when debounced CloudTrail changes may run
    started: bool = False              # RUN: on record as started (the pass before wrote it); now make it
    answers: str | None = None         # RUN for CloudTrail changes: the eventID of the newest change it answers


FAILED_SCHEDULED, FAILED_SUSPENDED = "the next scheduled run still happens)", "suspended: no scheduled run)"
POLICY_REFUSED = "PolicyRefused"


@dataclass(frozen=True)
class PlanRun:
    """What one run showed, as typed facts. The controller gathers them (source, init, plan, show)
    and :func:`judge` decides what they mean. A field left at its default did not happen.

    ``cut`` says why the run's budget ends (timeoutSeconds, or the next slot under concurrencyPolicy
    Replace), for a timeout's message. ``source`` is the (reason, message) of a source that could not
    be read. ``command`` is the Terraform command that could not run (init, workspace, plan...).
    ``diagnostic`` is Terraform's diagnostic or the error's text. ``config_file`` is the
    configuration file a failure points at. ``refused`` says why the policy refuses the plan.
    ``unreadable`` is why the plan JSON could not be read.
    """

    cut: str = ""
    source: tuple[str, str] | None = None
    command: str | None = None
    timed_out: bool = False
    exit_code: int | None = None
    diagnostic: str = ""
    lock: LockError | None = None
    config_file: str | None = None
    refused: str | None = None
    unreadable: str | None = None
    summary: PlanSummary | None = None


@dataclass(frozen=True)
class RunVerdict:
    """How a run ended (:func:`judge`). ``reason`` is what the Checked condition says: Checked for
    a plan that worked, else PlanFailed, InitFailed, TimedOut, LockHeld, PolicyRefused, InvalidPlan
    or the source's reason. ``lock`` is a held lock the run named (LockHeld with its ID, so it can
    be watched and force-unlocked). ``stalled`` is the Stalled message when only a change by a person
    helps (a broken configuration, a plan the policy refuses), else None."""

    outcome: Outcome
    reason: str
    message: str = ""
    lock: StateLock | None = None
    stalled: str | None = None
    summary: PlanSummary | None = None

    @property
    def worked(self) -> bool:
        return self.summary is not None


def judge(run: PlanRun) -> RunVerdict:
    """The verdict on one run from its typed facts (the runbook's ``terraform plan
    -detailed-exitcode``: 0 no changes, 1 error, 2 changes present). A state lock another holder has
    is LockHeld and is retried, never a plan failure. A lock the caller may not write, or a backend
    that failed, is PlanFailed. A lock error that names no lock (DynamoDB, a log cut short) is still
    LockHeld."""
    if run.source is not None:
        reason, message = run.source
        return _failed(reason, message)
    if run.command is not None:
        if run.timed_out:
            return _failed("TimedOut", f"{run.cut}: {run.diagnostic}")
        return _failed("InitFailed" if run.command in ("init", "workspace") else "PlanFailed", run.diagnostic,
                       run.config_file)
    if run.unreadable is not None:
        return _failed("InvalidPlan", f"terraform gave an unreadable plan: {run.unreadable}")
    if run.timed_out:
        return _failed("TimedOut", f"{run.cut}; the plan was interrupted: {run.diagnostic}")
    if run.exit_code == 1 or run.summary is None:
        if run.lock is None:
            return _failed("PlanFailed", run.diagnostic, run.config_file)
        held = run.lock.problem == LockProblem.HELD
        verdict = _failed("LockHeld" if held else "PlanFailed", run.lock.describe())
        return verdict if run.lock.lock is None else RunVerdict(Outcome.LOCK_HELD, "LockHeld", verdict.message,
                                                                lock=run.lock.lock)
    if run.refused is not None:
        return _failed(POLICY_REFUSED, run.refused)
    if run.summary.outcome == Outcome.PLAN_FAILED:  # errored, or not applyable
        return _failed("PlanFailed", "; ".join(run.summary.errors), run.config_file)
    return RunVerdict(run.summary.outcome, "Checked", summary=run.summary)


def _failed(reason: str, message: str, config_file: str | None = None) -> RunVerdict:
    if config_file is not None:
        stalled: str | None = (f"the configuration does not work ({config_file}): {message}; fix it in the source: "
                               f"the next run checks again")
    elif reason == POLICY_REFUSED:
        stalled = (f"{message}; change the DriftCheck (or ask the platform team to change the operator policy): the "
                   f"next run checks again")
    else:
        stalled = None
    return RunVerdict(Outcome.LOCK_HELD if reason == "LockHeld" else Outcome.PLAN_FAILED, reason, message,
                      stalled=stalled)


def scheduled_text(status: DriftCheckStatus) -> str:
    """The Scheduled condition's message before the first check: when it comes, or how to run now."""
    upcoming = status.next_schedule_time
    how = f"annotate {RUN_ANNOTATION}=<any value> (or opex run driftcheck) to run now"
    return (f"first check at {upcoming:%Y-%m-%d %H:%M} UTC (or {how})" if upcoming
            else f"suspended: no scheduled check; {how}")


def checked_condition(spec: DriftCheckSpec, status: DriftCheckStatus) -> ConditionValue | None:
    """The Checked condition the typed status makes, or None before anything was checked.

    A run that ended without a result (``status.unfinishedRun``) speaks first. Then the last run
    (``status.lastResult``, its ``reason``) and the schedule (``status.nextScheduleTime``) decide:
    True/Checked after a run that worked; False/LockHeld, with how to release it, while the lock
    the run named is held (``status.lock``); False/<reason> with what the schedule does next after
    any other failure."""
    if status.unfinished_run is not None:
        return ConditionStatus.FALSE, status.unfinished_run.reason.value, status.unfinished_run.message
    last, upcoming = status.last_result, status.next_schedule_time
    if last is None:
        return None
    worked = last.outcome in (Outcome.NO_DRIFT, Outcome.DRIFT_DETECTED)
    reason = last.reason or ("Checked" if worked else last.outcome.value)  # a result an older operator wrote
    if reason == "Checked" and last.finished_at is not None:
        return ConditionStatus.TRUE, "Checked", f"last check {last.finished_at:%Y-%m-%d %H:%M:%S} UTC; " + (
            f"next {upcoming:%Y-%m-%d %H:%M} UTC" if upcoming else "suspended: no scheduled check")
    if last.outcome == Outcome.LOCK_HELD and status.lock is not None:
        return ConditionStatus.FALSE, "LockHeld", f"{last.message}{lock_hint(spec, status.lock)}"
    return ConditionStatus.FALSE, reason, (
        f"{reason}: {last.message} (failed {status.consecutive_failures} runs in a row; "
        f"{FAILED_SCHEDULED if upcoming else FAILED_SUSPENDED}")


def progress_conditions(spec: DriftCheckSpec, status: DriftCheckStatus) -> dict[str, ConditionValue | None]:
    """Scheduled and Checked as the typed status makes them (None: the condition is absent).
    Before the first check, ``Scheduled=True`` says when it comes; it makes Ready True, because a
    DriftCheck that is set up and waits for its slot is healthy (kstatus Current, so a Flux
    Kustomization with ``wait: true`` does not time out on one it just applied). From the first
    check on, Checked speaks instead."""
    checked = checked_condition(spec, status)
    if checked is None:
        return {SCHEDULED: (ConditionStatus.TRUE, "Scheduled", scheduled_text(status)), CHECKED: None}
    return {SCHEDULED: None, CHECKED: checked}


def lock_hint(spec: DriftCheckSpec, lock: ObservedLock) -> str:
    """How the held ``lock`` gets released: by a person, by the operator's force-unlock (and from
    when), or not again (it was tried)."""
    if spec.lock.force_unlock != ForceUnlock.IF_ORPHANED:
        return f"; if its holder is dead: terraform force-unlock {lock.id}, or set spec.lock.forceUnlock: IfOrphaned"
    if lock.unlock_attempted_at is not None:
        return f"; force-unlock was tried at {lock.unlock_attempted_at:%H:%M:%S} UTC and is not tried again"
    when = unlockable_from(spec, lock)
    return (f" (forceUnlock IfOrphaned: the first run after {when:%Y-%m-%d %H:%M:%S} UTC that still finds it "
            f"force-unlocks it: by then it is older than orphanedAfter {spec.lock.orphaned_after} and runs that far "
            f"apart have found it held)" if when else
            " (forceUnlock IfOrphaned: the lock does not say when it was taken, so it is never force-unlocked)")


def overdue_at(spec: DriftCheckSpec, status: DriftCheckStatus, created: dt.datetime) -> dt.datetime | None:
    """When the check has not run within two schedule periods: the second slot after its last run
    started (or after its creation), plus the run's own ``timeoutSeconds``. None while suspended or
    while the schedule is invalid (the Stalled condition says so instead)."""
    if spec.suspend or schedule.invalid(spec.schedule, spec.time_zone):
        return None
    last = status.last_result.started_at if status.last_result and status.last_result.started_at else created
    first = schedule.next_slot(spec.schedule, spec.time_zone, last)
    return schedule.next_slot(spec.schedule, spec.time_zone, first) + dt.timedelta(seconds=spec.timeout_seconds)


def changes_run(spec: DriftCheckSpec, status: DriftCheckStatus, now: dt.datetime,
                changes: list[dict[str, Any]]) -> tuple[Decision | None, dt.datetime | None]:
    """The run CloudTrail ``changes`` (``trail_changes.pending`` entries) owe now, or when the
    debounce lets them run: (decision, None) or (None, until); (None, None) when nothing is owed."""
    if not spec.triggers.cloud_trail or spec.suspend or not changes:
        return None, None
    last = status.last_change_run_time
    if last is not None and now < last + dt.timedelta(seconds=spec.event_debounce_seconds):
        return None, last + dt.timedelta(seconds=spec.event_debounce_seconds)
    newest = changes[-1]
    who = (newest.get("principal") or "an unknown caller").rsplit(":", 1)[-1]
    more = f" and {len(changes) - 1} more" if len(changes) > 1 else ""
    return Decision(Move.RUN, trigger=f"CloudTrail: {newest.get('eventName')} by {who}{more}",
                    answers=newest["eventId"]), None


def decide(spec: DriftCheckSpec, status: DriftCheckStatus, now: dt.datetime, created: dt.datetime,
           requested: str | None, changes: list[dict[str, Any]] | None = None) -> Decision:
    """The next move (see the module docstring). ``requested`` is the run annotation's value,
    ``changes`` the CloudTrail changes that owe a run (``trail_changes.pending``); the schedule must
    be valid (``schedule.invalid`` is checked first, by the controller).

    A run is put on record as started (``status.runningSince``: its slot or request is never run
    again) before Terraform plans; the controller writes that and runs it in one pass (``started``:
    a pass before wrote it). A run on record as started by another operator process was
    interrupted; the controller clears it first (it runs again as ``status.pendingRun``)."""
    decided = _decide(spec, status, now, created, requested, changes or [])
    if decided.move == Move.WAIT and decided.until is None:
        _, until = changes_run(spec, status, now, changes or [])
        if until is not None:
            return replace(decided, until=until)
    return decided


def _decide(spec: DriftCheckSpec, status: DriftCheckStatus, now: dt.datetime, created: dt.datetime,
            requested: str | None, changes: list[dict[str, Any]]) -> Decision:
    if status.running_since is not None:
        return Decision(Move.RUN, trigger=status.running_trigger, started=True)
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
    changed, _ = changes_run(spec, status, now, changes)
    if changed is not None:
        return changed
    last, lock = status.last_result, status.lock
    if (last is not None and last.outcome == Outcome.LOCK_HELD and lock is not None and lock.unlock_attempted_at is None
            and spec.lock.force_unlock == ForceUnlock.IF_ORPHANED and orphaned(spec, status, now)):
        return Decision(Move.FORCE_UNLOCK)
    if last is None or not drift_to_resolve(spec, status):
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
    aws_s3_bucket.logs; ...`` (as ``guardrails.gates.describe``)."""
    return describe_gates([GateFailure(Gate(f.gate), f.source, f.detail, tuple(f.resources)) for f in failures])


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
    if lock is None:
        return False
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
