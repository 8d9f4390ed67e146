"""The performance runbook's pure side: thresholds, findings, causes, plans, verification, probes."""
from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from opex_operator.api.incident import Step, FindingSeverity, IncidentSpec, RootCauseCategory as Cat
from opex_operator.api.performance import (MetricsQuery, PerformanceRemediation, Thresholds, check_window,
                                           retention_seconds)
from opex_operator.playbooks.performance import metrics as perf, plan as perf_plan
from opex_operator.steps import action_of, lambda_configuration as memory
from opex_operator.steps.lambda_code import FunctionSeen
from opex_operator.ports.facts import FunctionState
from opex_operator.playbooks.diagnose import Diagnosis, bounded
from opex_operator.ports.performance import (ProbeFailure, DbProbeResult, GroupIngress, HttpProbeResult, LambdaConfig,
                                               PerformanceFacts, RdsConfig, Series, StageConfig)
from opex_operator.playbooks.probes import add_database_finding, add_http_finding, database_cause
from opex_operator.runbooks.postincident import FOLLOW_UP
from opex_operator.steps.api_stage import StageSettingsParams
from opex_operator.steps.lambda_configuration import LambdaConfigurationParams
from opex_operator.steps.rds_insights import PerformanceInsightsParams

NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.timezone.utc)
FN = "checkout-api"


def series(specs, key, values, start=NOW - dt.timedelta(minutes=60), period=300):
    spec = next(s for s in specs if s.key == key)
    return Series(spec, [start + dt.timedelta(seconds=i * period) for i in range(len(values))], list(values))


def facts(values: dict[str, list[float]], lambdas=(), stage=None, rds=None, distribution=None,
          api=None) -> PerformanceFacts:
    specs = perf.series_specs([fn.name for fn in lambdas], api, distribution, rds.instance_id if rds else None)
    return PerformanceFacts(window_seconds=3600, period_seconds=300, lambdas=list(lambdas), stage=stage, rds=rds,
                            cloud_front=distribution,
                            series=[series(specs, s.key, values.get(s.key, [])) for s in specs])


def lam(memory=128, timeout=3, used=None, reserved=None) -> LambdaConfig:
    return LambdaConfig(FN, memory, timeout, reserved_concurrency=reserved, max_memory_used_mb=used,
                        report_lines=30 if used else 0)


def k(resource, metric, stat):
    return perf.key(resource, metric, stat)


SLOW = {k(f"function/{FN}", "Duration", "p99"): [900, 2950, 1200],
        k(f"function/{FN}", "Duration", "Maximum"): [950, 2990, 1300],
        k(f"function/{FN}", "Duration", "Average"): [400, 2700, 800]}


def run(f: PerformanceFacts, t: Thresholds = Thresholds()):
    judged = perf.judge(f, t)
    d = Diagnosis()
    perf.add_findings(d, f, judged)
    causes = perf.diagnose(f, judged, t)
    return judged, d, causes, perf.root_cause(causes, d, judged, NOW)


# ---- the window -----------------------------------------------------------------------------

@pytest.mark.parametrize("window,period,fragment", [
    (1296001, 60, "longer than CloudWatch keeps 60-second datapoints (1296000 s)"),
    (10801, 10, "longer than CloudWatch keeps 10-second datapoints (10800 s)"),
    (3600, 90, "not a CloudWatch period"),
    (60, 300, "shorter than one period"),
])
def test_window_cloudwatch_cannot_answer_is_refused_naming_the_field(window, period, fragment):
    with pytest.raises(ValueError, match="metrics.windowSeconds|metrics.periodSeconds") as err:
        check_window(window, period)
    assert fragment in str(err.value)
    with pytest.raises(ValidationError, match="CloudWatch|period"):
        MetricsQuery(window_seconds=window, period_seconds=period)


def test_retention_follows_cloudwatch_periods():
    assert [retention_seconds(p) for p in (1, 30, 60, 120, 300, 3600, 86400)] == [
        10800, 10800, 1296000, 1296000, 5443200, 39312000, 39312000]
    check_window(63 * 86400, 300)  # exactly the retention is fine


