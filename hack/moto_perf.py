"""What moto 5.2.5 lacks for the performance runbook, added for the local stack only.

The operator makes the same boto3 calls against AWS and against this. Checked on moto 5.2.5:

* CloudWatch ``GetMetricData`` computes Sum, Average, Minimum, Maximum and SampleCount; an
  extended statistic such as ``p99`` yields a null value and the server fails to serialise the
  response. Here percentiles ``pNN``/``pNN.N`` are computed from the datapoints put, by nearest
  rank (CloudWatch's own percentiles are estimates from its stored distribution).
* RDS ``ModifyDBInstance --enable-performance-insights`` is accepted and stored, but
  ``DescribeDBInstances`` never reports ``PerformanceInsightsEnabled``: here it does.
* An RDS endpoint is a made-up ``<id>.aaaaaaaaaa.<region>.rds.amazonaws.com``: :func:`point_rds_at`
  makes it name a real server (a local PostgreSQL) so the runbook's ``psql`` check reaches it.

Importing this module applies the patches (``fakeaws.start`` imports it).
"""
from __future__ import annotations

import math
import re
from typing import Any, SupportsFloat

from moto.cloudwatch.models import Statistics
from moto.rds.models import DBInstance, rds_backends

PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d+)?)$")

_original_statistic = Statistics.get_statistics_for_type


def _statistic(self: Statistics, stat: str) -> SupportsFloat | None:
    m = PERCENTILE.match(stat)
    if m is None:
        return _original_statistic(self, stat)
    values = sorted(self.metric_single_values_list)
    if not values:
        return None
    rank = math.ceil(float(m.group(1)) / 100 * len(values))
    return values[max(rank, 1) - 1]


Statistics.get_statistics_for_type = _statistic


def _performance_insights_enabled(self: DBInstance) -> bool:
    return bool(getattr(self, "enable_performance_insights", False))


DBInstance.performance_insights_enabled = property(_performance_insights_enabled)

_original_address = DBInstance.address


def _address(self: DBInstance) -> str:
    return getattr(self, "_ext_address", None) or _original_address.fget(self)


DBInstance.address = property(_address)


def point_rds_at(account: str, region: str, instance_id: str, host: str, port: int) -> None:
    """Make ``instance_id``'s endpoint ``host:port`` (DescribeDBInstances ``Endpoint``)."""
    db: Any = rds_backends[account][region].databases[instance_id]
    db._ext_address = host
    db.port = port
