"""The ports of a step's bake window: CloudWatch alarms (adapter ``aws.alarms.AlarmReader``) and
Prometheus instant queries (adapter ``promql.Prometheus``), and the values crossing them. The
operator's entry point (``wiring``) builds the adapters; ``guardrails.verify`` looks through them.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Protocol

ALARM = "ALARM"


@dataclass(frozen=True)
class AlarmState:
    """One CloudWatch alarm as DescribeAlarms gives it: ``state`` OK, ALARM or INSUFFICIENT_DATA,
    ``since`` when it entered that state (``StateTransitionedTimestamp``, else
    ``StateUpdatedTimestamp``), ``reason`` its ``StateReason``."""

    name: str
    state: str
    since: dt.datetime | None
    reason: str = ""


@dataclass(frozen=True)
class Sample:
    """One sample of a Prometheus result: its labels and value."""

    labels: tuple[tuple[str, str], ...]
    value: float

    def describe(self) -> str:
        labels = ", ".join(f'{k}="{v}"' for k, v in self.labels if k != "__name__")
        name = dict(self.labels).get("__name__", "")
        return f"{name}{{{labels}}} {self.value:g}" if labels or name else f"{self.value:g}"


@dataclass(frozen=True)
class QueryResult:
    """A Prometheus instant query's result: ``result_type`` vector, scalar (or matrix, string), its
    samples (a scalar is one sample without labels)."""

    result_type: str
    samples: tuple[Sample, ...] = ()

    def holds(self) -> bool:
        """Whether the condition holds: a vector holds while it has a sample (as an alert rule fires); a
        scalar while it is neither 0 nor NaN; other result types never."""
        if self.result_type == "vector":
            return bool(self.samples)
        if self.result_type == "scalar":
            return bool(self.samples) and self.samples[0].value != 0 and not math.isnan(self.samples[0].value)
        return False

    def describe(self, most: int = 5) -> str:
        """``no sample`` or the first samples, for a status message."""
        if not self.samples:
            return "no sample"
        shown = "; ".join(s.describe() for s in self.samples[:most])
        return shown + (f"; and {len(self.samples) - most} more" if len(self.samples) > most else "")


class AlarmPort(Protocol):
    """CloudWatch alarms of one incident's account and region. Raises AwsError."""

    def alarms(self, names: list[str]) -> dict[str, AlarmState]:
        """The alarms of ``names`` that exist, by name."""
        ...

    def went_to_alarm(self, name: str, since: dt.datetime) -> dt.datetime | None:
        """When alarm ``name`` first went to ALARM at or after ``since`` (None: it did not)."""
        ...


class QueryPort(Protocol):
    """Prometheus instant queries. Raises PrometheusError."""

    def instant(self, query: str) -> QueryResult:
        """``query`` evaluated now."""
        ...
