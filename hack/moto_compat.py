"""The moto internals the local stack's extensions patch, each checked against the moto installed.

``moto_ext``, ``moto_perf``, ``moto_security`` and ``estate`` reach into moto's models and
responses (REFERENCE.md: moto cannot express the failures the runbooks need through its API).
Those internals are not moto's public interface and move in patch releases (5.2.6 turned
``CodePipelineBackend.get_pipeline``'s tuple into an object and gave ``DBInstance`` its own
Performance Insights attributes). Each :class:`Internal` below states what one patch relies on and
checks it in milliseconds, so that the next upgrade of ``uv.lock`` says at once what to adapt
(``tests/unit/test_moto_internals.py`` runs one test per internal; :func:`verify` runs them all
before the fake AWS starts, so the demo stops with the list instead of a TypeError mid-seed).

Checks run on the classes as moto ships them (the patches keep the originals) and create what
they need in account :data:`ACCOUNT`, which nothing else uses, removing it afterwards.
"""
from __future__ import annotations

import inspect
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

import moto

ACCOUNT, REGION = "999999999999", "us-east-1"


class MotoMoved(RuntimeError):
    """An internal a patch relies on is not what it was in the moto the lock pinned."""


@dataclass(frozen=True)
class Internal:
    """One moto internal: ``name`` (as patched), ``used_by`` (our functions), ``check`` (raises
    :class:`MotoMoved` or any error when the internal is not what the patch expects)."""

    name: str
    used_by: str
    check: Callable[[], None]

    def verify(self) -> None:
        """Raise :class:`MotoMoved` naming moto's version, the internal and what moved."""
        try:
            self.check()
        except Exception as err:  # noqa: BLE001 - any failure of the probe is a move to report
            raise MotoMoved(f"moto {moto.__version__}: {self.name} (used by {self.used_by}) moved: "
                            f"{type(err).__name__}: {err}") from err


INTERNALS: list[Internal] = []


