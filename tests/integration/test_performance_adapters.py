"""The performance runbook's AWS adapters against moto's server (real boto3 over HTTP), with the
metric data, log lines and resources put by the test."""
from __future__ import annotations

import datetime as dt

import boto3
import pytest

import perf_estate
from opex_operator import metrics
from opex_operator.aws.clients import AwsClients
from opex_operator.aws.cloudwatch import CloudWatchMetrics
from opex_operator.aws.perf_actions import PerformanceActions
from opex_operator.aws.perf_reader import PerformanceReader
from opex_operator.playbooks.performance import metrics as perf
from opex_operator.steps import lambda_configuration as perf_plan
from opex_operator.ports.performance import PerformanceInsightsParams, StageSettingsParams

FN = "checkout-api"


@pytest.fixture
def clients(aws):
    return AwsClients("us-east-1")


def calls(operation: str, region_label: str = "cloudwatch") -> float:
    return metrics.AWS_API_CALLS.labels(region_label, operation, "success")._value.get()


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def test_one_get_metric_data_call_reads_every_series_with_p99(clients):
    # All datapoints at one instant, so they share one 300-second period wherever its edges fall.
    perf_estate.put_metric("AWS/Lambda", "Duration", {"FunctionName": FN}, [100.0 * i for i in range(1, 101)],
                           "Milliseconds", minutes_ago=20, spread_seconds=0)
    perf_estate.put_metric("AWS/RDS", "CPUUtilization", {"DBInstanceIdentifier": "orders-db"}, [35.0, 97.5],
                           "Percent", minutes_ago=12, spread_seconds=0)
    specs = perf.series_specs([FN], ("orders-api", "prod"), None, "orders-db")
    before = calls("GetMetricData")
    found = CloudWatchMetrics(clients, None, None).read(specs, now(), 3600, 300)
    assert calls("GetMetricData") - before == 1
    by = {s.spec.key: s for s in found}
    assert [s.spec.key for s in found] == [s.key for s in specs]
    assert by[perf.key(f"function/{FN}", "Duration", "p99")].values == [9900.0]
    assert by[perf.key(f"function/{FN}", "Duration", "Maximum")].values == [10000.0]
    assert by[perf.key(f"function/{FN}", "Duration", "Average")].values == [5050.0]
    assert by[perf.key("db/orders-db", "CPUUtilization", "Maximum")].values == [97.5]
    assert by[perf.key("api/orders-api/prod", "Latency", "p99")].empty  # nothing put: no data, not zero


def test_cloudfront_series_are_read_in_us_east_1_with_one_more_call(clients):
    boto3.client("cloudwatch", region_name="eu-west-1").put_metric_data(Namespace="AWS/Lambda", MetricData=[{
        "MetricName": "Duration", "Dimensions": [{"Name": "FunctionName", "Value": FN}], "Value": 420.0,
        "Unit": "Milliseconds", "Timestamp": now() - dt.timedelta(minutes=7)}])
    perf_estate.put_metric("AWS/CloudFront", "CacheHitRate", {"DistributionId": "E2CDN", "Region": "Global"},
                           [41.0], "Percent", minutes_ago=7)
    specs = perf.series_specs([FN], distribution="E2CDN")
    before = calls("GetMetricData")
    found = {s.spec.key: s for s in CloudWatchMetrics(clients, "eu-west-1", None).read(specs, now(), 3600, 300)}
    assert calls("GetMetricData") - before == 2
    assert found[perf.key(f"function/{FN}", "Duration", "Maximum")].values == [420.0]
    assert found[perf.key("distribution/E2CDN", "CacheHitRate", "Average")].values == [41.0]


def test_window_longer_than_cloudwatch_keeps_is_refused_before_any_call(clients):
    before = calls("GetMetricData")
    with pytest.raises(ValueError, match="longer than CloudWatch keeps 60-second datapoints"):
        CloudWatchMetrics(clients, None, None).read(perf.series_specs([FN]), now(), 16 * 86400, 60)
    assert calls("GetMetricData") == before


def test_lambda_config_reads_memory_timeout_concurrency_and_report_lines(clients):
    perf_estate.slow_lambda(FN, memory_mb=128, timeout_seconds=3, used_mb=124)
    boto3.client("lambda").put_function_concurrency(FunctionName=FN, ReservedConcurrentExecutions=5)
    config = PerformanceReader(clients, None, None).lambda_config(FN, now() - dt.timedelta(hours=1))
    assert (config.memory_mb, config.timeout_seconds, config.reserved_concurrency) == (128, 3, 5)
    assert (config.max_memory_used_mb, config.report_lines) == (124, 30)
    assert "Max Memory Used: 124 MB" in config.report_example


