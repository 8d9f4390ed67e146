"""The bake window after a reversible step (pure): did the change make things worse, and what then?

``spec.remediation.verify`` names CloudWatch alarms that must not go to ALARM and/or a PromQL
condition that must stay true for ``window`` after a step. What the readers saw is an
:class:`Observation` (``guardrails.verify.observe`` takes one); :func:`decide` says what to do:

* keep watching (``WAIT``, until ``next_check_at``), or the window ended clean (``PASSED``);
* a breach of a step whose undo the operator recorded: run that undo once (``UNDO``; the caller
  checkpoints ``undo_started_at`` first, and an undo found started but not confirmed is checked,
  never run again: ``CONFIRM_UNDO``), then :func:`rolled_back` marks the step ``RolledBack``
  with the reason and the breaching alarm or query value;
* a breach of a security containment step: page only (``PAGE``). Undoing a key deactivation or a
  revoked rule is a person's decision (the runbook, "Security Incident Response": contain first);
* a breach of a step with nothing recorded to undo, or a bake that cannot be verified (an alarm
  that does not exist, readers failing at the end of the window): page (``PAGE``).

Sources: CodeDeploy's alarm-based automatic rollback (an alarm in ALARM during the deployment stops
it and rolls back) and Argo Rollouts' analysis runs (a failed metric aborts and scales back), the
tools the issue cites; CloudWatch's alarm states (OK, ALARM, INSUFFICIENT_DATA; DescribeAlarms'
``StateTransitionedTimestamp``, DescribeAlarmHistory's ``StateUpdate`` items); Prometheus' alerting
semantics (an expression holds while it returns a sample).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from ..api.common import Status
from ..api.guardrails import BakeOutcome, Breach, BreachSource, StepVerification
from ..api.incident import Step, StepState
from ..ports.verification import ALARM, AlarmState, QueryResult, Sample

__all__ = ["ALARM", "AlarmState", "QueryResult", "Sample"]  # what the readers answer, defined with their ports

MIN_POLL, MAX_POLL = 10.0, 60.0   # seconds between looks: a tenth of the window, within these


class Reversibility(StrEnum):
    """What the operator may do about a step that made things worse."""

    UNDOABLE = "Undoable"        # it recorded an undo the operator can run (a Rollback, the previous configuration)
    CONTAINMENT = "Containment"  # security containment: never undone automatically, only paged
    NONE = "None"                # nothing recorded to undo: page


# -- what the readers saw ------------------------------------------------------------------------------

@dataclass(frozen=True)
class AlarmReading:
    """An alarm during the window: its state (None: it does not exist), and the first transition to
    ALARM since the window began that its history shows (read only when it changed state in the
    window but is not in ALARM now: a flip between two looks)."""

    name: str
    state: AlarmState | None
    went_to_alarm_at: dt.datetime | None = None
    history_error: str | None = None


@dataclass(frozen=True)
class QueryReading:
    """The PromQL condition at one look: its result, or why it could not be evaluated."""

    query: str
    result: QueryResult | None
    error: str | None = None


@dataclass(frozen=True)
class Observation:
    """One look during the window: every alarm named, the condition, and readers that failed whole."""

    time: dt.datetime
    alarms: tuple[AlarmReading, ...] = ()
    query: QueryReading | None = None
    errors: tuple[str, ...] = field(default=())

    def problems(self) -> list[str]:
        """What could not be read at this look."""
        found = list(self.errors)
        found += [f"alarm {a.name}: its history could not be read ({a.history_error})" for a in self.alarms
                  if a.history_error]
        if self.query and self.query.error:
            found.append(f"PromQL: {self.query.error}")
        return found


# -- the decision ----------------------------------------------------------------------------------

class Verdict(StrEnum):
    WAIT = "Wait"                  # keep watching until next_check_at
    PASSED = "Passed"              # the window ended clean
    UNDO = "Undo"                  # run the step's recorded undo, once
    CONFIRM_UNDO = "ConfirmUndo"   # an undo was started and not confirmed: check the real state, never run it again
    PAGE = "Page"                  # a person decides: containment, nothing to undo, or unverifiable


@dataclass(frozen=True)
class BakeDecision:
    """What to do after a look: the verdict, the breach (when there is one), the message for the
    step's status, a page and the Event, the outcome to record, and when to look again (WAIT)."""

    verdict: Verdict
    outcome: BakeOutcome
    message: str
    breach: Breach | None = None
    next_check_at: dt.datetime | None = None


