"""The engine's decisions as a table: (spec, checkpointed status) -> next move."""
from __future__ import annotations

import pytest

import datetime as dt

from support.builders import NOW, spec
from opex_operator.api.incident import EscalationLevel, EscalationStatus, IncidentPhase, IncidentStatus, Step, StepState
from opex_operator.runbooks import engine
from opex_operator.runbooks.engine import Move, Situation, VerifyOutcome, read_step, unknown_approvals
from opex_operator.ports.facts import FunctionState
from opex_operator.playbooks import playbook_for
from opex_operator.steps import action_of
from opex_operator.steps.lambda_code import FunctionSeen, LambdaRollbackParams

ROLLBACK = "rollback-lambda-checkout-api"


def status(*steps: tuple[str, StepState], phase=IncidentPhase.DIAGNOSING, mutating=(ROLLBACK, "retry-stage-deploy")):
    out = []
    for step_id, state in steps:
        if step_id in ("assess", "classify", "verify", "notify-resolved"):
            s = read_step(step_id)
        else:
            s = Step(id=step_id, action="lambda:UpdateFunctionCode", mutating=step_id in mutating)
        s.state = state
        out.append(s)
    return IncidentStatus(phase=phase, steps=out, detected_at=NOW, escalation=EscalationStatus(current_level=1))


def decide(spec, status, now=NOW, **situation):
    return engine.decide(spec, status, Situation(now=now, **situation))


DONE = StepState.SUCCEEDED
PLANNED = [("assess", DONE), ("classify", DONE), (ROLLBACK, StepState.PENDING), ("verify", StepState.PENDING),
           ("notify-resolved", StepState.PENDING)]


LEVELS = [EscalationLevel(level=1, contact="DevOps lead"), EscalationLevel(level=2, contact="EM", after_seconds=1800)]


def test_a_detected_incident_is_assessed_first():
    assert decide(spec(), IncidentStatus(phase=IncidentPhase.DETECTED, detected_at=NOW)).move == Move.ASSESS


def test_a_half_done_assessment_is_done_again():
    assert decide(spec(), status(("assess", DONE))).move == Move.ASSESS


def test_a_namespace_outside_policy_is_refused_before_anything_is_read():
    d = decide(spec(), IncidentStatus(phase=IncidentPhase.DETECTED, detected_at=NOW), denied="no rule matches")
    assert d.move == Move.DENY


def test_the_first_page_waits_for_the_diagnosis_but_not_longer_than_a_minute():
    fresh = IncidentStatus(phase=IncidentPhase.ASSESSING, detected_at=NOW)
    assert decide(spec(), fresh, levels=LEVELS).move == Move.ASSESS
    late = decide(spec(), fresh, now=NOW + dt.timedelta(seconds=61), levels=LEVELS)
    assert late.move == Move.ESCALATE and [lv.level for lv in late.levels] == [1]
    diagnosed = status(*PLANNED)
    diagnosed.escalation = None
    d = decide(spec(), diagnosed, levels=LEVELS)
    assert d.move == Move.ESCALATE and [lv.level for lv in d.levels] == [1]


def test_the_next_level_is_paged_when_its_time_comes_before_any_other_move():
    d = decide(spec(remediation={"mode": "Auto"}), status(*PLANNED), now=NOW + dt.timedelta(minutes=31),
               levels=LEVELS)
    assert d.move == Move.ESCALATE and [lv.level for lv in d.levels] == [2]


def test_no_applicable_level_is_recorded_once():
    diagnosed = status(*PLANNED)
    diagnosed.escalation = None
    assert decide(spec(), diagnosed).move == Move.ESCALATE
    assert decide(spec(), status(*PLANNED)).move == Move.AWAIT_APPROVAL


def test_manual_mode_waits_for_the_step_id_in_approved_steps():
    d = decide(spec(), status(*PLANNED))
    assert d.move == Move.AWAIT_APPROVAL and d.step.id == ROLLBACK
    approved = spec(remediation={"mode": "Manual", "approvedSteps": [ROLLBACK]})
    assert decide(approved, status(*PLANNED)).move == Move.RUN


def test_auto_mode_runs_mutating_steps():
    assert decide(spec(remediation={"mode": "Auto"}), status(*PLANNED)).step.id == ROLLBACK


def test_dry_run_records_each_mutating_step_then_waits():
    dry = spec(remediation={"mode": "DryRun"})
    assert decide(dry, status(*PLANNED)).move == Move.DRY_RUN
    recorded = status(("assess", DONE), ("classify", DONE), (ROLLBACK, StepState.DRY_RUN),
                      ("verify", StepState.PENDING), ("notify-resolved", StepState.PENDING))
    assert decide(dry, recorded).move == Move.DRY_RUN_DONE
    # switching the mode to Auto runs what the dry run recorded
    assert decide(spec(remediation={"mode": "Auto"}), recorded).move == Move.RUN


def test_a_running_step_is_resumed_even_without_approval():
    running = status(("assess", DONE), ("classify", DONE), (ROLLBACK, StepState.RUNNING))
    d = decide(spec(), running)
    assert d.move == Move.RUN and d.step.id == ROLLBACK


