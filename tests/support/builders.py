"""Realistic test data built from AWS's documented response shapes (reduced to the fields used)."""
from __future__ import annotations

import dataclasses
import datetime as dt

from opex_operator.api.incident import IncidentSpec
from opex_operator.ports.facts import (ActionState, BuildFacts, BuildPhase, LambdaFacts, LambdaVersion, LogLine,
                                          Observations, PhaseContext, PipelineFacts, RdsFacts, SecurityGroupFacts,
                                          TrailEvent)

NOW = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.timezone.utc)
SHA1, SHA2, SHA3 = "wErUWPWtkxA1=", "79ocY+5tAUb2=", "Qm9vbXNoYTM="


def spec(**overrides) -> IncidentSpec:
    base = {"type": "DeploymentFailure", "severity": "high", "title": "checkout deploy failed",
            "environment": "production",
            "targets": {"pipeline": {"name": "checkout-pipeline"}, "lambda": {"functionNames": ["checkout-api"]}}}
    base.update(overrides)
    return IncidentSpec.model_validate(base)


def lines(*messages: str, group: str = "/aws/codebuild/checkout-deploy", stream: str = "b1") -> list[LogLine]:
    return [LogLine(time=NOW - dt.timedelta(minutes=10) + dt.timedelta(seconds=i), message=m, group=group,
                    stream=stream) for i, m in enumerate(messages)]


def failed_pipeline(stage: str = "Deploy", action: str = "DeployLambda", message: str = "Build terminated with "
                    "state: FAILED", build_id: str = "checkout-deploy:b1", latest: bool = True) -> PipelineFacts:
    return PipelineFacts(name="checkout-pipeline", execution_id="e-123", status="Failed", is_latest=latest,
                         failed_stage=stage, status_summary=f"{stage} failed",
                         failed_action=ActionState(stage=stage, action=action, status="Failed", error_code="JobFailed",
                                                   error_message=message, external_execution_id=build_id))


def build(phase: str, context: str = "Error while executing command", build_id: str = "checkout-deploy:b1",
          code: str = "COMMAND_EXECUTION_ERROR", status: str = "FAILED") -> BuildFacts:
    """A build that ended ``status`` in ``phase`` with one PhaseContext (CodeBuild BatchGetBuilds shape)."""
    order = ["DOWNLOAD_SOURCE", "INSTALL", "PRE_BUILD", "BUILD", "POST_BUILD"]
    phases = [BuildPhase(p, "SUCCEEDED") for p in order[: order.index(phase)]]
    phases.append(BuildPhase(phase, status, [PhaseContext(code, context)]))
    return BuildFacts(id=build_id, project=build_id.split(":")[0], status=status, phases=phases,
                      log_group="/aws/codebuild/checkout-deploy", log_stream="b1")


def codebuild_log(*commands: tuple[str, list[str], int]) -> list[str]:
    """A CodeBuild log: for each (command, output, exit status), the agent's lines around its output."""
    out = []
    for i, (command, output, status) in enumerate(commands):
        stamp = f"[Container] 2026/11/29 08:41:{i:02d}.123456"
        out += [f"{stamp} Running command {command}", *output]
        if status:
            out.append(f"{stamp} Command did not exit successfully {command} exit status {status}")
    return out


def healthy_lambda(name: str = "checkout-api", **kw) -> LambdaFacts:
    base = dict(name=name, state="Active", last_update_status="Successful", code_sha256=SHA2,
                versions=[LambdaVersion("1", SHA1), LambdaVersion("2", SHA2)])
    base.update(kw)
    return LambdaFacts(**base)


def request(i: int) -> str:
    return f"6f1c{i:04d}-aaaa-4bbb-8ccc-0123456789ab"


