"""The runbook's "Performance Degradation" assessment as pure functions: which metrics to read,
how each compares with its threshold, and what the evidence says the cause is (the changes it
calls for: ``perf_plan``). No I/O: facts in (``perf_facts``), findings and causes out.

Source: the runbook, "Performance Degradation" ("Monitor these key metrics": Lambda duration
and errors, API Gateway latency and error rates, CloudFront cache hit ratio, RDS CPU and
connections; "High Lambda Duration", "API Gateway High Latency", "Database Performance Issues").
Metric names, dimensions and units: the CloudWatch metric references of Lambda, API Gateway,
CloudFront and RDS.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Callable

from ...api.incident import FindingSeverity, RootCause, RootCauseCategory as Cat
from ...api.performance import Thresholds
from ..diagnose import Diagnosis
from ...ports.performance import max_memory_used  # noqa: F401 - read by the adapter, judged here
from ...ports.performance import LambdaConfig, PerformanceFacts, Series, SeriesSpec

CLOUDFRONT_REGION = "us-east-1"  # CloudFront publishes its metrics there only (dimension Region=Global)
MS, PERCENT, COUNT, BYTES, RATE = "Milliseconds", "Percent", "Count", "Bytes", "Rate"
MIB = 1024 * 1024


# ---- what to read ---------------------------------------------------------------------------

def key(resource: str, metric: str, stat: str) -> str:
    """The key of a series: ``function/checkout-api:Duration:p99``."""
    return f"{resource}:{metric}:{stat}"


def _specs(resource: str, namespace: str, dims: tuple[tuple[str, str], ...], metrics: list[tuple[str, str, str]],
           region: str | None = None) -> list[SeriesSpec]:
    return [SeriesSpec(key(resource, m, s), namespace, m, dims, s, unit, resource, region) for m, s, unit in metrics]


def series_specs(functions: list[str], api: tuple[str, str] | None = None, distribution: str | None = None,
                 rds_instance: str | None = None) -> list[SeriesSpec]:
    """The series the runbook monitors for these targets (``api`` is (ApiName, Stage): REST API
    metrics are dimensioned by the API's name, not its id)."""
    out: list[SeriesSpec] = []
    for fn in functions:
        out += _specs(f"function/{fn}", "AWS/Lambda", (("FunctionName", fn),), [
            ("Duration", "Average", MS), ("Duration", "Maximum", MS), ("Duration", "p99", MS),
            ("Errors", "Sum", COUNT), ("Throttles", "Sum", COUNT), ("ConcurrentExecutions", "Maximum", COUNT)])
    if api is not None:
        name, stage = api
        out += _specs(f"api/{name}/{stage}", "AWS/ApiGateway", (("ApiName", name), ("Stage", stage)), [
            ("Latency", "Average", MS), ("Latency", "p99", MS), ("IntegrationLatency", "Average", MS),
            ("5XXError", "Average", RATE), ("4XXError", "Average", RATE)])
    if distribution is not None:
        out += _specs(f"distribution/{distribution}", "AWS/CloudFront",
                      (("DistributionId", distribution), ("Region", "Global")),
                      [("CacheHitRate", "Average", PERCENT)], region=CLOUDFRONT_REGION)
    if rds_instance is not None:
        out += _specs(f"db/{rds_instance}", "AWS/RDS", (("DBInstanceIdentifier", rds_instance),), [
            ("CPUUtilization", "Maximum", PERCENT), ("DatabaseConnections", "Maximum", COUNT),
            ("FreeableMemory", "Minimum", BYTES)])
    return out


# ---- thresholds -----------------------------------------------------------------------------

class State(StrEnum):
    BREACH = "Breach"
    OK = "OK"
    NO_DATA = "NoData"


@dataclass(frozen=True)
class Rule:
    """``metric``/``stat`` of a namespace is degraded when its worst period crosses the threshold.

    ``scale`` turns the CloudWatch value into the unit shown (``shown``), e.g. a 5XXError
    Average (a fraction) into percent; ``below`` marks a metric that is bad when low.
    """

    namespace: str
    metric: str
    stat: str
    threshold: Callable[[Thresholds], float]
    shown: str
    scale: float = 1.0
    below: bool = False


RULES = (
    Rule("AWS/Lambda", "Duration", "p99", lambda t: t.lambda_duration_ms, "ms"),
    Rule("AWS/Lambda", "Errors", "Sum", lambda t: t.lambda_errors, "errors per period"),
    Rule("AWS/Lambda", "Throttles", "Sum", lambda t: t.lambda_throttles, "throttles per period"),
    Rule("AWS/ApiGateway", "Latency", "p99", lambda t: t.api_latency_ms, "ms"),
    Rule("AWS/ApiGateway", "5XXError", "Average", lambda t: t.api_5xx_percent, "%", scale=100),
    Rule("AWS/ApiGateway", "4XXError", "Average", lambda t: t.api_4xx_percent, "%", scale=100),
    Rule("AWS/CloudFront", "CacheHitRate", "Average", lambda t: t.cloud_front_cache_hit_percent, "%", below=True),
    Rule("AWS/RDS", "CPUUtilization", "Maximum", lambda t: t.rds_cpu_percent, "%"),
    Rule("AWS/RDS", "FreeableMemory", "Minimum", lambda t: t.rds_freeable_memory_mib, "MiB", scale=1 / MIB,
         below=True),
)


@dataclass
class MetricFinding:
    """One series judged against its threshold. ``value``/``threshold`` are in ``unit`` (shown units).

    ``over`` is how far past the threshold the worst period is (positive when breached; for a
    ``below`` metric, how far under); ``at`` is the start of that period.
    """

    spec: SeriesSpec
    state: State
    unit: str
    value: float | None = None
    threshold: float | None = None
    over: float | None = None
    at: dt.datetime | None = None
    below: bool = False

    @property
    def over_percent(self) -> float | None:
        if self.over is None or not self.threshold:
            return None
        return 100.0 * self.over / self.threshold

    def describe(self, window: str) -> str:
        """``Duration p99 peaked at 2,850 ms (period from 10:05 UTC) over the last 1 h; threshold
        1,000 ms: 1,850 ms (185%) over``."""
        s = self.spec
        if self.state == State.NO_DATA:
            return f"{s.metric} {s.stat}: no data in the last {window}"
        worst = "lowest" if self.below else "peaked at"
        when = f" (period from {self.at:%H:%M} UTC)" if self.at else ""
        text = f"{s.metric} {s.stat} {worst} {fmt(self.value, self.unit)}{when} over the last {window}"
        if self.threshold is None:
            return text
        text += f"; threshold {fmt(self.threshold, self.unit)}"
        if self.state == State.BREACH:
            pct = self.over_percent
            text += (f": {fmt(self.over, self.unit)}" + (f" ({pct:.0f}%)" if pct is not None else "")
                     + (" under" if self.below else " over"))
        else:
            text += ": within"
        return text


def fmt(value: float | None, unit: str) -> str:
    """``2,850 ms``, ``91.5 %``, ``12 errors per period``; whole numbers without decimals."""
    if value is None:
        return "-"
    number = f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.1f}"
    return f"{number} {unit}" if unit else number


