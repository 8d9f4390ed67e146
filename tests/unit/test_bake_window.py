"""The bake window after a reversible step (guardrails.bake, guardrails.verify): a breach undoes an
undoable step once and marks it RolledBack with what breached, only pages for security containment or a
step with nothing to undo; an alarm already in ALARM before the step, a reader that fails for one look
and the window's end are told apart; and the spec refuses what cannot be verified."""
from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from opex_operator.api.guardrails import BakeOutcome, BakeVerification, BreachSource
from opex_operator.api.incident import IncidentSpec, Step, StepState
from opex_operator.errors import AwsError, PrometheusError
from opex_operator.guardrails.bake import (AlarmReading, AlarmState, Observation, QueryReading, QueryResult,
                                           Reversibility, Sample, Verdict, decide, effective_window, poll_seconds,
                                           record, rolled_back, start, undo_started)
from opex_operator.guardrails.verify import observe
from support.fakes import T0

STEP_END = T0
FIVE_MINUTES = 300


def at(seconds: float) -> dt.datetime:
    return STEP_END + dt.timedelta(seconds=seconds)


def alarm(name: str, state: str, since: dt.datetime, reason: str = "Threshold Crossed") -> AlarmReading:
    return AlarmReading(name, AlarmState(name, state, since, reason))


def look(seconds: float, *alarms: AlarmReading, query: QueryReading | None = None, errors=()) -> Observation:
    return Observation(at(seconds), tuple(alarms), query, tuple(errors))


ERRORS_HIGH = alarm("checkout-api-errors", "ALARM", at(40), "Threshold Crossed: 1 datapoint [12.0] was greater than 5.0")


@pytest.mark.parametrize("reversibility,verdict,phrase", [
    (Reversibility.UNDOABLE, Verdict.UNDO, "its undo runs once and the step is not tried again"),
    (Reversibility.CONTAINMENT, Verdict.PAGE, "a security containment step is never undone automatically"),
    (Reversibility.NONE, Verdict.PAGE, "the step recorded nothing the operator can undo"),
])
def test_a_bake_breach_undoes_an_undoable_step_and_only_pages_for_the_others(reversibility, verdict, phrase):
    decision = decide(start(FIVE_MINUTES, STEP_END), reversibility, look(60, ERRORS_HIGH), at(60))
    assert decision.verdict == verdict and decision.outcome == BakeOutcome.BREACHED
    assert phrase in decision.message
    assert (decision.breach.source, decision.breach.name, decision.breach.time) == (
        BreachSource.ALARM, "checkout-api-errors", at(40))
    assert "1 datapoint [12.0] was greater than 5.0" in decision.breach.value


def test_the_undo_runs_once_then_the_step_is_rolled_back_with_what_breached():
    step = Step(id="raise-memory-checkout-api", action="lambda:UpdateFunctionConfiguration", mutating=True,
                state=StepState.SUCCEEDED, verification=start(FIVE_MINUTES, STEP_END))
    decision = decide(step.verification, Reversibility.UNDOABLE, look(60, ERRORS_HIGH), at(60))
    step.verification = undo_started(record(step.verification, decision, look(60, ERRORS_HIGH)), at(61))
    # The operator stops during the undo: the next pass checks it, never runs it again.
    again = decide(step.verification, Reversibility.UNDOABLE, None, at(90))
    assert again.verdict == Verdict.CONFIRM_UNDO and "never run twice" in again.message
    done = rolled_back(step, at(95))
    assert done.state == StepState.ROLLED_BACK and done.verification.undone_at == at(95)
    assert "CloudWatchAlarm checkout-api-errors: ALARM since" in done.error
    assert done.verification.outcome == BakeOutcome.BREACHED and done.verification.checks == 1
    assert step.state == StepState.SUCCEEDED  # the record functions return copies


def test_only_a_breached_step_can_be_rolled_back():
    step = Step(id="s", action="lambda:UpdateAlias", verification=start(FIVE_MINUTES, STEP_END))
    with pytest.raises(ValueError, match="only a step whose bake window breached"):
        rolled_back(step, at(10))