def test_spec_defaults_are_the_runbooks_hour_of_300_second_periods():
    spec = IncidentSpec.model_validate({"type": "PerformanceDegradation", "severity": "high", "title": "slow",
                                        "environment": "production", "targets": {"metrics": {}}})
    assert (spec.targets.metrics.window_seconds, spec.targets.metrics.period_seconds) == (3600, 300)
    assert spec.targets.metrics.thresholds.lambda_duration_ms == 3000


# ---- series and thresholds ------------------------------------------------------------------

def test_series_cover_the_runbooks_key_metrics_with_cloudfront_in_us_east_1():
    specs = perf.series_specs([FN], ("orders-api", "prod"), "E2CDN", "orders-db")
    names = {(s.namespace, s.metric, s.stat) for s in specs}
    assert {("AWS/Lambda", "Duration", "p99"), ("AWS/Lambda", "Throttles", "Sum"),
            ("AWS/ApiGateway", "IntegrationLatency", "Average"), ("AWS/ApiGateway", "5XXError", "Average"),
            ("AWS/CloudFront", "CacheHitRate", "Average"), ("AWS/RDS", "FreeableMemory", "Minimum")} <= names
    cdn = next(s for s in specs if s.namespace == "AWS/CloudFront")
    assert cdn.region == "us-east-1" and ("Region", "Global") in cdn.dimensions
    api = next(s for s in specs if s.namespace == "AWS/ApiGateway")
    assert dict(api.dimensions) == {"ApiName": "orders-api", "Stage": "prod"}


def test_breach_finding_says_metric_statistic_value_unit_threshold_and_how_far_over():
    judged, d, _, _ = run(facts(SLOW, [lam()]), Thresholds(lambda_duration_ms=1000))
    p99 = next(f for f in judged if f.spec.metric == "Duration" and f.spec.stat == "p99")
    assert (p99.state, p99.value, p99.threshold, p99.over) == (perf.State.BREACH, 2950, 1000, 1950)
    finding = d.findings[int(d.refs[f"metric:{p99.spec.key}"][1:]) - 1]
    assert finding.severity == FindingSeverity.ERROR
    assert finding.observed == ("Duration p99 peaked at 2,950 ms (period from 09:05 UTC) over the last 1 h; "
                                "threshold 1,000 ms: 1,950 ms (195%) over")
    assert "2,950.000" in finding.evidence


def test_metric_within_threshold_is_reported_as_within():
    judged, d, _, _ = run(facts({**SLOW, k(f"function/{FN}", "Errors", "Sum"): [0, 0, 0]}, [lam()]))
    errors = next(f for f in judged if f.spec.metric == "Errors")
    assert errors.state == perf.State.OK and errors.describe("1 h").endswith("threshold 0 errors per period: within")


def test_empty_series_are_no_data_never_healthy():
    f = facts({}, [lam()])
    judged, d, causes, cause = run(f)
    assert {j.state for j in judged} == {perf.State.NO_DATA}
    nodata = next(x for x in d.findings if x.observed.startswith("no data"))
    assert nodata.severity == FindingSeverity.WARNING and "Duration p99" in nodata.observed
    assert "not healthy, unknown" in nodata.observed
    assert causes == [] and cause.category == Cat.UNKNOWN
    assert cause.summary.startswith("no datapoints for any metric")


def test_cloudfront_without_data_says_additional_metrics_must_be_enabled():
    _, d, _, _ = run(facts({}, distribution="E2CDN"))
    [finding] = [x for x in d.findings if x.resource == "distribution/E2CDN"]
    assert "additional metrics are enabled" in finding.observed


def test_low_values_breach_metrics_that_are_bad_when_low():
    rds = RdsConfig("orders-db", performance_insights=True, performance_insights_retention_days=7)
    f = facts({k("distribution/E2CDN", "CacheHitRate", "Average"): [91, 42.5, 88],
               k("db/orders-db", "FreeableMemory", "Minimum"): [600 * perf.MIB, 128 * perf.MIB]},
              distribution="E2CDN", rds=rds)
    judged, _, causes, cause = run(f)
    hit = next(j for j in judged if j.spec.metric == "CacheHitRate")
    mem = next(j for j in judged if j.spec.metric == "FreeableMemory")
    assert (hit.value, hit.over, hit.state) == (42.5, 37.5, perf.State.BREACH)
    assert "lowest 42.5 %" in hit.describe("1 h") and "37.5 % (47%) under" in hit.describe("1 h")
    assert (mem.value, mem.threshold, mem.state) == (128, 256, perf.State.BREACH)
    assert cause.category == Cat.CLOUD_FRONT_LOW_HIT_RATIO


