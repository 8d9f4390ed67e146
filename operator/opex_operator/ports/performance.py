"""What the performance assessment observed, as plain data (filled by ``aws.cloudwatch``,
``aws.perf_reader`` and ``probes``; judged by ``playbooks.performance.metrics`` and ``playbooks.probes``).

Shapes follow CloudWatch GetMetricData (one series per query: timestamps and values), Lambda
GetFunctionConfiguration and its REPORT log lines, API Gateway GetStage, RDS
DescribeDBInstances, and the two probes of the runbook's deployment section (``curl`` and
``psql -c "SELECT 1"``). Units: seconds for latencies, MB for Lambda memory.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import Field

from ..api.performance import CacheSize
from .params import Params

from .facts import ReadProblem

# A "REPORT RequestId: ... Max Memory Used: 120 MB" line of a Lambda log stream.
MAX_MEMORY_USED = re.compile(r"Max Memory Used: (\d+) MB")


@dataclass(frozen=True)
class SeriesSpec:
    """One series to read: a CloudWatch metric, one statistic, in one region.

    ``stat`` is a statistic (Average, Maximum, Minimum, Sum) or an extended one (p99);
    ``region`` None means the incident's region; ``unit`` is the unit CloudWatch reports it in
    (GetMetricData returns none), ``resource`` names what it measures (``function/checkout-api``).
    """

    key: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str
    unit: str
    resource: str
    region: str | None = None


@dataclass
class Series:
    """The datapoints of one :class:`SeriesSpec` over the window, oldest first."""

    spec: SeriesSpec
    timestamps: list[dt.datetime] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    status: str = "Complete"           # GetMetricData StatusCode: Complete | PartialData | InternalError | Forbidden

    @property
    def empty(self) -> bool:
        return not self.values


@dataclass
class LambdaConfig:
    """A function's configuration and what its REPORT log lines say about memory."""

    name: str
    memory_mb: int
    timeout_seconds: int
    reserved_concurrency: int | None = None      # None: the function shares the account's pool
    max_memory_used_mb: int | None = None        # the highest "Max Memory Used" of the window
    report_lines: int = 0                        # REPORT lines read
    report_example: str | None = None            # the REPORT line with the highest memory used


@dataclass
class StageConfig:
    """An API Gateway REST API stage: cache and method settings for all methods (``*/*``)."""

    rest_api_id: str
    api_name: str
    stage: str
    cache_cluster_enabled: bool = False
    cache_cluster_size: str | None = None
    caching_enabled: bool = False               # methodSettings["*/*"].cachingEnabled
    metrics_enabled: bool = False               # methodSettings["*/*"].metricsEnabled


@dataclass
class RdsConfig:
    """An RDS instance's settings that the performance runbook looks at."""

    instance_id: str
    instance_class: str | None = None
    engine: str | None = None
    performance_insights: bool = False
    performance_insights_retention_days: int | None = None
    endpoint: str | None = None
    port: int | None = None


class Credentials:
    """A database user name and password; the password never appears in repr or str."""

    def __init__(self, username: str, password: str):
        self.username, self.password = username, password

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"

    __str__ = __repr__


class ProbeFailure(StrEnum):
    """Why a probe failed, in the order a connection gets there (the HTTP probe uses the first five)."""

    DNS = "DNS"                          # the host name does not resolve
    REFUSED = "ConnectionRefused"        # nothing listens (or a firewall rejects) on host:port
    TIMEOUT = "Timeout"                  # no answer within the probe's timeout (dropped packets, a hung server)
    NETWORK = "Network"                  # unreachable network, reset connection
    TLS = "TLS"                          # the server refuses TLS, or the handshake/certificate fails
    AUTH = "Authentication"              # wrong user name or password, or no pg_hba entry
    DATABASE_MISSING = "DatabaseMissing"
    QUERY = "Query"                      # connected, but SELECT 1 failed
    OTHER = "Other"
    ADDRESS_REFUSED = "AddressRefused"   # the host is (or resolves to) an address the operator policy refuses


@dataclass
class DbProbeResult:
    """One ``SELECT 1`` against ``host:port/database`` as ``user``. Never holds the password."""

    host: str
    port: int
    database: str
    user: str | None
    ok: bool
    latency_seconds: float | None = None        # connect + SELECT 1, when ok
    failure: ProbeFailure | None = None
    detail: str = ""                            # the driver's or the server's message (no password)
    sqlstate: str | None = None                 # the server's error code, e.g. 28P01
    max_connections: int | None = None          # SHOW max_connections, when connected

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}/{self.database}"


