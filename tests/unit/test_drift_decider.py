"""The DriftCheck decider as a table: (spec, checkpointed status, time, run request) -> next move."""
from __future__ import annotations

import datetime as dt

import pytest

from opex_operator.api.driftcheck import (DriftCheckSpec, DriftCheckStatus, ObservedLock, Outcome, ResolutionOutcome,
                                          ResolutionRecord, ResolutionStrategy, RunResult)
from opex_operator.api.gates import GateFailureRecord
from opex_operator.runbooks import drift
from opex_operator.runbooks.drift import Move

T0 = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.timezone.utc)
CREATED = T0 - dt.timedelta(days=1)
SUM_A, SUM_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def spec(**overrides) -> DriftCheckSpec:
    base = {"schedule": ["*/5 * * * *"], "timeoutSeconds": 1800, "source": {"configMapRef": {"name": "tf"}}}
    return DriftCheckSpec.model_validate({**base, **overrides})


def drifted(checksum=SUM_A, finished=T0, **status) -> DriftCheckStatus:
    result = RunResult(outcome=Outcome.DRIFT_DETECTED, plan_checksum=checksum, finished_at=finished,
                       trigger="schedule 2026-11-29T09:00Z")
    return DriftCheckStatus(last_schedule_time=T0, last_result=result, **status)


def decide(s, st, now=T0 + dt.timedelta(seconds=30), requested=None):
    return drift.decide(s, st, now, CREATED, requested)


def test_a_due_slot_runs_and_an_on_demand_request_runs_once():
    d = decide(spec(), DriftCheckStatus(last_schedule_time=T0 - dt.timedelta(minutes=5)))
    assert (d.move, d.slot, d.trigger) == (Move.RUN, T0, "schedule 2026-11-29T09:00Z")
    asked = decide(spec(), DriftCheckStatus(last_schedule_time=T0), requested="r1")
    assert (asked.move, asked.request) == (Move.RUN, "r1")
    assert decide(spec(), DriftCheckStatus(last_schedule_time=T0, last_run_request="r1"), requested="r1").move == Move.WAIT


def test_only_the_latest_missed_slot_runs_after_a_long_outage_and_once():
    down = DriftCheckStatus(last_schedule_time=T0 - dt.timedelta(hours=5))
    d = decide(spec(), down, now=T0 + dt.timedelta(minutes=2))
    assert (d.move, d.slot) == (Move.RUN, T0)
    down.last_schedule_time = d.slot  # recorded before the run: the restarted operator does not run it again
    assert decide(spec(), down, now=T0 + dt.timedelta(minutes=2)).move == Move.WAIT


def test_a_slot_missed_beyond_the_starting_deadline_is_skipped_not_run():
    d = decide(spec(startingDeadlineSeconds=60), DriftCheckStatus(last_schedule_time=T0 - dt.timedelta(minutes=5)),
               now=T0 + dt.timedelta(minutes=3))
    assert (d.move, d.skipped) == (Move.WAIT, T0)


def test_suspended_records_the_slot_without_running():
    d = decide(spec(suspend=True), DriftCheckStatus(last_schedule_time=T0 - dt.timedelta(minutes=5)))
    assert (d.move, d.slot) == (Move.WAIT, T0)


def test_manual_resolution_waits_for_the_checksum_of_this_plan():
    s = spec(resolution={"strategy": "Apply", "approvedPlanChecksum": SUM_B})
    d = decide(s, drifted())
    assert d.move == Move.AWAIT_APPROVAL and SUM_A in d.message
    assert decide(spec(resolution={"strategy": "Apply", "approvedPlanChecksum": SUM_A}), drifted()).move == Move.RESOLVE
    assert decide(spec(), drifted()).move == Move.WAIT  # ReportOnly


def test_an_owed_run_comes_first_and_a_resolved_plan_is_not_resolved_again():
    s = spec(resolution={"strategy": "RefreshOnly", "approval": "Auto"})
    done = drifted(pending_run="verification after RefreshOnly",
                   last_resolution=ResolutionRecord(strategy=ResolutionStrategy.REFRESH_ONLY, plan_checksum=SUM_A,
                                                    outcome=ResolutionOutcome.SUCCEEDED, time=T0))
    d = decide(s, done)
    assert d.move == Move.RUN and d.trigger == "verification after RefreshOnly"
    done.pending_run = None  # the verification ran and still saw the same plan: refresh cannot fix it
    assert decide(s, done).move == Move.WAIT