def test_lambda_memory_is_raised_once_and_then_left_alone(clients):
    perf_estate.slow_lambda(FN, memory_mb=128)
    actions = PerformanceActions(clients, None, None)
    first = actions.set_lambda_memory(FN, 256)
    assert first.changed and first.summary == "128 MB -> 256 MB"
    assert boto3.client("lambda").get_function_configuration(FunctionName=FN)["MemorySize"] == 256
    updates = calls("UpdateFunctionConfiguration", "lambda")
    again = actions.set_lambda_memory(FN, 256)
    assert not again.changed and again.summary == "already 256 MB"
    assert calls("UpdateFunctionConfiguration", "lambda") == updates


def test_memory_raise_is_verified_by_the_next_periods_duration(clients):
    perf_estate.slow_lambda(FN, durations_ms=[2900.0] * 10, minutes_ago=40)
    changed_at = now() - dt.timedelta(minutes=30)
    perf_estate.put_metric("AWS/Lambda", "Duration", {"FunctionName": FN}, [700.0] * 10, "Milliseconds",
                           minutes_ago=20)
    [p99] = CloudWatchMetrics(clients, None, None).read(
        [s for s in perf.series_specs([FN]) if s.stat == "p99"], now(), 1800, 300)
    verdict, text = perf_plan.duration_dropped(2900.0, p99, changed_at, 300, now())
    assert verdict == perf_plan.Verdict.DROPPED and "76% lower" in text


def test_performance_insights_enabled_with_seven_days_once(clients, postgres):
    perf_estate.database("orders-db", postgres.host, postgres.port, postgres.user, postgres.password)
    actions = PerformanceActions(clients, None, None)
    params = PerformanceInsightsParams(db_instance_identifier="orders-db")
    config, _ = PerformanceReader(clients, None, None).rds_config("orders-db")
    assert not config.performance_insights
    change = actions.enable_performance_insights(params)
    assert change.changed and change.after == "Performance Insights on (7 days)"
    config, _ = PerformanceReader(clients, None, None).rds_config("orders-db")
    assert (config.performance_insights, config.performance_insights_retention_days) == (True, 7)
    assert not actions.enable_performance_insights(params).changed


def test_rds_endpoint_points_at_the_local_server_and_groups_are_read(clients, postgres):
    db = perf_estate.database("orders-db", postgres.host, postgres.port, postgres.user, postgres.password)
    config, groups = PerformanceReader(clients, None, None).rds_config("orders-db")
    assert (config.endpoint, config.port) == ("127.0.0.1", postgres.port)
    [group] = groups
    assert group.id == db.security_group and group.rules == [(postgres.port, postgres.port, ["10.0.0.0/16"])]
    assert not group.admits(postgres.port, ["127.0.0.1/32"]) and group.admits(postgres.port, ["10.0.9.9/32"])


def test_stage_caching_and_detailed_metrics_enabled_by_update_stage_once(clients, api_app):
    api = perf_estate.api_stage("orders-api", "prod", api_app.url)
    reader, actions = PerformanceReader(clients, None, None), PerformanceActions(clients, None, None)
    before = reader.stage_config(api, "prod")
    assert (before.api_name, before.cache_cluster_enabled, before.metrics_enabled) == ("orders-api", False, False)
    params = StageSettingsParams(rest_api_id=api, stage_name="prod", caching_enabled=True, cache_size_gb="0.5",
                                 metrics_enabled=True)
    assert actions.update_stage(params).changed
    after = reader.stage_config(api, "prod")
    assert (after.cache_cluster_enabled, after.cache_cluster_size, after.caching_enabled, after.metrics_enabled) == (
        True, "0.5", True, True)
    updates = calls("UpdateStage", "apigateway")
    assert not actions.update_stage(params).changed
    assert calls("UpdateStage", "apigateway") == updates


def test_database_credentials_from_secrets_manager_and_a_missing_key_named(clients, postgres):
    perf_estate.database("orders-db", postgres.host, postgres.port, postgres.user, postgres.password)
    reader = PerformanceReader(clients, None, None)
    creds = reader.database_credentials("orders-db/credentials")
    assert creds.username == postgres.user and creds.password == postgres.password
    assert postgres.password not in repr(creds)
    boto3.client("secretsmanager").create_secret(Name="half", SecretString='{"username": "opex", "pw": "s3cret"}')
    with pytest.raises(LookupError, match="secret half has no password key") as err:
        reader.database_credentials("half")
    assert "s3cret" not in str(err.value)
