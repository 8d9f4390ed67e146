"""CloudWatch's Lambda metrics as Prometheus series, named the way yet-another-cloudwatch-exporter names them.

The local stack's Prometheus scrapes this instead of YACE (which needs real AWS discovery): on
every scrape it lists the Lambda functions and reads each one's ``AWS/Lambda`` ``Errors`` and
``Invocations`` (statistic ``Sum``, 60-second periods, the newest datapoint of the last hour)
from CloudWatch, moto's in the local stack, through the same boto3 calls YACE makes. Series and
labels as YACE exports them::

    aws_lambda_errors_sum{name="arn:aws:lambda:us-east-1:123456789012:function:orders-api",
                          dimension_FunctionName="orders-api", region="us-east-1", account_id="123456789012"} 4

so an alert rule written against YACE works unchanged. moto has no AWS/* service metrics of its
own; the demo's estate puts the datapoints (``estate.lambda_error_metrics``).

``python hack/cloudwatch_exporter.py --port N`` (boto3 configured by the environment, see
fakeaws.aws_env) serves ``/metrics`` until SIGTERM.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import signal

import boto3
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily

METRICS = (("Errors", "Sum"), ("Invocations", "Sum"))
LABELS = ("name", "dimension_FunctionName", "region", "account_id")


def series_name(metric: str, statistic: str, namespace: str = "AWS/Lambda") -> str:
    """YACE's name: ``aws_<namespace without AWS/>_<metric in snake case>_<statistic>``."""
    snake = "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(metric))
    return f"aws_{namespace.removeprefix('AWS/').lower()}_{snake}_{statistic.lower()}"


class LambdaMetrics:
    """A collector reading CloudWatch at each scrape."""

    def __init__(self, region: str):
        self.region = region

    def collect(self):
        session = boto3.session.Session(region_name=self.region)
        lam, cloudwatch = session.client("lambda"), session.client("cloudwatch")
        now = dt.datetime.now(dt.timezone.utc)
        families = {m: GaugeMetricFamily(series_name(m, s), f"CloudWatch AWS/Lambda {m} {s}", labels=LABELS)
                    for m, s in METRICS}
        for page in lam.get_paginator("list_functions").paginate():
            for fn in page["Functions"]:
                arn = fn["FunctionArn"]
                labels = (arn, fn["FunctionName"], self.region, arn.split(":")[4])
                for metric, statistic in METRICS:
                    points = cloudwatch.get_metric_statistics(
                        Namespace="AWS/Lambda", MetricName=metric, Statistics=[statistic], Period=60,
                        Dimensions=[{"Name": "FunctionName", "Value": fn["FunctionName"]}],
                        StartTime=now - dt.timedelta(hours=1), EndTime=now)["Datapoints"]
                    if points:
                        newest = max(points, key=lambda p: p["Timestamp"])
                        families[metric].add_metric(labels, newest[statistic])
        yield from families.values()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LambdaMetrics(os.environ.get("AWS_REGION", "us-east-1")))
    start_http_server(args.port, addr="127.0.0.1", registry=registry)
    print(f"CloudWatch exporter on 127.0.0.1:{args.port}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    main()