@pytest.mark.parametrize("attempts,minutes,move", [
    (0, 0, Move.RESOLVE), (1, 1, Move.BACK_OFF), (1, 6, Move.RESOLVE), (2, 6, Move.BACK_OFF), (2, 11, Move.RESOLVE),
    (3, 600, Move.BACK_OFF)])
def test_auto_resolution_of_a_plan_that_changes_every_run_backs_off_then_stops(attempts, minutes, move):
    """A timestamp() in a tag makes a new checksum on every run: Auto must not apply forever."""
    s = spec(schedule=["0 9 * * *"], resolution={"strategy": "Apply", "approval": "Auto"})
    last = ResolutionRecord(strategy=ResolutionStrategy.APPLY, plan_checksum=SUM_B, outcome=ResolutionOutcome.SUCCEEDED,
                            time=T0 - dt.timedelta(seconds=10))
    st = drifted(checksum=SUM_A, finished=T0, last_resolution=last, resolution_attempts=attempts)
    d = decide(s, st, now=T0 + dt.timedelta(minutes=minutes, seconds=1))
    assert d.move == move
    if move == Move.BACK_OFF:
        assert "still differs" in d.message and (d.until is None) == (attempts >= drift.MAX_AUTO_ATTEMPTS)


def test_an_orphaned_lock_is_force_unlocked_once():
    s = spec(lock={"forceUnlock": "IfOrphaned", "orphanedAfter": "10m"})
    result = RunResult(outcome=Outcome.LOCK_HELD, finished_at=T0, trigger="on demand (x)")
    lock = ObservedLock(id="L1", created=T0 - dt.timedelta(hours=1), seen_count=1,
                        first_seen_at=T0 - dt.timedelta(minutes=10), last_seen_at=T0 - dt.timedelta(minutes=10))
    st = DriftCheckStatus(last_schedule_time=T0, last_result=result, lock=lock)
    assert decide(s, st).move == Move.WAIT  # seen on one run only
    lock.seen_count, lock.last_seen_at = 2, T0 - dt.timedelta(minutes=1)
    assert decide(s, st).move == Move.WAIT  # seen on two runs, but 9 minutes apart
    lock.last_seen_at = T0
    assert decide(s, st).move == Move.FORCE_UNLOCK
    lock.unlock_attempted_at = T0  # then the run after it found the same lock again: never unlocked twice
    assert decide(s, st).move == Move.WAIT
    lock.unlock_attempted_at, lock.created = None, T0 - dt.timedelta(minutes=5)
    assert decide(s, st).move == Move.WAIT  # too young to be orphaned


def test_replace_limits_a_run_to_the_next_slot_and_forbid_to_its_timeout():
    st = DriftCheckStatus(next_schedule_time=T0 + dt.timedelta(minutes=5))
    now = T0 + dt.timedelta(minutes=1)
    assert drift.run_budget(spec(concurrencyPolicy="Replace"), st, now) == (240.0, True)
    assert drift.run_budget(spec(concurrencyPolicy="Forbid"), st, now) == (1800.0, False)


def test_forbid_skips_the_slot_that_came_during_the_run_and_replace_keeps_it():
    later = T0 + dt.timedelta(minutes=7)  # the run took 7 minutes: slot 09:05 came meanwhile
    assert drift.slot_missed_by_run(spec(concurrencyPolicy="Forbid"), T0, later) == T0 + dt.timedelta(minutes=5)
    assert drift.slot_missed_by_run(spec(concurrencyPolicy="Replace"), T0, later) is None
    assert drift.slot_missed_by_run(spec(concurrencyPolicy="Forbid"), T0 + dt.timedelta(minutes=6), later) is None


