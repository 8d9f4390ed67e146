"""The AWS adapters against moto's server (real boto3 over HTTP), on the seeded estates."""
from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest

import estate
from helpers import webhook_server
from opex_operator import metrics
from opex_operator.aws.clients import AssumeRole, AwsClients
from opex_operator.aws.lambda_ import LambdaActions
from opex_operator.aws.pipeline import PipelineActions
from opex_operator.aws.reader import AwsReader
from opex_operator.errors import AwsError
from opex_operator.notify.senders import SnsSender, post_webhook
from opex_operator.ports.facts import ReadProblem

NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture
def clients(aws):
    return AwsClients("us-east-1")


@pytest.fixture
def checkout(aws):
    return estate.deployment_failure("checkout")


def test_pipeline_facts_name_the_failed_stage_action_and_build(clients, checkout):
    facts = AwsReader(clients, None, None).pipeline("checkout-pipeline", None)
    assert (facts.execution_id, facts.status, facts.is_latest) == (checkout.execution_id, "Failed", True)
    assert (facts.failed_stage, facts.failed_action.action) == ("Deploy", "DeployLambda")
    assert facts.failed_action.external_execution_id == checkout.build_id
    assert facts.failed_action.error_code == "JobFailed"


def test_executions_are_the_newest_first_and_the_pipeline_read_given_them_asks_no_list_again(clients, checkout):
    def listed():
        return metrics.REGISTRY.get_sample_value("opex_aws_api_calls_total", {
            "service": "codepipeline", "operation": "ListPipelineExecutions", "outcome": "success"}) or 0

    reader = AwsReader(clients, None, None)
    (newest, *_) = recent = reader.executions("checkout-pipeline")
    assert (newest.id, newest.status) == (checkout.execution_id, "Failed") and newest.started_at is not None
    before = listed()
    facts = reader.pipeline("checkout-pipeline", None, recent)
    assert listed() == before > 0
    assert (facts.execution_id, facts.started_at, facts.is_latest) == (newest.id, newest.started_at, True)


def test_builds_newest_first_with_phases_and_log(clients, checkout):
    reader = AwsReader(clients, None, None)
    [b] = reader.builds("checkout-deploy")
    assert b.status == "FAILED" and b.failed_phase.phase_type == "POST_BUILD"
    context = b.failed_phase.contexts[0]
    assert context.status_code == "COMMAND_EXECUTION_ERROR" and "smoke-test.sh" in context.message
    lines = reader.stream_lines(b.log_group, b.log_stream)
    assert any("ERROR smoke test failed" in line.message for line in lines)


def test_lambda_facts_versions_error_lines_and_invocations(clients, checkout):
    fn = AwsReader(clients, None, None).lambda_function("checkout-api", NOW - dt.timedelta(hours=1))
    assert [v.version for v in fn.versions] == ["1", "2"]
    assert fn.current_version == "2" and fn.previous_version.version == "1"
    assert len(fn.error_lines) == 12 and all("[ERROR]" in line.message for line in fn.error_lines)
    assert all(line.stream == "2026/11/29/[2]deadbeef" for line in fn.error_lines)
    assert sorted({r.stream for r in fn.reports}) == ["2026/11/29/[1]c0ffee01", "2026/11/29/[2]deadbeef"]
    assert len(fn.reports) == 18 and all(r.message.startswith("REPORT RequestId: ") for r in fn.reports)