# ---- diagnosis ------------------------------------------------------------------------------

def test_memory_bound_function_near_its_timeout_names_both_with_numbers():
    _, d, causes, cause = run(facts(SLOW, [lam(memory=128, timeout=3, used=124)]))
    assert [c.category for c in causes][:2] == [Cat.LAMBDA_MEMORY_BOUND, Cat.LAMBDA_NEAR_TIMEOUT]
    assert cause.category == Cat.LAMBDA_MEMORY_BOUND
    assert "124 MB of 128 MB (97%" in cause.summary and "2,990 ms is 100% of its 3 s timeout" in cause.summary
    assert d.refs[f"lambda-config:{FN}"] in cause.evidence


def test_near_timeout_without_memory_pressure():
    _, _, _, cause = run(facts(SLOW, [lam(memory=1024, timeout=3, used=300)]))
    assert cause.category == Cat.LAMBDA_NEAR_TIMEOUT


def test_fast_function_has_no_cause():
    fast = {key: [v / 10 for v in vals] for key, vals in SLOW.items()}
    _, _, causes, cause = run(facts(fast, [lam(memory=512, timeout=30, used=100)]))
    assert causes == [] and cause.category == Cat.UNKNOWN and cause.summary.startswith("no metric crossed")


@pytest.mark.parametrize("reserved,says", [(5, "reserved concurrency of 5 caps it"),
                                           (None, "unreserved concurrency is exhausted")])
def test_throttled_function_names_its_concurrency_limit(reserved, says):
    values = {k(f"function/{FN}", "Throttles", "Sum"): [0, 14, 3],
              k(f"function/{FN}", "ConcurrentExecutions", "Maximum"): [5, 5, 5]}
    _, _, _, cause = run(facts(values, [lam(memory=512, timeout=30, reserved=reserved)]))
    assert cause.category == Cat.LAMBDA_THROTTLED and says in cause.summary and "14 throttles" in cause.summary


STAGE = StageConfig("a1b2c3", "orders-api", "prod")


@pytest.mark.parametrize("integration,category", [(1400, Cat.API_INTEGRATION_LATENCY), (300, Cat.API_GATEWAY_LATENCY)])
def test_api_latency_is_split_between_integration_and_gateway(integration, category):
    res = "api/orders-api/prod"
    values = {k(res, "Latency", "p99"): [800, 2100], k(res, "Latency", "Average"): [1500, 1500],
              k(res, "IntegrationLatency", "Average"): [integration, integration]}
    _, _, causes, cause = run(facts(values, stage=STAGE, api=("orders-api", "prod")))
    assert cause.category == category
    assert f"{integration:,} ms of 1,500 ms Latency" in cause.summary
    assert Cat.API_CACHING_OFF in [c.category for c in causes]


def test_rds_cpu_and_connections_against_max_connections_and_insights_off():
    rds = RdsConfig("orders-db", engine="postgres", instance_class="db.t3.micro")
    f = facts({k("db/orders-db", "CPUUtilization", "Maximum"): [40, 97],
               k("db/orders-db", "DatabaseConnections", "Maximum"): [10, 18]}, rds=rds)
    judged = perf.judge(f, Thresholds(), max_connections=20)
    causes = perf.diagnose(f, judged, Thresholds())
    assert [c.category for c in causes] == [Cat.DATABASE_CPU, Cat.DATABASE_CONNECTIONS, Cat.PERFORMANCE_INSIGHTS_OFF]
    assert "reached 18 connections, 80% of max_connections is 16" in causes[1].summary


def test_every_new_category_has_a_follow_up():
    assert set(Cat) <= set(FOLLOW_UP)


# ---- planning -------------------------------------------------------------------------------

def plan_for(f, wanted=None, cap=None):
    _, _, causes, _ = run(f)
    return perf_plan.plan(causes, f, wanted, cap)