def _worst(series: Series, below: bool) -> tuple[float, dt.datetime | None]:
    pick = min if below else max
    i = pick(range(len(series.values)), key=lambda j: series.values[j])
    return series.values[i], series.timestamps[i] if i < len(series.timestamps) else None


def judge(facts: PerformanceFacts, thresholds: Thresholds,
          max_connections: int | None = None) -> list[MetricFinding]:
    """Every series with a rule, judged; every empty series as NoData (never "healthy").

    DatabaseConnections is judged against ``rds_connections_percent`` of ``max_connections``
    when it is known (the database probe's ``SHOW max_connections``).
    """
    out: list[MetricFinding] = []
    for series in facts.series:
        s = series.spec
        rule = next((r for r in RULES if (r.namespace, r.metric, r.stat) == (s.namespace, s.metric, s.stat)), None)
        if rule is None and s.metric == "DatabaseConnections" and max_connections:
            rule = Rule(s.namespace, s.metric, s.stat,
                        lambda t: round(t.rds_connections_percent * max_connections / 100), "connections")
        if series.empty:
            out.append(MetricFinding(s, State.NO_DATA, rule.shown if rule else _unit(s.unit)))
            continue
        if rule is None:
            continue
        raw, at = _worst(series, rule.below)
        value, threshold = raw * rule.scale, float(rule.threshold(thresholds))
        over = (threshold - value) if rule.below else (value - threshold)
        out.append(MetricFinding(s, State.BREACH if over > 0 else State.OK, rule.shown, value, threshold,
                                 over if over > 0 else None, at, rule.below))
    return out