def report(version: str, i: int, minutes_ago: float, memory: int = 128, used: int = 61, status: str = "") -> LogLine:
    """A Lambda REPORT line (tab-separated, as Lambda writes it) in a log stream of ``version``."""
    message = (f"REPORT RequestId: {request(i)}\tDuration: 102.31 ms\tBilled Duration: 103 ms\t"
               f"Memory Size: {memory} MB\tMax Memory Used: {used} MB" + (f"\tStatus: {status}" if status else ""))
    return LogLine(time=NOW - dt.timedelta(minutes=minutes_ago), message=message, group="/aws/lambda/checkout-api",
                   stream=f"2026/11/29/[{version}]0a1b2c3d")


def lambda_errors(*messages: str, version: str = "2", start_minutes_ago: float = 20) -> list[LogLine]:
    """Error events in a log stream of ``version``, one a minute from ``start_minutes_ago``."""
    return [LogLine(time=NOW - dt.timedelta(minutes=start_minutes_ago - i), message=m, group="/aws/lambda/checkout-api",
                    stream=f"2026/11/29/[{version}]9f8e7d6c") for i, m in enumerate(messages)]


IMPORT_ERROR = "[ERROR] Runtime.ImportModuleError: Unable to import module 'app': No module named 'pg8000'"
# An error of the code itself (it loaded and ran): the release's fault only when the evidence ties it to the release.
CODE_ERROR = "[ERROR] KeyError: 'customer_id'"


def erroring_lambda(name: str = "checkout-api", count: int = 5, tied: bool = True,
                    message: str = IMPORT_ERROR) -> LambdaFacts:
    """Version 2 went live 30 minutes ago and fails with ``message``; with ``tied``, version 1 ran clean before it."""
    fn = healthy_lambda(name, last_modified=(NOW - dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
                        versions=[LambdaVersion("1", SHA1, "2026-11-20T10:00:00.000+0000"),
                                  LambdaVersion("2", SHA2, (NOW - dt.timedelta(minutes=30)).strftime(
                                      "%Y-%m-%dT%H:%M:%S.000+0000"))])
    fn.error_lines = [dataclasses.replace(line, group=f"/aws/lambda/{name}")
                      for line in lambda_errors(*[message] * count)]
    fn.reports = ([report("1", i, 55 - i) for i in range(6)] if tied else []) + [
        report("2", 100 + i, 20 - i) for i in range(count)]
    return fn


def observations(**kw) -> Observations:
    return Observations(**kw)


def denied_event() -> TrailEvent:
    return TrailEvent(time=NOW, event_name="UpdateFunctionCode20150331v2", event_source="lambda.amazonaws.com",
                      error_code="AccessDenied",
                      error_message="User: arn:aws:sts::123456789012:assumed-role/codebuild-role/b is not authorized "
                                    "to perform: lambda:UpdateFunctionCode on resource: checkout-api",
                      principal="arn:aws:sts::123456789012:assumed-role/codebuild-role/b")


def rds(status: str = "available") -> RdsFacts:
    return RdsFacts(instance_id="checkout-db", status=status, engine="postgres", endpoint="checkout-db.x", port=5432,
                    security_groups=[SecurityGroupFacts(id="sg-1", ingress_ports=["5432-5432/tcp from sg-2"])])


def assessed(pipeline=None, builds=(), log=(), lambdas=(), rds=None, **spec_overrides) -> Observations:
    """The Incident's assessment of these facts (raw logs made plain, the failed command's lock parsed)."""
    import asyncio

    from opex_operator.playbooks.assessment import assess

    targets = {}
    if pipeline is not None:
        targets["pipeline"] = {"name": pipeline.name}
    if builds:
        targets["codeBuild"] = {"project": builds[0].project}
    if lambdas:
        targets["lambda"] = {"functionNames": [f.name for f in lambdas]}
    if rds is not None:
        targets["rds"] = {"instanceId": rds.instance_id}
    from support.fakes import FakeReader

    reader = FakeReader(pipeline, builds, lines(*log), lambdas, rds=rds)
    return asyncio.run(assess(spec(targets=targets, **spec_overrides), reader, NOW))
