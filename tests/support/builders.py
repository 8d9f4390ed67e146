"""Realistic test data built from AWS's documented response shapes (reduced to the fields used)."""
from __future__ import annotations

import datetime as dt

from opex_operator.api.incident import IncidentSpec
from opex_operator.runbooks.facts import (ActionState, BuildFacts, BuildPhase, LambdaFacts, LambdaVersion, LogLine,
                                          Observations, PipelineFacts, RdsFacts, SecurityGroupFacts, TrailEvent)

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


def build(phase: str, context: str = "Error while executing command", build_id: str = "checkout-deploy:b1") -> BuildFacts:
    order = ["INSTALL", "PRE_BUILD", "BUILD", "POST_BUILD"]
    phases = [BuildPhase(p, "SUCCEEDED") for p in order[: order.index(phase)]]
    phases.append(BuildPhase(phase, "FAILED", [context]))
    return BuildFacts(id=build_id, project=build_id.split(":")[0], status="FAILED", phases=phases,
                      log_group="/aws/codebuild/checkout-deploy", log_stream="b1")


def healthy_lambda(name: str = "checkout-api", **kw) -> LambdaFacts:
    base = dict(name=name, state="Active", last_update_status="Successful", code_sha256=SHA2,
                versions=[LambdaVersion("1", SHA1), LambdaVersion("2", SHA2)])
    base.update(kw)
    return LambdaFacts(**base)


def erroring_lambda(name: str = "checkout-api", count: int = 5) -> LambdaFacts:
    fn = healthy_lambda(name)
    fn.error_lines = lines(*["[ERROR] Runtime.ImportModuleError: Unable to import module 'app': No module named "
                             "'pg8000'"] * count, group=f"/aws/lambda/{name}")
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
