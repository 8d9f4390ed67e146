"""The runbook's "Initial Assessment (5 minutes)", done in seconds: a playbook gathers the facts of
every targeted source, concurrently, through the Reader port; the performance playbook also the
metrics and configurations (:func:`measure`), and every playbook the endpoint probes its spec
names (:func:`probe`).

Reads run in threads (boto3 blocks); a source that cannot be read becomes a ReadProblem (and
so a finding naming the denied action or the missing resource), never an exception. A
SecurityIncident's investigation (the runbook's "Investigation (15-60 minutes)") reads CloudTrail
for its users and keys itself (``playbooks.security.gather``), so its playbook leaves the
assessment's error scan of CloudTrail out (:class:`TrailErrors`).
"""
from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
import threading
import time
from concurrent.futures import Future
from enum import StrEnum
from typing import Any, Awaitable, Callable, Sequence, TypeVar

from ..api.incident import IncidentSpec
from ..api.performance import MetricsQuery
from ..errors import AwsError, KubeError
from ..policy import ProbeRule
from ..ports import AwsPorts, LockSource, Objects, PerfReaderPort, Reader
from ..probes import secrets as probe_secrets
from ..probes.http import Guard, public_url
from ..redaction import Scrubber
from .diagnose import failure_context
from ..ports.facts import LogLine, Observations, PipelineFacts, ReadProblem, invocation_report
from ..ports.performance import DbProbeResult, HttpProbeResult, PerformanceFacts, ProbeFailure
from .performance.metrics import series_specs
from .probes import unreachable
from ..termtext import plain, plain_lines
from ..terraform.locks import LockProblem, parse_lock_error

LOOKBACK = dt.timedelta(hours=1)  # "ERROR log events of the last hour"
QUANTUM = 15                        # ``since`` arguments within this many seconds count as identical
POSTGRES_PORT = 5432
T = TypeVar("T")


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
        return _SharedReader(self, inner, scope)

    def call(self, key: tuple, fn: Callable[[], Any]) -> Any:
        now = self.clock()
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if now - v[0] < self.seconds}
            entry = self._entries.get(key)
            owner = entry is None
            if entry is None:
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


class TrailErrors(StrEnum):
    """Whether the initial assessment scans CloudTrail for errors of the last hour: always (the
    deployment runbook's AccessDenied evidence), only when ``spec.targets.cloudTrail`` names a log
    group, or never (a playbook that reads CloudTrail itself, e.g. the security investigation)."""

    ALWAYS = "Always"
    NAMED = "Named"
    NEVER = "Never"


