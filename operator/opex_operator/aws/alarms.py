"""CloudWatch alarms for a step's bake window: DescribeAlarms and DescribeAlarmHistory.

DescribeAlarms (up to 100 names a call, metric and composite alarms: ``AlarmTypes``) gives each
alarm's ``StateValue`` and when it entered it (``StateTransitionedTimestamp``; older answers only
``StateUpdatedTimestamp``, which also moves when only the reason changes). An alarm that changed
state during the window but is not in ALARM now may have been there between two looks: its
history (``HistoryItemType=StateUpdate`` since the window began) says, in each item's
``HistoryData`` JSON (``newState.stateValue``), or in its ``HistorySummary`` ("Alarm updated from
OK to ALARM"). Source: the CloudWatch API reference (DescribeAlarms, DescribeAlarmHistory,
AlarmHistoryItem) and the aws-cli examples of both calls. Read-only; every call draws on the
operator's AWS call budget (``aws.clients``); errors propagate as AwsError.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from ..api.common import parse_time
from ..ports.verification import ALARM, AlarmState
from .clients import AwsClients

MAX_NAMES = 100    # DescribeAlarms' AlarmNames limit
MAX_PAGES = 5
ALARM_TYPES = ["CompositeAlarm", "MetricAlarm"]
_SUMMARY = re.compile(r"from (\w+) to (\w+)")


def alarm_state(raw: dict[str, Any]) -> AlarmState:
    """One entry of DescribeAlarms' ``MetricAlarms`` or ``CompositeAlarms``."""
    since = parse_time(raw.get("StateTransitionedTimestamp")) or parse_time(raw.get("StateUpdatedTimestamp"))
    return AlarmState(str(raw.get("AlarmName", "")), str(raw.get("StateValue", "")), since,
                      " ".join(str(raw.get("StateReason") or "").split()))


def first_alarm_transition(items: list[dict[str, Any]], since: dt.datetime) -> dt.datetime | None:
    """The earliest transition to ALARM at or after ``since`` among DescribeAlarmHistory's
    ``AlarmHistoryItems`` (StateUpdate items; others are skipped), or None."""
    found = []
    for item in items:
        if item.get("HistoryItemType", "StateUpdate") != "StateUpdate":
            continue
        at = parse_time(item.get("Timestamp"))
        if at is None or at < since:
            continue
        try:
            new_state = ((json.loads(item.get("HistoryData") or "{}").get("newState")) or {}).get("stateValue")
        except (ValueError, AttributeError):
            new_state = None
        if new_state is None:
            matched = _SUMMARY.search(item.get("HistorySummary") or "")
            new_state = matched.group(2) if matched else None
        if new_state == ALARM:
            found.append(at)
    return min(found, default=None)


class AlarmReader:
    """The alarms of one incident: ``region`` and ``role_key`` as its spec.targets name them."""

    def __init__(self, clients: AwsClients, region: str | None, role_key: str | None):
        self.clients, self.region, self.role_key = clients, region, role_key

    def _cw(self) -> Any:
        return self.clients.client("cloudwatch", self.region, self.role_key)

    def alarms(self, names: list[str]) -> dict[str, AlarmState]:
        """The alarms of ``names`` that exist, by name (a missing one is simply absent)."""
        found: dict[str, AlarmState] = {}
        for start in range(0, len(names), MAX_NAMES):
            args: dict[str, Any] = {"AlarmNames": names[start:start + MAX_NAMES], "AlarmTypes": ALARM_TYPES}
            for _ in range(MAX_PAGES):
                page = self._cw().describe_alarms(**args)
                for raw in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                    state = alarm_state(raw)
                    found[state.name] = state
                if not page.get("NextToken"):
                    break
                args["NextToken"] = page["NextToken"]
        return found

    def went_to_alarm(self, name: str, since: dt.datetime) -> dt.datetime | None:
        """When alarm ``name`` first went to ALARM at or after ``since``, by its history (None: it did not)."""
        args: dict[str, Any] = {"AlarmName": name, "AlarmTypes": ALARM_TYPES, "HistoryItemType": "StateUpdate",
                                "StartDate": since, "ScanBy": "TimestampAscending"}
        items: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            page = self._cw().describe_alarm_history(**args)
            items += page.get("AlarmHistoryItems", [])
            if first_alarm_transition(items, since) or not page.get("NextToken"):
                break
            args["NextToken"] = page["NextToken"]
        return first_alarm_transition(items, since)
