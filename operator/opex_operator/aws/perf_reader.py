"""The configuration reads of the runbook's "Performance Degradation" section, as facts.

Lambda GetFunctionConfiguration, GetFunctionConcurrency and its REPORT log lines; API Gateway
GetRestApi and GetStage (the runbook's ``aws apigateway get-stage``); RDS DescribeDBInstances
(``aws rds describe-db-instances``) and its security groups; the database probe's credentials
from Secrets Manager. Read-only; errors propagate as :class:`~opex_operator.errors.AwsError`.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ..ports.performance import Credentials, GroupIngress, LambdaConfig, RdsConfig, StageConfig
from ..ports.performance import max_memory_used
from ..errors import AwsError
from .clients import AwsClients

ALL_METHODS = "*/*"
MAX_REPORT_PAGES = 5


class PerformanceReader:
    """Reads for one incident: ``region`` and ``role_key`` as its spec.targets name them."""

    def __init__(self, clients: AwsClients, region: str | None, role_key: str | None):
        self.clients, self.region, self.role_key = clients, region, role_key

    def _c(self, service: str, region: str | None = None) -> Any:
        return self.clients.client(service, region or self.region, self.role_key)

    def lambda_config(self, name: str, since: dt.datetime) -> LambdaConfig:
        """Memory (MB), timeout (s), reserved concurrency, and the highest ``Max Memory Used`` of the
        REPORT lines logged since ``since`` (none when the function has no log group yet)."""
        lam = self._c("lambda")
        config = lam.get_function_configuration(FunctionName=name)
        reserved = lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
        facts = LambdaConfig(name=name, memory_mb=int(config.get("MemorySize", 128)),
                             timeout_seconds=int(config.get("Timeout", 3)), reserved_concurrency=reserved)
        lines: list[str] = []
        try:
            paginator = self._c("logs").get_paginator("filter_log_events")
            for i, page in enumerate(paginator.paginate(logGroupName=f"/aws/lambda/{name}",
                                                        startTime=int(since.timestamp() * 1000),
                                                        filterPattern='"REPORT RequestId"')):
                lines += [e["message"] for e in page.get("events", []) if e["message"].startswith("REPORT")]
                if i + 1 >= MAX_REPORT_PAGES:
                    break
        except AwsError as err:
            if not err.not_found:  # no log group: never invoked, so no REPORT lines
                raise
        facts.max_memory_used_mb, facts.report_example, facts.report_lines = max_memory_used(lines)
        return facts

    def stage_config(self, rest_api_id: str, stage: str) -> StageConfig:
        """The stage's cache cluster and the ``*/*`` method settings (caching, detailed metrics)."""
        apigw = self._c("apigateway")
        api_name = apigw.get_rest_api(restApiId=rest_api_id)["name"]
        raw = apigw.get_stage(restApiId=rest_api_id, stageName=stage)
        every = (raw.get("methodSettings") or {}).get(ALL_METHODS) or {}
        return StageConfig(rest_api_id=rest_api_id, api_name=api_name, stage=stage,
                           cache_cluster_enabled=bool(raw.get("cacheClusterEnabled")),
                           cache_cluster_size=raw.get("cacheClusterSize"),
                           caching_enabled=bool(every.get("cachingEnabled")),
                           metrics_enabled=bool(every.get("metricsEnabled")))

    def rds_config(self, instance_id: str) -> tuple[RdsConfig, list[GroupIngress]]:
        """The instance's class, engine, Performance Insights and endpoint, and its security groups'
        ingress rules (port range and sources: CIDRs and group ids)."""
        db = self._c("rds").describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"][0]
        endpoint = db.get("Endpoint") or {}
        config = RdsConfig(instance_id=instance_id, instance_class=db.get("DBInstanceClass"), engine=db.get("Engine"),
                           performance_insights=bool(db.get("PerformanceInsightsEnabled")),
                           performance_insights_retention_days=db.get("PerformanceInsightsRetentionPeriod"),
                           endpoint=endpoint.get("Address"), port=endpoint.get("Port"))
        ids = [g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups", [])]
        groups = []
        if ids:
            for sg in self._c("ec2").describe_security_groups(GroupIds=ids)["SecurityGroups"]:
                rules = [(None, None, _sources(p)) if p.get("IpProtocol") == "-1" else
                         (p.get("FromPort"), p.get("ToPort"), _sources(p)) for p in sg.get("IpPermissions", [])]
                groups.append(GroupIngress(sg["GroupId"], sg.get("GroupName"), rules))
        return config, groups

    def database_credentials(self, secret_id: str, region: str | None = None) -> Credentials:
        """``username`` and ``password`` of a Secrets Manager secret's JSON (how RDS stores them).

        Raises LookupError naming the secret and the missing key (never the value), AwsError when
        the secret cannot be read.
        """
        raw = self._c("secretsmanager", region).get_secret_value(SecretId=secret_id).get("SecretString") or ""
        try:
            data = json.loads(raw)
        except ValueError:
            raise LookupError(f"Secrets Manager secret {secret_id} is not JSON with username and password") from None
        missing = [k for k in ("username", "password") if not isinstance(data, dict) or not data.get(k)]
        if missing:
            raise LookupError(f"Secrets Manager secret {secret_id} has no {' or '.join(missing)} key")
        return Credentials(str(data["username"]), str(data["password"]))


def _sources(permission: dict[str, Any]) -> list[str]:
    return ([r["CidrIp"] for r in permission.get("IpRanges", [])]
            + [r["CidrIpv6"] for r in permission.get("Ipv6Ranges", [])]
            + [g["GroupId"] for g in permission.get("UserIdGroupPairs", [])])
