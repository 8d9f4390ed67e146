"""What a step's bake window reads, against real servers: CloudWatch alarms on moto's server (real boto3
over HTTP; set_alarm_state moves an alarm as CloudWatch would) and a PromQL condition on the real
Prometheus from `make tools`, scraping a metric this test sets. Each reading goes through the bake
decision, as the operator will."""
from __future__ import annotations

import datetime as dt
import time
import uuid

import boto3
import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

import procs
from helpers import wait_for
from monitoring import Monitoring
from opex_operator.api.guardrails import BakeVerification, BreachSource
from opex_operator.aws.alarms import AlarmReader
from opex_operator.aws.clients import AwsClients
from opex_operator.errors import PrometheusError
from opex_operator.guardrails.bake import Reversibility, Verdict, decide, start
from opex_operator.guardrails.verify import observe
from opex_operator.promql import Prometheus


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def put_alarm(name: str) -> None:
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName=name, Namespace="AWS/Lambda", MetricName="Errors", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=5.0, ComparisonOperator="GreaterThanThreshold",
        Dimensions=[{"Name": "FunctionName", "Value": "checkout-api"}])


def test_an_alarm_that_goes_to_alarm_during_the_window_breaches_it_and_the_step_is_undone(aws):
    put_alarm("checkout-api-errors")
    put_alarm("checkout-api-throttles")
    reader = AlarmReader(AwsClients("us-east-1"), None, None)
    verify = BakeVerification(window="5m", alarms=["checkout-api-errors", "checkout-api-throttles"])
    baking = start(300, now())
    first = observe(verify, baking.started_at, reader, None, now())
    assert [a.state.state for a in first.alarms] == ["OK", "OK"] and first.problems() == []
    assert decide(baking, Reversibility.UNDOABLE, first, now()).verdict == Verdict.WAIT

    boto3.client("cloudwatch").set_alarm_state(AlarmName="checkout-api-errors", StateValue="ALARM",
                                               StateReason="Threshold Crossed: 1 datapoint [12.0] was greater than 5.0")
    second = observe(verify, baking.started_at, reader, None, now())
    decision = decide(baking, Reversibility.UNDOABLE, second, now())
    assert decision.verdict == Verdict.UNDO
    assert (decision.breach.source, decision.breach.name) == (BreachSource.ALARM, "checkout-api-errors")
    assert "1 datapoint [12.0] was greater than 5.0" in decision.breach.value
    assert decide(baking, Reversibility.CONTAINMENT, second, now()).verdict == Verdict.PAGE


def test_an_alarm_in_alarm_before_the_step_does_not_breach_and_a_missing_one_pages(aws):
    put_alarm("latency-high")
    boto3.client("cloudwatch").set_alarm_state(AlarmName="latency-high", StateValue="ALARM", StateReason="slow")
    time.sleep(1.1)  # the step ends after the alarm went to ALARM
    baking = start(300, now())
    reader = AlarmReader(AwsClients("us-east-1"), None, None)
    seen = observe(BakeVerification(window="5m", alarms=["latency-high"]), baking.started_at, reader, None, now())
    assert seen.alarms[0].state.state == "ALARM"
    assert decide(baking, Reversibility.UNDOABLE, seen, now()).verdict == Verdict.WAIT
    typo = observe(BakeVerification(window="5m", alarms=["latency-hihg"]), baking.started_at, reader, None, now())
    assert decide(baking, Reversibility.UNDOABLE, typo, now()).verdict == Verdict.PAGE


def test_an_alarm_back_to_ok_within_the_window_has_its_history_asked(aws):
    """moto does not implement DescribeAlarmHistory: the look says so instead of failing, and the bake goes on."""
    put_alarm("flapping")
    baking = start(300, now() - dt.timedelta(seconds=5))
    cw = boto3.client("cloudwatch")
    cw.set_alarm_state(AlarmName="flapping", StateValue="ALARM", StateReason="up")
    cw.set_alarm_state(AlarmName="flapping", StateValue="OK", StateReason="down")
    seen = observe(BakeVerification(window="5m", alarms=["flapping"]), baking.started_at,
                   AlarmReader(AwsClients("us-east-1"), None, None), None, now())
    assert seen.alarms[0].state.state == "OK"
    assert [p for p in seen.problems() if "flapping: its history could not be read" in p]
    assert decide(baking, Reversibility.UNDOABLE, seen, now()).verdict == Verdict.WAIT


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """The real Prometheus scraping a small exporter whose gauge the test sets (every second)."""
    registry = CollectorRegistry()
    ratio = Gauge("bake_probe_error_ratio", "The error ratio a bake condition watches.", ["service"],
                  registry=registry)
    ratio.labels("checkout").set(0.01)
    port = procs.free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    workdir = tmp_path_factory.mktemp("bake-prometheus")
    token = workdir / "token"
    token.write_text(uuid.uuid4().hex)
    servers = Monitoring(workdir, f"127.0.0.1:{port}", "http://127.0.0.1:9/alerts", token).start()
    try:
        yield servers, ratio.labels("checkout")
    finally:
        servers.stop()
        server.shutdown()
        thread.join(5)


def test_the_real_prometheus_evaluates_the_bake_condition_until_it_breaks(prometheus):
    servers, ratio = prometheus
    query = Prometheus(servers.prometheus_url)
    condition = 'bake_probe_error_ratio{service="checkout"} < 0.05'
    wait_for(lambda: query.instant(condition).samples, timeout=30, what="the gauge scraped")
    verify = BakeVerification(window="5m", promql=condition)
    baking = start(300, now())
    held = observe(verify, baking.started_at, None, query, now())
    assert held.query.result.holds() and "0.01" in held.query.result.describe()
    assert decide(baking, Reversibility.UNDOABLE, held, now()).verdict == Verdict.WAIT

    ratio.set(0.2)
    wait_for(lambda: not query.instant(condition).samples, timeout=30, what="the breach scraped")
    decision = decide(baking, Reversibility.UNDOABLE, observe(verify, baking.started_at, None, query, now()), now())
    assert decision.verdict == Verdict.UNDO and decision.breach.source == BreachSource.PROMQL
    assert decision.breach.value.startswith("no sample (vector)")
    assert query.instant("scalar(bake_probe_error_ratio)").samples[0].value == pytest.approx(0.2)


def test_prometheus_refusing_a_query_and_prometheus_out_of_reach_are_told_apart(prometheus):
    servers, _ = prometheus
    with pytest.raises(PrometheusError) as refused:
        Prometheus(servers.prometheus_url).instant("sum(rate(bake_probe_error_ratio[1m])")
    assert refused.value.refused and "bad_data" in refused.value.message
    with pytest.raises(PrometheusError) as unreachable:
        Prometheus(f"http://127.0.0.1:{procs.free_port()}", timeout=2).instant("up")
    assert not unreachable.value.refused and "cannot be reached" in unreachable.value.message
