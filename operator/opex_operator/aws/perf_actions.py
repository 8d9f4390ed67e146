"""The performance runbook's changes: Lambda memory, RDS Performance Insights, API stage settings.

Each method takes what its step asks (``ports.performance`` and ``steps``: the memory size of a
``LambdaConfigurationParams``, a ``PerformanceInsightsParams``, a ``StageSettingsParams``), reads
the current state first and calls AWS only when it differs, so running a step again (after a restart, or when a
person already made the change) changes nothing. Each returns a :class:`Change` saying what was
found and done. Errors propagate as :class:`~opex_operator.errors.AwsError`.
"""
from __future__ import annotations

from typing import Any

from ..ports.performance import Change, PerformanceInsightsParams, StageSettingsParams
from .clients import AwsClients

ALL_METHODS = "/*/*"


class PerformanceActions:
    """Changes for one incident: ``region`` and ``role_key`` as its spec.targets name them."""

    def __init__(self, clients: AwsClients, region: str | None, role_key: str | None):
        self.clients, self.region, self.role_key = clients, region, role_key

    def _c(self, service: str) -> Any:
        return self.clients.client(service, self.region, self.role_key)

    def set_lambda_memory(self, function_name: str, memory_mb: int) -> Change:
        """lambda:UpdateFunctionConfiguration ``MemorySize`` (MB) unless the function already has it.

        While a previous update is InProgress, nothing is called and ``settling`` is set (Lambda
        refuses a second update with ResourceConflictException until the first ends).
        """
        lam = self._c("lambda")
        config = lam.get_function_configuration(FunctionName=function_name)
        current = int(config.get("MemorySize", 128))
        after = f"{memory_mb} MB"
        if current == memory_mb:
            return Change(False, f"{current} MB", after, settling=config.get("LastUpdateStatus") == "InProgress")
        if config.get("LastUpdateStatus") == "InProgress":
            return Change(False, f"{current} MB", after, settling=True)
        lam.update_function_configuration(FunctionName=function_name, MemorySize=memory_mb)
        return Change(True, f"{current} MB", after)

    def enable_performance_insights(self, p: PerformanceInsightsParams) -> Change:
        """rds:ModifyDBInstance ``EnablePerformanceInsights`` with the retention, applied immediately,
        unless Performance Insights is already on with at least that retention."""
        rds = self._c("rds")
        db = rds.describe_db_instances(DBInstanceIdentifier=p.db_instance_identifier)["DBInstances"][0]
        on, kept = bool(db.get("PerformanceInsightsEnabled")), db.get("PerformanceInsightsRetentionPeriod") or 0
        before = f"Performance Insights {'on (' + str(kept) + ' days)' if on else 'off'}"
        after = f"Performance Insights on ({max(kept, p.retention_days) if on else p.retention_days} days)"
        if on and kept >= p.retention_days:
            return Change(False, before, after)
        rds.modify_db_instance(DBInstanceIdentifier=p.db_instance_identifier, EnablePerformanceInsights=True,
                               PerformanceInsightsRetentionPeriod=p.retention_days, ApplyImmediately=True)
        return Change(True, before, after)

    def update_stage(self, p: StageSettingsParams) -> Change:
        """apigateway:UpdateStage with the patch operations that reach ``p`` from the current stage:
        ``/cacheClusterEnabled``, ``/cacheClusterSize``, ``/*/*/caching/enabled`` and
        ``/*/*/metrics/enabled`` (detailed CloudWatch metrics for every method). No call when the
        stage already has them."""
        apigw = self._c("apigateway")
        stage = apigw.get_stage(restApiId=p.rest_api_id, stageName=p.stage_name)
        every = (stage.get("methodSettings") or {}).get(ALL_METHODS[1:]) or {}
        ops: list[dict[str, str]] = []
        if p.caching_enabled is not None:
            if bool(stage.get("cacheClusterEnabled")) != p.caching_enabled:
                ops.append({"op": "replace", "path": "/cacheClusterEnabled", "value": _bool(p.caching_enabled)})
            if bool(every.get("cachingEnabled")) != p.caching_enabled:
                ops.append({"op": "replace", "path": f"{ALL_METHODS}/caching/enabled", "value": _bool(p.caching_enabled)})
        if p.cache_size_gb is not None and stage.get("cacheClusterSize") != p.cache_size_gb:
            ops.append({"op": "replace", "path": "/cacheClusterSize", "value": p.cache_size_gb})
        if p.metrics_enabled is not None and bool(every.get("metricsEnabled")) != p.metrics_enabled:
            ops.append({"op": "replace", "path": f"{ALL_METHODS}/metrics/enabled", "value": _bool(p.metrics_enabled)})
        wanted = ", ".join(f"{name} {'on' if on else 'off'}" for name, on in (
            ("caching", p.caching_enabled), ("detailed metrics", p.metrics_enabled)) if on is not None)
        if not ops:
            return Change(False, wanted, wanted)
        apigw.update_stage(restApiId=p.rest_api_id, stageName=p.stage_name, patchOperations=ops)
        return Change(True, "; ".join(f"{o['path']} was not {o['value']}" for o in ops), wanted)


def _bool(value: bool) -> str:
    return "true" if value else "false"