def test_memory_raise_goes_to_the_next_step_by_default():
    p = plan_for(facts(SLOW, [lam(memory=128, used=124)]))
    [change] = p.changes
    assert (change.id, change.action) == (f"raise-lambda-memory-{FN}", "lambda:UpdateFunctionConfiguration")
    assert change.params == LambdaConfigurationParams(function_name=FN, memory_size_mb=256, from_mb=128,
                                                      before_p99_ms=2950)
    assert change.params.wire() == {"functionName": FN, "memorySizeMb": "256", "fromMb": "128", "beforeP99Ms": "2950"}


def test_memory_raise_uses_the_spec_size_capped_by_spec_and_policy():
    wanted = PerformanceRemediation.model_validate({"lambdaMemory": {"sizeMb": 2048, "maxMb": 3008}})
    assert plan_for(facts(SLOW, [lam(used=124)]), wanted).changes[0].params.memory_size_mb == 2048
    assert plan_for(facts(SLOW, [lam(used=124)]), wanted, cap=1024).changes[0].params.memory_size_mb == 1024
    assert perf_plan.next_memory_step(3008) == 4096 and perf_plan.next_memory_step(10240) == 10240


def test_memory_already_at_the_cap_plans_nothing_and_says_why():
    wanted = PerformanceRemediation.model_validate({"lambdaMemory": {"maxMb": 512}})
    p = plan_for(facts(SLOW, [lam(memory=512, used=510)]), wanted)
    assert p.changes == [] and "at or above the 512 MB cap" in p.notes[0]


def test_performance_insights_planned_with_seven_days_for_an_implicated_database():
    rds = RdsConfig("orders-db")
    p = plan_for(facts({k("db/orders-db", "CPUUtilization", "Maximum"): [97]}, rds=rds))
    [change] = p.changes
    assert change.action == "rds:ModifyDBInstance" and change.params.retention_days == 7
    insights_on = RdsConfig("orders-db", performance_insights=True)
    assert plan_for(facts({k("db/orders-db", "CPUUtilization", "Maximum"): [97]}, rds=insights_on)).changes == []


@pytest.mark.parametrize("params", [
    LambdaConfigurationParams(function_name=FN, memory_size_mb=512, from_mb=256, before_p99_ms=2950,
                              changed_at=NOW),
    LambdaConfigurationParams(function_name=FN, keys="DB_HOST,DB_PORT"),
    PerformanceInsightsParams(db_instance_identifier="orders-db"),
    StageSettingsParams(rest_api_id="a1b2c3", stage_name="prod", caching_enabled=True, cache_size_gb="1.6"),
    StageSettingsParams(rest_api_id="a1b2c3", stage_name="prod", metrics_enabled=False),
])
def test_params_survive_the_string_map_of_status_steps(params):
    assert type(params).model_validate(params.wire()) == params


def test_stage_settings_planned_only_where_the_spec_asks_and_the_stage_differs():
    f = facts({}, stage=STAGE, api=("orders-api", "prod"))
    assert plan_for(f).changes == []
    wanted = PerformanceRemediation.model_validate({"apiStage": {"cachingEnabled": True, "metricsEnabled": True}})
    [change] = plan_for(f, wanted).changes
    assert change.action == "apigateway:UpdateStage"
    assert change.params == StageSettingsParams(rest_api_id="a1b2c3", stage_name="prod", caching_enabled=True,
                                                cache_size_gb="0.5", metrics_enabled=True)
    done = StageConfig("a1b2c3", "orders-api", "prod", cache_cluster_enabled=True, caching_enabled=True,
                       metrics_enabled=True)
    assert plan_for(facts({}, stage=done, api=("orders-api", "prod")), wanted).changes == []


# ---- verification ---------------------------------------------------------------------------

def after(values, start):
    spec = perf.series_specs([FN])[2]
    return Series(spec, [start + dt.timedelta(minutes=5 * i) for i in range(len(values))], values)


def test_duration_drop_in_the_next_whole_period_is_verified():
    changed = NOW - dt.timedelta(minutes=12)
    verdict, text = memory.duration_dropped(2950, after([1100.0], NOW - dt.timedelta(minutes=10)), changed, 300, NOW)
    assert verdict == memory.Verdict.DROPPED and "63% lower" in text


def test_duration_that_did_not_drop_is_not_verified():
    changed = NOW - dt.timedelta(minutes=12)
    verdict, _ = memory.duration_dropped(2950, after([2900.0], NOW - dt.timedelta(minutes=10)), changed, 300, NOW)
    assert verdict == memory.Verdict.NOT_DROPPED


