"""boto3 clients per (role, region): adaptive retries, assumed roles, a metric per API call, and
errors translated to :class:`~.errors.AwsError`.

The endpoint comes from boto3's own configuration (``AWS_ENDPOINT_URL`` reaches moto's server
locally); credentials from the standard chain, or from ``sts:AssumeRole`` on a role the
operator's policy names (never an ARN taken from a custom resource). Adapters get a
:class:`Client`: the boto3 client whose every call (pages of a paginator and managed S3
transfers included) raises ``AwsError`` instead of a botocore exception, so no module outside
``aws/`` ever sees a botocore type.
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, Any, Callable, Iterator

import boto3
import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials, create_assume_role_refresher

from .. import metrics
from ..policy import AssumeRole  # noqa: F401 - the policy's type
from .budget import Budget
from .errors import BOTO_ERRORS, outcome_label, translate

if TYPE_CHECKING:
    from botocore.config import _RetryDict

# botocore's adaptive mode: exponential backoff with jitter plus client-side rate limiting on
# throttling (botocore docs, "Retries"); 5 attempts cover ~15 s of 5xx/throttling. Only for reads
# and for operations with an idempotency token (botocore fills it once per call, so every retry
# carries the same token and AWS acts once): a mutating call whose first attempt timed out may
# have been carried out, and a retry would do it again (issue 29: a stalled UpdateFunctionCode
# reached the endpoint four times). Mutating calls get one attempt; the step records the outcome
# and the next pass checks the real state first.
RETRIES: _RetryDict = {"mode": "adaptive", "max_attempts": 5}
NO_RETRIES: _RetryDict = {"mode": "standard", "total_max_attempts": 1}
# One retry is provably safe for a mutating call: AWS refused it unprocessed. A throttling answer
# is that refusal (the codes botocore's standard mode treats as throttling: botocore docs,
# "Retries", and botocore.retries.standard); a timeout or a 5xx is not (the call may have run).
REFUSED_UNPROCESSED = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "RequestLimitExceeded", "BandwidthLimitExceeded", "RequestThrottled",
    "SlowDown", "EC2ThrottledException"})
REFUSED_ATTEMPTS, REFUSED_BASE_DELAY, REFUSED_MAX_DELAY = 5, 0.2, 5.0
# Operations that only read (AWS API naming); every other operation is treated as mutating.
READ_PREFIXES = ("Describe", "Get", "List", "Lookup", "Filter", "Head", "Search", "Select", "BatchGet", "Query",
                 "Scan", "Simulate", "Check", "Test")
# Mutating operations that do the same thing however often they reach AWS, so botocore may retry them:
# a CopyObject with the same source and arguments writes the same object (boto3's managed copy, whose
# CopyObject and UploadPartCopy calls botocore retries, relies on it too).
IDEMPOTENT = frozenset({"CopyObject"})
# Seconds, not botocore's 60 s default: a hung endpoint must not hold a worker (and an
# assessment) for minutes; a timed-out read is retried, then reported as unreadable.
CONNECT_TIMEOUT, READ_TIMEOUT = 3, 10
# A long poll holds the response for up to its WaitTimeSeconds (20 s at most): the read timeout must
# be longer (SQS Developer Guide, "Amazon SQS short and long polling").
READ_TIMEOUTS = {"sqs": 30}
# Connections kept per client (botocore keeps 10): as many as threads may call at once
# (OPEX_MAX_WORKERS, 32 by default). With fewer, every call past the tenth in a burst opens a
# new connection and throws it away after (a TCP and, on AWS, a TLS handshake each: 7.6 % of the
# operator's sampled time in a burst of 600 Incidents went to opening connections to moto).
POOL_CONNECTIONS = 32


class AwsClients:
    """Thread-safe cache of boto3 clients keyed by (service, region, role key)."""

    def __init__(self, default_region: str, roles: dict[str, AssumeRole] | None = None, budget: Budget | None = None,
                 pool_connections: int = POOL_CONNECTIONS):
        self.default_region = default_region
        self.roles = roles or {}
        self.budget = budget or Budget()
        self.pool_connections = pool_connections
        self._lock = threading.Lock()
        self._sessions: dict[str, boto3.Session] = {}
        self._clients: dict[tuple[str, str, str], Client] = {}

    def client(self, service: str, region: str | None = None, role_key: str | None = None) -> Any:
        """A :class:`Client` for ``service`` in ``region`` (default region when None) as ``role_key``.

        Raises KeyError naming the role when ``role_key`` is not in the policy's roles.
        """
        region = region or self.default_region
        key = (service, region, role_key or "")
        with self._lock:
            if key not in self._clients:
                session = self._session(role_key or "")
                # types-boto3 types a client per literal service name; ours is chosen at run time.
                # botocore-stubs lacks Config's user_agent_appid (botocore docs, "Config", since 1.31).
                clients: list[BaseClient] = [session.client(  # type: ignore[call-overload]
                    service, region_name=region, config=Config(  # type: ignore[call-arg]
                        retries=retries, connect_timeout=CONNECT_TIMEOUT,
                        read_timeout=READ_TIMEOUTS.get(service, READ_TIMEOUT),
                        max_pool_connections=self.pool_connections, user_agent_appid="opex-operator"))
                    for retries in (RETRIES, NO_RETRIES)]
                for raw in clients:
                    _count_attempts(raw)
                _retry_refusals(clients[1])
                self._clients[key] = Client(clients[0], service, region, self.budget, once=clients[1])
            return self._clients[key]

    def role_environment(self, role_key: str) -> dict[str, str]:
        """``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN`` of the policy's
        role ``role_key``, assumed (refreshed by botocore when near expiry): what a Terraform run
        gets. Never the operator's own credentials: ``role_key`` must name a role (ValueError
        otherwise; KeyError for a role not in the policy). Blocking; raises AwsError when
        ``sts:AssumeRole`` fails."""
        if not role_key:
            raise ValueError("Terraform never runs with the operator's own credentials: name a role")
        with self._lock:
            session = self._session(role_key)
        credentials = session.get_credentials()
        if credentials is None:  # a role's session always has them (the assume-role refresher)
            raise ValueError(f"role {role_key!r} has no credentials")
        try:
            frozen = credentials.get_frozen_credentials()
        except BOTO_ERRORS as err:
            raise translate(err, "sts", "AssumeRole") from err
        values = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key,
                  "AWS_SESSION_TOKEN": frozen.token}
        return {name: value for name, value in values.items() if value}

    def _session(self, role_key: str) -> boto3.Session:
        if role_key not in self._sessions:
            if not role_key:
                self._sessions[role_key] = boto3.Session()
            else:
                if role_key not in self.roles:
                    raise KeyError(f"role {role_key!r} is not defined in the operator policy's roles")
                role = self.roles[role_key]
                params: dict[str, Any] = {"RoleArn": role.role_arn, "RoleSessionName": role.session_name}
                if role.external_id:
                    params["ExternalId"] = role.external_id
                # The region given, not the SDK's lookup: it reads AWS_DEFAULT_REGION, which a pod
                # configured with AWS_REGION only (the chart) lacks.
                sts = boto3.Session().client("sts", region_name=self.default_region, config=Config(retries=RETRIES))
                creds = DeferredRefreshableCredentials(refresh_using=create_assume_role_refresher(sts, params),
                                                       method="sts-assume-role")
                core = botocore.session.get_session()
                # The documented recipe for refreshable assumed-role sessions sets this private
                # attribute, which botocore-stubs does not declare.
                core._credentials = creds  # type: ignore[attr-defined]
                self._sessions[role_key] = boto3.Session(botocore_session=core)
        return self._sessions[role_key]


def retried(operation: Any) -> bool:
    """Whether botocore may retry ``operation`` (a botocore OperationModel): it only reads, carries an
    idempotency token, or is IDEMPOTENT (see RETRIES)."""
    return (operation.name.startswith(READ_PREFIXES) or operation.name in IDEMPOTENT
            or bool(operation.idempotent_members))


def _count_attempts(client: BaseClient) -> None:
    """``opex_aws_api_calls_total`` counts every request that reached the wire (each retry too), by
    outcome: botocore emits ``needs-retry`` once per attempt, with its response or its error."""
    service = client.meta.service_model.service_name

    def attempt(response: Any = None, operation: Any = None, caught_exception: Exception | None = None,
                **_: Any) -> None:
        name = operation.name if operation is not None else "unknown"
        if response is None:
            outcome = "network_error" if caught_exception is not None else "unknown"
        else:
            http_response, parsed = response
            error_code = ((parsed or {}).get("Error") or {}).get("Code", "") or ""
            outcome = outcome_label(getattr(http_response, "status_code", 0) or 0, error_code)
        metrics.AWS_API_CALLS.labels(service, name, outcome).inc()

    client.meta.events.register_first("needs-retry", attempt)


def _retry_refusals(client: BaseClient) -> None:
    """The client without retries still retries a call AWS refused unprocessed (REFUSED_UNPROCESSED),
    up to REFUSED_ATTEMPTS attempts with jittered exponential backoff: botocore's ``needs-retry``
    event takes the first delay a handler returns."""

    def refused(response: Any = None, attempts: int = 1, **_: Any) -> float | None:
        if response is None or attempts >= REFUSED_ATTEMPTS:
            return None
        code = ((response[1] or {}).get("Error") or {}).get("Code", "")
        if code not in REFUSED_UNPROCESSED:
            return None
        return min(REFUSED_MAX_DELAY, REFUSED_BASE_DELAY * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0)

    # botocore-stubs types handlers as returning None; a needs-retry handler returns the delay
    # (botocore.retryhandler: the first non-None answer is the seconds to sleep).
    client.meta.events.register("needs-retry", refused)  # type: ignore[arg-type]


class Client:
    """A boto3 client whose calls wait for the AWS call budget and raise :class:`~.errors.AwsError`
    (attributes pass through). Managed S3 transfers (``copy``) are budgeted once per call."""

    def __init__(self, raw: BaseClient, service: str, region: str, budget: Budget, once: BaseClient | None = None):
        self._raw, self._service, self._region, self._budget = raw, service, region, budget
        self._once = once or raw   # the client without retries, for mutating calls (see RETRIES)

    def __getattr__(self, name: str) -> Any:
        operation = self._raw.meta.method_to_api_mapping.get(name)
        raw = self._raw
        if operation is not None and not retried(self._raw.meta.service_model.operation_model(operation)):
            raw = self._once
        attr = getattr(raw, name)
        if name == "get_paginator":
            return lambda operation: _Paginator(attr(operation), self, self._operation(operation))
        if callable(attr):
            return _translating(attr, self, self._operation(name))
        return attr

    def _operation(self, method: str) -> str:
        return self._raw.meta.method_to_api_mapping.get(method, method)

    def _acquire(self, operation: str) -> None:
        self._budget.acquire(self._service, operation, self._region)


def _translating(call: Callable[..., Any], client: Client, operation: str) -> Callable[..., Any]:
    @wraps(call)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        client._acquire(operation)
        try:
            return call(*args, **kwargs)
        except BOTO_ERRORS as err:
            raise translate(err, client._service, operation) from err
    return wrapper


class _Paginator:
    def __init__(self, raw: Any, client: Client, operation: str):
        self._raw, self._client, self._operation = raw, client, operation

    def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        pages = iter(self._raw.paginate(**kwargs))
        while True:
            self._client._acquire(self._operation)  # each page is one call
            try:
                page = next(pages)
            except StopIteration:
                return
            except BOTO_ERRORS as err:
                raise translate(err, self._client._service, self._operation) from err
            yield page
