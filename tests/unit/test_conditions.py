import datetime as dt

from opex_operator.api.common import ConditionStatus
from opex_operator.api.conditions import get, is_true, mark, set_condition, summarize

T0 = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.timezone.utc)
T1 = T0 + dt.timedelta(minutes=5)


def test_new_condition_is_added_with_generation_and_time():
    conditions = []
    assert set_condition(conditions, "Ready", "False", "Waiting", "waiting for approval", 3, at=T0)
    cond = get(conditions, "Ready")
    assert (cond.status, cond.reason, cond.observed_generation, cond.last_transition_time) == (
        ConditionStatus.FALSE, "Waiting", 3, T0)


def test_transition_time_moves_only_when_status_flips():
    conditions = []
    set_condition(conditions, "Ready", "False", "Waiting", "a", 1, at=T0)
    assert set_condition(conditions, "Ready", "False", "StillWaiting", "b", 2, at=T1)
    assert get(conditions, "Ready").last_transition_time == T0
    assert set_condition(conditions, "Ready", "True", "Done", "c", 2, at=T1)
    assert get(conditions, "Ready").last_transition_time == T1
    assert is_true(conditions, "Ready")


def test_setting_the_same_condition_again_reports_no_change():
    conditions = []
    set_condition(conditions, "Assessed", "True", "Assessed", "ok", 1, at=T0)
    assert not set_condition(conditions, "Assessed", "True", "Assessed", "ok", 1, at=T1)
    assert len(conditions) == 1


def test_ready_follows_the_first_condition_of_the_kind_that_is_present():
    conditions = []
    set_condition(conditions, "Remediated", "False", "AwaitingApproval", "approve step x", 1, at=T0)
    assert summarize(conditions, ("Stalled", "Reconciling", "Remediated"), 1)
    ready = get(conditions, "Ready")
    assert (ready.status, ready.reason, ready.message) == ("False", "AwaitingApproval", "approve step x")


def test_reconciling_makes_ready_unknown_and_stalled_makes_it_false_whatever_follows():
    conditions = []
    set_condition(conditions, "Remediated", "True", "Verified", "ok", 1, at=T0)
    mark(conditions, "Reconciling", "Assessing", "reading the targets", 2)
    summarize(conditions, ("Stalled", "Reconciling", "Remediated"), 2)
    assert (get(conditions, "Ready").status, get(conditions, "Ready").reason) == ("Unknown", "Assessing")
    mark(conditions, "Stalled", "StepFailed", "a human must take over", 3)
    summarize(conditions, ("Stalled", "Reconciling", "Remediated"), 3)
    assert get(conditions, "Reconciling") is None
    assert (get(conditions, "Ready").status, get(conditions, "Ready").reason) == ("False", "StepFailed")


def test_negative_conditions_are_removed_when_they_no_longer_hold():
    conditions = []
    mark(conditions, "Reconciling", "Assessing", "reading", 1)
    set_condition(conditions, "Remediated", "True", "Verified", "ok", 1, at=T0)
    mark(conditions, None, "", "", 1)
    summarize(conditions, ("Stalled", "Reconciling", "Remediated"), 1)
    assert {c.type: c.status for c in conditions} == {"Remediated": "True", "Ready": "True"}


def test_ready_is_pending_before_any_condition():
    conditions = []
    summarize(conditions, ("Stalled", "Reconciling", "Remediated"), 1)
    assert (get(conditions, "Ready").status, get(conditions, "Ready").reason) == ("Unknown", "Pending")