def poll_seconds(window_seconds: float) -> float:
    """Seconds between looks: a tenth of the window, at least MIN_POLL and at most MAX_POLL."""
    return min(MAX_POLL, max(MIN_POLL, window_seconds / 10))


def start(window_seconds: float, now: dt.datetime) -> StepVerification:
    """The verification record of a step that just ended: the window starts now."""
    return StepVerification(started_at=now, ends_at=now + dt.timedelta(seconds=window_seconds),
                            outcome=BakeOutcome.BAKING)


def effective_window(window_seconds: float, escalation_deadline: dt.datetime | None,
                     now: dt.datetime) -> tuple[float, str | None]:
    """The window a step bakes for: ``window_seconds``, cut to what is left of the incident's
    escalation window (``engine.escalation_deadline``: when its last level is due; None: no
    window), with a note when cut. The API server refuses a window longer than the whole
    escalation window the spec gives; this covers the policy's default matrix and the time
    already spent. Nothing left: 0 (the step is not baked, the note says why)."""
    if escalation_deadline is None:
        return window_seconds, None
    left = max(0.0, (escalation_deadline - now).total_seconds())
    if window_seconds <= left:
        return window_seconds, None
    return left, (f"the bake window of {window_seconds:g}s is longer than the {left:g}s left before the incident's "
                  f"last escalation level is due ({escalation_deadline:%Y-%m-%d %H:%M:%S} UTC): watched for {left:g}s")


def breach_in(observation: Observation, since: dt.datetime) -> Breach | None:
    """The first breach ``observation`` shows since the window began at ``since``: an alarm that
    went to ALARM in the window (now, or between two looks by its history), then the condition."""
    for reading in observation.alarms:
        alarm = reading.state
        if alarm is not None and alarm.state == ALARM and (alarm.since is None or alarm.since >= since):
            at = alarm.since or observation.time
            return Breach(source=BreachSource.ALARM, name=reading.name, time=at,
                          value=f"ALARM since {at:%Y-%m-%d %H:%M:%S} UTC: {alarm.reason or 'no reason given'}")
        if reading.went_to_alarm_at is not None and reading.went_to_alarm_at >= since:
            now_state = alarm.state if alarm else "gone"
            return Breach(source=BreachSource.ALARM, name=reading.name, time=reading.went_to_alarm_at,
                          value=f"went to ALARM at {reading.went_to_alarm_at:%Y-%m-%d %H:%M:%S} UTC (now {now_state})")
    query = observation.query
    if query and query.result is not None and not query.result.holds():
        return Breach(source=BreachSource.PROMQL, name=query.query, time=observation.time,
                      value=f"{query.result.describe()} ({query.result.result_type}) at "
                            f"{observation.time:%Y-%m-%d %H:%M:%S} UTC")
    return None


