"""boto3 clients per (role, region): adaptive retries, assumed roles, and a metric per API call.

The endpoint comes from boto3's own configuration (``AWS_ENDPOINT_URL`` reaches moto's server
locally); credentials from the standard chain, or from ``sts:AssumeRole`` on a role the
operator's policy names (never an ARN taken from a custom resource).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials, create_assume_role_refresher

from .. import metrics
from .errors import outcome_label

# botocore's adaptive mode: exponential backoff with jitter plus client-side rate limiting on
# throttling (botocore docs, "Retries"); 6 attempts covers ~30 s of 5xx/throttling.
RETRIES = {"mode": "adaptive", "max_attempts": 6}


@dataclass(frozen=True)
class AssumeRole:
    """A role from the operator's policy: ``role_arn`` and optional ``external_id``."""

    role_arn: str
    external_id: str | None = None
    session_name: str = "opex-operator"


class AwsClients:
    """Thread-safe cache of boto3 clients keyed by (service, region, role key)."""

    def __init__(self, default_region: str, roles: dict[str, AssumeRole] | None = None):
        self.default_region = default_region
        self.roles = roles or {}
        self._lock = threading.Lock()
        self._sessions: dict[str, boto3.Session] = {}
        self._clients: dict[tuple[str, str, str], BaseClient] = {}

    def client(self, service: str, region: str | None = None, role_key: str | None = None) -> Any:
        """A client for ``service`` in ``region`` (default region when None) as ``role_key``.

        Raises KeyError naming the role when ``role_key`` is not in the policy's roles.
        """
        region = region or self.default_region
        key = (service, region, role_key or "")
        with self._lock:
            if key not in self._clients:
                session = self._session(role_key or "")
                client = session.client(service, region_name=region, config=Config(
                    retries=RETRIES, connect_timeout=5, read_timeout=30, user_agent_appid="opex-operator"))
                _count_calls(client)
                self._clients[key] = client
            return self._clients[key]

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
                sts = boto3.Session().client("sts", config=Config(retries=RETRIES))
                creds = DeferredRefreshableCredentials(refresh_using=create_assume_role_refresher(sts, params),
                                                       method="sts-assume-role")
                core = botocore.session.get_session()
                core._credentials = creds  # the documented recipe for refreshable assumed-role sessions
                self._sessions[role_key] = boto3.Session(botocore_session=core)
        return self._sessions[role_key]


def _count_calls(client: BaseClient) -> None:
    service = client.meta.service_model.service_name

    def after_call(http_response=None, parsed=None, model=None, **_: Any) -> None:
        status = getattr(http_response, "status_code", 0) or 0
        error_code = ((parsed or {}).get("Error") or {}).get("Code", "") or ""
        metrics.AWS_API_CALLS.labels(service, model.name if model else "unknown",
                                     outcome_label(status, error_code)).inc()

    def after_error(model=None, exception=None, **_: Any) -> None:
        metrics.AWS_API_CALLS.labels(service, model.name if model else "unknown", "network_error").inc()

    client.meta.events.register("after-call", after_call)
    client.meta.events.register("after-call-error", after_error)
