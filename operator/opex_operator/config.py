"""Operator settings, read once from the environment at start-up.

The Helm chart sets these from its values; the local stack and the tests set them directly.

=========================  ==========================================================  ========
variable                   meaning                                                     default
=========================  ==========================================================  ========
OPEX_NAMESPACES            comma-separated namespaces (globs) to watch; all when empty  (all)
OPEX_METRICS_PORT          port of the Prometheus ``/metrics`` endpoint                  8080
OPEX_HEALTH_PORT           port of the liveness endpoint ``/healthz``                    8081
OPEX_BIND_ADDRESS          address both endpoints listen on                             0.0.0.0
OPEX_POLICY_FILE           YAML policy (roles, regions, actions per namespace)          (none)
OPEX_WORKERS               reconcile passes run at once (the work queue's workers)      4
OPEX_MAX_WORKERS           threads for blocking AWS / Kubernetes calls                   32
OPEX_RESYNC_SECONDS        longest an object waiting for a change waits before it is    3600
                           looked at again anyway (0: never)
OPEX_SHUTDOWN_GRACE        seconds the operator takes to stop on SIGTERM: passes in      25
                           flight finish, then Terraform gets SIGINT and 15 s to release
                           its lock (at least 18; the pod's terminationGracePeriodSeconds
                           must be longer: the chart sets it 15 s longer)
OPEX_SHARED_READ_SECONDS   identical assessment reads of different Incidents this close  10
                           are made once (an alert storm; 0: never shared)
OPEX_RESTART_SPREAD        seconds over which a (re)start looks again at objects it      30
                           reconciled before (no burst after a restart)
OPEX_AWS_RATES             AWS call budget overrides, ``service[:Operation]=per second``  (see aws/budget.py)
OPEX_AWS_BACKGROUND_SHARE  share of each AWS budget that background re-checks may use   0.2
OPEX_LEADER_ELECTION       ``true``: only the holder of a coordination Lease reconciles false
                           (run two replicas for high availability)
OPEX_LEASE_NAME            the Lease's name                                            opex-operator
OPEX_LEASE_NAMESPACE       the Lease's namespace                                       $POD_NAMESPACE or default
OPEX_LEASE_SECONDS         a leader that stops renewing is replaced after this           15
AWS_REGION                 default AWS region                                          us-east-1
OPEX_TERRAFORM             the terraform (or tofu) binary                               terraform
OPEX_WORK_DIR              DriftCheck run directories (saved plans live here)          $TMPDIR/opex/work
OPEX_CACHE_DIR             git mirrors and the provider plugin cache                    $TMPDIR/opex/cache
OPEX_PLAN_JOB_TEMPLATE     the chart's Job template (YAML) for DriftCheck runs as Jobs  (none: no Jobs)
OPEX_DRIFTCHECK_RUNNER     the runner of a DriftCheck without spec.runner: Job or        InProcess
                           InProcess (Job needs OPEX_PLAN_JOB_TEMPLATE)
OPEX_SOURCE_CIDRS          comma-separated CIDRs and security group ids the operator    (none)
                           connects from (its pods' subnets or group): a database probe
                           refused while no group of the database admits one of them
                           names that group as the cause
OPEX_SHARD                 this replica's shard: it reconciles only objects labelled     (all)
                           ``opex.dev/shard=<it>`` (see sharding.py); all when empty
OPEX_DEFAULT_SHARD         the shard unlabelled objects belong to                       default
OPEX_ALERT_INTAKE_PORT     port of the Alertmanager webhook intake; off when unset       (off)
OPEX_ALERT_INTAKE_PATH     its path (Alertmanager's webhook_config url)                 /alerts
OPEX_ALERT_INTAKE_TOKEN_FILE  file holding the bearer token senders must present       (none)
                           (mount it from a Secret; re-read on every request)
OPEX_ALERT_INTAKE_USERNAME / OPEX_ALERT_INTAKE_PASSWORD_FILE  basic auth instead     (none)
OPEX_ALERT_INTAKE_MAX_BODY_BYTES  larger bodies are refused with 413                    1048576
OPEX_ALERT_MAPPING_FILE    YAML rules from alert labels to Incidents (alerts/mapping)  (defaults)
OPEX_ALERT_NAMESPACE       namespace of Incidents from alerts without a namespace       $POD_NAMESPACE
                           label                                                        or default
OPEX_RECEIVERS_PORT        port of the PagerDuty and Slack receivers; off when unset    (off)
OPEX_PAGERDUTY_WEBHOOK_SECRET_FILE  file holding the v3 webhook subscription's secret   (none)
                           (POST /pagerduty; off without it; re-read on every request)
OPEX_SLACK_SIGNING_SECRET_FILE  file holding the Slack app's signing secret             (none)
                           (POST /slack/interactions; off without it; re-read each time)
OPEX_RECEIVERS_MAX_BODY_BYTES  larger bodies are refused with 413                        65536
OPEX_PAGERDUTY_EVENTS_URL  the PagerDuty Events API v2 endpoint                         https://events.pagerduty.com/v2/enqueue
OPEX_SLACK_API_URL         Slack's Web API base URL                                     https://slack.com/api
OPEX_EVENT_QUEUES          SQS queues of the EventBridge intake, comma-separated URLs   (off)
                           or ARNs, each optionally ``<role key>=<queue>`` to read it
                           as a role of the policy (the region is the queue's own)
OPEX_EVENT_MAPPING_FILE    YAML rules from AWS events to Incidents (events/mapping)    (defaults)
OPEX_EVENT_NAMESPACE       namespace of Incidents from events no rule places           $POD_NAMESPACE
                                                                                        or default
OPEX_EVENT_VISIBILITY_SECONDS  seconds a received message stays hidden while its       60
                           Incidents are written (longer than a batch's writes)
OPEX_PROMETHEUS_URL        the Prometheus whose HTTP API evaluates bake conditions     (none)
                           (``spec.remediation.verify.promql``), e.g.
                           http://prometheus-operated.monitoring:9090
OPEX_PROMETHEUS_TOKEN_FILE file holding a bearer token for it (re-read on each query)   (none)
=========================  ==========================================================  ========
"""
from __future__ import annotations

