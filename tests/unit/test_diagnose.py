"""Root-cause classification from the failure's own context, on realistic assessment data.

Logs are CodeBuild's (``[Container] ... Running command X`` / ``Command did not exit successfully X exit
status N`` / ``Phase complete``), phase contexts BatchGetBuilds' ``statusCode``/``message``, Lambda's its
platform lines (``Task timed out after``, ``REPORT ... Max Memory Used``, JSON ``platform.report``), and
database errors those of the drivers' own messages (libpq/psycopg, node-postgres, Prisma, mysqljs, PyMySQL,
JDBC). Raw logs go through the real assessment (``assessed``), so colours and boxes are handled there.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from support.builders import (CODE_ERROR, IMPORT_ERROR, NOW, SHA1, SHA2, assessed, build, codebuild_log, denied_event,
                              erroring_lambda,
                       failed_pipeline, healthy_lambda, lambda_errors, lines, observations, rds, report)
from opex_operator.api.incident import RootCauseCategory as Cat
from opex_operator.playbooks.diagnose import (MAX_EVIDENCE, classify, error_lines, failure_context, findings,
                                             release_evidence)
from opex_operator.ports.facts import LambdaVersion
from opex_operator.playbooks.deployment.plan import remediation_steps
from support.builders import spec
from test_lock_parse import BOXED, DYNAMODB_NO_INFO, HCP, coloured
from test_termtext import WRAPPED_DENIAL

ESC = "\x1b"


def diagnose(obs):
    d = findings(obs)
    return classify(obs, d, NOW), d


def build_failure(*commands, phase="BUILD", context=None, code="COMMAND_EXECUTION_ERROR", status="FAILED", stage="Build"):
    """A pipeline whose CodeBuild build ran ``commands`` (command, output lines, exit status) and failed."""
    failed = next((c for c, _, s in commands if s), commands[-1][0])
    context = context or f"Error while executing command: {failed}. Reason: exit status 1"
    return assessed(pipeline=failed_pipeline(stage, "BuildAndTest" if stage == "Build" else "DeployLambda"),
                    builds=[build(phase, context, code=code, status=status)], log=codebuild_log(*commands))


CASES = [
    ("AccessDenied in CloudTrail", dict(pipeline=failed_pipeline(), builds=[build("BUILD")],
                                        trail_events=[denied_event()]),
     Cat.DEPLOY_PERMISSION_DENIED, "lambda:UpdateFunctionCode20150331v2 denied"),
    ("failed Lambda update", dict(lambdas=[healthy_lambda(last_update_status="Failed",
                                                          last_update_reason="The runtime python3.7 is deprecated")]),
     Cat.LAMBDA_DEPLOYMENT, "python3.7 is deprecated"),
    ("database stopped", dict(rds=rds("stopped"), lambdas=[healthy_lambda()]),
     Cat.DATABASE_CONNECTIVITY, "checkout-db is stopped"),
    ("erroring release", dict(pipeline=failed_pipeline(), builds=[build("POST_BUILD")],
                              lambdas=[erroring_lambda(message=CODE_ERROR)]),
     Cat.LAMBDA_DEPLOYMENT, "since version 2 went live"),
    ("a package that cannot start", dict(pipeline=failed_pipeline(), builds=[build("POST_BUILD")],
                                         lambdas=[erroring_lambda()]),
     Cat.LAMBDA_DEPLOYMENT, "deployed package cannot start: [ERROR] Runtime.ImportModuleError"),
    ("bare failed phase", dict(pipeline=failed_pipeline("Build", "BuildAndTest"), builds=[build("BUILD")]),
     Cat.BUILD_FAILURE, "failed in phase BUILD"),
]


@pytest.mark.parametrize("obs_kw,category,phrase", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_category_and_its_evidence(obs_kw, category, phrase):
    cause, d = diagnose(observations(**obs_kw))
    assert cause.category == category
    assert phrase in cause.summary
    assert cause.evidence and set(cause.evidence) <= {f.id for f in d.findings}


# ---- kind 9: the failed command's own lines, with patterns that mean failure -------------------------------------
DOCKER_PUSH = ("docker push 123456789012.dkr.ecr.us-east-1.amazonaws.com/checkout:41",
               ["The push refers to repository [123456789012.dkr.ecr.us-east-1.amazonaws.com/checkout]",
                "5f70bf18a086: Layer already exists", "a3ed95caeb02: Layer already exists",
                "41: digest: sha256:3c5b size: 1572"], 0)
JEST_PASSED = ("npm test", ["> checkout@1.4.0 test", "> jest --ci", "Test Suites: 9 passed, 9 total",
                            "Tests:       41 passed, 0 failed, 41 total", "Time:        12.31 s"], 0)
PIP_INSTALL = ("pip install -r requirements-dev.txt",
               ["Collecting pylint==3.2.5", "  Downloading pylint-3.2.5-py3-none-any.whl (519 kB)",
                "Collecting flake8==7.1.0", "Successfully installed astroid-3.2.2 flake8-7.1.0 pylint-3.2.5"], 0)

KIND_9 = [
    # the issue's examples: harmless output of a step that succeeded no longer outranks the failure
    ("layer already exists, then tests fail", [DOCKER_PUSH, ("./scripts/integration-tests.sh", [
        "FAILED tests/test_orders.py::test_checkout_total - AssertionError: assert 41.0 == 42.0",
        "=========== 1 failed, 57 passed in 9.12s ==========="], 1)], Cat.BUILD_TEST_FAILURE, "test_checkout_total"),
    ("passing jest summary, then the bundle fails", [JEST_PASSED, ("npm run build", [
        "> checkout@1.4.0 build", "> webpack --mode production",
        "ERROR in ./src/index.js 3:0-32", "Module not found: Error: Can't resolve './config' in '/codebuild/src'",
        "webpack 5.91.0 compiled with 1 error in 4211 ms"], 2)], Cat.BUILD_FAILURE, "npm run build"),
    ("collecting pylint during an install that fails", [("pip install -r requirements.txt", [
        "Collecting boto3==1.44.2", "Collecting pylint==3.2.5",
        "ERROR: Could not find a version that satisfies the requirement boto4==1.0 (from versions: none)",
        "ERROR: No matching distribution found for boto4==1.0"], 1)], Cat.BUILD_DEPENDENCY_INSTALL, "boto4"),
    # more of the kind
    ("pylint installed, then pytest fails", [PIP_INSTALL, ("pytest -q", [
        "F.....", "FAILED tests/test_cart.py::test_total - AssertionError",
        "1 failed, 5 passed in 0.12s"], 1)], Cat.BUILD_TEST_FAILURE, "test_cart.py"),
    ("docker push itself denied among existing layers", [("docker push 123456789012.dkr.ecr.us-east-1.amazonaws.com/"
                                                          "checkout:41", [
        "5f70bf18a086: Layer already exists", "denied: requested access to the resource is denied"], 1)],
     Cat.DEPLOY_PERMISSION_DENIED, "requested access to the resource is denied"),
    ("eslint's failure summary", [JEST_PASSED, ("npm run lint", [
        "> checkout@1.4.0 lint", "> eslint src/", "/codebuild/src/cart.js",
        "  3:10  error  'total' is assigned a value but never used  no-unused-vars",
        "✖ 1 problem (1 error, 0 warnings)"], 1)], Cat.BUILD_LINT, "error"),
    ("a failing lint command with terse output", [PIP_INSTALL, ("ruff check .", [
        "src/app.py:12:5: F841 Local variable `x` is assigned to but never used", "Found 1 error."], 1)],
     Cat.BUILD_LINT, "F841"),
    ("maven with zero failures is not a test failure", [("mvn -B verify", [
        "Tests run: 120, Failures: 0, Errors: 0, Skipped: 2", "[INFO] BUILD FAILURE",
        "[ERROR] Failed to execute goal org.apache.maven.plugins:maven-enforcer-plugin:3.4.1:enforce: Some "
        "Enforcer rules have failed."], 1)], Cat.BUILD_TEST_FAILURE, "`mvn -B verify` failed"),
    ("already exists in a success message of a passing step", [("aws ecr create-repository --repository-name "
                                                                "checkout || true", [
        "An error occurred (RepositoryAlreadyExistsException) when calling the CreateRepository operation: The "
        "repository with name 'checkout' already exists"], 0), ("go test ./...", [
        "--- FAIL: TestCheckout (0.00s)", "    cart_test.go:21: total = 41, want 42", "FAIL", "FAIL\tcheckout/cart\t0.012s"],
        1)], Cat.BUILD_TEST_FAILURE, "--- FAIL: TestCheckout"),
]


@pytest.mark.parametrize("commands,category,phrase", [c[1:] for c in KIND_9], ids=[c[0] for c in KIND_9])
def test_the_failed_commands_own_lines_decide(commands, category, phrase):
    cause, d = diagnose(build_failure(*commands))
    assert (cause.category, phrase in cause.summary) == (category, True), cause.summary


def test_the_failed_command_is_the_one_the_phase_context_names_not_a_later_post_build_step():
    obs = build_failure(("npm test", ["Tests: 2 failed, 39 passed, 41 total"], 1),
                        ("./notify.sh failed", ["posting: build failed", "ERROR: slack webhook timed out"], 1),
                        context="Error while executing command: npm test. Reason: exit status 1")
    ctx = failure_context(obs)
    assert ctx.command == "npm test" and ctx.lines == ["Tests: 2 failed, 39 passed, 41 total"]
    assert diagnose(obs)[0].category == Cat.BUILD_TEST_FAILURE


TIMED_OUT = [
    ("the issue's BUILD_TIMED_OUT while terraform waits", [("terraform apply -auto-approve", [
        "aws_db_instance.orders: Still modifying... [id=orders, 58m50s elapsed]",
        "aws_db_instance.orders: Still modifying... [id=orders, 59m0s elapsed]"], 0)], "BUILD"),
    ("timed out while npm retries the network", [("npm ci", [
        "npm WARN tarball tarball data for express@4.19.2 seems to be corrupted. Trying again.",
        "npm http fetch GET https://registry.npmjs.org/express attempt 3 failed with ETIMEDOUT"], 0)], "INSTALL"),
    ("timed out in the queue", [], "QUEUED"),
]


@pytest.mark.parametrize("commands,phase", [c[1:] for c in TIMED_OUT], ids=[c[0] for c in TIMED_OUT])
def test_a_build_that_hit_its_own_timeout_is_build_timed_out_and_is_not_retried(commands, phase):
    b = build("BUILD", "Build has timed out. ", code="BUILD_TIMED_OUT", status="TIMED_OUT")
    b.phases[-1].phase_type = phase
    obs = assessed(pipeline=failed_pipeline("Build", "BuildAndTest"), builds=[b], log=codebuild_log(*commands))
    cause, _ = diagnose(obs)
    assert cause.category == Cat.BUILD_TIMED_OUT and "hit its own timeout" in cause.summary
    assert remediation_steps(spec(), cause, obs) == []  # not retried blindly: a human looks at what hung


def test_a_timed_out_build_names_the_command_that_was_running_and_its_last_line():
    obs = assessed(pipeline=failed_pipeline("Build", "BuildAndTest"),
                   builds=[build("BUILD", "Build has timed out. ", code="BUILD_TIMED_OUT", status="TIMED_OUT")],
                   log=codebuild_log(*TIMED_OUT[0][1]))
    cause, _ = diagnose(obs)
    assert "`terraform apply -auto-approve`" in cause.summary and "59m0s elapsed" in cause.summary


def test_a_broken_buildspec_is_said_so():
    b = build("DOWNLOAD_SOURCE", "YAML file does not exist", code="YAML_FILE_ERROR")
    cause, _ = diagnose(assessed(pipeline=failed_pipeline("Build", "BuildAndTest"), builds=[b]))
    assert cause.category == Cat.BUILD_FAILURE and "buildspec is invalid: YAML_FILE_ERROR" in cause.summary


# ---- kind 6 in the classifier: coloured, boxed Terraform errors -------------------------------------------------
def tf_apply(*output: str):
    return build_failure(("terraform apply -auto-approve -input=false", list(output), 1), stage="Deploy")


def test_a_coloured_lock_error_in_the_deploy_log_is_a_state_lock_with_its_id():
    cause, d = diagnose(tf_apply(*coloured(BOXED).splitlines()))
    assert cause.category == Cat.TERRAFORM_STATE_LOCK and cause.lock.id == "4cb1a7e2-7d4f-d2f1-0a6b-3f1c2e9d8b7a"
    assert "held by runner@ip-10-0-1-23" in cause.summary and set(cause.evidence) <= {f.id for f in d.findings}


COLOURED = [
    ("validation", "╷\n│ Error: Unsupported argument\n│ \n│   on main.tf line 12, in resource \"aws_lambda_function\" "
                   "\"api\":\n│   12:   runtime_version = \"python3.12\"\n│ \n│ An argument named "
                   "\"runtime_version\" is not expected here.\n╵", Cat.TERRAFORM_VALIDATION, "Error: Unsupported argument"),
    ("name conflict", "╷\n│ Error: creating IAM Role (checkout-exec): operation error IAM: CreateRole, https "
                      "response error StatusCode: 409, RequestID: 5c2b, EntityAlreadyExists: Role with name "
                      "checkout-exec already exists.\n│ \n│   with aws_iam_role.lambda_exec,\n╵",
     Cat.DEPLOY_NAMING_CONFLICT, "EntityAlreadyExists"),
]


@pytest.mark.parametrize("output,category,phrase", [c[1:] for c in COLOURED], ids=[c[0] for c in COLOURED])
def test_coloured_terraform_errors_are_classified_from_plain_text(output, category, phrase):
    cause, _ = diagnose(tf_apply(*coloured(output).splitlines()))
    assert cause.category == category and phrase in cause.summary and ESC not in cause.summary


# ---- kinds 7 and 8 in the classifier: lock errors of every backend ------------------------------------------------
def test_an_hcp_terraform_lock_offers_the_workspace_id_with_an_unknown_holder():
    cause, _ = diagnose(tf_apply(*HCP.splitlines()))
    assert cause.category == Cat.TERRAFORM_STATE_LOCK and cause.lock.id == "acme/checkout-production"
    assert "held by unknown" in cause.summary and "ci@runner-7" not in cause.summary


def test_a_lock_error_without_lock_info_is_a_state_lock_without_an_id():
    obs = tf_apply(*DYNAMODB_NO_INFO.splitlines())
    cause, _ = diagnose(obs)
    assert cause.category == Cat.TERRAFORM_STATE_LOCK and cause.lock is None
    assert "names no lock id" in cause.summary and "unexpected end of JSON input" in cause.summary


def test_a_lock_error_of_a_command_that_later_succeeded_is_not_the_failure():
    obs = build_failure(("terraform apply -auto-approve || (sleep 60 && terraform apply -auto-approve)",
                         [*BOXED.splitlines(), "Apply complete! Resources: 1 added, 0 changed, 0 destroyed."], 0),
                        ("pytest tests/smoke", ["FAILED tests/smoke/test_health.py::test_health - AssertionError",
                                                "1 failed in 3.01s"], 1))
    assert obs.lock_error is None and diagnose(obs)[0].category == Cat.BUILD_TEST_FAILURE


# ---- IAM AccessDenied: the summary names the action and the principal ---------------------------------------------
DENIALS = [
    ("wrapped over boxed lines (the issue)",
     ["╷", "│ Error: updating Lambda Function (checkout-api) code", "│ ", *[f"│ {w}" for w in WRAPPED_DENIAL], "╵"],
     "lambda:UpdateFunctionCode denied to arn:aws:sts::123456789012:assumed-role/codebuild-deploy/AWSCodeBuild-7f3e"),
    ("coloured and wrapped", coloured("\n".join(["╷", "│ Error: updating Lambda Function (checkout-api) code", "│ ",
                                                 *[f"│ {w}" for w in WRAPPED_DENIAL], "╵"])).splitlines(),
     "lambda:UpdateFunctionCode denied to arn:aws:sts::123456789012:assumed-role/codebuild-deploy/AWSCodeBuild-7f3e"),
    ("botocore's one line", ["An error occurred (AccessDeniedException) when calling the UpdateFunctionCode operation: "
                             "User: arn:aws:sts::123456789012:assumed-role/cb/b is not authorized to perform: "
                             "lambda:UpdateFunctionCode on resource: arn:aws:lambda:us-east-1:123456789012:function:"
                             "checkout-api"],
     "lambda:UpdateFunctionCode denied to arn:aws:sts::123456789012:assumed-role/cb/b on arn:aws:lambda:us-east-1:"),
    ("an SCP deny with the action on the next line", [
        "User: arn:aws:sts::123456789012:assumed-role/deploy/ci is not authorized to perform:",
        "iam:CreateRole on resource: arn:aws:iam::123456789012:role/checkout-exec with an explicit deny in a "
        "service control policy"], "iam:CreateRole denied to arn:aws:sts::123456789012:assumed-role/deploy/ci"),
    ("SDK v2 without a principal", ["Error: uploading object to S3 bucket (www-checkout): operation error S3: "
                                    "PutObject, https response error StatusCode: 403, RequestID: 7K2, api error "
                                    "AccessDenied: Access Denied"],
     "s3:PutObject denied (the error names no principal)"),
]


@pytest.mark.parametrize("output,phrase", [c[1:] for c in DENIALS], ids=[c[0] for c in DENIALS])
def test_access_denied_names_the_action_and_the_principal(output, phrase):
    cause, _ = diagnose(tf_apply(*output))
    assert cause.category == Cat.DEPLOY_PERMISSION_DENIED and phrase in cause.summary, cause.summary


# ---- kind 10: Lambda failures a code rollback cannot fix ----------------------------------------------------------
def failing_lambda(*messages: str, reports=(), tied: bool = True):
    """checkout-api whose version 2 went live 30 minutes ago logs ``messages``; with ``tied`` version 1 ran clean
    before it (so a code error would be the release's)."""
    fn = erroring_lambda(tied=tied)
    fn.error_lines = lambda_errors(*messages)
    fn.reports += list(reports)
    return fn


def lambda_incident(fn):
    obs = assessed(pipeline=failed_pipeline(), builds=[build("POST_BUILD")], lambdas=[fn])
    cause, d = diagnose(obs)
    return cause, remediation_steps(spec(), cause, obs), d


DATABASE = [
    ("psycopg2 (the issue)", "[ERROR] OperationalError: could not connect to server: Connection timed out\n\tIs the "
                             "server running on host \"db.internal\" (10.0.1.5) and accepting\n\tTCP/IP connections on "
                             "port 5432?"),
    ("Prisma (the issue)", "ERROR\tInvoke Error\tCan't reach database server at db.internal:5432"),
    ("Prisma's full message", "PrismaClientInitializationError: Can't reach database server at `db.internal`:`5432`\n"
                              "Please make sure your database server is running at `db.internal`:`5432`."),
    ("mysqljs (the issue)", "ERROR\tError: ER_ACCESS_DENIED_ERROR: Access denied for user 'app'@'10.0.3.7' (using "
                            "password: YES)"),
    ("psycopg timeout expired (the issue)", "[ERROR] OperationalError: timeout expired"),
    ("a bare timeout expired line", "timeout expired"),
    ("libpq 14", '[ERROR] OperationalError: connection to server at "db.internal" (10.0.1.5), port 5432 failed: '
                 "Connection refused"),
    ("node-postgres", "ERROR\tInvoke Error \t{\"errorType\":\"Error\",\"errorMessage\":\"connect ECONNREFUSED "
                      "10.0.1.5:5432\"}"),
    ("PyMySQL", "[ERROR] OperationalError: (2003, \"Can't connect to MySQL server on 'db.internal' ([Errno 110] "
                "Connection timed out)\")"),
    ("JDBC", "ERROR c.z.h.p.HikariPool - HikariPool-1 - Exception during pool initialization. "
             "com.mysql.cj.jdbc.exceptions.CommunicationsException: Communications link failure"),
    ("Sequelize", "ERROR SequelizeConnectionRefusedError: connect ECONNREFUSED 10.0.1.5:5432"),
]


@pytest.mark.parametrize("message", [c[1] for c in DATABASE], ids=[c[0] for c in DATABASE])
def test_database_driver_errors_are_database_connectivity_and_get_no_rollback_even_after_a_release(message):
    cause, steps, _ = lambda_incident(failing_lambda(*[message] * 4))
    assert cause.category == Cat.DATABASE_CONNECTIVITY, cause.summary
    assert "cannot reach its database" in cause.summary
    assert [s.id for s in steps] == []


TIMEOUTS = [
    ("the issue's Task timed out", ["2026-11-29T08:50:06.123Z 6f1c0101-aaaa-4bbb-8ccc-0123456789ab Task timed out "
                                    "after 6.00 seconds"], []),
    ("a REPORT line with Status: timeout", [], ["REPORT RequestId: 6f1c0102-aaaa-4bbb-8ccc-0123456789ab\tDuration: "
                                                "6000.00 ms\tBilled Duration: 6000 ms\tMemory Size: 512 MB\tMax Memory "
                                                "Used: 88 MB\tStatus: timeout"]),
    ("a JSON platform.report with status timeout", [], [json.dumps({
        "time": "2026-11-29T08:50:06.123Z", "type": "platform.report", "record": {
            "requestId": "6f1c0103-aaaa-4bbb-8ccc-0123456789ab", "status": "timeout",
            "metrics": {"durationMs": 6000.0, "billedDurationMs": 6000, "memorySizeMB": 512, "maxMemoryUsedMB": 90}}})]),
]


@pytest.mark.parametrize("errors,reports", [c[1:] for c in TIMEOUTS], ids=[c[0] for c in TIMEOUTS])
def test_timeouts_are_their_own_category_without_a_rollback(errors, reports):
    fn = failing_lambda(*errors, reports=lambda_errors(*reports, start_minutes_ago=5))
    if not errors:  # the REPORT line with its status is also one of the error lines the filter keeps
        fn.error_lines = lambda_errors(*reports)
    cause, steps, _ = lambda_incident(fn)
    assert cause.category == Cat.LAMBDA_TIMEOUT and "timed out in 1 invocations" in cause.summary
    assert steps == []


OUT_OF_MEMORY = [
    ("the issue's signal: killed", ["RequestId: 6f1c0201-aaaa-4bbb-8ccc-0123456789ab Error: Runtime exited with "
                                    "error: signal: killed\nRuntime.ExitError"], []),
    ("Max Memory Used equal to Memory Size", [], ["REPORT RequestId: 6f1c0202-aaaa-4bbb-8ccc-0123456789ab\tDuration: "
                                                  "812.44 ms\tBilled Duration: 813 ms\tMemory Size: 128 MB\tMax Memory "
                                                  "Used: 128 MB"]),
    ("Runtime.OutOfMemory error type", ["REPORT RequestId: 6f1c0203-aaaa-4bbb-8ccc-0123456789ab\tDuration: 312.01 "
                                        "ms\tBilled Duration: 313 ms\tMemory Size: 256 MB\tMax Memory Used: 257 MB\t"
                                        "Status: error\tError Type: Runtime.OutOfMemory"], []),
]


@pytest.mark.parametrize("errors,reports", [c[1:] for c in OUT_OF_MEMORY], ids=[c[0] for c in OUT_OF_MEMORY])
def test_out_of_memory_is_its_own_category_without_a_rollback(errors, reports):
    fn = failing_lambda(*(errors or ["[ERROR] Runtime.ExitError"]), reports=lambda_errors(*reports, start_minutes_ago=5))
    cause, steps, _ = lambda_incident(fn)
    assert cause.category == Cat.LAMBDA_OUT_OF_MEMORY and "ran out of memory in 1 invocations" in cause.summary
    assert steps == []


def test_errors_tied_to_a_release_by_version_are_rolled_back():
    cause, steps, d = lambda_incident(failing_lambda(*[CODE_ERROR] * 5))
    assert cause.category == Cat.LAMBDA_DEPLOYMENT and "version 1 ran 6 invocations" in cause.summary
    assert [(s.id, s.params) for s in steps] == [("rollback-lambda-checkout-api",
                                                  {"functionName": "checkout-api", "toVersion": "1"})]
    assert "invocations (REPORT lines) by version: version 1: 6, version 2: 5" in \
        next(f.observed for f in d.findings if f.resource == "/aws/lambda/checkout-api")


def test_errors_tied_to_a_release_by_time_on_latest_are_rolled_back():
    went_live = NOW - dt.timedelta(minutes=30)
    fn = healthy_lambda(last_modified=went_live.strftime("%Y-%m-%dT%H:%M:%S.000+0000"), code_sha256="bmV3",
                        versions=[LambdaVersion("1", SHA1), LambdaVersion("2", SHA2)])
    fn.error_lines = lambda_errors(*[CODE_ERROR] * 3, version="$LATEST")
    fn.reports = [report("$LATEST", i, 50 - i) for i in range(4)]
    tied, why = release_evidence(fn)
    assert tied and "after version $LATEST went live" in why and "the 4 invocations before it" in why
    cause, steps, _ = lambda_incident(fn)
    assert cause.category == Cat.LAMBDA_DEPLOYMENT and steps[0].params["toVersion"] == "2"


@pytest.mark.parametrize("case,change,reason", [
    ("errors began before the release", lambda fn: setattr(fn, "error_lines", lambda_errors(
        *[CODE_ERROR] * 3, version="$LATEST", start_minutes_ago=45)), "before version"),
    ("the previous version fails too", lambda fn: setattr(fn, "error_lines", fn.error_lines + lambda_errors(
        CODE_ERROR, version="1")), "version 1 logs errors too"),
    ("no run of the previous version was seen", lambda fn: setattr(fn, "reports", [
        r for r in fn.reports if "[1]" not in r.stream]), "not known to have run clean"),
])
def test_errors_not_tied_to_a_release_are_function_errors_without_a_rollback(case, change, reason):
    fn = failing_lambda(*[CODE_ERROR] * 3)
    change(fn)
    cause, steps, _ = lambda_incident(fn)
    assert cause.category == Cat.LAMBDA_FUNCTION_ERROR and reason in cause.summary, cause.summary
    assert "no code rollback" in cause.summary and steps == []


def test_lambda_errors_do_not_win_over_a_build_that_failed_before_deploying():
    obs = assessed(pipeline=failed_pipeline("Build", "BuildAndTest"),
                   builds=[build("INSTALL", "Error while executing command: npm ci. Reason: exit status 1")],
                   log=codebuild_log(("npm ci", ["npm ERR! code E404", "npm ERR! 404 Not Found - GET "
                                                 "https://registry.npmjs.org/lfts"], 1)),
                   lambdas=[failing_lambda("Task timed out after 6.00 seconds")])
    assert diagnose(obs)[0].category == Cat.BUILD_DEPENDENCY_INSTALL


# ---- what already held ---------------------------------------------------------------------------------------------
def test_nothing_wrong_is_unknown_with_no_evidence():
    cause, _ = diagnose(observations(lambdas=[healthy_lambda()]))
    assert cause.category == Cat.UNKNOWN and cause.evidence == []


def test_findings_are_bounded():
    obs = observations(build_log_lines=lines(*[f"ERROR line {i} " + "x" * 400 for i in range(500)]),
                       lambdas=[erroring_lambda(count=300)])
    d = findings(obs)
    assert all(len(f.evidence or "") <= MAX_EVIDENCE for f in d.findings)
    assert "300 ERROR events" in next(f.observed for f in d.findings if f.source == "CloudWatchLogs"
                                      and "lambda" in f.resource)
    assert len(error_lines(obs.build_log_lines)) == 12


def test_unreadable_sources_become_warning_findings():
    from opex_operator.ports.facts import ReadProblem

    obs = observations(problems=[ReadProblem("Lambda", "function/ghost", "ResourceNotFoundException on "
                                             "lambda:GetFunction: Function not found", not_found=True)])
    d = findings(obs)
    assert d.findings[0].severity.value == "Warning" and "function/ghost not found" in d.findings[0].observed
    assert classify(obs, d, NOW).summary == "no target could be read; 1 sources could not be read (see findings)"


# ---- round 3: permission errors on the lock are not held locks -----------------------------------------------------
WITH_WORKSPACE = spec(targets={"pipeline": {"name": "checkout-pipeline"}, "driftCheckRef": {"name": "prod-network"}})
LOCK_DENIED = ["╷", "│ Error: Error acquiring the state lock", "│ ",
               "│ Error message: operation error DynamoDB: PutItem, https response error StatusCode: 400,",
               "│ RequestID: Q3P4, api error AccessDeniedException: User:",
               "│ arn:aws:sts::123456789012:assumed-role/ci/deploy is not authorized to perform:",
               "│ dynamodb:PutItem on resource: arn:aws:dynamodb:us-east-1:123456789012:table/terraform-locks", "│ ",
               "│ Terraform acquires a state lock to protect the state from being written", "╵"]


def test_a_denied_lock_write_is_a_permission_denial_with_no_retry_and_no_force_unlock():
    obs = tf_apply(*LOCK_DENIED)
    cause, _ = diagnose(obs)
    assert cause.category == Cat.DEPLOY_PERMISSION_DENIED and cause.lock is None
    assert "dynamodb:PutItem denied to arn:aws:sts::123456789012:assumed-role/ci/deploy" in cause.summary
    assert remediation_steps(WITH_WORKSPACE, cause, obs) == []


def test_a_denied_lock_is_not_replaced_by_the_lock_the_drift_check_saw():
    import asyncio

    from support.fakes import FakeReader
    from opex_operator.api.common import StateLock
    from opex_operator.playbooks.assessment import assess

    reader = FakeReader(failed_pipeline("Deploy", "DeployLambda"), [build("BUILD")],
                        lines(*codebuild_log(("terraform apply -auto-approve", LOCK_DENIED, 1))))
    stale = StateLock(id="0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6", who="old@runner")
    obs = asyncio.run(assess(WITH_WORKSPACE, reader, NOW, drift_lock=lambda name: stale))
    assert obs.lock_error is not None and obs.terraform_lock is None
    assert diagnose(obs)[0].category == Cat.DEPLOY_PERMISSION_DENIED


def test_a_consul_server_fault_on_the_lock_is_a_backend_fault_retried_but_never_unlocked():
    obs = tf_apply("╷", "│ Error: Error acquiring the state lock", "│ ",
                   "│ Error message: failed to acquire lock: Unexpected response code: 500 (invalid session)", "╵")
    cause, _ = diagnose(obs)
    assert cause.category == Cat.TERRAFORM_BACKEND and "not another holder" in cause.summary and cause.lock is None
    assert [s.id for s in remediation_steps(WITH_WORKSPACE, cause, obs)] == ["retry-stage-deploy"]


def test_a_mangled_paste_of_a_held_lock_still_offers_its_id():
    text = coloured("\n".join(BOXED.splitlines())).replace(ESC, "\ufffd")
    cause, _ = diagnose(tf_apply(*text.splitlines()))
    assert cause.category == Cat.TERRAFORM_STATE_LOCK and cause.lock.id == "4cb1a7e2-7d4f-d2f1-0a6b-3f1c2e9d8b7a"


# ---- round 3: network failures in Go's wording ---------------------------------------------------------------------
GO_NETWORK = [
    ("DNS through the VPC resolver", "│ Error: configuring Terraform AWS Provider: validating provider credentials: "
     "retrieving caller identity from STS: operation error STS: GetCallerIdentity, exceeded maximum number of "
     "attempts, 3, https response error StatusCode: 0, RequestID: , request send failed, Post "
     "\"https://sts.us-east-1.amazonaws.com/\": dial tcp: lookup sts.us-east-1.amazonaws.com on 10.0.0.2:53: no "
     "such host"),
    ("i/o timeout", "Error: Failed to query available provider packages: could not connect to registry.terraform.io: "
     "failed to request discovery document: Get \"https://registry.terraform.io/.well-known/terraform.json\": dial "
     "tcp 151.101.1.4:443: i/o timeout"),
    ("connection reset by peer", "Error: reading S3 Bucket (www-checkout): operation error S3: HeadBucket, https "
     "response error StatusCode: 0, RequestID: , HostID: , request send failed, Head \"https://www-checkout.s3."
     "amazonaws.com/\": read tcp 10.0.3.7:51234->52.216.8.1:443: read: connection reset by peer"),
]


@pytest.mark.parametrize("line", [c[1] for c in GO_NETWORK], ids=[c[0] for c in GO_NETWORK])
def test_go_network_failures_are_network_causes_and_retried(line):
    obs = tf_apply(line)
    cause, _ = diagnose(obs)
    assert cause.category == Cat.DEPLOY_NETWORK, cause.summary
    assert [s.id for s in remediation_steps(spec(), cause, obs)] == ["retry-stage-deploy"]


# ---- round 3: registry rate limits ---------------------------------------------------------------------------------
RATE_LIMITS = [
    ("Docker Hub", "docker build -t checkout .", [
        "Step 1/9 : FROM node:20-alpine",
        "toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating and "
        "upgrading: https://www.docker.com/increase-rate-limit"], "Docker Hub", "2026-11-29 15:00 UTC"),
    ("PyPI 429", "pip install -r requirements.txt", [
        "ERROR: HTTP error 429 while getting https://files.pythonhosted.org/packages/requests-2.32.3.tar.gz",
        "ERROR: 429 Client Error: Too Many Requests for url: https://files.pythonhosted.org/packages/"
        "requests-2.32.3.tar.gz"], "PyPI", "2026-11-29 10:00 UTC"),
    ("npm E429 with Retry-After", "npm ci", [
        "npm ERR! code E429", "npm ERR! 429 Too Many Requests - GET https://registry.npmjs.org/react - Retry-After: 120"],
     "the npm registry", "2026-11-29 09:02 UTC"),
]


@pytest.mark.parametrize("command,output,registry,when", [c[1:] for c in RATE_LIMITS], ids=[c[0] for c in RATE_LIMITS])
def test_a_registry_rate_limit_names_the_registry_and_when_a_retry_can_work(command, output, registry, when):
    obs = build_failure((command, output, 1), phase="BUILD")
    cause, _ = diagnose(obs)
    assert cause.category == Cat.REGISTRY_RATE_LIMITED, cause.summary
    assert cause.summary.startswith(registry) and when in cause.summary
    assert remediation_steps(spec(), cause, obs) == []  # a retry now is refused the same way


def test_an_aws_api_throttle_is_still_an_aws_quota():
    cause, _ = diagnose(tf_apply("Error: updating Lambda Function (checkout-api): operation error Lambda: "
                                 "UpdateFunctionCode, https response error StatusCode: 429, RequestID: 1, "
                                 "TooManyRequestsException: Rate exceeded"))
    assert cause.category == Cat.DEPLOY_QUOTA_EXCEEDED


# ---- round 3: Lambda packaging errors are deployment faults ---------------------------------------------------------
PACKAGING = [
    ("Python import", "[ERROR] Runtime.ImportModuleError: Unable to import module 'app': No module named 'pydantic_core'"),
    ("Node handler", "ERROR\tUncaught Exception \t{\"errorType\":\"Runtime.HandlerNotFound\",\"errorMessage\":"
                     "\"index.handler is undefined or not exported\"}"),
    ("syntax error", "[ERROR] Runtime.UserCodeSyntaxError: Syntax error in module 'app': invalid syntax (app.py, line 3)"),
]


@pytest.mark.parametrize("message", [c[1] for c in PACKAGING], ids=[c[0] for c in PACKAGING])
def test_a_package_that_cannot_start_is_a_deployment_fault_even_with_only_latest(message):
    fn = healthy_lambda(versions=[], code_sha256="bmV3", last_modified=(NOW - dt.timedelta(minutes=5)).strftime(
        "%Y-%m-%dT%H:%M:%S.000+0000"))
    fn.error_lines = lambda_errors(*[message] * 3, version="$LATEST", start_minutes_ago=4)
    cause, steps, _ = lambda_incident(fn)
    assert cause.category == Cat.LAMBDA_DEPLOYMENT, cause.summary
    assert "deployed package cannot start" in cause.summary and "no earlier version" in cause.summary
    assert steps == []  # nothing to roll back to


def test_a_package_that_cannot_start_is_rolled_back_to_the_previous_version():
    cause, steps, _ = lambda_incident(failing_lambda(IMPORT_ERROR, IMPORT_ERROR, tied=False))
    assert cause.category == Cat.LAMBDA_DEPLOYMENT and "version 1 is the one to roll back to" in cause.summary
    assert [s.params["toVersion"] for s in steps] == ["1"]


def test_init_report_start_and_end_lines_are_not_invocations():
    fn = failing_lambda(CODE_ERROR, reports=[], tied=True)
    v2 = "2026/11/29/[2]9f8e7d6c"
    extra = ["INIT_REPORT Init Duration: 9995.84 ms\tPhase: init\tStatus: timeout",
             "START RequestId: 6f1c0999-aaaa-4bbb-8ccc-0123456789ab Version: 2",
             "END RequestId: 6f1c0999-aaaa-4bbb-8ccc-0123456789ab"]
    fn.reports += [dataclasses.replace(line, stream=v2) for line in lambda_errors(*extra, start_minutes_ago=3)]
    _, _, d = lambda_incident(fn)
    observed = next(f.observed for f in d.findings if f.resource == "/aws/lambda/checkout-api")
    assert "version 1: 6, version 2: 5" in observed