def test_the_lambda_log_filter_keeps_timeouts_and_out_of_memory_lines(clients, aws):
    estate.lambda_with_versions("slow-api", versions=1, broken_latest=False)
    estate.put_logs("/aws/lambda/slow-api", "2026/11/29/[1]0b0e", [
        "START RequestId: 0b0e0001-aaaa-4bbb-8ccc-0123456789ab Version: 1",
        "2026-11-29T08:50:06.123Z 0b0e0001-aaaa-4bbb-8ccc-0123456789ab Task timed out after 6.00 seconds",
        "END RequestId: 0b0e0001-aaaa-4bbb-8ccc-0123456789ab",
        "REPORT RequestId: 0b0e0001-aaaa-4bbb-8ccc-0123456789ab\tDuration: 6000.00 ms\tBilled Duration: 6000 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 70 MB\tStatus: timeout",
        "RequestId: 0b0e0002-aaaa-4bbb-8ccc-0123456789ab Error: Runtime exited with error: signal: killed",
        "INFO handled order 41"])
    fn = AwsReader(clients, None, None).lambda_function("slow-api", NOW - dt.timedelta(hours=1))
    kept = [line.message for line in fn.error_lines]
    assert any("Task timed out after 6.00 seconds" in m for m in kept)
    assert any("Status: timeout" in m for m in kept) and any("signal: killed" in m for m in kept)
    assert not any("handled order" in m for m in kept)
    assert [r.message.split("\t")[-1] for r in fn.reports] == ["Status: timeout"]


def test_missing_function_is_not_found(clients, aws):
    with pytest.raises(AwsError) as err:
        AwsReader(clients, None, None).lambda_function("ghost", NOW)
    problem = ReadProblem.of("Lambda", "function/ghost", err.value)
    assert problem.not_found and "lambda:GetFunction" in problem.message


def test_rds_instance_and_its_security_groups(clients, aws):
    ec2, rds = boto3.client("ec2"), boto3.client("rds")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    sg = ec2.create_security_group(GroupName="db", Description="db", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}])
    rds.create_db_instance(DBInstanceIdentifier="checkout-db", DBInstanceClass="db.t3.micro", Engine="postgres",
                           MasterUsername="app", MasterUserPassword="not-a-secret-1", VpcSecurityGroupIds=[sg])
    facts = AwsReader(clients, None, None).rds("checkout-db")
    assert facts.status == "available" and facts.engine == "postgres"
    assert facts.security_groups[0].ingress_ports == ["5432-5432/tcp from 10.0.0.0/16"]


def test_api_gateway_stages(clients, aws):
    api = boto3.client("apigateway")
    rest = api.create_rest_api(name="checkout")["id"]
    root = api.get_resources(restApiId=rest)["items"][0]["id"]
    api.put_method(restApiId=rest, resourceId=root, httpMethod="GET", authorizationType="NONE")
    api.put_integration(restApiId=rest, resourceId=root, httpMethod="GET", type="MOCK")
    deployment = api.create_deployment(restApiId=rest, stageName="prod")["id"]
    [stage] = AwsReader(clients, None, None).api_stages(rest)
    assert (stage.name, stage.deployment_id) == ("prod", deployment)


def test_cloudtrail_records_from_the_log_group_keep_only_errors(clients, aws):
    record = {"eventTime": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), "eventSource": "iam.amazonaws.com",
              "eventName": "PassRole", "errorCode": "AccessDenied", "errorMessage": "not authorized",
              "userIdentity": {"arn": "arn:aws:sts::123456789012:assumed-role/cb/b"}}
    estate.put_logs("CloudTrail/mgmt", "s", [json.dumps(record), json.dumps({**record, "errorCode": None}),
                                             "not json"])
    [event] = AwsReader(clients, None, None).trail_errors_from_logs("CloudTrail/mgmt", NOW - dt.timedelta(hours=1))
    assert (event.event_name, event.error_code, event.principal) == (
        "PassRole", "AccessDenied", "arn:aws:sts::123456789012:assumed-role/cb/b")


def test_restore_code_from_a_version_downloads_its_package(clients, checkout):
    lam = LambdaActions(clients, None, None)
    assert lam.current("checkout-api").code_sha256 == checkout.shas[1]
    lam.restore_code_from_version("checkout-api", "1")
    state = lam.current("checkout-api")
    assert state.code_sha256 == checkout.shas[0] and state.settled


def test_alias_and_environment(clients, aws):
    estate.lambda_with_versions("search-api", versions=3, alias="live", broken_latest=False)
    lam = LambdaActions(clients, None, None)
    lam.point_alias("search-api", "live", "2")
    assert lam.current("search-api", "live").version == "2"
    current = lam.current("search-api").environment
    lam.set_environment("search-api", {"POOL": "5"}, current)
    assert lam.current("search-api").environment == {"STAGE": "prod", "POOL": "5"}