def decide(verification: StepVerification, reversibility: Reversibility, observation: Observation | None,
           now: dt.datetime) -> BakeDecision:
    """What to do about a step's bake window after a look (``observation``; None when no look is
    needed: an undo to confirm). ``verification`` is the step's record (:func:`start`), still Baking."""
    if verification.undo_started_at is not None and verification.undone_at is None:
        return BakeDecision(Verdict.CONFIRM_UNDO, BakeOutcome.BREACHED, (
            f"the undo started at {verification.undo_started_at:%Y-%m-%d %H:%M:%S} UTC was not confirmed (the operator "
            f"stopped during it): check that the change is undone; it is never run twice"), verification.breach)
    if observation is None:
        raise ValueError("a look (observation) is needed while the window runs")
    breach = breach_in(observation, verification.started_at)
    if breach is not None:
        what = f"{breach.source.value} {breach.name}: {breach.value}"
        if reversibility == Reversibility.UNDOABLE:
            return BakeDecision(Verdict.UNDO, BakeOutcome.BREACHED,
                                f"the change made things worse ({what}); its undo runs once and the step is not "
                                f"tried again", breach)
        why = ("a security containment step is never undone automatically: undoing it is a person's decision"
               if reversibility == Reversibility.CONTAINMENT else "the step recorded nothing the operator can undo")
        return BakeDecision(Verdict.PAGE, BakeOutcome.BREACHED, f"the change may have made things worse ({what}); "
                            f"{why}: a person decides", breach)
    missing = [a.name for a in observation.alarms if a.state is None]
    if missing:
        return BakeDecision(Verdict.PAGE, BakeOutcome.UNVERIFIED, (
            f"alarm(s) {', '.join(missing)} do not exist: the bake window cannot watch them (fix "
            f"spec.remediation.verify.alarms); a person must check the change"))
    problems = observation.problems()
    if now >= verification.ends_at:
        if problems:
            return BakeDecision(Verdict.PAGE, BakeOutcome.UNVERIFIED, (
                f"the bake window ended and its last look could not read everything ({'; '.join(problems)}): the "
                f"change is not verified; a person must check it"))
        earlier = verification.failed_checks
        note = f" ({earlier} of {verification.checks + 1} looks could not read everything)" if earlier else ""
        before = [a.name for a in observation.alarms if a.state and a.state.state == ALARM]
        kept = f"; already in ALARM before the step, not counted: {', '.join(before)}" if before else ""
        return BakeDecision(Verdict.PASSED, BakeOutcome.PASSED,
                            f"nothing breached in {(verification.ends_at - verification.started_at).total_seconds():g}s"
                            f"{note}{kept}")
    window = (verification.ends_at - verification.started_at).total_seconds()
    next_at = min(verification.ends_at, now + dt.timedelta(seconds=poll_seconds(window)))
    note = f"; this look could not read everything: {'; '.join(problems)}" if problems else ""
    return BakeDecision(Verdict.WAIT, BakeOutcome.BAKING,
                        f"watching until {verification.ends_at:%H:%M:%S} UTC, nothing breached so far{note}",
                        next_check_at=next_at)


M = TypeVar("M", bound=Status)


def _updated(model: M, **changes: Any) -> M:
    """A copy of a status model with ``changes`` assigned (validated: bounded strings are cut)."""
    copy = model.model_copy(deep=True)
    for name, value in changes.items():
        setattr(copy, name, value)
    return copy


def record(verification: StepVerification, decision: BakeDecision, observation: Observation | None) -> StepVerification:
    """The step's verification record after ``decision`` (a copy; the caller writes it to status)."""
    problems = observation.problems() if observation else []
    return _updated(verification, outcome=decision.outcome, message=decision.message,
                    breach=decision.breach or verification.breach,
                    checks=verification.checks + (observation is not None),
                    failed_checks=verification.failed_checks + bool(problems),
                    last_error="; ".join(problems) if problems else verification.last_error)


def undo_started(verification: StepVerification, now: dt.datetime) -> StepVerification:
    """The checkpoint written before the undo runs (so it is never run twice)."""
    return _updated(verification, undo_started_at=now)


def rolled_back(step: Step, now: dt.datetime) -> Step:
    """The step after its undo was confirmed: ``RolledBack``, with the reason and what breached.
    Raises ValueError for a step whose bake window did not breach."""
    v = step.verification
    if v is None or v.breach is None:
        raise ValueError(f"step {step.id}: only a step whose bake window breached is rolled back")
    reason = (f"rolled back at {now:%Y-%m-%d %H:%M:%S} UTC: its bake window breached ({v.breach.source.value} "
              f"{v.breach.name}: {v.breach.value})")
    return _updated(step, state=StepState.ROLLED_BACK, finished_at=now, error=reason,
                    verification=_updated(v, undone_at=now, outcome=BakeOutcome.BREACHED, message=reason))
