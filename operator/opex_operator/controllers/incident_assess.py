"""The runbook's "Initial Assessment (5 minutes)", done in seconds: the Incident controller gathers
the facts of every targeted source, concurrently, through the Reader port.

Reads run in threads (boto3 blocks); a source that cannot be read becomes a ReadProblem (and
so a finding naming the denied action or the missing resource), never an exception.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any, Callable

from ..api.incident import IncidentSpec
from ..errors import AwsError
from ..ports import LockSource, Reader
from ..runbooks.diagnose import failure_context
from ..runbooks.facts import LogLine, Observations, ReadProblem
from ..termtext import plain, plain_lines
from ..terraform.locks import parse_lock_error

LOOKBACK = dt.timedelta(hours=1)  # "ERROR log events of the last hour"


async def assess(spec: IncidentSpec, reader: Reader, now: dt.datetime, drift_lock: LockSource | None = None) -> Observations:
    """Read everything ``spec.targets`` names; returns the observations (problems included)."""
    obs = Observations()
    t = spec.targets
    since = now - LOOKBACK

    async def read(source: str, resource: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except (AwsError, LookupError) as err:  # every failed read is a finding
            obs.problems.append(ReadProblem.of(source, resource, err))
            return None

    # The pipeline first: its failed action names the build to read.
    if t.pipeline is not None:
        obs.pipeline = await read("CodePipeline", f"pipeline/{t.pipeline.name}", reader.pipeline,
                                  t.pipeline.name, t.pipeline.execution_id)
    build_ids: list[str] = []
    action = obs.pipeline.failed_action if obs.pipeline else None
    if action and action.external_execution_id and ":" in action.external_execution_id:
        build_ids.append(action.external_execution_id)  # CodeBuild ids are "<project>:<uuid>"
    project = t.code_build.project if t.code_build else (build_ids[0].split(":")[0] if build_ids else None)

    async def builds() -> None:
        if project or build_ids:
            obs.builds = await read("CodeBuild", f"project/{project}", reader.builds, project, build_ids) or []
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
        if t.cloud_trail:
            obs.trail_source = f"logs:{t.cloud_trail.log_group_name}"
            obs.trail_events = await read("CloudTrail", obs.trail_source, reader.trail_errors_from_logs,
                                          t.cloud_trail.log_group_name, since) or []
        else:
            obs.trail_source = "cloudtrail:LookupEvents"
            obs.trail_events = await read("CloudTrail", obs.trail_source, reader.trail_errors_lookup, since) or []

    await asyncio.gather(builds(), lambdas(), api(), rds(), trail())
    # Logs become plain text here, once, before anything parses them.
    obs.build_log_lines = plain_log(obs.build_log_lines)
    for fn in obs.lambdas:
        fn.error_lines = [dataclasses.replace(line, message=plain(line.message)) for line in fn.error_lines]
    obs.lock_error = parse_lock_error("\n".join(failure_context(obs).lines))
    obs.terraform_lock = obs.lock_error.lock if obs.lock_error else None
    if obs.terraform_lock is None and t.drift_check_ref is not None and drift_lock is not None:
        obs.terraform_lock = await asyncio.to_thread(drift_lock, t.drift_check_ref.name)
    return obs


def plain_log(lines: list[LogLine]) -> list[LogLine]:
    """``lines`` as plain text (``termtext``): a wrapped diagnostic is one line again, stamped like the
    event it starts at."""
    return [dataclasses.replace(lines[index], message=text)
            for index, text in plain_lines([line.message for line in lines])]