def test_retry_of_the_failed_stage(clients, checkout):
    actions = PipelineActions(clients, None, None)
    assert actions.stage_status("checkout-pipeline", "Deploy", checkout.execution_id) == "Failed"
    actions.retry_stage("checkout-pipeline", "Deploy", checkout.execution_id)
    assert actions.stage_status("checkout-pipeline", "Deploy", checkout.execution_id) == "Succeeded"
    assert actions.execution_status("checkout-pipeline", checkout.execution_id) == "Succeeded"
    with pytest.raises(AwsError, match="StageNotRetryableException on codepipeline:RetryStageExecution"):
        actions.retry_stage("checkout-pipeline", "Deploy", checkout.execution_id)


def test_sns_page_carries_message_attributes(clients, aws):
    topic, queue = estate.oncall_topic("payments-oncall")
    message_id = SnsSender(clients.client("sns")).publish(topic, "[HIGH] L1 x", "body", {"severity": "high", "level": "1"})
    [msg] = boto3.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    body = json.loads(msg["Body"])
    assert body["MessageId"] == message_id and body["Subject"] == "[HIGH] L1 x"
    assert {k: v["Value"] for k, v in body["MessageAttributes"].items()} == {"severity": "high", "level": "1"}


def test_webhook_posts_json_and_hides_its_url_on_failure():
    with webhook_server(lambda payload: 500 if payload.get("fail") else 204) as (base, received):
        url = f"{base}/hooks/secret-token"
        assert post_webhook(url, {"incident": "x"}) == 204
        with pytest.raises(RuntimeError) as err:
            post_webhook(url, {"fail": True})
        assert "secret-token" not in str(err.value) and "HTTP 500" in str(err.value)
        with pytest.raises(RuntimeError, match="unreachable"):
            post_webhook("http://127.0.0.1:9/hooks/secret-token", {}, timeout=2)
    assert received[0] == ("/hooks/secret-token", {"incident": "x"})


def test_every_api_call_is_counted_by_outcome(clients, checkout):
    def count(outcome):
        return metrics.REGISTRY.get_sample_value("opex_aws_api_calls_total", {
            "service": "lambda", "operation": "GetFunction", "outcome": outcome}) or 0

    ok, missing = count("success"), count("not_found")
    lam = clients.client("lambda")
    lam.get_function(FunctionName="checkout-api")
    with pytest.raises(AwsError) as err:
        lam.get_function(FunctionName="ghost")
    assert err.value.not_found and err.value.action == "lambda:GetFunction"
    assert (count("success"), count("not_found")) == (ok + 1, missing + 1)


def test_assumed_role_session_reaches_aws(aws):
    role_arn = estate.role("opex-deployer", "lambda.amazonaws.com")
    clients = AwsClients("us-east-1", {"deployer": AssumeRole(role_arn=role_arn)})
    identity = clients.client("sts", role_key="deployer").get_caller_identity()
    assert ":assumed-role/opex-deployer/opex-operator" in identity["Arn"]
    with pytest.raises(KeyError, match="not defined in the operator policy"):
        clients.client("lambda", role_key="nobody")


def test_throttling_is_retried_by_botocore_then_succeeds(clients, checkout, monkeypatch):
    from moto.codepipeline.responses import CodePipelineResponse
    from moto.core.exceptions import JsonRESTError

    original = CodePipelineResponse.get_pipeline_state
    attempts = []

    def throttled(self):
        attempts.append(1)
        if len(attempts) <= 2:
            raise JsonRESTError("ThrottlingException", "Rate exceeded")
        return original(self)

    monkeypatch.setattr(CodePipelineResponse, "get_pipeline_state", throttled)
    facts = AwsReader(clients, None, None).pipeline("checkout-pipeline", None)
    assert facts.failed_stage == "Deploy" and len(attempts) == 3


