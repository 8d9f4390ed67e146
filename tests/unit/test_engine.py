"""The engine's decisions as a table: (spec, checkpointed status) -> next move."""
from __future__ import annotations

import pytest

from factories import spec
from opex_operator.api.incident import IncidentPhase, IncidentStatus, Step, StepState
from opex_operator.runbooks.engine import Move, decide, unknown_approvals
from opex_operator.runbooks.plan import read_step

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
    return IncidentStatus(phase=phase, steps=out)


DONE = StepState.SUCCEEDED
PLANNED = [("assess", DONE), ("classify", DONE), (ROLLBACK, StepState.PENDING), ("verify", StepState.PENDING),
           ("notify-resolved", StepState.PENDING)]


def test_a_new_incident_is_assessed_first():
    d = decide(spec(), IncidentStatus())
    assert d.move == Move.RUN and d.step.id == "assess"


def test_classification_follows_assessment():
    d = decide(spec(), status(("assess", DONE)))
    assert d.move == Move.RUN and d.step.id == "classify"


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
    assert decide(spec(), status(*base, ("verify", StepState.PENDING))).step.id == "verify"
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