def test_an_alarm_already_in_alarm_before_the_step_does_not_count_one_that_flipped_between_looks_does():
    before = alarm("latency-high", "ALARM", at(-600))
    clean = decide(start(FIVE_MINUTES, STEP_END), Reversibility.UNDOABLE, look(300, before), at(300))
    assert clean.verdict == Verdict.PASSED and "already in ALARM before the step, not counted: latency-high" in clean.message
    flipped = AlarmReading("errors", AlarmState("errors", "OK", at(50)), went_to_alarm_at=at(20))
    breach = decide(start(FIVE_MINUTES, STEP_END), Reversibility.UNDOABLE, look(60, flipped), at(60))
    assert breach.verdict == Verdict.UNDO and "went to ALARM at" in breach.breach.value and "(now OK)" in breach.breach.value


@pytest.mark.parametrize("result,holds", [
    (QueryResult("vector", (Sample((("job", "checkout"),), 0.0),)), True),   # a filter that returns 0: it holds
    (QueryResult("vector", ()), False),                                       # the filter dropped it: breach
    (QueryResult("scalar", (Sample((), 1.0),)), True),
    (QueryResult("scalar", (Sample((), 0.0),)), False),
    (QueryResult("scalar", (Sample((), float("nan")),)), False),
    (QueryResult("string", ()), False),
])
def test_a_promql_condition_holds_while_it_returns_a_sample(result, holds):
    query = QueryReading("error_ratio < 0.05", result)
    decision = decide(start(FIVE_MINUTES, STEP_END), Reversibility.UNDOABLE, look(30, query=query), at(30))
    assert (decision.verdict == Verdict.WAIT) == holds
    if not holds:
        assert decision.breach.source == BreachSource.PROMQL and decision.breach.name == "error_ratio < 0.05"


def test_an_empty_result_is_shown_as_no_sample_in_the_breach():
    query = QueryReading("error_ratio < 0.05", QueryResult("vector", ()))
    decision = decide(start(FIVE_MINUTES, STEP_END), Reversibility.UNDOABLE, look(30, query=query), at(30))
    assert decision.breach.value.startswith("no sample (vector) at ")


def test_a_missing_alarm_cannot_be_watched_and_pages_at_once():
    decision = decide(start(FIVE_MINUTES, STEP_END), Reversibility.UNDOABLE,
                      look(10, AlarmReading("typo-alarm", None)), at(10))
    assert decision.verdict == Verdict.PAGE and decision.outcome == BakeOutcome.UNVERIFIED
    assert "typo-alarm do not exist" in decision.message


def test_a_reader_failing_for_one_look_waits_and_the_window_ends_by_what_its_last_look_read():
    v = start(FIVE_MINUTES, STEP_END)
    failing = look(30, errors=["CloudWatch alarms could not be read: Throttling on cloudwatch:DescribeAlarms"])
    first = decide(v, Reversibility.UNDOABLE, failing, at(30))
    assert first.verdict == Verdict.WAIT and "could not read everything" in first.message
    v = record(v, first, failing)
    assert (v.checks, v.failed_checks) == (1, 1) and "Throttling" in v.last_error
    ended_clean = decide(v, Reversibility.UNDOABLE, look(300, alarm("errors", "OK", at(-60))), at(300))
    assert ended_clean.verdict == Verdict.PASSED and "1 of 2 looks could not read everything" in ended_clean.message
    ended_blind = decide(v, Reversibility.UNDOABLE, look(300, query=QueryReading("up == 1", None, "HTTP 503")), at(300))
    assert ended_blind.verdict == Verdict.PAGE and ended_blind.outcome == BakeOutcome.UNVERIFIED


def test_looks_are_a_tenth_of_the_window_within_bounds_and_never_after_its_end():
    assert [poll_seconds(w) for w in (30, 300, 3600)] == [10, 30, 60]
    decision = decide(start(FIVE_MINUTES, STEP_END), Reversibility.UNDOABLE, look(290), at(290))
    assert decision.next_check_at == at(300)


def test_a_window_longer_than_what_is_left_of_the_escalation_window_is_cut():
    assert effective_window(300, None, T0) == (300, None)
    assert effective_window(300, T0 + dt.timedelta(minutes=30), T0) == (300, None)
    seconds, note = effective_window(300, T0 + dt.timedelta(minutes=2), T0)
    assert seconds == 120 and "longer than the 120s left" in note
    assert effective_window(300, T0 - dt.timedelta(minutes=1), T0)[0] == 0