def test_a_paginated_listing_that_fails_raises_the_project_error(clients, aws):
    with pytest.raises(AwsError) as err:
        list(clients.client("s3").get_paginator("list_objects_v2").paginate(Bucket="no-such-bucket"))
    assert err.value.not_found and err.value.action == "s3:ListObjectsV2"


def test_no_answer_is_a_transient_network_error(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(AwsError) as err:
        AwsClients("us-east-1").client("lambda").list_functions()
    assert err.value.transient and err.value.network and not err.value.code


def test_a_restored_multipart_object_is_not_copied_again(clients, aws):
    """boto3's managed copy goes multipart from 8 MB, so the restored object's ETag ("...-2") differs from
    the backup's; the comparison still sees it restored (metadata the copy wrote) and keeps its headers."""
    from opex_operator.aws.site import RESTORED_FROM, SiteActions
    from opex_operator.runbooks.rollback import restore_plan

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="www-big")
    nine_mb = 9 * 1024 * 1024
    s3.put_object(Bucket="www-big", Key="backups/1/video.mp4", Body=b"g" * nine_mb, ContentType="video/mp4",
                  CacheControl="max-age=600", Metadata={"release": "41"})
    s3.put_object(Bucket="www-big", Key="backups/1/index.html", Body=b"<p>good</p>", ContentType="text/html")
    s3.put_object(Bucket="www-big", Key="video.mp4", Body=b"b" * nine_mb, ContentType="video/mp4")
    s3.put_object(Bucket="www-big", Key="index.html", Body=b"<p>broken</p>", ContentType="text/html")
    site = SiteActions(clients, None, None)

    def plan():
        backup, live = site.listing("www-big", "backups/1/"), site.listing("www-big", "", "backups/")
        return restore_plan(backup, "backups/1/", live, "")

    to_copy, unchanged, _ = plan()
    assert sorted(to_copy) == ["index.html", "video.mp4"] and unchanged == []
    for target, source in to_copy.items():
        site.copy("www-big", source, "www-big", target)
    restored = s3.head_object(Bucket="www-big", Key="video.mp4")
    backup = s3.head_object(Bucket="www-big", Key="backups/1/video.mp4")
    assert "-" in restored["ETag"] and restored["ETag"] != backup["ETag"]  # the copy went multipart
    assert restored["Metadata"] == {"release": "41", RESTORED_FROM: backup["ETag"].strip('"')}
    assert (restored["ContentType"], restored["CacheControl"]) == ("video/mp4", "max-age=600")
    to_copy, unchanged, _ = plan()
    assert to_copy == {} and sorted(unchanged) == ["index.html", "video.mp4"]


def s3_calls() -> dict[str, float]:
    """S3 requests the operator's clients sent so far, by operation (every attempt)."""
    return {sample.labels["operation"]: sample.value for family in metrics.REGISTRY.collect()
            if family.name == "opex_aws_api_calls" for sample in family.samples
            if sample.name == "opex_aws_api_calls_total" and sample.labels["service"] == "s3"}


def calls_since(before: dict[str, float]) -> dict[str, float]:
    return {op: n - before.get(op, 0) for op, n in s3_calls().items() if n != before.get(op, 0)}


