"""AWS estates seeded into the in-process moto server: the demo's, and the e2e tests' scenarios.

Everything goes through boto3 (as a deployment would create it) except the failure states moto
cannot express, which ``moto_ext`` sets on its backend objects: a failed pipeline execution at a
stage/action, a FAILED CodeBuild build with its phases and log location, a failed Lambda update.
Call these in the process that runs the server, with boto3 pointed at it (fakeaws.aws_env).
"""
from __future__ import annotations

import datetime as dt
import io
import json
import time
import zipfile
from dataclasses import dataclass

import boto3

import moto_ext

ACCOUNT, REGION = "123456789012", "us-east-1"


def package(body: str) -> bytes:
    """A Lambda deployment package (zip) holding app.py."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", body)
    return buf.getvalue()


GOOD = package("def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n")


def role(name: str, service: str) -> str:
    """An IAM role that ``service`` (e.g. lambda.amazonaws.com) may assume; returns its ARN."""
    iam = boto3.client("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": service}}]})
    try:
        return iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return iam.get_role(RoleName=name)["Role"]["Arn"]


def put_logs(group: str, stream: str, lines: list[str], start_ms: int | None = None, step_ms: int = 1000,
             times_ms: list[int] | None = None) -> None:
    """``lines`` as the events of a stream (created when new), ``step_ms`` apart from ``start_ms``, or at
    ``times_ms`` (ascending)."""
    logs = boto3.client("logs")
    for create in (lambda: logs.create_log_group(logGroupName=group),
                   lambda: logs.create_log_stream(logGroupName=group, logStreamName=stream)):
        try:
            create()
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
    start = start_ms if start_ms is not None else int(time.time() * 1000) - len(lines) * step_ms - 60_000
    stamps = times_ms or [start + i * step_ms for i in range(len(lines))]
    logs.put_log_events(logGroupName=group, logStreamName=stream,
                        logEvents=[{"timestamp": t, "message": m} for t, m in zip(stamps, lines)])


IMPORT_ERROR = "[ERROR] Runtime.ImportModuleError: Unable to import module 'app': No module named 'pg8000'"


def invocation(version: int, i: int, error: str | None = None) -> list[str]:
    """One invocation's lines as Lambda logs them: START, the function's own (an error), END and REPORT."""
    request = f"6f1c{version:02d}{i:02d}-aaaa-4bbb-8ccc-0123456789ab"
    return [f"START RequestId: {request} Version: {version}", *([error] if error else []),
            f"END RequestId: {request}",
            f"REPORT RequestId: {request}\tDuration: 41.27 ms\tBilled Duration: 42 ms\tMemory Size: 128 MB\t"
            f"Max Memory Used: 61 MB"]


def lambda_with_versions(name: str, versions: int = 2, alias: str | None = None,
                         broken_latest: bool = True, error: str = IMPORT_ERROR) -> list[str]:
    """A function with ``versions`` published versions (each its own code); returns their CodeSha256.

    With ``broken_latest`` the previous version ran clean (six invocations, 55 to 35 minutes ago,
    in its own log stream) and the last version logs ``error`` on each of twelve invocations over
    the last half hour. ``alias`` points at the last version.
    """
    lam = boto3.client("lambda")
    shas = []
    for n in range(1, versions + 1):
        broken = broken_latest and n == versions
        code = package("import pg8000\n" if broken else f"def handler(e, c):\n    return {{'v': {n}}}\n")
        if n == 1:
            lam.create_function(FunctionName=name, Runtime="python3.12", Role=role(f"{name}-role", "lambda.amazonaws.com"),
                                Handler="app.handler", Code={"ZipFile": code}, Timeout=10,
                                Environment={"Variables": {"STAGE": "prod"}})
        else:
            lam.update_function_code(FunctionName=name, ZipFile=code)
        shas.append(lam.publish_version(FunctionName=name, Description=f"release {n}")["CodeSha256"])
    if alias:
        lam.create_alias(FunctionName=name, Name=alias, FunctionVersion=str(versions))
    if broken_latest:
        now = int(time.time() * 1000)
        if versions > 1:
            put_logs(f"/aws/lambda/{name}", f"2026/11/29/[{versions - 1}]c0ffee01",
                     [line for i in range(6) for line in invocation(versions - 1, i)],
                     start_ms=now - 55 * 60_000, step_ms=50_000)
        # spread over the last half hour, all in the past
        put_logs(f"/aws/lambda/{name}", f"2026/11/29/[{versions}]deadbeef",
                 [line for i in range(12) for line in invocation(versions, i, error)],
                 start_ms=now - 30 * 60_000, step_ms=35_000)
    return shas


def codebuild_project(name: str, service_role: str) -> None:
    boto3.client("codebuild").create_project(
        name=name, source={"type": "CODEPIPELINE", "location": f"{name}-source"}, artifacts={"type": "CODEPIPELINE", "location": f"{name}-artifacts"},
        environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0",
                     "computeType": "BUILD_GENERAL1_SMALL"}, serviceRole=service_role)


def failed_build(project: str, phase: str, context: str, log_lines: list[str]) -> str:
    """Start a build of ``project`` and make it FAILED in ``phase`` with ``log_lines`` in its log stream."""
    from moto.codebuild.models import codebuild_backends

    build_id = boto3.client("codebuild").start_build(projectName=project)["build"]["id"]
    order = ["SUBMITTED", "QUEUED", "PROVISIONING", "DOWNLOAD_SOURCE", "INSTALL", "PRE_BUILD", "BUILD",
             "POST_BUILD", "UPLOAD_ARTIFACTS", "FINALIZING", "COMPLETED"]
    phases = []
    for p in order[: order.index(phase) + 1]:
        failed = p == phase
        entry = {"phaseType": p, "phaseStatus": "FAILED" if failed else "SUCCEEDED", "durationInSeconds": 3}
        if failed:
            entry["contexts"] = [{"statusCode": "COMMAND_EXECUTION_ERROR", "message": context}]
        phases.append(entry)
    group, stream = f"/aws/codebuild/{project}", build_id.split(":")[1]
    put_logs(group, stream, log_lines)
    moto_ext.finish_build(codebuild_backends[ACCOUNT][REGION], build_id, "FAILED", phases, group, stream)
    return build_id


def pipeline(name: str, build_project: str, deploy_project: str, artifacts_bucket: str) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=artifacts_bucket)
    build = {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"}
    boto3.client("codepipeline").create_pipeline(pipeline={
        "name": name, "roleArn": role(f"{name}-role", "codepipeline.amazonaws.com"),
        "artifactStore": {"type": "S3", "location": artifacts_bucket},
        "stages": [
            {"name": "Source", "actions": [{"name": "Source", "actionTypeId": {
                "category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"S3Bucket": artifacts_bucket, "S3ObjectKey": "source.zip"},
                "outputArtifacts": [{"name": "src"}]}]},
            {"name": "Build", "actions": [{"name": "BuildAndTest", "actionTypeId": build,
                                           "configuration": {"ProjectName": build_project},
                                           "inputArtifacts": [{"name": "src"}], "outputArtifacts": [{"name": "out"}]}]},
            {"name": "Deploy", "actions": [{"name": "DeployLambda", "actionTypeId": build,
                                            "configuration": {"ProjectName": deploy_project},
                                            "inputArtifacts": [{"name": "out"}]}]},
        ]})


def fail_execution(name: str, stage: str, action: str, message: str, external_id: str | None) -> str:
    execution = boto3.client("codepipeline").start_pipeline_execution(name=name)["pipelineExecutionId"]
    moto_ext.fail_pipeline_execution(ACCOUNT, REGION, name, execution, stage, action, "JobFailed", message,
                                     external_execution_id=external_id)
    return execution


@dataclass
class DeploymentFailure:
    """Names and ids of the checkout deployment-failure scenario."""

    function: str
    pipeline: str
    deploy_project: str
    build_id: str
    execution_id: str
    shas: list[str]
    topic_arn: str
    queue_url: str


SMOKE_LOG = [
    "[Container] 2026/11/29 08:41:02 Entering phase BUILD",
    "[Container] 2026/11/29 08:41:02 Running command aws lambda update-function-code --function-name {fn} "
    "--zip-file fileb://dist/app.zip",
    "[Container] 2026/11/29 08:41:09 Running command aws lambda publish-version --function-name {fn}",
    "[Container] 2026/11/29 08:41:10 Entering phase POST_BUILD",
    "[Container] 2026/11/29 08:41:10 Running command ./scripts/smoke-test.sh https://api.example.com/prod/health",
    "smoke-test: GET /health -> 502 Bad Gateway (attempt 3/3)",
    "ERROR smoke test failed: /health returned 502 after 3 attempts",
    "[Container] 2026/11/29 08:41:41 Command did not exit successfully ./scripts/smoke-test.sh exit status 1",
    "[Container] 2026/11/29 08:41:41 Phase complete: POST_BUILD State: FAILED",
]


def deployment_failure(prefix: str = "checkout") -> DeploymentFailure:
    """The seed's deployment failure: a release of ``<prefix>-api`` breaks it, the pipeline's Deploy
    stage fails its smoke test, and on-call is paged through SNS (an SQS queue listens)."""
    fn = f"{prefix}-api"
    shas = lambda_with_versions(fn, versions=2)
    service_role = role(f"{prefix}-codebuild-role", "codebuild.amazonaws.com")
    codebuild_project(f"{prefix}-build", service_role)
    codebuild_project(f"{prefix}-deploy", service_role)
    build_id = failed_build(f"{prefix}-deploy", "POST_BUILD",
                            "Error while executing command: ./scripts/smoke-test.sh. Reason: exit status 1",
                            [line.format(fn=fn) for line in SMOKE_LOG])
    pipeline(f"{prefix}-pipeline", f"{prefix}-build", f"{prefix}-deploy", f"{prefix}-artifacts")
    execution = fail_execution(f"{prefix}-pipeline", "Deploy", "DeployLambda",
                               "Build terminated with state: FAILED. Phase: POST_BUILD, Code: COMMAND_EXECUTION_ERROR, "
                               "Message: Error while executing command: ./scripts/smoke-test.sh. Reason: exit status 1",
                               build_id)
    topic, queue = oncall_topic(f"{prefix}-oncall")
    put_logs("CloudTrail/management-events", f"{ACCOUNT}_CloudTrail_{REGION}", [json.dumps({
        "eventVersion": "1.09", "eventTime": "2026-11-29T08:41:05Z", "eventSource": "lambda.amazonaws.com",
        "eventName": "UpdateFunctionCode20150331v2", "awsRegion": REGION,
        "userIdentity": {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{prefix}-codebuild-role/b"}})])
    return DeploymentFailure(fn, f"{prefix}-pipeline", f"{prefix}-deploy", build_id, execution, shas, topic, queue)


# What Prisma (Node.js) logs when the database does not answer (its error P1001).
DATABASE_UNREACHABLE = ("ERROR\tInvoke Error\tPrismaClientInitializationError: Can't reach database server at "
                        "`orders-db.internal`:`5432`\n\nPlease make sure your database server is running at "
                        "`orders-db.internal`:`5432`.")


def database_unreachable(function: str = "orders-api") -> list[str]:
    """A release of ``function`` went live and every invocation since fails to reach its PostgreSQL
    database through Prisma (the previous version ran clean before it): evidence that ties the errors to the release,
    yet a code rollback cannot fix an unreachable database."""
    return lambda_with_versions(function, versions=2, error=DATABASE_UNREACHABLE)


NPM_TIMEOUT_LOG = [
    "[Container] 2026/11/29 07:12:03 Entering phase INSTALL",
    "[Container] 2026/11/29 07:12:03 Running command npm ci",
    "npm WARN deprecated inflight@1.0.6: This module is not supported",
    "npm ERR! code ETIMEDOUT",
    "npm ERR! errno ETIMEDOUT",
    "npm ERR! network request to https://registry.npmjs.org/express failed, reason: connect ETIMEDOUT 104.16.2.35:443",
    "npm ERR! network This is a problem related to network connectivity.",
    "[Container] 2026/11/29 07:14:09 Command did not exit successfully npm ci exit status 1",
    "[Container] 2026/11/29 07:14:09 Phase complete: INSTALL State: FAILED",
]


@dataclass
class PipelineFailure:
    pipeline: str
    build_id: str
    execution_id: str


def pipeline_failure(prefix: str = "orders") -> PipelineFailure:
    """The seed's pipeline failure: the Build stage's install step times out reaching the npm registry."""
    service_role = role(f"{prefix}-codebuild-role", "codebuild.amazonaws.com")
    codebuild_project(f"{prefix}-build", service_role)
    codebuild_project(f"{prefix}-deploy", service_role)
    build_id = failed_build(f"{prefix}-build", "INSTALL", "Error while executing command: npm ci. Reason: exit status 1",
                            NPM_TIMEOUT_LOG)
    pipeline(f"{prefix}-pipeline", f"{prefix}-build", f"{prefix}-deploy", f"{prefix}-artifacts")
    execution = fail_execution(f"{prefix}-pipeline", "Build", "BuildAndTest",
                               "Build terminated with state: FAILED. Phase: INSTALL, Code: COMMAND_EXECUTION_ERROR",
                               build_id)
    return PipelineFailure(f"{prefix}-pipeline", build_id, execution)


def terraform_deploy_failure(prefix: str, terraform_output: list[str]) -> PipelineFailure:
    """The Deploy stage's ``terraform apply`` failed, printing ``terraform_output`` in the build log."""
    service_role = role(f"{prefix}-codebuild-role", "codebuild.amazonaws.com")
    codebuild_project(f"{prefix}-build", service_role)
    codebuild_project(f"{prefix}-deploy", service_role)
    log = ["[Container] 2026/11/29 09:12:03 Running command terraform apply -auto-approve -input=false",
           *terraform_output,
           "[Container] 2026/11/29 09:12:40 Command did not exit successfully terraform apply exit status 1"]
    build_id = failed_build(f"{prefix}-deploy", "BUILD", "Error while executing command: terraform apply "
                            "-auto-approve -input=false. Reason: exit status 1", log)
    pipeline(f"{prefix}-pipeline", f"{prefix}-build", f"{prefix}-deploy", f"{prefix}-artifacts")
    execution = fail_execution(f"{prefix}-pipeline", "Deploy", "DeployLambda",
                               "Build terminated with state: FAILED. Phase: BUILD", build_id)
    return PipelineFailure(f"{prefix}-pipeline", build_id, execution)


