"""The assessment with a fake reader: what each target triggers, and reads that fail."""
from __future__ import annotations

import asyncio
import datetime as dt

from botocore.exceptions import ClientError

from support.builders import NOW, build, erroring_lambda, failed_pipeline, lines, spec
from opex_operator.aws.errors import translate
from opex_operator.playbooks.assessment import assess
from opex_operator.ports.facts import Execution
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

    def executions(self, name):
        self.calls.append(("executions", name))
        return [Execution("e-123", "Failed", None)]

    def pipeline(self, name, execution_id, recent=None):
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
    assert ("builds", None, ("checkout-deploy:b1",)) in reader.calls  # the build the failed action names
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


def test_identical_reads_of_a_storm_are_made_once_and_each_incident_gets_its_own_copy():
    from opex_operator.playbooks.assessment import SharedReads

    clock = [100.0]
    shared = SharedReads(clock=lambda: clock[0])
    reader = FakeReader()
    wrapped = shared.reader(reader, ("us-east-1", None))
    first = wrapped.lambda_function("checkout-api", NOW)
    second = wrapped.lambda_function("checkout-api", NOW + dt.timedelta(seconds=5))  # same 15 s quantum
    assert reader.calls.count(("lambda", "checkout-api")) == 1
    first.error_lines.clear()
    assert second.error_lines, "the copies share state"
    clock[0] += 11  # older than the sharing window: read again
    wrapped.lambda_function("checkout-api", NOW)
    assert reader.calls.count(("lambda", "checkout-api")) == 2


def test_a_shared_failure_reaches_every_caller_and_concurrent_reads_wait_for_the_first():
    import threading
    import time as _time

    from opex_operator.playbooks.assessment import SharedReads
    from opex_operator.errors import AwsError

    class Slow(FakeReader):
        def pipeline(self, name, execution_id, recent=None):
            self.calls.append(("pipeline", name))
            _time.sleep(0.05)
            raise aws_error("codepipeline", "AccessDeniedException", "denied", "GetPipelineState", 403)

    reader = Slow()
    wrapped = SharedReads().reader(reader, ("us-east-1", None))
    errors = []

    def call():
        try:
            wrapped.pipeline("checkout-pipeline", None)
        except AwsError as err:
            errors.append(err.denied)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [True] * 5 and reader.calls.count(("pipeline", "checkout-pipeline")) == 1
