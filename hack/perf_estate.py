"""The performance scenario's AWS estate in the in-process moto server, pointing at real servers.

A slow Lambda function (its Duration metrics and REPORT log lines put as Lambda would publish
them), an API Gateway stage whose integration is the local HTTP app (``apiapp``), an RDS
instance whose endpoint is a local PostgreSQL (``pglocal``, through ``moto_perf.point_rds_at``)
behind a security group that does not admit the operator, and the database's credentials in
Secrets Manager. Call these in the process that runs the server, boto3 pointed at it.
"""
from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass

import boto3

import estate
import moto_perf
import pglocal
from opex_operator.steps.lambda_configuration import first_period

ACCOUNT, REGION = estate.ACCOUNT, estate.REGION


def put_metric(namespace: str, metric: str, dimensions: dict[str, str], values: list[float], unit: str,
               minutes_ago: float, spread_seconds: float = 60.0) -> None:
    """Put ``values`` as datapoints ``minutes_ago`` minutes back, spread over ``spread_seconds``."""
    at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes_ago)
    step = spread_seconds / max(len(values), 1)
    data = [{"MetricName": metric, "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
             "Value": value, "Unit": unit, "Timestamp": at + dt.timedelta(seconds=i * step)}
            for i, value in enumerate(values)]
    cw = boto3.client("cloudwatch")
    for i in range(0, len(data), 1000):  # PutMetricData takes at most 1,000 datapoints
        cw.put_metric_data(Namespace=namespace, MetricData=data[i:i + 1000])


def report_line(duration_ms: float, memory_mb: int, used_mb: int) -> str:
    """A Lambda REPORT log line as the runtime writes it after each invocation."""
    return (f"REPORT RequestId: {uuid.uuid4()}\tDuration: {duration_ms:.2f} ms\tBilled Duration: "
            f"{int(duration_ms) + 1} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: {used_mb} MB")


def slow_lambda(name: str, memory_mb: int = 128, timeout_seconds: int = 3, durations_ms: list[float] | None = None,
                used_mb: int = 124, minutes_ago: float = 20.0) -> None:
    """A function near its timeout and memory: Duration datapoints (ms) ``minutes_ago`` back and a
    REPORT line per invocation with ``used_mb`` of ``memory_mb`` used."""
    lam = boto3.client("lambda")
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=estate.role(f"{name}-role", "lambda.amazonaws.com"),
                        Handler="app.handler", Code={"ZipFile": estate.GOOD}, Timeout=timeout_seconds,
                        MemorySize=memory_mb)
    durations = durations_ms or [2650.0 + 10 * i for i in range(30)]
    put_metric("AWS/Lambda", "Duration", {"FunctionName": name}, durations, "Milliseconds", minutes_ago)
    put_metric("AWS/Lambda", "Errors", {"FunctionName": name}, [0.0] * len(durations), "Count", minutes_ago)
    put_metric("AWS/Lambda", "Throttles", {"FunctionName": name}, [0.0] * len(durations), "Count", minutes_ago)
    put_metric("AWS/Lambda", "ConcurrentExecutions", {"FunctionName": name}, [3.0], "Count", minutes_ago)
    start = int(time.time() * 1000) - int(minutes_ago * 60_000)
    estate.put_logs(f"/aws/lambda/{name}", f"2026/11/30/[$LATEST]{uuid.uuid4().hex[:12]}",
                    [report_line(d, memory_mb, used_mb - (i % 3)) for i, d in enumerate(durations)],
                    start_ms=start, step_ms=2000)


def api_stage(name: str, stage: str, backend_url: str) -> str:
    """A REST API whose ``POST /orders`` proxies to ``backend_url`` + ``/{stage}/orders``; returns its id."""
    apigw = boto3.client("apigateway")
    api = apigw.create_rest_api(name=name)["id"]
    root = next(r["id"] for r in apigw.get_resources(restApiId=api)["items"] if r["path"] == "/")
    orders = apigw.create_resource(restApiId=api, parentId=root, pathPart="orders")["id"]
    apigw.put_method(restApiId=api, resourceId=orders, httpMethod="POST", authorizationType="NONE")
    apigw.put_integration(restApiId=api, resourceId=orders, httpMethod="POST", type="HTTP_PROXY",
                          integrationHttpMethod="POST", uri=f"{backend_url}/{stage}/orders")
    apigw.create_deployment(restApiId=api, stageName=stage)
    return api


@dataclass
class Database:
    instance_id: str
    security_group: str
    secret_arn: str


def database(instance_id: str, host: str, port: int, username: str, password: str,
             allowed_cidr: str = "10.0.0.0/16") -> Database:
    """An RDS PostgreSQL instance whose endpoint is ``host:port``, in a security group admitting
    only ``allowed_cidr`` on the port, with its credentials in Secrets Manager (``<id>/credentials``)."""
    ec2 = boto3.client("ec2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    sg = ec2.create_security_group(GroupName=f"{instance_id}-sg", Description="database", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": allowed_cidr}]}])
    boto3.client("rds").create_db_instance(
        DBInstanceIdentifier=instance_id, DBInstanceClass="db.t3.micro", Engine="postgres", AllocatedStorage=20,
        MasterUsername=username, MasterUserPassword=password, VpcSecurityGroupIds=[sg], Port=port)
    moto_perf.point_rds_at(ACCOUNT, REGION, instance_id, host, port)
    secret = boto3.client("secretsmanager").create_secret(
        Name=f"{instance_id}/credentials", SecretString=json.dumps({"username": username, "password": password}))
    return Database(instance_id, sg, secret["ARN"])


def faster_after(name: str, changed_at: dt.datetime, period_seconds: int, duration_ms: float = 900.0,
                 count: int = 5) -> None:
    """Duration datapoints of ``name`` in the first whole period after ``changed_at``, as Lambda
    publishes them once a raised memory is in effect (moto keeps only what is put into it)."""
    start = first_period(changed_at, period_seconds)
    step = dt.timedelta(seconds=period_seconds / (count + 1))
    boto3.client("cloudwatch").put_metric_data(Namespace="AWS/Lambda", MetricData=[
        {"MetricName": "Duration", "Dimensions": [{"Name": "FunctionName", "Value": name}], "Value": duration_ms,
         "Unit": "Milliseconds", "Timestamp": start + (i + 1) * step} for i in range(count)])


DEMO_FUNCTION, DEMO_DATABASE = "catalog-api", "catalog-db"


def seed_demo(postgres: tuple[str, int], api_url: str) -> None:
    """The demo's performance scenario: ``catalog-api`` near its timeout and memory, its REST API's
    ``prod`` stage proxying to the local API app at ``api_url``, and its database ``catalog-db`` the
    local PostgreSQL at ``postgres`` (host, port), credentials in Secrets Manager."""
    slow_lambda(DEMO_FUNCTION, memory_mb=128, timeout_seconds=3, used_mb=124)
    api_stage(DEMO_FUNCTION, "prod", api_url)
    database(DEMO_DATABASE, postgres[0], postgres[1], pglocal.USER, pglocal.PASSWORD)
