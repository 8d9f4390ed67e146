"""The runbook's "Initial Assessment (5 minutes)", done in seconds: the Incident controller gathers
the facts of every targeted source, concurrently, through the Reader port.

Reads run in threads (boto3 blocks); a source that cannot be read becomes a ReadProblem (and
so a finding naming the denied action or the missing resource), never an exception. A
SecurityIncident's investigation (the runbook's "Investigation (15-60 minutes)") reads CloudTrail
for its users and keys itself (:func:`investigate`), so the assessment's error scan of CloudTrail
is left out for it.
"""
from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

from ..api.incident import IncidentSpec, IncidentType
from ..aws.reader import MAX_TRAIL_RECORDS
from ..errors import AwsError
from ..ports import Ec2Port, LockSource, Reader
from ..runbooks import security
from ..runbooks.diagnose import failure_context
from ..runbooks.facts import LogLine, Observations, ReadProblem
from ..termtext import plain, plain_lines
from ..terraform.locks import parse_lock_error

LOOKBACK = dt.timedelta(hours=1)  # "ERROR log events of the last hour"
QUANTUM = 15                        # ``since`` arguments within this many seconds count as identical


class SharedReads:
    """Identical assessment reads made once: an alert storm of 1,000 Incidents about one pipeline
    reads it once, not 1,000 times (AWS quotas and cost; see aws/budget.py).

    Reads of the same method, arguments and (region, role) within ``seconds`` share one AWS
    call: a read in flight is awaited, a recent answer (or error) reused. Every caller gets its own
    copy (the assessment changes what it reads). ``since`` arguments are compared rounded down to
    QUANTUM seconds. Thread-safe: reads run in threads.
    """

    def __init__(self, seconds: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.seconds, self.clock = seconds, clock
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple[float, Future]] = {}

    def reader(self, inner: Reader, scope: tuple) -> Reader:
        """``inner`` (a Reader for one region and role, named by ``scope``) with its reads shared."""
        return _SharedReader(self, inner, scope)  # type: ignore[return-value]

    def call(self, key: tuple, fn: Callable[[], Any]) -> Any:
        now = self.clock()
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if now - v[0] < self.seconds}
            entry = self._entries.get(key)
            owner = entry is None
            if owner:
                entry = (now, Future())
                self._entries[key] = entry
        future = entry[1]
        if owner:
            try:
                future.set_result(fn())
            except Exception as err:  # noqa: BLE001 - handed to every waiter; only a read's answer is kept
                future.set_exception(err)
                if not isinstance(err, (AwsError, LookupError)):
                    with self._lock:
                        self._entries.pop(key, None)
        return copy.deepcopy(future.result())


class _SharedReader:
    def __init__(self, shared: SharedReads, inner: Reader, scope: tuple):
        self._shared, self._inner, self._scope = shared, inner, scope

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._inner, name)

        def shared(*args: Any) -> Any:
            key = (self._scope, name, *(_quantized(a) for a in args))
            return self._shared.call(key, lambda: method(*args))
        return shared