def internal(name: str, used_by: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def register(check: Callable[[], None]) -> Callable[[], None]:
        INTERNALS.append(Internal(name, used_by, check))
        return check
    return register


def _params(fn: Callable[..., Any], *expected: str) -> None:
    got = list(inspect.signature(fn).parameters)
    if got[: len(expected)] != list(expected):
        raise MotoMoved(f"parameters are {got}, expected to start with {list(expected)}")


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise MotoMoved(what)


# ---- moto_ext: the server, Lambda, CodeBuild, CodePipeline -----------------------------------

@internal("ThreadedMotoServer._server_entry", "moto_ext.Server (the Lambda package route)")
def _server_entry() -> None:
    import logging

    import moto_ext

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_ext.Server(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        try:
            urllib.request.urlopen(f"http://{host}:{port}{moto_ext.CODE_PATH}{ACCOUNT}/{REGION}/none/1", timeout=5)
        except urllib.error.HTTPError as err:
            _expect(err.code == 404 and b"NoSuchKey" in err.read(), f"the package route answered {err.code}")
        else:
            raise MotoMoved("the package route answered 200 for a function that does not exist")
    finally:
        server.stop()


@internal("LambdaFunction.get_code/get_configuration/update_function_code",
          "moto_ext (Code.Location on this server; a failed update's status)")
def _lambda_function() -> None:
    import moto_ext
    from moto.awslambda.models import LambdaBackend

    _params(moto_ext._original_get_code, "self")
    _params(moto_ext._original_get_configuration, "self", "on_create")
    _params(moto_ext._original_update_code, "self", "updated_spec")
    _params(LambdaBackend.get_function, "self", "function_name_or_arn", "qualifier")
    from moto.awslambda.models import LambdaFunction
    source = inspect.getsource(LambdaFunction)
    for attribute in ("self.code_bytes", "self.function_name", "self.version", "self.account_id", "self.region"):
        _expect(attribute in source, f"LambdaFunction no longer sets {attribute}")


@internal("CodeBuildBackend.batch_get_builds/build_metadata_history", "moto_ext.finish_build")
def _codebuild() -> None:
    from moto.codebuild.models import codebuild_backends

    backend = codebuild_backends[ACCOUNT][REGION]
    try:
        backend.create_project("p", None, {"type": "NO_SOURCE"}, {"type": "NO_ARTIFACTS"},
                               {"type": "LINUX_CONTAINER", "image": "i", "computeType": "BUILD_GENERAL1_SMALL"},
                               f"arn:aws:iam::{ACCOUNT}:role/r", None, None, None, None, None, None, None)
        build = backend.start_build("p")
        history = backend.build_metadata_history
        _expect(isinstance(history, dict) and all(isinstance(v, list) for v in history.values()),
                "build_metadata_history is no longer {project: [build dict]}")
        stored = next(b for builds in history.values() for b in builds if b["id"] == build["id"])
        _expect(isinstance(stored["startTime"], str),
                f"a build's times are {type(stored['startTime']).__name__}, finish_build writes ISO strings")
        _expect("groupName" in stored.get("logs", {}) or "logs" in stored, "a build has no 'logs' dict")
    finally:
        backend.reset()


@internal("CodePipelineBackend.get_pipeline/get_pipeline_execution",
          "moto_ext.fail_pipeline_execution, GetPipelineState, RetryStageExecution")
def _codepipeline_backend() -> None:
    from moto.codepipeline.models import CodePipelineBackend

    ret = inspect.signature(CodePipelineBackend.get_pipeline).return_annotation
    _expect(str(ret).startswith("tuple"), f"get_pipeline returns {ret}, the extension unpacks (definition, metadata)")
    _params(CodePipelineBackend.get_pipeline_execution, "self", "pipeline_name", "pipeline_execution_id")
    from moto.codepipeline import models
    _expect("self.status_summary" in inspect.getsource(models), "an execution has no status_summary any more")


@internal("CodePipelineResponse (handlers returning JSON text)", "moto_ext GetPipelineState, RetryStageExecution")
def _codepipeline_response() -> None:
    from moto.codepipeline.responses import CodePipelineResponse
    from moto.core.exceptions import JsonRESTError

    response = CodePipelineResponse()
    _expect(not getattr(response, "automated_parameter_parsing", False),
            "CodePipeline's handlers parse parameters and serialise results themselves now (ActionResult)")
    for name in ("_get_param", "codepipeline_backend", "current_account", "region"):
        _expect(hasattr(CodePipelineResponse, name) or name in inspect.getsource(CodePipelineResponse.__mro__[1]),
                f"CodePipelineResponse has no {name}")
    _params(JsonRESTError.__init__, "self", "error_type", "message")


@internal("EventPattern._flatten_dict/_does_event_match", "moto_ext (event patterns over arrays of objects)")
def _event_pattern() -> None:
    import moto_ext

    _params(moto_ext._original_flatten, "node", "prefix", "result")
    from moto.events.models import EventPattern
    _expect("self._flatten_dict(event)" in inspect.getsource(EventPattern.matches_event),
            "matches_event no longer flattens the event with _flatten_dict")


# ---- moto_perf: CloudWatch percentiles, RDS ---------------------------------------------------

@internal("Statistics.get_statistics_for_type", "moto_perf (pNN percentiles)")
def _statistics() -> None:
    import moto_perf

    _params(moto_perf._original_statistic, "self", "stat")
    from moto.cloudwatch import models
    _expect("self.metric_single_values_list" in inspect.getsource(models.Statistics),
            "Statistics keeps no metric_single_values_list")


@internal("DBInstance.address/port/performance_insights_enabled", "moto_perf.point_rds_at, Performance Insights")
def _db_instance() -> None:
    import moto_perf
    from moto.rds.models import DBInstance

    _expect(isinstance(moto_perf._original_address, property), "DBInstance.address is not a property")
    init = inspect.getsource(DBInstance.__init__)
    _expect("self.performance_insights_enabled =" not in init,
            "DBInstance sets performance_insights_enabled itself (moto reports Performance Insights now: drop the patch)")
    _expect("self.port =" in init and not isinstance(inspect.getattr_static(DBInstance, "port", None), property),
            "DBInstance.port is no longer a plain attribute point_rds_at can set")
    kinds = [p.kind for p in inspect.signature(DBInstance.update).parameters.values()]
    _expect(inspect.Parameter.VAR_KEYWORD in kinds,
            "DBInstance.update no longer keeps ModifyDBInstance's parameters (enable_performance_insights)")


# ---- moto_security: Secrets Manager rotation, fixed ids ---------------------------------------

@internal("SecretsManagerBackend.rotate_secret and its helpers", "moto_security (RotateSecret as AWS does it)")
def _secrets() -> None:
    from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend

    import moto_security  # noqa: F401 - the patched rotate_secret keeps the original's signature

    _params(SecretsManagerBackend.rotate_secret, "self", "secret_id", "client_request_token",
            "rotation_lambda_arn", "rotation_rules", "rotate_immediately")
    _params(SecretsManagerBackend.put_secret_value, "self", "secret_id", "secret_string", "secret_binary",
            "client_request_token", "version_stages")
    _params(FakeSecret.reset_default_version, "self", "secret_version", "version_id")
    _expect("version_id" in inspect.signature(FakeSecret.to_short_dict).parameters, "to_short_dict has no version_id")
    _expect(hasattr(SecretsManagerBackend, "_is_valid_identifier"), "no _is_valid_identifier")
    source = inspect.getsource(FakeSecret)
    for attribute in ("rotation_lambda_arn", "rotation_requested", "rotation_enabled", "auto_rotate_after_days",
                      "last_rotation_date", "versions", "secret_string"):
        _expect(f"self.{attribute}" in source, f"FakeSecret has no {attribute}")


@internal("generate_access_key_id_from_account_id/random_security_group_id/WAFV2Backend._generate_id",
          "moto_security.next_ids (the ids the examples name)")
def _ids() -> None:
    import moto.ec2.models.security_groups as ec2_groups
    import moto.iam.models as iam_models
    from moto.wafv2.models import WAFV2Backend

    import moto_security

    _params(iam_models.generate_access_key_id_from_account_id, "account_id", "prefix", "total_length")
    _params(ec2_groups.random_security_group_id)
    _params(WAFV2Backend._generate_id, "self")
    from moto.iam.models import iam_backends
    backend = iam_backends[ACCOUNT]["global"]
    try:
        backend.create_user(None, "u", "/", [])
        with moto_security.next_ids(access_key="AKIACHECKCHECKCHECK1"):
            key = backend.create_access_key("u")
        _expect(key.access_key_id == "AKIACHECKCHECKCHECK1",
                "IAM no longer draws key ids through generate_access_key_id_from_account_id at call time")
    finally:
        backend.reset()


@internal("IAMBackend._init_aws_policies/AWSManagedPolicy.from_data/aws_managed_policies_data",
          "moto_security (the AWS managed policies the security scenarios attach)")
def _managed_policies() -> None:
    import moto.iam.models as iam_models

    import moto_security

    _params(iam_models.AWSManagedPolicy.from_data, "name", "account_id", "region_name", "data")
    _expect("self.aws_managed_policies = self._init_aws_policies()" in inspect.getsource(iam_models.IAMBackend.__init__),
            "IAMBackend no longer loads its AWS managed policies through _init_aws_policies")
    data = json.loads(iam_models.aws_managed_policies_data)
    missing = [n for n in moto_security.MANAGED_POLICIES if n not in data]
    _expect(not missing, f"moto's managed policy data lacks {missing}")
    from moto.iam.models import iam_backends
    backend = iam_backends[ACCOUNT]["global"]
    try:
        _expect("arn:aws:iam::aws:policy/AWSDenyAll" in backend.managed_policies,
                "a new IAM backend does not know AWSDenyAll")
    finally:
        backend.reset()


# ---- estate: CloudFront distribution ids -------------------------------------------------------

@internal("CloudFrontBackend.distributions", "estate.static_site (the distribution id the examples name)")
def _cloudfront() -> None:
    from moto.cloudfront import models

    source = inspect.getsource(models)
    _expect("self.distributions" in source, "the CloudFront backend keeps no distributions dict")
    _expect("self.distribution_id" in source or "self.id" in source, "a distribution has no id attribute")


def verify() -> None:
    """Run every check; raise :class:`MotoMoved` listing each internal that moved (all of them,
    so one upgrade is one list of work)."""
    moved = []
    for item in INTERNALS:
        try:
            item.verify()
        except MotoMoved as err:
            moved.append(str(err))
    if moved:
        raise MotoMoved("the fake AWS's extensions need adapting to this moto:\n  " + "\n  ".join(moved))


if __name__ == "__main__":
    verify()
    print(json.dumps({"moto": moto.__version__, "internals": [i.name for i in INTERNALS]}, indent=1))
