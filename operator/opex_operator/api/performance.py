"""Spec fields of the runbook's "Performance Degradation" section and of its deployment section's
API and database checks: the metrics window and thresholds, the CloudFront target, the HTTP and
database probes, and the performance remediation wishes.

Plugged into ``api.incident``: ``Targets.cloudFront``, ``Targets.metrics``, ``Targets.probes``
and ``Remediation.performance``. Every bound is enforced by the API server (schema and CEL);
:func:`check_window` is the same window rule for callers outside a custom resource.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, JsonValue, WithJsonSchema, model_validator

from .common import AWS_REGION, DNS_SUBDOMAIN, LocalObjectReference, Model, SecretKeyReference, obj_default

# CloudWatch keeps a datapoint at a period only for so long (CloudWatch docs, "Metrics retention"):
# periods under 60 s for 3 hours, 60 s for 15 days, 300 s for 63 days, 3600 s for 455 days.
# (minimum period, retention seconds), longest period first.
RETENTION: tuple[tuple[int, int], ...] = ((3600, 455 * 86400), (300, 63 * 86400), (60, 15 * 86400), (1, 3 * 3600))
# GetMetricData periods: 1, 5, 10, 30 (high resolution) or a multiple of 60 (GetMetricData API reference).
HIGH_RESOLUTION_PERIODS = (1, 5, 10, 30)
# Lambda memory sizes: 128 MB to 10,240 MB (Lambda quotas, "Function memory allocation").
LAMBDA_MIN_MB, LAMBDA_MAX_MB = 128, 10240
DEFAULT_MEMORY_CAP_MB = 3008
# API Gateway stage cache sizes in GB (API Gateway API reference, CacheClusterSize).
CacheSize = Literal["0.5", "1.6", "6.1", "13.5", "28.4", "58.2", "118", "237"]
CACHE_SIZES = get_args(CacheSize)


def retention_seconds(period_seconds: int) -> int:
    """How far back CloudWatch keeps datapoints at ``period_seconds`` (see :data:`RETENTION`)."""
    return next(keep for least, keep in RETENTION if period_seconds >= least)


def check_window(window_seconds: int, period_seconds: int) -> None:
    """Raise ValueError, naming the field and the fix, for a window CloudWatch cannot answer.

    Rules: a period of 1, 5, 10, 30 or a multiple of 60 seconds; the window at least one period
    and no longer than CloudWatch keeps data at that period (:data:`RETENTION`). Within those,
    a series has at most 21,600 datapoints, well under GetMetricData's 100,800 per call.
    """
    if period_seconds not in HIGH_RESOLUTION_PERIODS and period_seconds % 60:
        raise ValueError(f"metrics.periodSeconds {period_seconds} is not a CloudWatch period: use 1, 5, 10, 30 "
                         f"or a multiple of 60")
    if window_seconds < period_seconds:
        raise ValueError(f"metrics.windowSeconds {window_seconds} is shorter than one period ({period_seconds} s)")
    keep = retention_seconds(period_seconds)
    if window_seconds > keep:
        raise ValueError(f"metrics.windowSeconds {window_seconds} is longer than CloudWatch keeps "
                         f"{period_seconds}-second datapoints ({keep} s): raise periodSeconds or shorten the window")


def _retention_rule() -> str:
    # The same table as retention_seconds, as one CEL conditional.
    rule = f"self.windowSeconds <= {RETENTION[-1][1]}"
    for least, keep in reversed(RETENTION[:-1]):
        rule = f"self.periodSeconds >= {least} ? self.windowSeconds <= {keep} : ({rule})"
    return rule


class Thresholds(Model):
    """When a metric counts as degraded. Each finding states its threshold and how far over it is."""

    lambda_duration_ms: int = Field(default=3000, ge=1, le=900000,
                                    description="Lambda Duration p99 above this (milliseconds) is degraded.")
    lambda_near_timeout_percent: int = Field(default=80, ge=1, le=100, description="Lambda Duration Maximum at or "
                                             "above this share of the configured timeout is 'near its timeout'.")
    lambda_memory_percent: int = Field(default=90, ge=1, le=100, description="Max memory used (REPORT log lines) "
                                       "at or above this share of the configured size is 'memory-bound'.")
    lambda_errors: int = Field(default=0, ge=0, le=1000000, description="Lambda Errors (Sum per period) above this.")
    lambda_throttles: int = Field(default=0, ge=0, le=1000000,
                                  description="Lambda Throttles (Sum per period) above this.")
    api_latency_ms: int = Field(default=1000, ge=1, le=29000,
                                description="API Gateway Latency p99 above this (milliseconds).")
    api_integration_share_percent: int = Field(default=80, ge=1, le=100, description="IntegrationLatency at or above "
                                               "this share of Latency means the backend, not the gateway, is slow.")
    api_5xx_percent: int = Field(default=1, ge=0, le=100, description="5XXError rate (Average x 100) above this.")
    api_4xx_percent: int = Field(default=10, ge=0, le=100, description="4XXError rate (Average x 100) above this.")
    cloud_front_cache_hit_percent: int = Field(default=80, ge=0, le=100,
                                               description="CloudFront CacheHitRate (Average) below this is low.")
    rds_cpu_percent: int = Field(default=80, ge=1, le=100, description="RDS CPUUtilization (Maximum) above this.")
    rds_connections_percent: int = Field(default=80, ge=1, le=100, description="RDS DatabaseConnections (Maximum) "
                                         "at or above this share of max_connections.")
    rds_freeable_memory_mib: int = Field(default=256, ge=0, le=1048576,
                                         description="RDS FreeableMemory (Minimum) below this (MiB).")


class MetricsQuery(Model):
    """The CloudWatch window the assessment reads (the runbook: ``--period 300`` over the last hour)."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "self.periodSeconds in " + str(list(HIGH_RESOLUTION_PERIODS)) + " || self.periodSeconds % 60 == 0",
         "message": "periodSeconds must be 1, 5, 10, 30 or a multiple of 60 (CloudWatch periods)"},
        {"rule": "self.windowSeconds >= self.periodSeconds", "message": "windowSeconds must be at least one period"},
        {"rule": _retention_rule(),
         "message": "windowSeconds is longer than CloudWatch keeps datapoints at this period (under 60 s: 3 hours; "
                    "60 s: 15 days; 300 s: 63 days; 3600 s: 455 days): raise periodSeconds or shorten the window"},
    ]}}

    window_seconds: int = Field(default=3600, ge=1, le=455 * 86400,
                                description="How far back to read, in seconds (default the last hour).")
    period_seconds: int = Field(default=300, ge=1, le=86400, description="Seconds per datapoint (default 300).")
    thresholds: Thresholds = Field(default_factory=Thresholds, json_schema_extra=obj_default())

    @model_validator(mode="after")
    def _window(self) -> "MetricsQuery":
        check_window(self.window_seconds, self.period_seconds)
        return self