def test_a_small_object_is_restored_with_one_copy_object_keeping_its_etag_headers_and_metadata(clients, aws):
    """Below 8 MB: HeadObject of the backup, then one CopyObject, and the restored object has the
    backup's ETag (a one-part copy), content headers and metadata; a large one still goes multipart."""
    from opex_operator.aws.site import MULTIPART_THRESHOLD, RESTORED_FROM, SiteActions
    from opex_operator.runbooks.rollback import restore_plan

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="www-small")
    headers = {"ContentType": "text/html; charset=utf-8", "CacheControl": "max-age=60", "ContentLanguage": "en",
               "ContentDisposition": "inline", "ContentEncoding": "identity"}
    s3.put_object(Bucket="www-small", Key="backups/1/index.html", Body=b"<p>good</p>", Metadata={"release": "41"},
                  **headers)
    s3.put_object(Bucket="www-small", Key="backups/1/big.bin", Body=b"g" * MULTIPART_THRESHOLD)
    s3.put_object(Bucket="www-small", Key="index.html", Body=b"<p>bad</p>", ContentType="text/plain")
    site = SiteActions(clients, None, None)

    before = s3_calls()
    site.copy("www-small", "backups/1/index.html", "www-small", "index.html")
    assert calls_since(before) == {"HeadObject": 1, "CopyObject": 1}
    restored = s3.head_object(Bucket="www-small", Key="index.html")
    backup = s3.head_object(Bucket="www-small", Key="backups/1/index.html")
    assert restored["ETag"] == backup["ETag"]
    assert {name: restored.get(name) for name in headers} == headers
    assert restored["Metadata"] == {"release": "41", RESTORED_FROM: backup["ETag"].strip('"')}
    assert s3.get_object(Bucket="www-small", Key="index.html")["Body"].read() == b"<p>good</p>"

    before = s3_calls()
    site.copy("www-small", "backups/1/big.bin", "www-small", "big.bin")  # exactly the threshold: multipart
    calls = calls_since(before)
    assert calls.get("UploadPartCopy", 0) >= 1 and "CopyObject" not in calls
    assert s3.get_object(Bucket="www-small", Key="big.bin")["Body"].read() == b"g" * MULTIPART_THRESHOLD
    to_copy, unchanged, _ = restore_plan(site.listing("www-small", "backups/1/"), "backups/1/",
                                         site.listing("www-small", "", "backups/"), "")
    assert to_copy == {} and sorted(unchanged) == ["big.bin", "index.html"]


def test_a_live_object_changed_after_its_restore_is_copied_again(clients, aws):
    from opex_operator.aws.site import SiteActions
    from opex_operator.runbooks.rollback import restore_plan

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="www-again")
    s3.put_object(Bucket="www-again", Key="backups/1/app.js", Body=b"a" * (9 * 1024 * 1024))
    s3.put_object(Bucket="www-again", Key="app.js", Body=b"b")
    site = SiteActions(clients, None, None)
    site.copy("www-again", "backups/1/app.js", "www-again", "app.js")
    s3.put_object(Bucket="www-again", Key="app.js", Body=b"c" * (9 * 1024 * 1024))  # a new deploy, same size
    to_copy, _, _ = restore_plan(site.listing("www-again", "backups/1/"), "backups/1/",
                                 site.listing("www-again", "", "backups/"), "")
    assert to_copy == {"app.js": "backups/1/app.js"}


def test_a_stalled_endpoint_sees_one_mutating_request_and_metrics_count_every_attempt(monkeypatch):
    """UpdateFunctionCode against an endpoint that never answers: one request reaches it (botocore
    would otherwise retry after each read timeout), and /metrics counts attempts, not calls: a
    read on the same endpoint is retried, and each of its attempts is counted."""
    import socket
    import threading

    from opex_operator import metrics
    from opex_operator.aws import clients as aws_clients
    from opex_operator.aws.clients import AwsClients
    from opex_operator.errors import AwsError

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setattr(aws_clients, "READ_TIMEOUT", 1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    def attempts(operation: str) -> float:
        return metrics.REGISTRY.get_sample_value("opex_aws_api_calls_total", {
            "service": "lambda", "operation": operation, "outcome": "network_error"}) or 0.0

    lam = AwsClients("us-east-1").client("lambda")
    before = attempts("UpdateFunctionCode")
    try:
        with pytest.raises(AwsError):
            lam.update_function_code(FunctionName="checkout", ZipFile=b"PK")
        assert len(held) == 1, f"the stalled endpoint saw {len(held)} UpdateFunctionCode requests"
        assert attempts("UpdateFunctionCode") == before + 1
        reads = attempts("GetFunction")
        with pytest.raises(AwsError):
            lam.get_function(FunctionName="checkout")
        assert len(held) > 2 and attempts("GetFunction") == reads + len(held) - 1
    finally:
        server.close()
        for s in held:
            s.close()
