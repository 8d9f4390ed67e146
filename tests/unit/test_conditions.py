import datetime as dt

from opex_operator.api.common import ConditionStatus
from opex_operator.api.conditions import get, is_true, set_condition

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
