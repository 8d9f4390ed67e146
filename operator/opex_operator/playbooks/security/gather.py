"""The security investigation's reads (the runbook's "Investigation (15-60 minutes)"): CloudTrail
for the leaked keys and users and, round after round, what they reached; the API access log's
lines from the suspicious addresses; the inbound rules of the security groups involved.
Unreadable sources become ReadProblems (findings naming them), never exceptions.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Callable

from ...api.incident import IncidentSpec
from ...ports import Ec2Port, Reader
from ...ports.cloudtrail import MAX_TRAIL_RECORDS, TrailRead
from ...ports.facts import Observations
from ..assessment import reading
from . import investigation as security
from .blast_radius import FollowUp


async def investigate(spec: IncidentSpec, reader: Reader, ec2: Ec2Port, now: dt.datetime,
                      obs: Observations) -> security.SecurityFacts:
    """The security investigation's reads over ``spec.targets.security.lookbackHours`` (default 24 h):
    CloudTrail records of the users and keys (from spec.targets.cloudTrail's log group, as the
    runbook reads it, else LookupEvents), then of what they reached (:func:`read_trail`), the API
    access log's lines from sourceIps, and the inbound rules of the named security groups, of the
    targeted RDS instance's groups and of the groups the compromise opened. Unreadable sources are
    added to ``obs.problems`` (findings naming them)."""
    s = spec.targets.security
    facts = security.SecurityFacts()
    if s is None:
        return facts
    since = security.window_start(s, now)
    read = reading(obs)

    async def trail_then_groups() -> None:
        await read_trail(spec, reader, since, now, read, facts)
        ids = list(dict.fromkeys([g.group_id for g in s.security_groups] +
                                 [g.id for g in (obs.rds.security_groups if obs.rds else [])] +
                                 security.opened_groups(facts.trail_events, s, since, now)))
        # One call per group: a group that does not exist must not hide the others.
        found = await asyncio.gather(*(read("EC2", f"security-group/{i}", ec2.security_groups, [i]) for i in ids))
        facts.security_groups = [g for groups_ in found for g in groups_ or []]

    async def access() -> None:
        group = s.api_access_log_group
        if group and s.source_ips:
            lines = await read("APIGateway", group, reader.filtered_lines, group, since,
                               security.access_log_pattern(s.source_ips))
            if lines is not None:
                facts.access_lines, facts.access_group = lines, group

    await asyncio.gather(trail_then_groups(), access())
    return facts


async def read_trail(spec: IncidentSpec, reader: Reader, since: dt.datetime, now: dt.datetime,
                     read: Callable[..., Any], facts: security.SecurityFacts) -> None:
    """CloudTrail for the leaked keys and users, then, round after round, for what the records
    show they reached (``security.follow_ups``: keys and sessions opened, users and roles made),
    within the lookback and at most ``security.TRAIL_CALLS`` calls in ``security.FOLLOW_ROUNDS``
    rounds. What the budget left unread is recorded in ``facts.unread_follow_ups``."""
    s = spec.targets.security
    assert s is not None
    wanted = security.lookup_attributes(s)
    group = spec.targets.cloud_trail.log_group_name if spec.targets.cloud_trail else None
    source = f"logs:{group}" if group else "cloudtrail:LookupEvents"
    got, asked = TrailRead(), set()
    for _ in range(security.FOLLOW_ROUNDS):
        budget = security.TRAIL_CALLS - got.calls
        if not wanted or budget <= 0:
            break
        if group:
            r = await read("CloudTrail", source, reader.trail_records_from_logs, group, since, [v for _, v in wanted],
                           MAX_TRAIL_RECORDS, budget)
            named = {v: (a, v) for a, v in wanted}
            if r is not None:
                r.unread = [named.get(v, (a, v)) for a, v in r.unread]
        else:
            r = await read("CloudTrail", source, reader.trail_records_lookup, since, wanted, 3, budget)
        if r is None:
            break
        got.merge(r)
        facts.trail_sources = [source]
        asked.update(wanted)
        wanted = [f for f in security.follow_ups(got.events, s, since, now) if f not in asked]
    unread = list(dict.fromkeys(got.unread + [f for f in wanted if facts.trail_sources]))
    facts.trail_events, facts.trail_limit_reached = got.events, got.truncated
    facts.trail_skipped, facts.trail_calls = got.skipped, got.calls
    facts.unread_follow_ups = [FollowUp(a, v) for a, v in unread]
