"""CloudWatch metrics for the performance assessment: many series in one GetMetricData request.

The runbook reads one metric at a time (``aws cloudwatch get-metric-statistics ... --period 300
--statistics Average,Maximum``); GetMetricData takes up to 500 queries, extended statistics
(p99) included, in one call (CloudWatch API reference, GetMetricData). Series in another region
(CloudFront's, in us-east-1) go in one more call to that region. Errors propagate as
:class:`~opex_operator.errors.AwsError`.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from ..api.performance import check_window
from ..ports.performance import Series, SeriesSpec
from .clients import AwsClients

MAX_QUERIES = 500  # GetMetricData's limit of MetricDataQueries per request
MAX_PAGES = 10


class CloudWatchMetrics:
    """GetMetricData for one incident: ``region`` and ``role_key`` as its spec.targets name them."""

    def __init__(self, clients: AwsClients, region: str | None, role_key: str | None):
        self.clients, self.region, self.role_key = clients, region or clients.default_region, role_key

    def read(self, specs: list[SeriesSpec], end: dt.datetime, window_seconds: int,
             period_seconds: int) -> list[Series]:
        """The series of ``specs`` over ``[end - window, end)`` at ``period_seconds``, in the order given.

        One GetMetricData call per region (pages of it follow NextToken). Raises ValueError when
        CloudWatch does not keep ``period_seconds`` datapoints that long (``check_window``) or
        when more than 500 series are asked of one region; AwsError when CloudWatch refuses.
        """
        check_window(window_seconds, period_seconds)
        start = end - dt.timedelta(seconds=window_seconds)
        by_region: dict[str, list[SeriesSpec]] = {}
        for spec in specs:
            by_region.setdefault(spec.region or self.region, []).append(spec)
        found: dict[str, Series] = {}
        for region, group in by_region.items():
            if len(group) > MAX_QUERIES:
                raise ValueError(f"{len(group)} series asked of CloudWatch in {region}; at most {MAX_QUERIES}")
            found.update(self._get(region, group, start, end, period_seconds))
        return [found[s.key] for s in specs]

    def _get(self, region: str, specs: list[SeriesSpec], start: dt.datetime, end: dt.datetime,
             period: int) -> dict[str, Series]:
        cw = self.clients.client("cloudwatch", region, self.role_key)
        ids = {f"q{i}": spec for i, spec in enumerate(specs)}  # ids must match ^[a-z][a-zA-Z0-9_]*$
        queries = [{"Id": qid, "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": s.namespace, "MetricName": s.metric,
                       "Dimensions": [{"Name": n, "Value": v} for n, v in s.dimensions]},
            "Period": period, "Stat": s.stat}} for qid, s in ids.items()]
        out = {s.key: Series(s) for s in specs}
        args: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end,
                                "ScanBy": "TimestampAscending"}
        for _ in range(MAX_PAGES):
            page = cw.get_metric_data(**args)
            for result in page.get("MetricDataResults", []):
                series = out[ids[result["Id"]].key]
                points = [(t, v) for t, v in zip(result.get("Timestamps", []), result.get("Values", []))
                          if v is not None]
                series.timestamps += [_utc(t) for t, _ in points]
                series.values += [float(v) for _, v in points]
                if result.get("StatusCode") and result["StatusCode"] != "Complete":
                    series.status = result["StatusCode"]
            if not page.get("NextToken"):
                break
            args["NextToken"] = page["NextToken"]
        for series in out.values():  # pages may interleave; keep each series oldest first
            pairs = sorted(zip(series.timestamps, series.values))
            series.timestamps, series.values = [t for t, _ in pairs], [v for _, v in pairs]
        return out


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