def test_checked_is_derived_from_the_last_runs_typed_outcome_not_read_back_from_a_message():
    from opex_operator.api.common import ConditionStatus
    from opex_operator.api.driftcheck import ObservedLock, RunResult, UnfinishedReason, UnfinishedRun

    NOW = T0
    nxt = NOW + dt.timedelta(hours=2)
    failed = DriftCheckStatus(last_result=RunResult(outcome=Outcome.PLAN_FAILED, reason="InitFailed", message="no init",
                                                    finished_at=NOW), consecutive_failures=2, next_schedule_time=nxt)
    status, reason, message = drift.checked_condition(spec(), failed)
    assert (status, reason) == (ConditionStatus.FALSE, "InitFailed") and message.endswith(drift.FAILED_SCHEDULED)
    failed.next_schedule_time = None  # suspended since: the same run, the schedule told anew
    assert drift.checked_condition(spec(), failed)[2].endswith(drift.FAILED_SUSPENDED)
    worked = DriftCheckStatus(last_result=RunResult(outcome=Outcome.NO_DRIFT, reason="Checked", finished_at=NOW))
    assert drift.checked_condition(spec(), worked)[:2] == (ConditionStatus.TRUE, "Checked")
    held = DriftCheckStatus(last_result=RunResult(outcome=Outcome.LOCK_HELD, reason="LockHeld", finished_at=NOW,
                                                  message="state lock abc is held"), lock=ObservedLock(id="abc"))
    status, reason, message = drift.checked_condition(spec(), held)  # how to release it, from spec and lock
    assert (reason, message) == ("LockHeld", "state lock abc is held; if its holder is dead: terraform force-unlock "
                                             "abc, or set spec.lock.forceUnlock: IfOrphaned")
    held.lock.unlock_attempted_at = NOW  # the operator tried: the condition says so at once, not after the next run
    assert "force-unlock was tried at 09:00:00 UTC" in drift.checked_condition(spec(lock={"forceUnlock": "IfOrphaned"}), held)[2]
    # A run that ended without a result speaks until the next result, over the previous run's.
    failed.unfinished_run = UnfinishedRun(reason=UnfinishedReason.INTERRUPTED, message="the plan was interrupted",
                                          time=NOW)
    assert drift.checked_condition(spec(), failed) == (ConditionStatus.FALSE, "Interrupted", "the plan was interrupted")
    assert drift.checked_condition(spec(), DriftCheckStatus()) is None  # nothing checked yet: Scheduled speaks


def test_a_runs_verdict_comes_from_its_typed_facts():
    from opex_operator.terraform.locks import LockError, LockProblem
    from opex_operator.terraform.plan import PlanSummary
    from opex_operator.api.common import StateLock

    cut = "the run exceeded timeoutSeconds (60s)"
    timed_out = drift.judge(drift.PlanRun(cut=cut, timed_out=True, diagnostic="Stopping operation..."))
    assert (timed_out.outcome, timed_out.reason, timed_out.stalled) == (Outcome.PLAN_FAILED, "TimedOut", None)
    assert timed_out.message == f"{cut}; the plan was interrupted: Stopping operation..."
    init = drift.judge(drift.PlanRun(command="init", diagnostic="no provider", config_file="main.tf"))
    assert init.reason == "InitFailed" and init.stalled.startswith("the configuration does not work (main.tf): no provider")
    assert drift.judge(drift.PlanRun(source=("SourceUnavailable", "no ConfigMap"))).reason == "SourceUnavailable"
    held = drift.judge(drift.PlanRun(exit_code=1, lock=LockError("held", lock=StateLock(id="abc"))))
    assert (held.outcome, held.reason, held.lock.id) == (Outcome.LOCK_HELD, "LockHeld", "abc")
    nameless = drift.judge(drift.PlanRun(exit_code=1, lock=LockError("held, no lock info")))
    assert (nameless.outcome, nameless.lock) == (Outcome.LOCK_HELD, None)  # retried, never force-unlocked
    denied = drift.judge(drift.PlanRun(exit_code=1, lock=LockError("denied", problem=LockProblem.DENIED)))
    assert (denied.outcome, denied.reason) == (Outcome.PLAN_FAILED, "PlanFailed")
    drifted = PlanSummary("show-json", applyable=True)  # something to apply: exit code 2
    refused = drift.judge(drift.PlanRun(exit_code=2, summary=drifted, refused="the configuration has provisioners"))
    assert refused.reason == drift.POLICY_REFUSED and refused.summary is None and "operator policy" in refused.stalled
    worked = drift.judge(drift.PlanRun(exit_code=2, summary=drifted))
    assert (worked.outcome, worked.reason, worked.summary) == (Outcome.DRIFT_DETECTED, "Checked", drifted)


def test_an_auto_plan_that_fails_a_gate_waits_like_manual_naming_the_gate_and_resources():
    failed = drifted()
    failed.last_result.gate_failures = [GateFailureRecord(gate="denyActions", source="spec.resolution.gates",
                                                          detail="replace", resources=["terraform_data.network"])]
    auto = {"resolution": {"strategy": "Apply", "approval": "Auto"}}
    d = decide(spec(**auto), failed)
    assert (d.move, d.reason) == (Move.AWAIT_APPROVAL, "GateFailed")
    assert "denyActions of spec.resolution.gates: replace of terraform_data.network" in d.message
    assert SUM_A in d.message
    approved = {"resolution": {"strategy": "Apply", "approval": "Auto", "approvedPlanChecksum": SUM_A}}
    assert decide(spec(**approved), failed).move == Move.RESOLVE  # a person approved this very plan
    assert decide(spec(**auto), drifted()).move == Move.RESOLVE     # a plan that passes goes ahead