class CloudFrontTarget(Model):
    """A CloudFront distribution whose CacheHitRate is read (in us-east-1, where CloudFront publishes)."""

    distribution_id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Z0-9]+$",
                                 description="Distribution id, e.g. E2CHECKOUTCDN. CacheHitRate exists only when "
                                             "the distribution's additional metrics are enabled.")


class HttpMethod(StrEnum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    HEAD = "HEAD"
    OPTIONS = "OPTIONS"


# Any JSON object, kept as written ("additionalProperties: true" would prune nested objects).
JsonObject = Annotated[dict[str, Any], WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True})]


class HttpProbe(Model):
    """The runbook's ``curl -X POST <api-url> -H "Content-Type: application/json" -d '{...}'``."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "!(has(self.body) && has(self.bodySecretRef))", "message": "set body or bodySecretRef, not both"},
    ]}}

    method: HttpMethod = Field(default=HttpMethod.POST, description="HTTP method (the runbook uses POST).")
    url: str = Field(max_length=2048, pattern=r"^https?://[^\s/$.?#][^\s]*$",
                     description="The endpoint, e.g. the stage's invoke URL plus a path.")
    headers: dict[str, str] = Field(default_factory=dict, description="Headers sent as they are (no credentials: "
                                    "use headersSecretRef).", json_schema_extra={"maxProperties": 20})
    headers_secret_ref: LocalObjectReference | None = Field(
        default=None, description="A Secret whose every key is sent as a header (e.g. Authorization); values are "
                                  "never shown.")
    body: JsonObject | None = Field(default=None, description="JSON body, e.g. {test: data}.")
    body_secret_ref: SecretKeyReference | None = Field(
        default=None, description="A Secret key holding the JSON body, when the body carries credentials.")
    expected_status: int = Field(default=200, ge=100, le=599, description="The status that counts as healthy.")
    timeout_seconds: int = Field(default=10, ge=1, le=60, description="Seconds for the whole request.")


class TlsMode(StrEnum):
    DISABLE = "Disable"
    REQUIRE = "Require"          # encrypted, certificate not verified (libpq sslmode=require)
    VERIFY_FULL = "VerifyFull"   # encrypted, CA and host name verified (sslmode=verify-full)


class DatabaseSecretRef(Model):
    """A Kubernetes Secret in the incident's namespace holding the user name and password."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="Name of the Secret.")
    username_key: str = Field(default="username", max_length=253, pattern=r"^[-._a-zA-Z0-9]+$",
                              description="Key holding the user name.")
    password_key: str = Field(default="password", max_length=253, pattern=r"^[-._a-zA-Z0-9]+$",
                              description="Key holding the password (never shown).")