import ipaddress
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .aws.budget import DEFAULT_RATES, parse_rates
from .ports.events import QueueRef

from .sharding import check_shard_name
from .terraform.runner import GRACE_SECONDS

_TMP = Path(tempfile.gettempdir()) / "opex"


def _number(name: str, default: float, kind: type = int) -> Any:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return value


def _int(name: str, default: int) -> int:
    return _number(name, default, int)


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"{name} must be true or false, got {raw!r}")
    return raw in ("true", "1", "yes")


SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8}([0-9a-f]{9})?$")


def _sources(name: str) -> tuple[str, ...]:
    """CIDRs (normalised: ``10.0.0.7`` -> ``10.0.0.7/32``) and security group ids, comma-separated."""
    out: list[str] = []
    for item in (i.strip() for i in os.environ.get(name, "").split(",")):
        if not item:
            continue
        if SECURITY_GROUP_ID.match(item):
            out.append(item)
            continue
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"{name}: {item!r} is neither a CIDR (10.0.0.0/16) nor a security group id "
                             f"(sg-0123456789abcdef0)") from None
    return tuple(out)


# Terraform's SIGINT grace and the status write after it: what a stop leaves the last Terraform.
MIN_SHUTDOWN_GRACE = int(GRACE_SECONDS) + 3


def _shutdown_grace() -> int:
    grace = _int("OPEX_SHUTDOWN_GRACE", 25)
    if grace < MIN_SHUTDOWN_GRACE:
        raise ValueError(f"OPEX_SHUTDOWN_GRACE must be at least {MIN_SHUTDOWN_GRACE}: a Terraform still running at "
                         f"shutdown gets SIGINT and 15 s to release its state lock, got {grace}")
    return grace


@dataclass(frozen=True)
class AlertIntakeSettings:
    """The Alertmanager webhook intake (``alerts.server``); it never runs without credentials."""

    port: int
    path: str = "/alerts"
    token_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    max_body_bytes: int = 1024 * 1024
    mapping_file: Path | None = None
    default_namespace: str = "default"

    @classmethod
    def from_env(cls) -> "AlertIntakeSettings | None":
        """None when ``OPEX_ALERT_INTAKE_PORT`` is unset. Raises ValueError naming the variable."""
        port = _int("OPEX_ALERT_INTAKE_PORT", 0)
        if not port:
            return None
        path = os.environ.get("OPEX_ALERT_INTAKE_PATH") or "/alerts"
        if not path.startswith("/"):
            raise ValueError(f"OPEX_ALERT_INTAKE_PATH must start with /, got {path!r}")
        token, password = (os.environ.get(v) or None for v in ("OPEX_ALERT_INTAKE_TOKEN_FILE",
                                                                 "OPEX_ALERT_INTAKE_PASSWORD_FILE"))
        username = os.environ.get("OPEX_ALERT_INTAKE_USERNAME") or None
        if not token and not (username and password):
            raise ValueError("OPEX_ALERT_INTAKE_PORT is set but no credentials are: set OPEX_ALERT_INTAKE_TOKEN_FILE "
                             "(a file holding a bearer token, e.g. mounted from a Secret), or "
                             "OPEX_ALERT_INTAKE_USERNAME and OPEX_ALERT_INTAKE_PASSWORD_FILE")
        for variable, value in (("OPEX_ALERT_INTAKE_TOKEN_FILE", token), ("OPEX_ALERT_INTAKE_PASSWORD_FILE", password)):
            if value and not Path(value).is_file():
                raise ValueError(f"{variable}: no such file {value}")
        mapping = os.environ.get("OPEX_ALERT_MAPPING_FILE") or None
        return cls(port=port, path=path, token_file=Path(token) if token else None, username=username,
                   password_file=Path(password) if password else None,
                   max_body_bytes=_int("OPEX_ALERT_INTAKE_MAX_BODY_BYTES", 1024 * 1024),
                   mapping_file=Path(mapping) if mapping else None,
                   default_namespace=os.environ.get("OPEX_ALERT_NAMESPACE") or os.environ.get("POD_NAMESPACE")
                   or "default")


