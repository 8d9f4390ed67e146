"""Decide an incident's next move from its spec, checkpointed status and the time (pure; no I/O).

The runbook is an ordered list of steps: ``assess`` → ``classify`` → remediation steps (gated)
→ ``verify`` → ``notify-resolved``, with escalation pages due along the way. Given the spec,
the status and a :class:`Situation` (the time, the operator policy's answer for this
namespace, the escalation levels that apply), :func:`decide` returns the one thing to do now;
the controller does it through an adapter, records the result and returns; the next reconcile
pass asks again. Status is the checkpoint, so after a restart the same question gets the same
answer.

Approval rules (DESIGN.md §3): in ``DryRun`` a mutating step is recorded, never run; in
``Manual`` (default) it waits until its id is listed in ``spec.remediation.approvedSteps``;
in ``Auto`` it runs, unless the step ``requires_approval`` (a security incident's recovery). A step already ``Running`` (intent recorded, outcome not) is resumed by
its executor, which checks the current state first, so it never acts twice.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from ..api.common import ConditionStatus
from ..api.conditions import ConditionValue
from ..api.incident import (ALARM_EVENT_SOURCE, ALARM_RESOLVED, ALERT_RESOLVED, AlertRecord, AlertState, EscalationLevel,
                            IncidentPhase, IncidentSpec, IncidentStatus, OnFailure, RemediationMode, SourceKind, Step,
                            StepPolicy, StepState)
from ..api.guardrails import BakeOutcome
from .. import steps as actions
from ..notify import escalation as matrix
from ..steps import Held

# The runbook's fixed read steps, by id, and where each stands among the others (the remediation
# steps a playbook plans sit between classify and verify).
ASSESS, CLASSIFY, VERIFY, NOTIFY = "assess", "classify", "verify", "notify-resolved"
READ_STEPS = {ASSESS: actions.ASSESS, CLASSIFY: actions.CLASSIFY, VERIFY: actions.VERIFY, NOTIFY: actions.NOTIFY}
ORDER = {ASSESS: 0, CLASSIFY: 1, VERIFY: 3, NOTIFY: 4}

TERMINAL = {IncidentPhase.RESOLVED, IncidentPhase.FAILED, IncidentPhase.CLOSED}
# Phases in which the incident is not remediated (yet): Remediated=False says why, as the phase does.
NOT_REMEDIATED = {IncidentPhase.AWAITING_APPROVAL, IncidentPhase.REMEDIATING, IncidentPhase.MANUAL_ACTION_REQUIRED}
STEP_FAILED = "StepFailed"
# A page carries the root cause, so it waits for the diagnosis, but never longer than this.
PAGE_WAITS_FOR_DIAGNOSIS = dt.timedelta(seconds=60)


class Move(StrEnum):
    DENY = "Deny"                     # the operator policy refuses this namespace, role or region
    ESCALATE = "Escalate"             # page the levels in ``levels`` (may be none: record why)
    ASSESS = "Assess"                 # initial assessment and classification (reads only)
    RUN = "Run"                       # run (or resume) the remediation ``step``
    DRY_RUN = "DryRun"                # record ``step`` as what would run
    AWAIT_APPROVAL = "AwaitApproval"  # wait for ``step``'s id in approvedSteps
    BAKE = "Bake"                     # look at ``step``'s bake window (spec.remediation.verify)
    DRY_RUN_DONE = "DryRunDone"       # every mutating step recorded; wait for a mode change
    VERIFY = "Verify"                 # observe whether the fix holds
    NOTIFY = "Notify"                 # announce the resolution
    FAIL = "Fail"                     # ``step`` failed and its onFailure stops the incident
    RESOLVE = "Resolve"               # every step done: resolved and verified
    CLOSE = "Close"                   # spec.closed: record and close
    IDLE = "Idle"                     # terminal: nothing to do


@dataclass(frozen=True)
class Situation:
    """What the decision needs besides spec and status: ``now`` (UTC), ``denied`` (the operator
    policy's refusal for the namespace, role and region, or None), ``levels`` (the escalation
    levels that apply to this severity and environment, lowest first), ``holding`` (an
    acknowledgement holds escalation at the level reached: ``notify.acknowledgement.hold``) and
    ``re_escalate`` (the level an acknowledged Incident past ``reEscalateAfter`` pages now)."""

    now: dt.datetime
    denied: str | None = None
    levels: list[EscalationLevel] = field(default_factory=list)
    holding: bool = False
    re_escalate: EscalationLevel | None = None


@dataclass(frozen=True)
class Decision:
    move: Move
    step: Step | None = None                       # RUN, DRY_RUN, AWAIT_APPROVAL, FAIL (RUN: maybe not in status yet)
    escalate: bool = False                         # FAIL with onFailure Escalate
    levels: tuple[EscalationLevel, ...] = ()       # ESCALATE: the levels due now


def remediated(phase: IncidentPhase, reason: str, message: str) -> ConditionValue | None:
    """The Remediated condition a phase change makes, or None when the phase says nothing about
    remediation (detection, assessment, a refused spec or policy, closing) and Remediated stays.
    Remediated=True comes only from verification (:func:`verify`), never from a phase."""
    if phase in NOT_REMEDIATED or (phase == IncidentPhase.FAILED and reason == STEP_FAILED):
        return ConditionStatus.FALSE, reason, message
    return None


class VerifyOutcome(StrEnum):
    VERIFIED = "Verified"
    PENDING = "Pending"
    FAILED = "Failed"


def read_step(step_id: str) -> Step:
    """A new Pending read step (assess, classify, verify or notify-resolved)."""
    return actions.step(step_id, READ_STEPS[step_id])


def step_policy(spec: IncidentSpec, step_id: str) -> StepPolicy:
    """The spec's overrides for ``step_id``, or the defaults (3 attempts, 300 s, Stop)."""
    return next((p for p in spec.remediation.steps if p.id == step_id), StepPolicy(id=step_id))