class SecretsManagerRef(Model):
    """An AWS Secrets Manager secret whose JSON has ``username`` and ``password`` (as RDS stores it)."""

    secret_id: str = Field(min_length=1, max_length=2048, description="Secret name or ARN.")
    region: str | None = Field(default=None, max_length=32, pattern=AWS_REGION,
                               description="Its region; the incident's region when omitted.")


class DatabaseProbe(Model):
    """The runbook's ``psql -h <rds-endpoint> -U <username> -d <database> -c "SELECT 1;"``."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "has(self.secretRef) != has(self.secretsManager)",
         "message": "set exactly one of secretRef or secretsManager for the credentials"},
    ]}}

    host: str | None = Field(default=None, max_length=253, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$",
                             description="Host name or IP; the RDS target's endpoint when omitted.")
    port: int | None = Field(default=None, ge=1, le=65535,
                             description="TCP port; the RDS endpoint's port (else 5432) when omitted.")
    database: str = Field(default="postgres", min_length=1, max_length=63, pattern=r"^[A-Za-z_][A-Za-z0-9_$-]*$",
                          description="Database to connect to (psql -d).")
    secret_ref: DatabaseSecretRef | None = None
    secrets_manager: SecretsManagerRef | None = None
    tls: TlsMode = Field(default=TlsMode.REQUIRE, description="Disable, Require (default) or VerifyFull.")
    timeout_seconds: int = Field(default=5, ge=1, le=60, description="Seconds for connecting and SELECT 1.")


class Probes(Model):
    """Checks against the live endpoints, run with the assessment."""

    http: HttpProbe | None = None
    database: DatabaseProbe | None = None


# Rules on Targets (they span its fields).
TARGET_RULES: list[JsonValue] = [
    {"rule": "!has(self.probes) || !has(self.probes.database) || has(self.probes.database.host) || has(self.rds)",
     "message": "probes.database needs a host, or an rds target whose endpoint it connects to"},
]


class LambdaMemory(Model):
    """The raise-lambda-memory step: the runbook's ``update-function-configuration --memory-size``."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "!has(self.sizeMb) || self.sizeMb <= self.maxMb", "message": "sizeMb must not exceed maxMb"},
    ]}}

    size_mb: int | None = Field(default=None, ge=LAMBDA_MIN_MB, le=LAMBDA_MAX_MB,
                                description="Memory to set (MB); the next step up from the current size when omitted.")
    max_mb: int = Field(default=DEFAULT_MEMORY_CAP_MB, ge=LAMBDA_MIN_MB, le=LAMBDA_MAX_MB,
                        description="Never raise above this (MB); the operator policy's cap applies too.")


class ApiStageSettings(Model):
    """What the update-api-stage step turns on (the runbook's API Gateway high latency section)."""

    caching_enabled: bool = Field(default=False, description="Enable the stage cache (cacheClusterEnabled) and "
                                                             "caching for all methods.")
    cache_size_gb: CacheSize = Field(default="0.5", description="Cache cluster size in GB.")
    metrics_enabled: bool = Field(default=False, description="Detailed CloudWatch metrics for all methods "
                                                             "(/*/*/metrics/enabled).")


class PerformanceRemediation(Model):
    """The performance runbook's changes this incident may plan (each still gated by mode/approval)."""

    lambda_memory: LambdaMemory = Field(default_factory=LambdaMemory, json_schema_extra=obj_default())
    api_stage: ApiStageSettings | None = None