def _unit(cloudwatch_unit: str) -> str:
    return {MS: "ms", PERCENT: "%", COUNT: "", BYTES: "bytes", RATE: "%"}.get(cloudwatch_unit, cloudwatch_unit)


def window_text(seconds: int) -> str:
    """3600 → ``1 h``, 5400 → ``90 min``, 172800 → ``2 d``."""
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


# ---- findings -------------------------------------------------------------------------------

CLOUDFRONT_NO_DATA = ("CacheHitRate is published only when the distribution's additional metrics are enabled "
                      "(CloudFront console: Monitoring, or CreateMonitoringSubscription); enable them to see it")


def add_findings(d: Diagnosis, facts: PerformanceFacts, judged: list[MetricFinding]) -> None:
    """Findings into ``d``: one per breach (Error) or healthy rule (Info); one "no data" finding per
    resource (Warning) listing its empty series; one per configuration read. Keys for
    :func:`diagnose`: ``metric:<series key>``, ``nodata:<resource>``, ``lambda-config:<fn>``,
    ``stage-config``, ``rds-config``."""
    window = window_text(facts.window_seconds)
    no_data: dict[str, list[MetricFinding]] = {}
    for f in judged:
        if f.state == State.NO_DATA:
            no_data.setdefault(f.spec.resource, []).append(f)
            continue
        d.add(f"metric:{f.spec.key}", "CloudWatch", f.spec.resource,
              FindingSeverity.ERROR if f.state == State.BREACH else FindingSeverity.INFO, f.describe(window),
              evidence=_points(facts.get(f.spec.key)), time=f.at)
    for resource, empty in no_data.items():
        names = ", ".join(f"{f.spec.metric} {f.spec.stat}" for f in empty)
        extra = f". {CLOUDFRONT_NO_DATA}" if resource.startswith("distribution/") else ""
        d.add(f"nodata:{resource}", "CloudWatch", resource, FindingSeverity.WARNING,
              f"no data in the last {window} for {names}: not healthy, unknown{extra}")
    for fn in facts.lambdas:
        memory = (f"; max memory used {fn.max_memory_used_mb} MB in {fn.report_lines} REPORT lines"
                  if fn.max_memory_used_mb is not None else "; no REPORT lines in the window")
        reserved = (f"; reserved concurrency {fn.reserved_concurrency}" if fn.reserved_concurrency is not None
                    else "; no reserved concurrency")
        d.add(f"lambda-config:{fn.name}", "Lambda", f"function/{fn.name}", FindingSeverity.INFO,
              f"memory {fn.memory_mb} MB, timeout {fn.timeout_seconds} s{reserved}{memory}",
              evidence=fn.report_example)
    if facts.stage is not None:
        st = facts.stage
        d.add("stage-config", "APIGateway", f"restapi/{st.rest_api_id}/stage/{st.stage}", FindingSeverity.INFO,
              f"stage {st.stage} of {st.api_name}: cache cluster "
              f"{'on (' + str(st.cache_cluster_size) + ' GB)' if st.cache_cluster_enabled else 'off'}, method caching "
              f"{'on' if st.caching_enabled else 'off'}, detailed metrics {'on' if st.metrics_enabled else 'off'}")
    if facts.rds is not None:
        db = facts.rds
        pi = (f"on ({db.performance_insights_retention_days} days)" if db.performance_insights else "off")
        d.add("rds-config", "RDS", f"db/{db.instance_id}",
              FindingSeverity.INFO if db.performance_insights else FindingSeverity.WARNING,
              f"{db.instance_id} ({db.engine}, {db.instance_class}): Performance Insights {pi}")


def _points(series: Series | None, limit: int = 24) -> str | None:
    if series is None or series.empty:
        return None
    pairs = list(zip(series.timestamps, series.values))[-limit:]
    return "\n".join(f"{t:%Y-%m-%d %H:%M} {v:,.3f}" for t, v in pairs)


# ---- diagnosis ------------------------------------------------------------------------------