def test_a_long_message_is_cut_to_the_status_bound_not_refused_by_the_api_server():
    v = start(FIVE_MINUTES, STEP_END)
    noisy = look(30, errors=["x" * 5000])
    recorded = record(v, decide(v, Reversibility.UNDOABLE, noisy, at(30)), noisy)
    assert len(recorded.message) <= 1024 and len(recorded.last_error) <= 512


# -- one look through the ports ------------------------------------------------------------------------

class FakeAlarms:
    def __init__(self, states: dict[str, AlarmState], history: dict[str, dt.datetime | None] | None = None,
                 fail: AwsError | None = None, history_fails: AwsError | None = None):
        self.states, self.history, self.fail, self.history_fails = states, history or {}, fail, history_fails
        self.history_reads: list[str] = []

    def alarms(self, names):
        if self.fail:
            raise self.fail
        return {n: s for n, s in self.states.items() if n in names}

    def went_to_alarm(self, name, since):
        self.history_reads.append(name)
        if self.history_fails:
            raise self.history_fails
        return self.history.get(name)


class FakePrometheus:
    def __init__(self, result=None, fail: PrometheusError | None = None):
        self.result, self.fail = result, fail

    def instant(self, query):
        if self.fail:
            raise self.fail
        return self.result


VERIFY = BakeVerification(window="5m", alarms=["errors", "latency", "steady"], promql="error_ratio < 0.05")


def test_observe_reads_the_history_only_of_an_alarm_that_changed_in_the_window_and_is_not_in_alarm():
    alarms = FakeAlarms({"errors": AlarmState("errors", "OK", at(20)), "latency": AlarmState("latency", "ALARM", at(10)),
                         "steady": AlarmState("steady", "OK", at(-3600))}, history={"errors": at(15)})
    seen = observe(VERIFY, STEP_END, alarms, FakePrometheus(QueryResult("vector", ())), at(30))
    assert alarms.history_reads == ["errors"]
    assert [(a.name, a.went_to_alarm_at) for a in seen.alarms] == [("errors", at(15)), ("latency", None),
                                                                   ("steady", None)]
    assert seen.query.result.holds() is False and seen.problems() == []


def test_observe_says_what_could_not_be_read_instead_of_failing():
    denied = AwsError("cloudwatch", "DescribeAlarmHistory", "AccessDenied", "not authorized")
    seen = observe(VERIFY, STEP_END, FakeAlarms({"errors": AlarmState("errors", "OK", at(20))}, history_fails=denied),
                   FakePrometheus(fail=PrometheusError("HTTP 422 execution: many-to-many matching", refused=True)),
                   at(30))
    assert [a.name for a in seen.alarms if a.state is None] == ["latency", "steady"]
    assert any("its history could not be read (AccessDenied" in p for p in seen.problems())
    assert "PromQL: HTTP 422 execution: many-to-many matching" in seen.problems()
    throttled = AwsError("cloudwatch", "DescribeAlarms", "Throttling", "Rate exceeded", 400)
    blind = observe(VERIFY, STEP_END, FakeAlarms({}, fail=throttled), None, at(30))
    assert blind.alarms == () and "Throttling on cloudwatch:DescribeAlarms" in blind.errors[0]
    assert "set OPEX_PROMETHEUS_URL" in blind.query.error


# -- the spec ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("window", ["10s", "2h", "soon"])
def test_a_bake_window_out_of_bounds_is_refused(window):
    with pytest.raises(ValidationError):
        BakeVerification(window=window, alarms=["errors"])


def test_the_incident_spec_carries_the_bake_window_and_its_admission_rule():
    spec = IncidentSpec.model_validate({
        "type": "PerformanceDegradation", "severity": "high", "title": "t", "environment": "production",
        "targets": {"lambda": {"functionNames": ["checkout-api"]}},
        "remediation": {"mode": "Auto", "verify": {"window": "5m", "alarms": ["checkout-api-errors"]}}})
    assert spec.remediation.verify.window == "5m"
    rules = [r["message"] for r in IncidentSpec.model_json_schema()["x-kubernetes-validations"]]
    assert any("longer than the incident's escalation window" in m for m in rules)