def _quantized(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return int(value.timestamp()) // QUANTUM
    try:
        hash(value)
        return value
    except TypeError:  # lists and dicts of arguments: compared by their text
        return repr(value)


async def assess(spec: IncidentSpec, reader: Reader, now: dt.datetime, drift_lock: LockSource | None = None) -> Observations:
    """Read everything ``spec.targets`` names; returns the observations (problems included)."""
    obs = Observations()
    t = spec.targets
    since = now - LOOKBACK
    read = _reading(obs)

    async def pipeline_and_builds() -> None:
        # The pipeline and the project's recent builds at once; the build the failed action names
        # is read too when it is not among them, then the failed build's log.
        project = t.code_build.project if t.code_build else None
        pipeline, builds = await asyncio.gather(
            read("CodePipeline", f"pipeline/{t.pipeline.name}", reader.pipeline, t.pipeline.name,
                 t.pipeline.execution_id) if t.pipeline else _none(),
            read("CodeBuild", f"project/{project}", reader.builds, project, []) if project else _none())
        obs.pipeline, obs.builds = pipeline, builds or []
        action = pipeline.failed_action if pipeline else None
        named = action.external_execution_id if action and action.external_execution_id else None
        if named and ":" in named and named not in {b.id for b in obs.builds}:  # CodeBuild ids are "<project>:<uuid>"
            obs.builds = (await read("CodeBuild", f"project/{named.split(':')[0]}", reader.builds, None, [named])
                          or []) + obs.builds
        failed = obs.failed_build
        if failed and failed.log_group and failed.log_stream:
            obs.build_log_lines = await read("CloudWatchLogs", f"{failed.log_group}/{failed.log_stream}",
                                             reader.stream_lines, failed.log_group, failed.log_stream) or []

    async def lambdas() -> None:
        names = t.lambda_.function_names if t.lambda_ else []
        found = await asyncio.gather(*(read("Lambda", f"function/{n}", reader.lambda_function, n, since) for n in names))
        obs.lambdas = [f for f in found if f is not None]

    async def api() -> None:
        if t.api_gateway:
            obs.api_id = t.api_gateway.rest_api_id
            stages = await read("APIGateway", f"restapi/{obs.api_id}", reader.api_stages, obs.api_id) or []
            obs.api_stages = [s for s in stages if t.api_gateway.stage in (None, s.name)]

    async def rds() -> None:
        if t.rds:
            obs.rds = await read("RDS", f"db/{t.rds.instance_id}", reader.rds, t.rds.instance_id)

    async def trail() -> None:
        if spec.type == IncidentType.SECURITY_INCIDENT:
            return
        if t.cloud_trail:
            obs.trail_source = f"logs:{t.cloud_trail.log_group_name}"
            obs.trail_events = await read("CloudTrail", obs.trail_source, reader.trail_errors_from_logs,
                                          t.cloud_trail.log_group_name, since) or []
        else:
            obs.trail_source = "cloudtrail:LookupEvents"
            obs.trail_events = await read("CloudTrail", obs.trail_source, reader.trail_errors_lookup, since) or []

    await asyncio.gather(pipeline_and_builds(), lambdas(), api(), rds(), trail())
    # Logs become plain text here, once, before anything parses them.
    obs.build_log_lines = plain_log(obs.build_log_lines)
    for fn in obs.lambdas:
        fn.error_lines = [dataclasses.replace(line, message=plain(line.message)) for line in fn.error_lines]
    obs.lock_error = parse_lock_error("\n".join(failure_context(obs).lines))
    obs.terraform_lock = obs.lock_error.lock if obs.lock_error else None
    if obs.terraform_lock is None and t.drift_check_ref is not None and drift_lock is not None:
        obs.terraform_lock = await asyncio.to_thread(drift_lock, t.drift_check_ref.name)
    return obs


async def _none() -> None:
    return None


def _reading(obs: Observations) -> Callable[..., Any]:
    """``await read(source, resource, fn, *args)``: ``fn(*args)`` in a thread; a failure becomes a
    ReadProblem in ``obs`` and the read returns None."""
    async def read(source: str, resource: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except (AwsError, LookupError) as err:  # every failed read is a finding
            obs.problems.append(ReadProblem.of(source, resource, err))
            return None
    return read


async def investigate(spec: IncidentSpec, reader: Reader, ec2: Ec2Port, now: dt.datetime,
                      obs: Observations) -> security.SecurityFacts:
    """The security investigation's reads over ``spec.targets.security.lookbackHours`` (default 24 h):
    CloudTrail records of the users and keys (from spec.targets.cloudTrail's log group, as the
    runbook reads it, else LookupEvents), the API access log's lines from sourceIps, and the
    inbound rules of the named security groups and of the targeted RDS instance's groups.
    Unreadable sources are added to ``obs.problems`` (findings naming them)."""
    s = spec.targets.security
    facts = security.SecurityFacts()
    if s is None:
        return facts
    since = security.window_start(s, now)
    read = _reading(obs)

    async def trail() -> None:
        terms = security.trail_terms(s)
        if not terms:
            return
        if spec.targets.cloud_trail:
            group = spec.targets.cloud_trail.log_group_name
            source = f"logs:{group}"
            events = await read("CloudTrail", source, reader.trail_records_from_logs, group, since, terms)
        else:
            source = "cloudtrail:LookupEvents"
            events = await read("CloudTrail", source, reader.trail_records_lookup, since,
                                security.lookup_attributes(s))
        if events is not None:
            facts.trail_events, facts.trail_sources = events, [source]
            facts.trail_limit_reached = len(events) >= MAX_TRAIL_RECORDS

    async def access() -> None:
        group = s.api_access_log_group
        if group and s.source_ips:
            lines = await read("APIGateway", group, reader.filtered_lines, group, since,
                               security.access_log_pattern(s.source_ips))
            if lines is not None:
                facts.access_lines, facts.access_group = lines, group

    async def groups() -> None:
        ids = list(dict.fromkeys([g.group_id for g in s.security_groups] +
                                 [g.id for g in (obs.rds.security_groups if obs.rds else [])]))
        # One call per group: a group that does not exist must not hide the others.
        found = await asyncio.gather(*(read("EC2", f"security-group/{i}", ec2.security_groups, [i]) for i in ids))
        facts.security_groups = [g for groups_ in found for g in groups_ or []]

    await asyncio.gather(trail(), access(), groups())
    return facts


def plain_log(lines: list[LogLine]) -> list[LogLine]:
    """``lines`` as plain text (``termtext``): a wrapped diagnostic is one line again, stamped like the
    event it starts at."""
    return [dataclasses.replace(lines[index], message=text)
            for index, text in plain_lines([line.message for line in lines])]
