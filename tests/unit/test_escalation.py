import datetime as dt

from opex_operator.api.incident import EscalationLevel, IncidentType, Severity
from opex_operator.playbooks import playbook_for
from opex_operator.notify.escalation import applicable, due
from opex_operator.policy import DEFAULT_LEVELS

T0 = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.timezone.utc)
MIN = dt.timedelta(minutes=1)


def levels(severity="critical", env="production"):
    return applicable(DEFAULT_LEVELS, Severity(severity), env)


def test_level_3_only_for_critical_production():
    assert [lv.level for lv in levels()] == [1, 2, 3]
    assert [lv.level for lv in levels("high")] == [1, 2]
    assert [lv.level for lv in levels("critical", "development")] == [1, 2]


def test_level_1_at_once_then_level_2_after_30_minutes():
    now_due, next_at = due(levels("high"), T0, T0, current_level=0)
    assert [lv.level for lv in now_due] == [1] and next_at == T0 + 30 * MIN
    assert due(levels("high"), T0, T0 + 29 * MIN, current_level=1) == ([], T0 + 30 * MIN)
    now_due, next_at = due(levels("high"), T0, T0 + 30 * MIN, current_level=1)
    assert [lv.level for lv in now_due] == [2] and next_at is None


def test_after_a_long_outage_every_missed_level_is_notified_once():
    now_due, next_at = due(levels(), T0, T0 + 120 * MIN, current_level=1)
    assert [lv.level for lv in now_due] == [2, 3] and next_at is None
    assert due(levels(), T0, T0 + 121 * MIN, current_level=3) == ([], None)


def test_forced_escalation_takes_the_next_level_now():
    now_due, next_at = due(levels("high"), T0, T0 + MIN, current_level=1, force_next=True)
    assert [lv.level for lv in now_due] == [2] and next_at is None


def test_spec_levels_replace_the_default():
    mine = [EscalationLevel(level=1, contact="team", after_seconds=0),
            EscalationLevel(level=2, contact="lead", after_seconds=5)]
    now_due, next_at = due(applicable(mine, Severity.LOW, "dev"), T0, T0, 0)
    assert [lv.contact for lv in now_due] == ["team"] and next_at == T0 + dt.timedelta(seconds=5)


def test_a_critical_production_security_incident_pages_every_level_at_once():
    immediate = playbook_for(IncidentType.SECURITY_INCIDENT).pages_every_level_at_once(Severity.CRITICAL, "production")
    chain = applicable(DEFAULT_LEVELS, Severity.CRITICAL, "production", immediate)
    now_due, next_at = due(chain, T0, T0, current_level=0)
    assert [lv.level for lv in now_due] == [1, 2, 3] and next_at is None
    assert [lv.after_seconds for lv in DEFAULT_LEVELS] == [0, 1800, 1800]  # the matrix itself is unchanged


def test_other_incidents_keep_the_level_2_window():
    for severity, env, kind in ((Severity.CRITICAL, "production", IncidentType.DEPLOYMENT_FAILURE),
                                (Severity.HIGH, "production", IncidentType.SECURITY_INCIDENT),
                                (Severity.CRITICAL, "development", IncidentType.SECURITY_INCIDENT)):
        immediate = playbook_for(kind).pages_every_level_at_once(severity, env)
        now_due, next_at = due(applicable(DEFAULT_LEVELS, severity, env, immediate), T0, T0, current_level=0)
        assert [lv.level for lv in now_due] == [1] and next_at == T0 + 30 * MIN, (severity, env, kind)
