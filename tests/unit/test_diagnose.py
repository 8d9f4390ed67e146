"""Root-cause classification on realistic assessment data, one case per runbook category."""
from __future__ import annotations

import pytest

from support.builders import (NOW, build, denied_event, erroring_lambda, failed_pipeline, healthy_lambda, lines,
                       observations, rds)
from opex_operator.api.incident import RootCauseCategory as Cat
from opex_operator.runbooks.diagnose import MAX_EVIDENCE, classify, error_lines, findings
from opex_operator.terraform.locks import parse_state_lock
from test_lock_parse import BOXED


def diagnose(obs):
    d = findings(obs)
    return classify(obs, d, NOW), d


CASES = [
    ("terraform lock in the deploy log", dict(pipeline=failed_pipeline(), builds=[build("BUILD")],
                                              build_log_lines=lines(*BOXED.splitlines()),
                                              terraform_lock=parse_state_lock(BOXED)),
     Cat.TERRAFORM_STATE_LOCK, "4cb1a7e2-7d4f-d2f1-0a6b-3f1c2e9d8b7a"),
    ("AccessDenied in CloudTrail", dict(pipeline=failed_pipeline(), builds=[build("BUILD")],
                                        trail_events=[denied_event()]),
     Cat.DEPLOY_PERMISSION_DENIED, "lambda:UpdateFunctionCode20150331v2 denied"),
    ("not authorized in the build log", dict(pipeline=failed_pipeline(), builds=[build("BUILD")], build_log_lines=lines(
        "An error occurred (AccessDeniedException) when calling the UpdateFunctionCode operation: User: arn:aws:sts::1:"
        "assumed-role/cb/b is not authorized to perform: lambda:UpdateFunctionCode on resource: checkout-api")),
     Cat.DEPLOY_PERMISSION_DENIED, "lambda:UpdateFunctionCode denied"),
    ("failed Lambda update", dict(lambdas=[healthy_lambda(last_update_status="Failed",
                                                          last_update_reason="The runtime python3.7 is deprecated")]),
     Cat.LAMBDA_DEPLOYMENT, "python3.7 is deprecated"),
    ("terraform validate error", dict(pipeline=failed_pipeline(), builds=[build("BUILD")], build_log_lines=lines(
        "│ Error: Unsupported argument", "│   on main.tf line 12, in resource \"aws_lambda_function\" \"api\":")),
     Cat.TERRAFORM_VALIDATION, "Unsupported argument"),
    ("name already taken", dict(pipeline=failed_pipeline(), builds=[build("BUILD")], build_log_lines=lines(
        "Error: creating IAM Role (checkout-exec): EntityAlreadyExists: Role with name checkout-exec already exists.")),
     Cat.DEPLOY_NAMING_CONFLICT, "already exists"),
    ("quota", dict(pipeline=failed_pipeline(), builds=[build("BUILD")], build_log_lines=lines(
        "An error occurred (CodeStorageExceededException) when calling the UpdateFunctionCode operation: "
        "Code storage limit exceeded.")),
     Cat.DEPLOY_QUOTA_EXCEEDED, "CodeStorageExceeded"),
    ("database stopped", dict(rds=rds("stopped"), lambdas=[healthy_lambda()]),
     Cat.DATABASE_CONNECTIVITY, "checkout-db is stopped"),
    ("database refused", dict(rds=rds(), lambdas=[healthy_lambda(error_lines=lines(
        "[ERROR] Error: connect ECONNREFUSED 10.0.1.5:5432", group="/aws/lambda/checkout-api"))]),
     Cat.DATABASE_CONNECTIVITY, "ECONNREFUSED 10.0.1.5:5432"),
    ("erroring release", dict(pipeline=failed_pipeline(), builds=[build("POST_BUILD")], lambdas=[erroring_lambda()]),
     Cat.LAMBDA_DEPLOYMENT, "since version 2 was deployed"),
    ("npm install", dict(pipeline=failed_pipeline("Build", "BuildAndTest"), builds=[build("INSTALL")],
                         build_log_lines=lines("npm ERR! code ERESOLVE", "npm ERR! ERESOLVE unable to resolve tree")),
     Cat.BUILD_DEPENDENCY_INSTALL, "ERESOLVE"),
    ("tests", dict(pipeline=failed_pipeline("Build", "BuildAndTest"), builds=[build("BUILD")],
                   build_log_lines=lines("FAILED tests/test_cart.py::test_total - AssertionError", "3 failed, 120 passed")),
     Cat.BUILD_TEST_FAILURE, "FAILED tests/test_cart.py::test_total"),
    ("lint", dict(pipeline=failed_pipeline("Build", "Lint"), builds=[build("PRE_BUILD")],
                  build_log_lines=lines("> eslint src/", "src/cart.js: 3 problems (3 errors, 0 warnings)")),
     Cat.BUILD_LINT, "eslint"),
    ("network", dict(pipeline=failed_pipeline(), builds=[build("POST_BUILD")],
                     build_log_lines=lines("Get \"https://api.internal/health\": dial tcp 10.0.3.4:443: i/o timeout")),
     Cat.DEPLOY_NETWORK, "i/o timeout"),
    ("bare failed phase", dict(pipeline=failed_pipeline("Build", "BuildAndTest"), builds=[build("BUILD")]),
     Cat.BUILD_FAILURE, "failed in phase BUILD"),
]


@pytest.mark.parametrize("obs_kw,category,phrase", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_category_and_its_evidence(obs_kw, category, phrase):
    cause, d = diagnose(observations(**obs_kw))
    assert cause.category == category
    assert phrase in cause.summary
    assert cause.evidence and set(cause.evidence) <= {f.id for f in d.findings}


def test_nothing_wrong_is_unknown_with_no_evidence():
    cause, _ = diagnose(observations(lambdas=[healthy_lambda()]))
    assert cause.category == Cat.UNKNOWN and cause.evidence == []


def test_lock_carries_its_parsed_info():
    cause, _ = diagnose(observations(terraform_lock=parse_state_lock(BOXED)))
    assert cause.lock.who == "runner@ip-10-0-1-23" and cause.lock.operation == "OperationTypeApply"


def test_erroring_lambda_does_not_win_over_a_build_that_failed_before_deploying():
    cause, _ = diagnose(observations(pipeline=failed_pipeline("Build", "BuildAndTest"), builds=[build("INSTALL")],
                                     build_log_lines=lines("npm ERR! 404 Not Found - GET https://registry.npmjs.org/lfts"),
                                     lambdas=[erroring_lambda()]))
    assert cause.category == Cat.BUILD_DEPENDENCY_INSTALL


def test_findings_are_bounded():
    obs = observations(build_log_lines=lines(*[f"ERROR line {i} " + "x" * 400 for i in range(500)]),
                       lambdas=[erroring_lambda(count=300)])
    d = findings(obs)
    assert all(len(f.evidence or "") <= MAX_EVIDENCE for f in d.findings)
    assert "300 ERROR events" in next(f.observed for f in d.findings if f.source == "CloudWatchLogs"
                                      and "lambda" in f.resource)
    assert len(error_lines(obs.build_log_lines)) == 12


def test_unreadable_sources_become_warning_findings():
    from opex_operator.runbooks.facts import ReadProblem

    obs = observations(problems=[ReadProblem("Lambda", "function/ghost", "ResourceNotFoundException on "
                                             "lambda:GetFunction: Function not found", not_found=True)])
    d = findings(obs)
    assert d.findings[0].severity.value == "Warning" and "function/ghost not found" in d.findings[0].observed
    assert classify(obs, d, NOW).summary == "no target could be read; 1 sources could not be read (see findings)"