def find(status: IncidentStatus, step_id: str) -> Step | None:
    return next((s for s in status.steps if s.id == step_id), None)


def classified(status: IncidentStatus) -> bool:
    step = find(status, CLASSIFY)
    return step is not None and step.state == StepState.SUCCEEDED


def unknown_approvals(spec: IncidentSpec, status: IncidentStatus) -> list[str]:
    """Approved ids that name no step of this incident (reported once the plan exists)."""
    if not classified(status):
        return []
    known = {s.id for s in status.steps}
    return [i for i in spec.remediation.approved_steps if i not in known]


def levels_due(status: IncidentStatus, situation: Situation,
               force_next: bool = False) -> tuple[list[EscalationLevel], dt.datetime | None]:
    """Levels to page now and when the next one is due (escalation matrix, from ``detectedAt``);
    ``force_next`` pages the next level at once (a step whose onFailure is Escalate failed)."""
    current = status.escalation.current_level if status.escalation else 0
    return matrix.due(situation.levels, status.detected_at or situation.now, situation.now, current, force_next)


def escalation_deadline(status: IncidentStatus, situation: Situation) -> dt.datetime | None:
    """When the incident is past its escalation window: the time its matrix's last level is due
    (counted from detection), if it is still open then. None when it is Resolved or Closed, or
    when no applicable level waits (a matrix of Level 1 alone has no window)."""
    last = max((lv.after_seconds for lv in situation.levels), default=0)
    if status.phase in (IncidentPhase.RESOLVED, IncidentPhase.CLOSED) or last == 0:
        return None
    return (status.detected_at or situation.now) + dt.timedelta(seconds=last)




