"""Real answers of what a step's bake window reads (tests/realworld/bake): CloudWatch's DescribeAlarms and
DescribeAlarmHistory as the aws-cli documents them, and Prometheus' documented instant-query answer,
through the readers' parsers (aws.alarms, promql)."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from opex_operator.api.common import parse_time
from opex_operator.aws.alarms import alarm_state, first_alarm_transition
from opex_operator.promql import parse_answer
from realworld.corpus import Case, params


@pytest.mark.parametrize("case", params("bake"))
def test_real_answer_is_read_as_the_service_means_it(case: Case):
    expect = case.expect
    if expect["kind"] == "alarms":
        [state] = [alarm_state(raw) for raw in json.loads(case.text())["MetricAlarms"]]
        assert (state.name, state.state, state.since.isoformat()) == (expect["name"], expect["state"], expect["since"])
        assert state.reason.startswith(expect["reason_starts"])
    elif expect["kind"] == "history":
        found = first_alarm_transition(json.loads(case.text())["AlarmHistoryItems"], parse_time(expect["since"]))
        assert (found.isoformat() if found else None) == expect["went_to_alarm_at"], case.why
    else:
        result = parse_answer(case.text())
        assert (result.holds(), len(result.samples), result.describe()) == (
            expect["holds"], expect["samples"], expect["describe"])


def test_history_falls_back_to_the_summary_when_history_data_is_absent():
    since = dt.datetime(2014, 4, 9, 18, 59, tzinfo=dt.timezone.utc)
    items = [{"Timestamp": "2014-04-09T18:59:05.805Z", "HistoryItemType": "StateUpdate",
              "HistorySummary": "Alarm updated from OK to ALARM"},
             {"Timestamp": "2014-04-09T18:59:01Z", "HistoryItemType": "Action",
              "HistorySummary": "Successfully executed action arn:aws:sns:us-east-1:123456789012:oncall"}]
    assert first_alarm_transition(items, since) == dt.datetime(2014, 4, 9, 18, 59, 5, 805000, tzinfo=dt.timezone.utc)