def lock_error(lock: dict) -> list[str]:
    """Terraform 1.x's boxed "Error acquiring the state lock" for ``lock`` (LockInfo fields)."""
    return ["Acquiring state lock. This may take a few moments...",
            "╷", "│ Error: Error acquiring the state lock", "│ ",
            "│ Error message: operation error S3: PutObject, https response error StatusCode:",
            "│ 412, api error PreconditionFailed: At least one of the pre-conditions you",
            "│ specified did not hold",
            "│ Lock Info:",
            f"│   ID:        {lock['ID']}", f"│   Path:      {lock['Path']}", f"│   Operation: {lock['Operation']}",
            f"│   Who:       {lock['Who']}", f"│   Version:   {lock['Version']}",
            f"│   Created:   {lock['Created']}", "│   Info:      ", "│ ",
            "│ Terraform acquires a state lock to protect the state from being written",
            "│ by multiple users at the same time.", "╵"]


def already_exists_error(address: str, name: str) -> list[str]:
    """The AWS provider's error when ``address`` would create an IAM role that already exists."""
    kind, label = address.split(".")[0], address.split(".")[1]
    return ["╷",
            f"│ Error: creating IAM Role ({name}): operation error IAM: CreateRole, https response error "
            f"StatusCode: 409, RequestID: 5c2b, EntityAlreadyExists: Role with name {name} already exists.",
            "│ ", f"│   with {address},", f'│   on main.tf line 30, in resource "{kind}" "{label}":',
            f'│   30: resource "{kind}" "{label}" {{', "╵"]