def _http_url(variable: str) -> str | None:
    """An http(s) URL from the environment (None when unset). Raises ValueError naming the variable."""
    value = os.environ.get(variable) or None
    if value is not None and not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"{variable} must be an http:// or https:// URL, got {value!r}")
    return value


@dataclass(frozen=True)
class ReceiverSettings:
    """The on-call receivers (``receivers.server``): PagerDuty webhooks and Slack interactivity, each on
    only with its secret."""

    port: int
    pagerduty_secret_file: Path | None = None
    slack_secret_file: Path | None = None
    max_body_bytes: int = 64 * 1024

    @classmethod
    def from_env(cls) -> "ReceiverSettings | None":
        """None when ``OPEX_RECEIVERS_PORT`` is unset. Raises ValueError naming the variable."""
        port = _int("OPEX_RECEIVERS_PORT", 0)
        if not port:
            return None
        files = {v: os.environ.get(v) or None for v in ("OPEX_PAGERDUTY_WEBHOOK_SECRET_FILE",
                                                         "OPEX_SLACK_SIGNING_SECRET_FILE")}
        if not any(files.values()):
            raise ValueError("OPEX_RECEIVERS_PORT is set but no receiver is: set OPEX_PAGERDUTY_WEBHOOK_SECRET_FILE "
                             "(the v3 webhook subscription's secret) or OPEX_SLACK_SIGNING_SECRET_FILE (the Slack "
                             "app's signing secret), each a file mounted from a Secret")
        for variable, value in files.items():
            if value and not Path(value).is_file():
                raise ValueError(f"{variable}: no such file {value}")
        pd, slack = (Path(v) if v else None for v in files.values())
        return cls(port=port, pagerduty_secret_file=pd, slack_secret_file=slack,
                   max_body_bytes=_int("OPEX_RECEIVERS_MAX_BODY_BYTES", 64 * 1024))


@dataclass(frozen=True)
class EventIntakeSettings:
    """The EventBridge intake (``events/``): the SQS queues it long-polls (leader only)."""

    queues: tuple[QueueRef, ...]
    mapping_file: Path | None = None
    default_namespace: str = "default"
    visibility_seconds: int = 60

    @classmethod
    def from_env(cls) -> "EventIntakeSettings | None":
        """None when ``OPEX_EVENT_QUEUES`` is unset. Raises ValueError naming the variable."""
        queues = []
        for entry in (e.strip() for e in os.environ.get("OPEX_EVENT_QUEUES", "").split(",")):
            if not entry:
                continue
            role, _, queue = entry.partition("=") if re.match(r"^[a-z0-9-]+=", entry) else ("", "", entry)
            try:
                queues.append(QueueRef.parse(queue, role or None))
            except ValueError as err:
                raise ValueError(f"OPEX_EVENT_QUEUES: {err}") from None
        if not queues:
            return None
        mapping = os.environ.get("OPEX_EVENT_MAPPING_FILE") or None
        visibility = _int("OPEX_EVENT_VISIBILITY_SECONDS", 60)
        if not 1 <= visibility <= 43200:  # SQS's bounds
            raise ValueError(f"OPEX_EVENT_VISIBILITY_SECONDS must be 1 to 43200 seconds, got {visibility}")
        return cls(queues=tuple(queues), mapping_file=Path(mapping) if mapping else None,
                   default_namespace=os.environ.get("OPEX_EVENT_NAMESPACE") or os.environ.get("POD_NAMESPACE")
                   or "default", visibility_seconds=visibility)