@dataclass
class Cause:
    """A diagnosed cause: its category, a one-line summary with the numbers, the finding keys that
    carry it, the resource it is about, and its score on ``diagnose.classify``'s scale (higher is
    more specific). Being close to a limit scores below having failed at it: a function that
    timed out (LambdaTimeout, 67) or ran out of memory (LambdaOutOfMemory, 69) outranks one near
    its timeout (62) or memory-bound (63); a database seen unreachable in the logs (70) outranks a
    busy one (60)."""

    category: Cat
    summary: str
    evidence: list[str]
    resource: str
    score: int


def _breach(judged: list[MetricFinding], resource: str, metric: str, stat: str) -> MetricFinding | None:
    return next((f for f in judged if f.spec.key == key(resource, metric, stat) and f.state == State.BREACH), None)


def _worst_value(facts: PerformanceFacts, resource: str, metric: str, stat: str) -> float | None:
    series = facts.get(key(resource, metric, stat))
    return max(series.values) if series is not None and not series.empty else None


def _mean(facts: PerformanceFacts, resource: str, metric: str, stat: str) -> float | None:
    series = facts.get(key(resource, metric, stat))
    return sum(series.values) / len(series.values) if series is not None and not series.empty else None


def diagnose(facts: PerformanceFacts, judged: list[MetricFinding], t: Thresholds) -> list[Cause]:
    """Every cause the evidence supports, best first (see the categories in ``api.incident``)."""
    causes: list[Cause] = []
    for fn in facts.lambdas:
        causes += _lambda_causes(facts, judged, fn, t)
    if facts.stage is not None:
        causes += _api_causes(facts, judged, t)
    if facts.cloud_front is not None:
        res = f"distribution/{facts.cloud_front}"
        low = _breach(judged, res, "CacheHitRate", "Average")
        if low is not None:
            causes.append(Cause(Cat.CLOUD_FRONT_LOW_HIT_RATIO,
                                f"CloudFront {facts.cloud_front} cache hit ratio fell to {fmt(low.value, '%')} "
                                f"(threshold {fmt(low.threshold, '%')}): requests go to the origin",
                                [f"metric:{low.spec.key}"], res, 54))
    if facts.rds is not None:
        causes += _rds_causes(facts, judged, t)
    return sorted(causes, key=lambda c: -c.score)


def _lambda_causes(facts: PerformanceFacts, judged: list[MetricFinding], fn: LambdaConfig,
                   t: Thresholds) -> list[Cause]:
    res, out = f"function/{fn.name}", []
    config = f"lambda-config:{fn.name}"
    slow = [f"metric:{f.spec.key}" for f in judged if f.spec.resource == res and f.spec.metric == "Duration"
            and f.state == State.BREACH]
    max_ms = _worst_value(facts, res, "Duration", "Maximum")
    timeout_ms = fn.timeout_seconds * 1000
    near_timeout = max_ms is not None and max_ms >= t.lambda_near_timeout_percent / 100 * timeout_ms
    timeout_text = (f"Duration Maximum {fmt(max_ms, 'ms')} is {100 * max_ms / timeout_ms:.0f}% of its "
                    f"{fn.timeout_seconds} s timeout" if max_ms is not None else "")
    memory_bound = (fn.max_memory_used_mb is not None
                    and fn.max_memory_used_mb >= t.lambda_memory_percent / 100 * fn.memory_mb)
    if memory_bound and fn.max_memory_used_mb is not None:
        summary = (f"Lambda {fn.name} is memory-bound: max memory used {fn.max_memory_used_mb} MB of "
                   f"{fn.memory_mb} MB ({100 * fn.max_memory_used_mb / fn.memory_mb:.0f}%, threshold "
                   f"{t.lambda_memory_percent}%)" + (f"; {timeout_text}" if near_timeout else ""))
        out.append(Cause(Cat.LAMBDA_MEMORY_BOUND, summary, [config] + slow, res, 63))
    if near_timeout:
        out.append(Cause(Cat.LAMBDA_NEAR_TIMEOUT, f"Lambda {fn.name} runs near its timeout: {timeout_text} "
                         f"(threshold {t.lambda_near_timeout_percent}%)",
                         [config, f"metric:{key(res, 'Duration', 'Maximum')}"] + slow, res, 62))
    throttled = _breach(judged, res, "Throttles", "Sum")
    if throttled is not None:
        cap = (f"its reserved concurrency of {fn.reserved_concurrency} caps it" if fn.reserved_concurrency is not None
               else "the account's unreserved concurrency is exhausted")
        peak = _worst_value(facts, res, "ConcurrentExecutions", "Maximum")
        out.append(Cause(Cat.LAMBDA_THROTTLED,
                         f"Lambda {fn.name} is throttled: up to {fmt(throttled.value, '')} throttles per period; {cap}"
                         + (f" (peak {peak:,.0f} concurrent executions)" if peak is not None else ""),
                         [f"metric:{throttled.spec.key}", config], res, 61))
    return out