async def assess(spec: IncidentSpec, reader: Reader, now: dt.datetime, drift_lock: LockSource | None = None,
                 trail_errors: TrailErrors = TrailErrors.ALWAYS) -> Observations:
    """Read everything ``spec.targets`` names; returns the observations (problems included)."""
    obs = Observations()
    t = spec.targets
    since = now - LOOKBACK
    read = reading(obs)

    async def read_pipeline(name: str, execution_id: str | None) -> PipelineFacts | None:
        # Its executions first, as a read of their own: the manual-fix watch's first look, a moment
        # later, shares it (SharedReads) instead of asking CodePipeline again.
        recent = await read("CodePipeline", f"pipeline/{name}", reader.executions, name)
        if recent is None:
            return None
        return await read("CodePipeline", f"pipeline/{name}", reader.pipeline, name, execution_id, recent)

    async def pipeline_and_builds() -> None:
        # The pipeline and the project's recent builds at once; the build the failed action names
        # is read too when it is not among them, then the failed build's log.
        project = t.code_build.project if t.code_build else None
        pipeline, builds = await asyncio.gather(
            read_pipeline(t.pipeline.name, t.pipeline.execution_id) if t.pipeline else _none(),
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
        if trail_errors == TrailErrors.NEVER or (t.cloud_trail is None and trail_errors == TrailErrors.NAMED):
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
        fn.reports = [line for line in fn.reports if invocation_report(line.message)]
    obs.lock_error = parse_lock_error("\n".join(failure_context(obs).lines))
    obs.terraform_lock = obs.lock_error.lock if obs.lock_error else None
    # A lock denied or a backend that failed is the failure itself, whatever the DriftCheck last saw.
    contended = obs.lock_error is None or obs.lock_error.problem == LockProblem.HELD
    if obs.terraform_lock is None and contended and t.drift_check_ref is not None and drift_lock is not None:
        obs.terraform_lock = await asyncio.to_thread(drift_lock, t.drift_check_ref.name)
    return obs


async def _none() -> None:
    return None


def reading(obs: Observations) -> Callable[..., Any]:
    """``await read(source, resource, fn, *args)``: ``fn(*args)`` in a thread; a failure becomes a
    ReadProblem in ``obs`` and the read returns None."""
    async def read(source: str, resource: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except (AwsError, LookupError) as err:  # every failed read is a finding
            obs.problems.append(ReadProblem.of(source, resource, err))
            return None
    return read


# -- the performance runbook's reads and the endpoint probes ---------------------------------------

# A probe adapter bounds itself by the probe's timeout; this bounds the pass even if one does not.
PROBE_GRACE = 2.0


async def measure(spec: IncidentSpec, aws: AwsPorts, objects: Objects, namespace: str, obs: Observations,
                  now: dt.datetime, sources: Sequence[str] = (), guard: Guard | None = None,
                  metrics: bool = True) -> PerformanceFacts:
    """The runbook's "Performance Degradation" reads, with ``metrics`` (the targets' configurations,
    then every metric in one GetMetricData per region), and the endpoint probes the spec names,
    run meanwhile. When the database probe
    got no connection, the database's security groups are read (the runbook's next step).

    ``obs`` is the assessment so far: the RDS endpoint the database probe connects to when it
    names no host, the API's stages; every read or probe input that fails becomes a problem in
    ``obs.problems``. ``sources`` are the CIDRs and group ids the operator connects from;
    ``guard`` the operator policy's check of the addresses probes connect to (see :func:`probe`).
    """
    t = spec.targets
    query = t.metrics or MetricsQuery()
    facts = PerformanceFacts(window_seconds=query.window_seconds, period_seconds=query.period_seconds,
                             operator_sources=list(sources))
    read = reading(obs)
    reader = aws.perf_reader(t.region, t.role_key)

    async def read_metrics() -> None:
        if metrics:
            await _configurations(spec, reader, obs, facts, now - dt.timedelta(seconds=query.window_seconds), read)
            names = t.lambda_.function_names if t.lambda_ else []
            specs = series_specs(names, (facts.stage.api_name, facts.stage.stage) if facts.stage else None,
                                 facts.cloud_front, t.rds.instance_id if t.rds else None)
            if specs:
                facts.series = await read("CloudWatch", "GetMetricData", aws.cloudwatch(t.region, t.role_key).read,
                                          specs, now, query.window_seconds, query.period_seconds) or []

    async def endpoints() -> None:
        endpoint = (obs.rds.endpoint, obs.rds.port) if obs.rds else None
        facts.http, facts.database = await probe(spec, aws, objects, namespace, endpoint, obs.problems, guard)

    await asyncio.gather(read_metrics(), endpoints())
    if unreachable(facts.database) and t.rds and not facts.security_groups:
        found = await read("RDS", f"db/{t.rds.instance_id}", reader.rds_config, t.rds.instance_id)
        facts.security_groups = found[1] if found else []
    return facts


async def _configurations(spec: IncidentSpec, reader: PerfReaderPort, obs: Observations, facts: PerformanceFacts,
                          since: dt.datetime, read: Callable[..., Any]) -> None:
    """The Lambda, API stage and RDS configurations of the targets, into ``facts``."""
    t = spec.targets

    async def lambdas() -> None:
        names = t.lambda_.function_names if t.lambda_ else []
        found = await asyncio.gather(*(read("Lambda", f"function/{n}", reader.lambda_config, n, since) for n in names))
        facts.lambdas = [f for f in found if f is not None]

    async def stage() -> None:
        api = t.api_gateway
        if api is None:
            return
        names = [s.name for s in obs.api_stages]
        name = api.stage or (names[0] if len(names) == 1 else None)
        if name is None:
            obs.problems.append(ReadProblem("APIGateway", f"restapi/{api.rest_api_id}",
                                            f"set targets.apiGateway.stage to read its metrics: the API has "
                                            f"{len(names)} stages ({', '.join(names) or 'none read'})"))
            return
        facts.stage = await read("APIGateway", f"restapi/{api.rest_api_id}/stage/{name}", reader.stage_config,
                                 api.rest_api_id, name)

    async def rds() -> None:
        if t.rds:
            found = await read("RDS", f"db/{t.rds.instance_id}", reader.rds_config, t.rds.instance_id)
            if found:
                facts.rds, facts.security_groups = found

    facts.cloud_front = t.cloud_front.distribution_id if t.cloud_front else None
    await asyncio.gather(lambdas(), stage(), rds())


async def probe(spec: IncidentSpec, aws: AwsPorts, objects: Objects, namespace: str,
                endpoint: tuple[str | None, int | None] | None, problems: list[ReadProblem],
                guard: Guard | None = None) -> tuple[HttpProbeResult | None, DbProbeResult | None]:
    """Run the probes ``spec.targets.probes`` names, both at once: the runbook's ``curl`` and
    ``psql -c "SELECT 1"``. Their Secrets (or Secrets Manager secret) are read first; a Secret
    that is missing or lacks a key becomes a problem naming it and that probe does not run.
    ``endpoint`` is the RDS target's (address, port), for a database probe that names no host.
    A probe never outlives its timeout (plus :data:`PROBE_GRACE`). ``guard`` refuses addresses
    (``policy.Policy.probe_guard``; without it link-local and metadata addresses are refused).
    Every value read from a Secret is masked in what the probes report (an endpoint may echo a
    header back)."""
    wanted = spec.targets.probes
    if wanted is None:
        return None, None
    port = aws.probes()
    guard = guard or ProbeRule().refusal
    secret_values: set[str] = set()

    async def secret(name: str, where: str) -> dict[str, str] | None:
        try:
            data = await asyncio.to_thread(objects.secret_data, namespace, name)
        except KubeError as err:
            problems.append(ReadProblem("Kubernetes", f"secret/{name}", f"{where}: {err}"))
            return None
        if data is None:
            problems.append(ReadProblem("Kubernetes", f"secret/{name}", f"{where}: Secret {name} not found",
                                        not_found=True))
        return data

    def missing_key(name: str, where: str, err: LookupError) -> None:
        problems.append(ReadProblem("Kubernetes", f"secret/{name}", f"{where}: {err}"))

    async def http() -> HttpProbeResult | None:
        h = wanted.http
        if h is None:
            return None
        headers, body = dict(h.headers), h.body
        if h.headers_secret_ref is not None:
            name = h.headers_secret_ref.name
            data = await secret(name, "probes.http.headersSecretRef")
            if data is None:
                return None
            headers.update(probe_secrets.headers(data, name))
            secret_values.update(data.values())
        if h.body_secret_ref is not None:
            ref = h.body_secret_ref
            data = await secret(ref.name, "probes.http.bodySecretRef")
            if data is None:
                return None
            try:
                body = probe_secrets.json_body(data, ref.name, ref.key)
            except LookupError as err:
                missing_key(ref.name, "probes.http.bodySecretRef", err)
                return None
            secret_values.update(data.values())
            secret_values.update(v for v in body.values() if isinstance(v, str))
        timed_out = HttpProbeResult(h.method.value, public_url(h.url), h.expected_status, failure=ProbeFailure.TIMEOUT)
        return await _within(port.http(h.method.value, h.url, h.expected_status, headers, body, h.timeout_seconds,
                                       guard), h.timeout_seconds, timed_out)

    async def database() -> DbProbeResult | None:
        db = wanted.database
        if db is None:
            return None
        host = db.host or (endpoint[0] if endpoint else None)
        if host is None:
            problems.append(ReadProblem("Database", "probes.database", "no host to connect to: the RDS target's "
                                        "endpoint could not be read (see its finding), and probes.database.host "
                                        "is not set"))
            return None
        port_number = db.port or (endpoint[1] if endpoint and endpoint[1] else None) or POSTGRES_PORT
        if db.secret_ref is not None:
            data = await secret(db.secret_ref.name, "probes.database.secretRef")
            if data is None:
                return None
            try:
                credentials = probe_secrets.database_credentials(data, db.secret_ref)
            except LookupError as err:
                missing_key(db.secret_ref.name, "probes.database.secretRef", err)
                return None
        else:
            sm = db.secrets_manager
            assert sm is not None  # the CRD asks for secretRef or secretsManager
            t = spec.targets
            try:
                credentials = await asyncio.to_thread(aws.perf_reader(t.region, t.role_key).database_credentials,
                                                      sm.secret_id, sm.region)
            except AwsError as err:
                problems.append(ReadProblem.of("SecretsManager", f"secret/{sm.secret_id}", err))
                return None
            except LookupError as err:  # the secret is there, its JSON lacks a key
                problems.append(ReadProblem("SecretsManager", f"secret/{sm.secret_id}",
                                            f"probes.database.secretsManager: {err}"))
                return None
        timed_out = DbProbeResult(host, port_number, db.database, credentials.username, ok=False,
                                  failure=ProbeFailure.TIMEOUT, detail=f"no answer within {db.timeout_seconds} s")
        secret_values.add(credentials.password)
        return await _within(port.database(host, port_number, db.database, credentials, db.tls, db.timeout_seconds,
                                           guard), db.timeout_seconds, timed_out)

    found_http, found_db = await asyncio.gather(http(), database())
    scrub = Scrubber(secret_values)
    if found_http is not None:
        found_http.body_head, found_http.detail = scrub.text(found_http.body_head), scrub.text(found_http.detail)
    if found_db is not None:
        found_db.detail = scrub.text(found_db.detail)
    return found_http, found_db


async def _within(call: Awaitable[T], seconds: float, timed_out: T) -> T:
    try:
        return await asyncio.wait_for(call, seconds + PROBE_GRACE)
    except asyncio.TimeoutError:
        return timed_out


def plain_log(lines: list[LogLine]) -> list[LogLine]:
    """``lines`` as plain text (``termtext``): a wrapped diagnostic is one line again, stamped like the
    event it starts at."""
    return [dataclasses.replace(lines[index], message=text)
            for index, text in plain_lines([line.message for line in lines])]