@dataclass(frozen=True)
class Settings:
    """Process-wide settings. Raises ValueError from :meth:`from_env` on a malformed variable."""

    namespaces: tuple[str, ...] = ()
    metrics_port: int = 8080
    health_port: int = 8081
    bind_address: str = "0.0.0.0"
    policy_file: Path | None = None
    workers: int = 4
    max_workers: int = 32
    resync_seconds: int = 3600
    shutdown_grace: int = 25
    restart_spread: float = 30.0
    aws_rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATES))
    aws_background_share: float = 0.2
    leader_election: bool = False
    lease_name: str = "opex-operator"
    lease_namespace: str = "default"
    lease_seconds: int = 15
    aws_region: str = "us-east-1"
    terraform: str = "terraform"
    work_dir: Path = field(default_factory=lambda: _TMP / "work")
    cache_dir: Path = field(default_factory=lambda: _TMP / "cache")
    plan_job_template: Path | None = None
    default_runner: str = "InProcess"
    source_cidrs: tuple[str, ...] = ()
    shared_read_seconds: float = 10.0
    shard: str = ""
    default_shard: str = "default"
    alert_intake: AlertIntakeSettings | None = None
    receivers: ReceiverSettings | None = None
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    slack_api_url: str = "https://slack.com/api"
    event_intake: EventIntakeSettings | None = None
    prometheus_url: str | None = None
    prometheus_token_file: Path | None = None

    @property
    def namespace_globs(self) -> bool:
        """True when a watched namespace is a glob (``e2e-*``): only then must namespaces be listed."""
        return any(c in n for n in self.namespaces for c in "*?[")

    @classmethod
    def from_env(cls) -> "Settings":
        namespaces = tuple(n.strip() for n in os.environ.get("OPEX_NAMESPACES", "").split(",") if n.strip())
        policy = os.environ.get("OPEX_POLICY_FILE") or None
        return cls(
            namespaces=namespaces,
            metrics_port=_int("OPEX_METRICS_PORT", 8080),
            health_port=_int("OPEX_HEALTH_PORT", 8081),
            bind_address=os.environ.get("OPEX_BIND_ADDRESS", "0.0.0.0"),
            policy_file=Path(policy) if policy else None,
            workers=max(1, _int("OPEX_WORKERS", 4)),
            max_workers=max(1, _int("OPEX_MAX_WORKERS", 32)),
            resync_seconds=_int("OPEX_RESYNC_SECONDS", 3600),
            shutdown_grace=_shutdown_grace(),
            restart_spread=_number("OPEX_RESTART_SPREAD", 30.0, float),
            aws_rates=parse_rates(os.environ.get("OPEX_AWS_RATES", "")),
            aws_background_share=min(1.0, _number("OPEX_AWS_BACKGROUND_SHARE", 0.2, float)),
            leader_election=_flag("OPEX_LEADER_ELECTION", False),
            lease_name=os.environ.get("OPEX_LEASE_NAME") or "opex-operator",
            lease_namespace=os.environ.get("OPEX_LEASE_NAMESPACE") or os.environ.get("POD_NAMESPACE") or "default",
            lease_seconds=max(5, _int("OPEX_LEASE_SECONDS", 15)),
            aws_region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            terraform=os.environ.get("OPEX_TERRAFORM") or "terraform",
            work_dir=Path(os.environ.get("OPEX_WORK_DIR") or _TMP / "work"),
            cache_dir=Path(os.environ.get("OPEX_CACHE_DIR") or _TMP / "cache"),
            plan_job_template=Path(os.environ["OPEX_PLAN_JOB_TEMPLATE"]) if os.environ.get("OPEX_PLAN_JOB_TEMPLATE")
            else None,
            default_runner=_runner(),
            source_cidrs=_sources("OPEX_SOURCE_CIDRS"),
            shared_read_seconds=_number("OPEX_SHARED_READ_SECONDS", 10.0, float),
            shard=check_shard_name("OPEX_SHARD", os.environ.get("OPEX_SHARD", ""), empty_ok=True),
            default_shard=check_shard_name("OPEX_DEFAULT_SHARD", os.environ.get("OPEX_DEFAULT_SHARD") or "default"),
            alert_intake=AlertIntakeSettings.from_env(),
            receivers=ReceiverSettings.from_env(),
            pagerduty_events_url=os.environ.get("OPEX_PAGERDUTY_EVENTS_URL") or "https://events.pagerduty.com/v2/enqueue",
            slack_api_url=os.environ.get("OPEX_SLACK_API_URL") or "https://slack.com/api",
            event_intake=EventIntakeSettings.from_env(),
            prometheus_url=_http_url("OPEX_PROMETHEUS_URL"),
            prometheus_token_file=Path(os.environ["OPEX_PROMETHEUS_TOKEN_FILE"])
            if os.environ.get("OPEX_PROMETHEUS_TOKEN_FILE") else None,
        )


def _runner() -> str:
    value = os.environ.get("OPEX_DRIFTCHECK_RUNNER") or "InProcess"
    if value not in ("Job", "InProcess"):
        raise ValueError(f"OPEX_DRIFTCHECK_RUNNER must be Job or InProcess, not {value!r}")
    if value == "Job" and not os.environ.get("OPEX_PLAN_JOB_TEMPLATE"):
        raise ValueError("OPEX_DRIFTCHECK_RUNNER=Job needs OPEX_PLAN_JOB_TEMPLATE (the chart's Job template)")
    return value