@pytest.mark.parametrize("on_failure,expected", [("Stop", (Move.FAIL, False)), ("Escalate", (Move.FAIL, True))])
def test_failed_step_stops_or_escalates(on_failure, expected):
    s = spec(remediation={"mode": "Auto", "steps": [{"id": ROLLBACK, "onFailure": on_failure}]})
    d = decide(s, status(("assess", DONE), ("classify", DONE), (ROLLBACK, StepState.FAILED)))
    assert (d.move, d.escalate) == expected


def test_failed_step_with_continue_moves_on():
    s = spec(remediation={"mode": "Auto", "steps": [{"id": ROLLBACK, "onFailure": "Continue"}]})
    d = decide(s, status(("assess", DONE), ("classify", DONE), (ROLLBACK, StepState.FAILED),
                         ("retry-stage-deploy", StepState.PENDING), ("verify", StepState.PENDING)))
    assert d.step.id == "retry-stage-deploy"


def test_verify_then_notify_then_resolve():
    base = [("assess", DONE), ("classify", DONE), (ROLLBACK, DONE)]
    assert decide(spec(), status(*base, ("verify", StepState.PENDING))).move == Move.VERIFY
    assert decide(spec(), status(*base, ("verify", DONE), ("notify-resolved", StepState.PENDING))).step.id == \
        "notify-resolved"
    assert decide(spec(), status(*base, ("verify", DONE), ("notify-resolved", StepState.SKIPPED))).move == Move.RESOLVE


def test_failed_verification_fails_the_incident():
    d = decide(spec(), status(("assess", DONE), ("classify", DONE), (ROLLBACK, DONE), ("verify", StepState.FAILED)))
    assert d.move == Move.FAIL and d.step.id == "verify"


def test_closing_and_terminal_phases():
    assert decide(spec(closed=True), status(*PLANNED)).move == Move.CLOSE
    assert decide(spec(closed=True), status(*PLANNED, phase=IncidentPhase.CLOSED)).move == Move.IDLE
    assert decide(spec(), status(*PLANNED, phase=IncidentPhase.RESOLVED)).move == Move.IDLE


def test_unknown_approvals_are_reported_only_once_the_plan_exists():
    s = spec(remediation={"approvedSteps": ["rollback-lambda-typo", ROLLBACK]})
    assert unknown_approvals(s, status(("assess", DONE))) == []
    assert unknown_approvals(s, status(*PLANNED)) == ["rollback-lambda-typo"]


def running(sha="v1sha", update="Successful") -> FunctionState:
    return FunctionState("checkout-api", "$LATEST", sha, "Active", update)


def held(seen: FunctionSeen):
    """What the rollback's action makes of ``seen``."""
    step = Step(id=ROLLBACK, action="lambda:UpdateFunctionCode", mutating=True, state=StepState.SUCCEEDED)
    action = action_of(step.action)
    return action.holds(step, LambdaRollbackParams(function_name="checkout-api", to_version="1"), seen)


NO_FIX = (VerifyOutcome.PENDING, "nothing to observe automatically")


def test_verified_when_the_function_settled_and_logged_no_error_since_its_step():
    st = status(("assess", DONE), ("classify", DONE), (ROLLBACK, DONE))
    outcome, text = engine.verify(st, held(FunctionSeen(running())), [], False, NO_FIX)
    assert outcome == VerifyOutcome.VERIFIED and "no ERROR events" in text


def test_errors_after_the_step_fail_verification_and_an_update_in_flight_waits():
    st = status(("assess", DONE), ("classify", DONE), (ROLLBACK, DONE))
    failed, text = engine.verify(st, held(FunctionSeen(running(), ["[ERROR] boom"])), [], False, NO_FIX)
    assert failed == VerifyOutcome.FAILED and "[ERROR] boom" in text
    pending, _ = engine.verify(st, held(FunctionSeen(running(update="InProgress"))), [], False, NO_FIX)
    assert pending == VerifyOutcome.PENDING


def test_without_a_step_only_a_new_successful_pipeline_execution_verifies_a_manual_fix():
    st = status(("assess", DONE), ("classify", DONE))
    deployment, with_pipeline = playbook_for("DeploymentFailure"), spec()
    old = deployment.judge_fix(with_pipeline, st, ("e-1", "Succeeded", NOW - dt.timedelta(minutes=5)))
    new = deployment.judge_fix(with_pipeline, st, ("e-2", "Succeeded", NOW + dt.timedelta(minutes=5)))
    assert engine.verify(st, [], [], False, old)[0] == VerifyOutcome.PENDING
    assert engine.verify(st, [], [], False, new) == (VerifyOutcome.VERIFIED,
                                                       "a new execution e-2 of checkout-pipeline succeeded")
    without = spec(targets={"lambda": {"functionNames": ["checkout-api"]}})
    assert engine.verify(st, [], [], False, deployment.judge_fix(without, st, None)) == NO_FIX
