"""One look at what a step's bake window watches (``spec.remediation.verify``), through two ports:
the CloudWatch alarms (``aws.alarms.AlarmReader``) and the Prometheus condition
(``promql.Prometheus``). What it saw is a :class:`~.bake.Observation` for :func:`.bake.decide`.

A reader that fails is not a breach: the look says what could not be read, and the decision waits
for the next look (or, at the end of the window, says the change is unverified). An alarm's
history is read only when it changed state during the window but is not in ALARM now (one
DescribeAlarms call per look otherwise; both draw on the AWS call budget).
"""
from __future__ import annotations

import datetime as dt

from ..api.guardrails import BakeVerification
from ..errors import AwsError, PrometheusError
from ..ports.verification import ALARM, AlarmPort, AlarmState, QueryPort
from .bake import AlarmReading, Observation, QueryReading


def observe(verify: BakeVerification, since: dt.datetime, alarms: AlarmPort | None, prometheus: QueryPort | None,
            now: dt.datetime) -> Observation:
    """Look once at the alarms and the condition of ``verify``; the window began at ``since``.
    ``prometheus`` is None when the operator has no Prometheus configured (OPEX_PROMETHEUS_URL)."""
    readings: list[AlarmReading] = []
    errors: list[str] = []
    if verify.alarms and alarms is None:
        errors.append("the operator has no CloudWatch reader for this incident")
    elif verify.alarms and alarms is not None:
        try:
            found = alarms.alarms(list(verify.alarms))
        except AwsError as err:
            errors.append(f"CloudWatch alarms could not be read: {err.describe()}")
        else:
            for name in verify.alarms:
                readings.append(_reading(name, found.get(name), since, alarms))
    query = None
    if verify.promql:
        if prometheus is None:
            query = QueryReading(verify.promql, None, "the operator has no Prometheus to ask (set OPEX_PROMETHEUS_URL)")
        else:
            try:
                query = QueryReading(verify.promql, prometheus.instant(verify.promql))
            except PrometheusError as err:
                query = QueryReading(verify.promql, None, err.message)
    return Observation(now, tuple(readings), query, tuple(errors))


def _reading(name: str, state: AlarmState | None, since: dt.datetime, alarms: AlarmPort) -> AlarmReading:
    if state is None or state.state == ALARM or state.since is None or state.since < since:
        return AlarmReading(name, state)
    try:  # it changed state in the window and is not in ALARM: was it there between two looks?
        return AlarmReading(name, state, went_to_alarm_at=alarms.went_to_alarm(name, since))
    except AwsError as err:
        return AlarmReading(name, state, history_error=err.describe())
