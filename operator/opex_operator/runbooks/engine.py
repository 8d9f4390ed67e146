"""Decide an incident's next move from its spec and checkpointed status (pure; no I/O).

The runbook is an ordered list of steps: ``assess`` → ``classify`` → remediation steps (gated)
→ ``verify`` → ``notify-resolved``. Given the spec and the status, :func:`decide` returns the
one thing to do now; the controller does it through an adapter and records the result, then
asks again. Status is the checkpoint, so after a restart the same question gets the same answer.

Approval rules (DESIGN.md §3): in ``DryRun`` a mutating step is recorded, never run; in
``Manual`` (default) it waits until its id is listed in ``spec.remediation.approvedSteps``;
in ``Auto`` it runs. A step already ``Running`` (intent recorded, outcome not) is resumed by
its executor, which checks the current state first, so it never acts twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..api.incident import (IncidentPhase, IncidentSpec, IncidentStatus, OnFailure, RemediationMode, Step,
                            StepPolicy, StepState)
from .plan import ASSESS, CLASSIFY, NOTIFY, VERIFY, read_step

TERMINAL = {IncidentPhase.RESOLVED, IncidentPhase.FAILED, IncidentPhase.CLOSED}


class Move(StrEnum):
    RUN = "Run"                       # run (or resume) ``step``
    DRY_RUN = "DryRun"                # record ``step`` as what would run
    AWAIT_APPROVAL = "AwaitApproval"  # wait for ``step``'s id in approvedSteps
    DRY_RUN_DONE = "DryRunDone"       # every mutating step recorded; wait for a mode change
    FAIL = "Fail"                     # ``step`` failed and its onFailure stops the incident
    RESOLVE = "Resolve"               # every step done: resolved and verified
    CLOSE = "Close"                   # spec.closed: record and close
    IDLE = "Idle"                     # terminal: nothing to do


@dataclass(frozen=True)
class Decision:
    move: Move
    step: Step | None = None          # for RUN, DRY_RUN, AWAIT_APPROVAL and FAIL (RUN: maybe not yet in status)
    escalate: bool = False            # for FAIL with onFailure Escalate


def step_policy(spec: IncidentSpec, step_id: str) -> StepPolicy:
    """The spec's overrides for ``step_id``, or the defaults (3 attempts, 300 s, Stop)."""
    return next((p for p in spec.remediation.steps if p.id == step_id), StepPolicy(id=step_id))


def find(status: IncidentStatus, step_id: str) -> Step | None:
    return next((s for s in status.steps if s.id == step_id), None)


def unknown_approvals(spec: IncidentSpec, status: IncidentStatus) -> list[str]:
    """Approved ids that name no step of this incident (reported once the plan exists)."""
    if find(status, CLASSIFY) is None or find(status, CLASSIFY).state != StepState.SUCCEEDED:
        return []
    known = {s.id for s in status.steps}
    return [i for i in spec.remediation.approved_steps if i not in known]


def decide(spec: IncidentSpec, status: IncidentStatus) -> Decision:
    """The next move (see the module docstring)."""
    if spec.closed:
        return Decision(Move.IDLE) if status.phase == IncidentPhase.CLOSED else Decision(Move.CLOSE)
    if status.phase in TERMINAL:
        return Decision(Move.IDLE)
    for fixed in (ASSESS, CLASSIFY):
        step = find(status, fixed)
        if step is None or step.state != StepState.SUCCEEDED:
            return Decision(Move.RUN, step or read_step(fixed))
    mode = spec.remediation.mode
    recorded_dry_run = False
    for step in status.steps:
        if step.id in (ASSESS, CLASSIFY, VERIFY, NOTIFY):
            continue
        policy = step_policy(spec, step.id)
        if step.state in (StepState.SUCCEEDED, StepState.SKIPPED):
            continue
        if step.state == StepState.FAILED:
            if policy.on_failure == OnFailure.CONTINUE:
                continue
            return Decision(Move.FAIL, step, escalate=policy.on_failure == OnFailure.ESCALATE)
        if step.state == StepState.RUNNING:
            return Decision(Move.RUN, step)
        if step.state == StepState.DRY_RUN and mode == RemediationMode.DRY_RUN:
            recorded_dry_run = True
            continue
        if step.mutating:
            if mode == RemediationMode.DRY_RUN:
                return Decision(Move.DRY_RUN, step)
            if mode == RemediationMode.MANUAL and step.id not in spec.remediation.approved_steps:
                return Decision(Move.AWAIT_APPROVAL, step)
        return Decision(Move.RUN, step)
    if recorded_dry_run:
        return Decision(Move.DRY_RUN_DONE)
    for fixed in (VERIFY, NOTIFY):
        step = find(status, fixed)
        if step is not None and step.state not in (StepState.SUCCEEDED, StepState.SKIPPED):
            if step.state == StepState.FAILED:
                return Decision(Move.FAIL, step)
            return Decision(Move.RUN, step)
    return Decision(Move.RESOLVE)
