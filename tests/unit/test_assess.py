"""The assessment with a fake reader: what each target triggers, and reads that fail."""
from __future__ import annotations

import asyncio

from botocore.exceptions import ClientError

from support.builders import NOW, build, erroring_lambda, failed_pipeline, lines, spec
from opex_operator.aws.errors import translate
from opex_operator.controllers.incident_assess import assess
from test_lock_parse import BOXED


def client_error(code: str, message: str, operation: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       operation)


def aws_error(service: str, code: str, message: str, operation: str, status: int = 400):
    """What an adapter raises for this AWS answer (the client wrapper translates botocore's error)."""
    return translate(client_error(code, message, operation, status), service)


class FakeReader:
    def __init__(self, denied_lambda=False, log=()):
        self.calls = []
        self.denied_lambda, self.log = denied_lambda, list(log)

    def pipeline(self, name, execution_id):
        self.calls.append(("pipeline", name))
        return failed_pipeline()

    def builds(self, project, ids=()):
        self.calls.append(("builds", project, tuple(ids)))
        return [build("BUILD")]

    def stream_lines(self, group, stream):
        self.calls.append(("stream", group, stream))
        return lines(*self.log)

    def lambda_function(self, name, since):
        self.calls.append(("lambda", name))
        if self.denied_lambda:
            raise aws_error("lambda", "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/opex/op is not "
                               "authorized to perform: lambda:GetFunction on resource: checkout-api", "GetFunction", 403)
        return erroring_lambda(name)

    def trail_errors_lookup(self, since):
        raise aws_error("cloudtrail", "InternalFailure", "The lookup_events action has not been implemented",
                        "LookupEvents", 500)


def test_access_denied_becomes_a_finding_naming_the_denied_action():
    obs = asyncio.run(assess(spec(), FakeReader(denied_lambda=True), NOW))
    [denied] = [p for p in obs.problems if p.denied]
    assert denied.source == "Lambda" and denied.resource == "function/checkout-api"
    assert denied.message.startswith("AccessDeniedException on lambda:GetFunction: User: ")
    assert obs.lambdas == []


def test_the_failed_action_names_the_build_whose_log_is_read_and_parsed_for_a_lock():
    reader = FakeReader(log=BOXED.splitlines())
    obs = asyncio.run(assess(spec(), reader, NOW))
    assert ("builds", "checkout-deploy", ("checkout-deploy:b1",)) in reader.calls
    assert ("stream", "/aws/codebuild/checkout-deploy", "b1") in reader.calls
    assert obs.terraform_lock.id == "4cb1a7e2-7d4f-d2f1-0a6b-3f1c2e9d8b7a"


def test_cloudtrail_lookup_failure_is_a_problem_not_a_crash():
    obs = asyncio.run(assess(spec(), FakeReader(), NOW))
    [problem] = obs.problems
    assert problem.source == "CloudTrail" and "LookupEvents" in problem.message


def test_drift_check_lock_is_used_when_the_logs_show_none():
    from opex_operator.api.common import StateLock

    s = spec(targets={"lambda": {"functionNames": ["checkout-api"]}, "driftCheckRef": {"name": "net"},
                      "cloudTrail": {"logGroupName": "CloudTrail/x"}})

    class Reader(FakeReader):
        def trail_errors_from_logs(self, group, since):
            return []

    obs = asyncio.run(assess(s, Reader(), NOW, drift_lock=lambda name: StateLock(id=f"lock-of-{name}")))
    assert obs.terraform_lock.id == "lock-of-net"


def test_an_html_error_page_is_not_copied_into_a_finding():
    err = aws_error("cloudtrail", "500", "<!DOCTYPE HTML>\n<html><title>500 Internal Server Error</title></html>",
                    "LookupEvents", 500)
    assert err.describe() == ("500 on cloudtrail:LookupEvents: HTTP 500 without an AWS error body (the "
                                           "service, or an endpoint in front of it, failed)")


def test_logs_are_made_plain_once_at_the_assessment():
    esc = "\x1b"
    log = [f"{esc}[31m╷{esc}[0m", f"{esc}[31m│{esc}[0m {esc}[1m{esc}[31mError: {esc}[0m{esc}[1mError acquiring the "
           f"state lock{esc}[0m", f"{esc}[31m│{esc}[0m ", f"{esc}[31m│{esc}[0m Error message: 2 errors occurred:",
           f"{esc}[31m│{esc}[0m       * ConditionalCheckFailedException: The conditional request failed",
           f"{esc}[31m│{esc}[0m       * unexpected end of JSON input", f"{esc}[31m╵{esc}[0m"]
    obs = asyncio.run(assess(spec(), FakeReader(log=log), NOW))
    assert not any(esc in line.message or "│" in line.message for line in obs.build_log_lines)
    assert obs.lock_error is not None and obs.lock_error.lock is None and obs.terraform_lock is None


def test_cloudwatch_any_term_patterns_keep_quoted_phrases():
    from opex_operator.aws.reader import LAMBDA_ERROR_FILTER, REPORT_FILTER, any_terms

    assert {"Task timed out", "Status: timeout", "signal: killed", "ERROR"} <= set(any_terms(LAMBDA_ERROR_FILTER))
    assert any_terms(REPORT_FILTER) == ["REPORT", "platform.report"]
    assert any_terms('{ $.level = "ERROR" }') == []