def test_period_not_yet_over_is_pending():
    changed = NOW - dt.timedelta(minutes=3)
    verdict, _ = memory.duration_dropped(2950, after([900.0], NOW - dt.timedelta(minutes=2)), changed, 300, NOW)
    assert verdict == memory.Verdict.PENDING


def test_max_memory_used_comes_from_report_lines():
    lines = ["START RequestId: 1", "REPORT RequestId: 1\tDuration: 2.1 ms\tMemory Size: 128 MB\tMax Memory Used: 97 MB",
             "REPORT RequestId: 2\tDuration: 2.1 ms\tMemory Size: 128 MB\tMax Memory Used: 124 MB", "END"]
    used, example, seen = perf.max_memory_used(lines)
    assert (used, seen) == (124, 2) and "RequestId: 2" in example


# ---- probes ---------------------------------------------------------------------------------

DB_SG = GroupIngress("sg-0db", "orders-db-sg", [(5432, 5432, ["10.0.0.0/16"])])


def refused(**kw) -> DbProbeResult:
    return DbProbeResult("db.internal", 5432, "orders", "opex", ok=False, failure=ProbeFailure.REFUSED,
                         detail="connection to db.internal:5432 refused", **kw)


def test_refused_connection_and_a_group_without_the_operator_names_the_group():
    cause = database_cause(refused(), [DB_SG], ["192.168.7.0/24"])
    assert cause.category == Cat.DATABASE_CONNECTIVITY and cause.score == 76
    assert "security group sg-0db (orders-db-sg) does not admit the operator's source 192.168.7.0/24" in cause.summary


def test_refused_connection_with_a_group_that_admits_the_operator_does_not_blame_the_group():
    cause = database_cause(refused(), [DB_SG], ["10.0.3.4/32"])
    assert cause.score == 73 and "security group" not in cause.summary


@pytest.mark.parametrize("failure,advice", [(ProbeFailure.AUTH, "check the user name and password"),
                                            (ProbeFailure.DATABASE_MISSING, "database orders does not exist")])
def test_auth_and_missing_database_say_what_to_fix(failure, advice):
    r = DbProbeResult("db.internal", 5432, "orders", "opex", ok=False, failure=failure, detail="28P01: ...")
    assert advice in database_cause(r, [], []).summary


def test_probe_findings_carry_status_latency_and_body():
    d = Diagnosis()
    add_http_finding(d, HttpProbeResult("POST", "http://127.0.0.1:8080/prod/orders", 200, status=502,
                                        latency_seconds=0.0421, body_head='{"message": "Internal server error"}'))
    ok = DbProbeResult("db.internal", 5432, "orders", "opex", ok=True, latency_seconds=0.004, max_connections=20)
    add_database_finding(d, ok)
    http, db = d.findings
    assert http.observed == "POST http://127.0.0.1:8080/prod/orders answered 502 in 0.042 s (expected 200)"
    assert http.severity == FindingSeverity.ERROR and "Internal server error" in http.evidence
    assert db.observed == "SELECT 1 on db.internal:5432/orders as opex answered in 0.004 s; max_connections 20"
    assert database_cause(ok, [DB_SG], ["1.2.3.4/32"]) is None


def test_first_whole_period_after_a_change_is_aligned_to_the_period():
    changed = dt.datetime(2026, 11, 30, 10, 3, 20, tzinfo=dt.timezone.utc)
    assert memory.first_period(changed, 300) == dt.datetime(2026, 11, 30, 10, 5, tzinfo=dt.timezone.utc)
    assert memory.first_period(changed.replace(minute=5, second=0), 300) == changed.replace(minute=5, second=0)
    assert memory.periods_ended(changed, 300, changed + dt.timedelta(minutes=6)) is None
    end, seconds = memory.periods_ended(changed, 300, changed + dt.timedelta(minutes=12))
    assert (end, seconds) == (dt.datetime(2026, 11, 30, 10, 15, tzinfo=dt.timezone.utc), 600)
    _, longest = memory.periods_ended(changed, 10, changed + dt.timedelta(days=1))
    assert longest == 3 * 3600  # never longer than CloudWatch keeps 10-second datapoints