@dataclass(frozen=True)
class AlertCondition:
    """``AlertResolved`` (``AlarmResolved`` for a CloudWatch alarm's events) as the intake's record
    (``status.alert``) says."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


def alert_condition(spec: IncidentSpec, record: AlertRecord | None) -> AlertCondition | None:
    """AlertResolved (AlarmResolved) from the intake's ``record`` of the alert or alarm that opened
    the incident (None before the first record, and for AWS events that never resolve: a failed
    pipeline execution or a finding).

    A resolved alert is recorded, nothing more: it starts no remediation, cancels no approved
    step and does not close the incident, whose resolution the runbook verifies itself.
    """
    if record is None:
        return None
    source = spec.source
    event = source.event if source and source.kind == SourceKind.EVENT_BRIDGE else None
    if event is not None:
        if event.source != ALARM_EVENT_SOURCE:
            return None
        kind, name, who = ALARM_RESOLVED, event.occurrence, "CloudWatch"
        back = "back to OK"
    else:
        kind, name, who = ALERT_RESOLVED, (source.alert.name if source and source.alert else "the alert"), "Alertmanager"
        back = "resolved"
    if record.state == AlertState.RESOLVED:
        at = record.resolved_at or record.last_seen
        return AlertCondition(kind, ConditionStatus.TRUE, "Resolved", (
            f"{who} reports {name} {back} at {at:%Y-%m-%dT%H:%M:%S}Z; the incident stays open until the "
            f"runbook verifies the fix or spec.closed is set"))
    since = record.starts_at or record.first_seen
    return AlertCondition(kind, ConditionStatus.FALSE, "Firing", f"{name} is firing since {since:%Y-%m-%dT%H:%M:%S}Z")


def decide(spec: IncidentSpec, status: IncidentStatus, situation: Situation) -> Decision:
    """The next move (see the module docstring): closing, paging, the assessment, the next step,
    then verification and notification, in that order of precedence."""
    if spec.closed:
        return Decision(Move.IDLE) if status.phase == IncidentPhase.CLOSED else Decision(Move.CLOSE)
    if status.phase in TERMINAL:
        return Decision(Move.IDLE)
    if situation.denied:
        return Decision(Move.DENY)
    if (paging := _escalation(status, situation)) is not None:
        return paging
    for fixed in (ASSESS, CLASSIFY):
        step = find(status, fixed)
        if step is None or step.state != StepState.SUCCEEDED:
            return Decision(Move.ASSESS)
    if (next_step := _remediation(spec, status)) is not None:
        return next_step
    for fixed, move in ((VERIFY, Move.VERIFY), (NOTIFY, Move.NOTIFY)):
        step = find(status, fixed) or read_step(fixed)
        if step.state == StepState.FAILED:
            return Decision(Move.FAIL, step)
        if step.state not in (StepState.SUCCEEDED, StepState.SKIPPED):
            return Decision(move, step)
    return Decision(Move.RESOLVE)


def _escalation(status: IncidentStatus, situation: Situation) -> Decision | None:
    """The levels to page now, if any (the runbook, "Escalation Matrix"): those due, none while an
    acknowledgement holds, the next one when it is due again (``reEscalateAfter``). A page waits
    for the classification, up to PAGE_WAITS_FOR_DIAGNOSIS, so it says what is known."""
    due, _ = levels_due(status, situation)
    if situation.re_escalate is not None:
        due = [situation.re_escalate]
    elif situation.holding:
        due = []  # acknowledged: no new level while the hold lasts
    waited = situation.now - (status.detected_at or situation.now) >= PAGE_WAITS_FOR_DIAGNOSIS
    if (classified(status) or waited) and (due or status.escalation is None):
        return Decision(Move.ESCALATE, levels=tuple(due))
    return None


def _baking(step: Step) -> bool:
    """The step succeeded and its bake window is open, or its undo started and has not finished."""
    v = step.verification
    return step.state == StepState.SUCCEEDED and v is not None and (
        v.outcome == BakeOutcome.BAKING or v.undo_started_at is not None and v.undone_at is None)


def _remediation(spec: IncidentSpec, status: IncidentStatus) -> Decision | None:
    """The move for the first remediation step not done (None when all are): bake, fail, run, dry
    run, or wait for approval, as the mode and the step's policy say."""
    mode = spec.remediation.mode
    recorded_dry_run = False
    for step in status.steps:
        if _baking(step):
            return Decision(Move.BAKE, step)  # the next step waits for this one's bake window
        if step.state == StepState.ROLLED_BACK:
            return Decision(Move.FAIL, step, escalate=True)  # its change made things worse: never tried again
        if step.id in (ASSESS, CLASSIFY, VERIFY, NOTIFY) or step.state in (StepState.SUCCEEDED, StepState.SKIPPED):
            continue
        policy = step_policy(spec, step.id)
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
            if ((mode == RemediationMode.MANUAL or step.requires_approval)
                    and step.id not in spec.remediation.approved_steps):
                return Decision(Move.AWAIT_APPROVAL, step)
        return Decision(Move.RUN, step)
    return Decision(Move.DRY_RUN_DONE) if recorded_dry_run else None


# -- verification: does the fix hold? --------------------------------------------------------------

def verify(status: IncidentStatus, held: list[Held], probes: list[tuple[bool, str]], probes_failed_before: bool,
           fix: tuple[VerifyOutcome, str]) -> tuple[VerifyOutcome, str]:
    """Whether the remediation that ran holds, and what was seen (the runbook's "verify").

    ``held`` is what each step's action saw of its change (``steps.StepAction.holds``), in step
    order: one that no longer holds fails the verification, one not settled yet keeps it pending.
    ``probes`` are the spec's endpoint probes run again, as (passed, what was seen); they must pass
    too. With no automated step, a manual fix is verified by the probes that failed at the
    assessment (``probes_failed_before``) passing again, or else as the playbook judges it
    (``fix``: e.g. a new successful execution of the target pipeline after detection).
    """
    seen: list[str] = []
    pending = False
    for h in held:
        if h.ok is False:
            return VerifyOutcome.FAILED, h.seen
        pending = pending or h.ok is None
        if h.seen not in seen:
            seen.append(h.seen)
    probed = "; ".join(text for _, text in probes)
    passing = all(ok for ok, _ in probes)
    if not any(s.mutating and s.state == StepState.SUCCEEDED for s in status.steps):
        if probes and probes_failed_before:
            if passing:
                return VerifyOutcome.VERIFIED, f"the probes pass again: {probed}"
            return VerifyOutcome.PENDING, f"waiting for the probes to pass: {probed}"
        return fix
    if probes:
        pending = pending or not passing
        seen.append(probed)
    return (VerifyOutcome.PENDING if pending else VerifyOutcome.VERIFIED), "; ".join(seen)