def _api_causes(facts: PerformanceFacts, judged: list[MetricFinding], t: Thresholds) -> list[Cause]:
    st = facts.stage
    assert st is not None  # called only for a stage that was read
    res, out = f"api/{st.api_name}/{st.stage}", list[Cause]()
    slow = _breach(judged, res, "Latency", "p99")
    if slow is None:
        return out
    latency, integration = _mean(facts, res, "Latency", "Average"), _mean(facts, res, "IntegrationLatency", "Average")
    evidence = [f"metric:{slow.spec.key}", "stage-config"]
    if latency and integration is not None:
        share = 100 * integration / latency
        split = (f"IntegrationLatency averages {fmt(integration, 'ms')} of {fmt(latency, 'ms')} Latency "
                 f"({share:.0f}%)")
        if share >= t.api_integration_share_percent:
            out.append(Cause(Cat.API_INTEGRATION_LATENCY, f"API {st.api_name} stage {st.stage} is slow in its "
                             f"backend: {split}; Latency p99 {fmt(slow.value, 'ms')}", evidence, res, 58))
        else:
            out.append(Cause(Cat.API_GATEWAY_LATENCY, f"API {st.api_name} stage {st.stage} is slow in the gateway: "
                             f"{split}, the rest is API Gateway's own (authorizers, mapping templates, throttling)",
                             evidence, res, 57))
    if not (st.cache_cluster_enabled and st.caching_enabled):
        out.append(Cause(Cat.API_CACHING_OFF, f"API {st.api_name} stage {st.stage} answers every request from its "
                         f"backend: stage caching is off; Latency p99 {fmt(slow.value, 'ms')}", evidence, res, 56))
    return out


def _rds_causes(facts: PerformanceFacts, judged: list[MetricFinding], t: Thresholds) -> list[Cause]:
    db = facts.rds
    assert db is not None  # called only for a database that was read
    res, out = f"db/{db.instance_id}", list[Cause]()
    cpu = _breach(judged, res, "CPUUtilization", "Maximum")
    if cpu is not None:
        out.append(Cause(Cat.DATABASE_CPU, f"RDS {db.instance_id} CPU peaked at {fmt(cpu.value, '%')} (threshold "
                         f"{fmt(cpu.threshold, '%')})", [f"metric:{cpu.spec.key}", "rds-config"], res, 60))
    conns = _breach(judged, res, "DatabaseConnections", "Maximum")
    if conns is not None:
        out.append(Cause(Cat.DATABASE_CONNECTIONS, f"RDS {db.instance_id} reached {fmt(conns.value, '')} connections, "
                         f"{t.rds_connections_percent}% of max_connections is {fmt(conns.threshold, '')}",
                         [f"metric:{conns.spec.key}", "rds-config"], res, 59))
    if not db.performance_insights:
        out.append(Cause(Cat.PERFORMANCE_INSIGHTS_OFF, f"RDS {db.instance_id} has Performance Insights off: its "
                         f"load by query cannot be seen", ["rds-config"], res, 30))
    return out


def root_cause(causes: list[Cause], d: Diagnosis, judged: list[MetricFinding], now: dt.datetime) -> RootCause:
    """The best cause as a RootCause citing finding ids; Unknown (saying whether data was missing) when none."""
    if causes:
        best = causes[0]
        evidence = list(dict.fromkeys(d.refs[k] for k in best.evidence if k in d.refs))[:10]
        return RootCause(category=best.category, summary=best.summary[:1024], evidence=evidence, identified_at=now)
    empty = sum(1 for f in judged if f.state == State.NO_DATA)
    summary = ("no metric crossed its threshold" if empty < len(judged) else "no datapoints for any metric") + (
        f"; {empty} of {len(judged)} series had no data" if empty else "")
    refs = [v for k, v in d.refs.items() if k.startswith("nodata:")][:10]
    return RootCause(category=Cat.UNKNOWN, summary=summary, evidence=refs, identified_at=now)