@dataclass
class HttpProbeResult:
    """One request of the HTTP probe. ``url`` has any query string removed (it may carry a token)."""

    method: str
    url: str
    expected_status: int
    status: int | None = None
    latency_seconds: float | None = None        # until the response headers and the first body bytes
    body_head: str = ""                         # the first bytes of the body, decoded leniently
    failure: ProbeFailure | None = None
    detail: str = ""                            # why it failed, when the failure alone does not say

    @property
    def ok(self) -> bool:
        return self.failure is None and self.status == self.expected_status


@dataclass
class PerformanceFacts:
    """Everything the performance assessment saw; absent sources stay empty."""

    window_seconds: int
    period_seconds: int
    series: list[Series] = field(default_factory=list)
    lambdas: list[LambdaConfig] = field(default_factory=list)
    stage: StageConfig | None = None
    rds: RdsConfig | None = None
    cloud_front: str | None = None               # distribution id, when targeted
    http: HttpProbeResult | None = None
    database: DbProbeResult | None = None
    operator_sources: list[str] = field(default_factory=list)  # CIDRs / group ids the operator connects from
    security_groups: list["GroupIngress"] = field(default_factory=list)
    problems: list[ReadProblem] = field(default_factory=list)

    def get(self, key: str) -> Series | None:
        return next((s for s in self.series if s.spec.key == key), None)


@dataclass
class GroupIngress:
    """One security group of the database and whom it lets in on which ports."""

    id: str
    name: str | None = None
    rules: list[tuple[int | None, int | None, list[str]]] = field(default_factory=list)  # (from, to, sources)

    def admits(self, port: int, sources: list[str]) -> bool:
        """True when a rule opens ``port`` to one of ``sources`` (CIDRs or group ids; ``-1`` protocol = all)."""
        for lo, hi, allowed in self.rules:
            if (lo is None or lo <= port <= (hi if hi is not None else lo)) and any(
                    _covers(a, s) for a in allowed for s in sources):
                return True
        return False


def _covers(allowed: str, source: str) -> bool:
    if allowed == source:
        return True
    if "/" not in allowed or not source[:1].isdigit():
        return False
    try:
        inner, outer = ipaddress.ip_network(source, strict=False), ipaddress.ip_network(allowed, strict=False)
        if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
            return inner.subnet_of(outer)
        if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
            return inner.subnet_of(outer)
        return False
    except (ValueError, TypeError):
        return False


# ---- the performance runbook's changes (aws.perf_actions) -----------------------------------------

@dataclass
class Change:
    """``changed`` False: the resource already was as asked (no call was made)."""

    changed: bool
    before: str
    after: str
    settling: bool = False     # the change was accepted but is still being applied (ask again)

    @property
    def summary(self) -> str:
        return f"{self.before} -> {self.after}" if self.changed else f"already {self.after}"


# The runbook's retention for Performance Insights (7 days is also the free tier).
PERFORMANCE_INSIGHTS_RETENTION_DAYS = 7


class PerformanceInsightsParams(Params):
    """The instance and the retention in days."""

    db_instance_identifier: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z][A-Za-z0-9-]*$")
    retention_days: int = Field(default=PERFORMANCE_INSIGHTS_RETENTION_DAYS, ge=7, le=731)


class StageSettingsParams(Params):
    """Stage settings to reach; None leaves a setting as it is. ``was_caching_enabled`` and
    ``was_metrics_enabled``: what the step replaced, read just before its first call (the step's
    undo puts them back); caching is recorded only when the cache cluster and the methods' caching
    were both on or both off, the states ``caching_enabled`` can set again."""

    rest_api_id: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9]+$")
    stage_name: str = Field(min_length=1, max_length=128)
    caching_enabled: bool | None = None
    cache_size_gb: CacheSize | None = None
    metrics_enabled: bool | None = None
    was_caching_enabled: bool | None = None
    was_metrics_enabled: bool | None = None


def max_memory_used(lines: list[str]) -> tuple[int | None, str | None, int]:
    """(highest ``Max Memory Used`` in MB, the line that had it, REPORT lines seen) of Lambda log lines."""
    best, example, seen = None, None, 0
    for line in lines:
        m = MAX_MEMORY_USED.search(line)
        if m is None:
            continue
        seen += 1
        used = int(m.group(1))
        if best is None or used > best:
            best, example = used, line.strip()[:500]
    return best, example, seen