def check(before, after_values, minutes_since_change=12):
    changed = NOW - dt.timedelta(minutes=minutes_since_change)
    first = memory.first_period(changed, 300)
    return memory.DurationCheck(FN, before, changed, 300, NOW,
                                   after(after_values, first) if after_values is not None else None)


@pytest.mark.parametrize("memory_check,held,says", [
    (check(2950, [1100.0]), True, "63% lower"),
    (check(2950, [2900.0]), False, "2% lower"),
    (check(2950, None), None, "waiting for the first whole 300-second period"),
    (check(None, None), True, "no Duration p99 before the change"),
])
def test_memory_raise_holds_when_the_duration_dropped(memory_check, held, says):
    params = LambdaConfigurationParams(function_name=FN, memory_size_mb=256)
    settled = FunctionSeen(FunctionState(FN, "$LATEST", "sha", "Active", "Successful"))
    step = Step(id="raise", action=memory.UPDATE_FUNCTION_CONFIGURATION, mutating=True)
    function, duration = action_of(step.action).holds(step, params, memory.ConfigurationSeen(settled, memory_check))
    assert function.ok is True
    assert duration.ok is held and says in duration.seen and duration.seen.startswith(f"{FN}: ")


def test_other_steps_hold_when_aws_shows_what_they_set():
    insights = Step(id="x", action="rds:ModifyDBInstance", mutating=True)
    [on] = action_of(insights.action).holds(insights, PerformanceInsightsParams(db_instance_identifier="orders-db"),
                                            RdsConfig("orders-db", performance_insights=True,
                                                      performance_insights_retention_days=7))
    assert on.ok is True
    stage = Step(id="x", action="apigateway:UpdateStage", mutating=True)
    [cached] = action_of(stage.action).holds(stage, StageSettingsParams(rest_api_id="a1b2c3", stage_name="prod",
                                                                        caching_enabled=True),
                                             StageConfig("a1b2c3", "orders-api", "prod"))
    assert cached.ok is None and "does not show caching as asked yet" in cached.seen
    env = Step(id="x", action="lambda:UpdateFunctionConfiguration", mutating=True)
    settled = FunctionSeen(FunctionState(FN, "$LATEST", "sha", "Active", "Successful"))
    [function] = action_of(env.action).holds(env, LambdaConfigurationParams(function_name=FN, keys="A"),
                                             memory.ConfigurationSeen(settled))
    assert function.ok is True  # an environment update is verified as the function, without a metric


def test_failing_at_a_limit_outranks_being_close_to_it():
    from opex_operator.ports.facts import LambdaFacts, LogLine, Observations
    from opex_operator.playbooks.performance.assess import analyse, root_cause

    f = facts(SLOW, [lam(memory=128, timeout=3, used=124)])
    d = Diagnosis()
    timed_out = LambdaFacts(FN, state="Active", error_lines=[LogLine(NOW, "Task timed out after 3.00 seconds",
                                                                    f"/aws/lambda/{FN}", "s")])
    a = analyse(f, Thresholds(), d, None, None)
    assert root_cause(Observations(lambdas=[timed_out]), d, NOW, a).category == Cat.LAMBDA_TIMEOUT
    assert root_cause(Observations(), d, NOW, a).category == Cat.LAMBDA_MEMORY_BOUND
    assert [c.id for c in a.plan.changes] == [f"raise-lambda-memory-{FN}"]  # planned whichever is the root cause


def test_unknown_after_judging_metrics_says_what_the_metrics_showed():
    from opex_operator.ports.facts import Observations
    from opex_operator.playbooks.performance.assess import analyse, root_cause

    d = Diagnosis()
    a = analyse(facts({}, [lam()]), Thresholds(), d, None, None)
    assert root_cause(Observations(), d, NOW, a).summary.startswith("no datapoints for any metric")


def test_findings_over_the_status_limit_keep_the_cited_then_the_most_severe():
    d = Diagnosis()
    for i in range(50):
        d.add(f"k{i}", "CloudWatch", "r", FindingSeverity.ERROR if i % 10 == 0 else FindingSeverity.INFO, f"f{i}")
    kept = bounded(d.findings, ["F50", "F2"], 8)
    assert [f.id for f in kept] == ["F1", "F2", "F3", "F11", "F21", "F31", "F41", "F50"]
    assert bounded(d.findings[:5], [], 8) == d.findings[:5]