def oncall_topic(name: str) -> tuple[str, str]:
    """An SNS topic with an SQS queue subscribed (raw delivery off, so attributes stay in the body)."""
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, queue_url


@dataclass
class StaticSite:
    bucket: str
    backup_prefix: str
    distribution_id: str
    backup: dict[str, bytes]       # key under backup_prefix -> content
    changed: list[str]             # live keys that differ from the backup
    extra: list[str]               # live keys absent from the backup


def static_site(bucket: str = "www-checkout", objects: int = 12, changed: int = 4, extra: int = 2,
                backup_prefix: str = "backups/2026-11-28/", distribution_id: str | None = None) -> StaticSite:
    """A static site whose last deploy broke it: ``changed`` files differ from the backup of the last
    good release and ``extra`` files were added; a CloudFront distribution serves the bucket (moto
    picks its id at random; ``distribution_id`` renames it, so an example can name it)."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    names = ["index.html", "app.js", "styles.css"] + [f"assets/img-{i:04d}.png" for i in range(objects - 3)]
    backup = {name: f"good release: {name}\n".encode() * 3 for name in names}
    for name, body in backup.items():
        s3.put_object(Bucket=bucket, Key=backup_prefix + name, Body=body)
        s3.put_object(Bucket=bucket, Key=name, Body=body)
    broken = names[:changed]
    for name in broken:
        s3.put_object(Bucket=bucket, Key=name, Body=f"broken release: {name}\n".encode())
    added = [f"assets/new-{i}.js" for i in range(extra)]
    for name in added:
        s3.put_object(Bucket=bucket, Key=name, Body=b"only in the broken release")
    distribution = boto3.client("cloudfront").create_distribution(DistributionConfig={
        "CallerReference": f"{bucket}-cdn", "Comment": bucket, "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "site", "DomainName": f"{bucket}.s3.amazonaws.com",
                                               "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "site", "ViewerProtocolPolicy": "redirect-to-https",
                                 "MinTTL": 0, "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                                 "TrustedSigners": {"Enabled": False, "Quantity": 0}}})["Distribution"]["Id"]
    if distribution_id:
        from moto.cloudfront.models import cloudfront_backends

        backend = cloudfront_backends[ACCOUNT]["aws"]
        dist = backend.distributions.pop(distribution)
        dist.distribution_id = dist.id = distribution_id
        backend.distributions[distribution_id] = dist
        distribution = distribution_id
    return StaticSite(bucket, backup_prefix, distribution, backup, broken, added)


def lambda_error_metrics(function: str, errors: list[float], invocations: float = 20.0) -> None:
    """CloudWatch ``AWS/Lambda`` Errors and Invocations of ``function``, one datapoint a minute ending
    a minute ago (moto keeps only the metric data put into it; AWS would record these itself)."""
    now = dt.datetime.now(dt.timezone.utc)
    dimensions = [{"Name": "FunctionName", "Value": function}]
    data = []
    for i, count in enumerate(reversed(errors), start=1):
        stamp = now - dt.timedelta(minutes=i)
        data += [{"MetricName": "Errors", "Dimensions": dimensions, "Timestamp": stamp, "Value": count, "Unit": "Count"},
                 {"MetricName": "Invocations", "Dimensions": dimensions, "Timestamp": stamp, "Value": invocations,
                  "Unit": "Count"}]
    boto3.client("cloudwatch").put_metric_data(Namespace="AWS/Lambda", MetricData=data)


def seed_demo() -> None:
    """The demo's estate: the checkout deployment failure, its static site, the Terraform state bucket,
    the leaked CI key of the security incident (with the ids examples/incident-security.yaml names), the
    leaked deploy key that made itself at home (examples/incident-security-persistence.yaml),
    orders-api, whose release cannot reach its database (CloudWatch counts its errors), and the event
    intake's side: examples/aws/opex-events.yaml's rules and queues, the orders pipeline whose Build
    stage failed (npm cannot reach its registry) and invoice-api, whose release fails to import (the
    demo publishes their events as AWS would)."""
    import estate_events
    import estate_security

    deployment_failure("checkout")
    estate_security.security_incident(pinned=True, pipeline=None)
    estate_security.persistence()
    static_site("www-checkout", distribution_id="E2CHECKOUTCDN")
    boto3.client("s3").create_bucket(Bucket="opex-tfstate")
    database_unreachable("orders-api")
    lambda_error_metrics("orders-api", [0, 0, 4, 9, 12])
    estate_events.deploy()
    pipeline_failure("orders")
    lambda_with_versions("invoice-api", versions=2)
