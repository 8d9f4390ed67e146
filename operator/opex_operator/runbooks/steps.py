"""The Incident's typed steps: each action, its parameters model, and how a step is built (pure).

A step's ``action`` names what it does the way the operator policy names it (IAM-style
``service:Operation``); mutating actions are gated (DESIGN.md §3). ``status.steps[].params`` is a
string map on the wire; :func:`params_of` reads it back into the action's model, the only way
code reads parameters. Executors are registered per action in ``controllers.incident_steps``.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from ..api.incident import LAMBDA_NAME, Step
from ..api.performance import LAMBDA_MAX_MB, LAMBDA_MIN_MB, CacheSize


class StepAction(StrEnum):
    """What a step does, as the operator policy's ``actions`` globs match it."""

    ASSESS = "runbook:Assess"
    CLASSIFY = "runbook:Classify"
    VERIFY = "runbook:Verify"
    NOTIFY = "sns:Publish"
    UPDATE_FUNCTION_CODE = "lambda:UpdateFunctionCode"
    UPDATE_ALIAS = "lambda:UpdateAlias"
    UPDATE_FUNCTION_CONFIGURATION = "lambda:UpdateFunctionConfiguration"
    RETRY_STAGE_EXECUTION = "codepipeline:RetryStageExecution"
    START_PIPELINE_EXECUTION = "codepipeline:StartPipelineExecution"
    TERRAFORM_FORCE_UNLOCK = "terraform:ForceUnlock"
    TERRAFORM_IMPORT = "terraform:Import"
    DEACTIVATE_ACCESS_KEY = "iam:UpdateAccessKey"
    DELETE_ACCESS_KEY = "iam:DeleteAccessKey"
    DELETE_LOGIN_PROFILE = "iam:DeleteLoginProfile"
    UPDATE_IP_SET = "wafv2:UpdateIPSet"
    REVOKE_SECURITY_GROUP_INGRESS = "ec2:RevokeSecurityGroupIngress"
    ROTATE_SECRET = "secretsmanager:RotateSecret"
    DETACH_USER_POLICY = "iam:DetachUserPolicy"
    DETACH_ROLE_POLICY = "iam:DetachRolePolicy"
    DETACH_GROUP_POLICY = "iam:DetachGroupPolicy"
    DELETE_USER_POLICY = "iam:DeleteUserPolicy"
    DELETE_ROLE_POLICY = "iam:DeleteRolePolicy"
    DELETE_GROUP_POLICY = "iam:DeleteGroupPolicy"
    ATTACH_USER_POLICY = "iam:AttachUserPolicy"      # only ever AWSDenyAll: a quarantine
    ATTACH_ROLE_POLICY = "iam:AttachRolePolicy"      # only ever AWSDenyAll: a quarantine
    MODIFY_DB_INSTANCE = "rds:ModifyDBInstance"
    UPDATE_STAGE = "apigateway:UpdateStage"


class Params(BaseModel):
    """Base of the parameter models: camelCase on the wire, every value a string."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def wire(self) -> dict[str, str]:
        """The string map stored in ``status.steps[].params`` (unset values left out)."""
        return {k: str(v) for k, v in self.model_dump(mode="json", by_alias=True, exclude_none=True).items()}

    def target_region(self) -> str | None:
        """The region the step acts in when it is not the incident's (``spec.targets.region``), else None."""
        return None


def _split(value: object) -> object:
    return [v for v in value.split(",") if v] if isinstance(value, str) else value


# A list carried as one comma-separated string in the step's params (a string map on the wire).
CommaList = Annotated[list[str], BeforeValidator(_split), PlainSerializer(lambda v: ",".join(v), return_type=str)]


class NoParams(Params):
    """The read-only steps take none."""


class LambdaRollbackParams(Params):
    """rollback-lambda-<fn>: $LATEST's code (or ``alias``) back to ``to_version``."""

    function_name: str
    to_version: str
    alias: str | None = None


class LambdaConfigurationParams(Params):
    """lambda:UpdateFunctionConfiguration of what is set: ``keys`` (comma-separated) of the spec's
    remediation.lambdaEnvironment (update-lambda-env-<fn>), and/or ``memory_size_mb``
    (raise-lambda-memory-<fn>, the runbook's ``update-function-configuration --memory-size 512``;
    Lambda gives CPU in proportion to memory).

    For a memory raise, ``from_mb`` is the size when it was planned and ``before_p99_ms`` the
    window's worst Duration p99 then (milliseconds); ``changed_at`` is recorded when the new size
    is first seen set, so verification compares the first whole period after it.
    """

    function_name: str = Field(max_length=64, pattern=LAMBDA_NAME)
    keys: str | None = None
    memory_size_mb: int | None = Field(default=None, ge=LAMBDA_MIN_MB, le=LAMBDA_MAX_MB)
    from_mb: int | None = None
    before_p99_ms: int | None = None
    changed_at: dt.datetime | None = None


class RetryStageParams(Params):
    """retry-stage-<stage>: RetryStageExecution of the failed actions of ``stage`` in ``execution_id``."""

    pipeline: str
    stage: str
    execution_id: str


class StartPipelineParams(Params):
    """start-pipeline-execution; ``execution_id`` is recorded once started (so a restart does not start twice)."""

    pipeline: str
    execution_id: str | None = None


class ForceUnlockParams(Params):
    """terraform-force-unlock of ``lock_id`` in DriftCheck ``drift_check``'s workspace."""

    lock_id: str
    drift_check: str
    path: str = ""


class ImportParams(Params):
    """terraform-import-<addr>: ``terraform import ADDRESS ID`` in DriftCheck ``drift_check``'s workspace."""

    drift_check: str
    address: str
    id: str


class AccessKeyParams(Params):
    """deactivate-access-key-<key> / delete-access-key-<key>: one leaked key of one IAM user."""

    user_name: str
    access_key_id: str


class LoginProfileParams(Params):
    """remove-login-profile-<user>: the user's console password."""

    user_name: str


class BlockIpsParams(Params):
    """block-ips-<set>: ``addresses`` added to a WAFv2 IP set (``region`` us-east-1 for CLOUDFRONT)."""

    name: str
    id: str
    scope: str
    region: str | None = None
    addresses: CommaList
    allow_private_ranges: bool = False
    allow_world_ranges: bool = False

    def target_region(self) -> str | None:
        return self.region


class RevokeIngressParams(Params):
    """revoke-ingress-<group>-<protocol>-<ports>: the exact inbound rules from ``cidrs``."""

    group_id: str
    protocol: str
    from_port: int | None = None
    to_port: int | None = None
    cidrs: CommaList


class RotateSecretParams(Params):
    """rotate-secret-<name>: RotateSecret; ``version_id`` is recorded once the rotation started."""

    secret_id: str
    version_id: str | None = None


class DetachPolicyParams(Params):
    """detach-<type>-policy-<name>-<policy>: a managed policy the compromise attached to a user,
    role or group (``principal_type``); ``event_id`` is the CloudTrail record that attached it."""

    principal_type: str
    principal_name: str
    policy_arn: str
    event_id: str | None = None


class InlinePolicyParams(Params):
    """delete-<type>-policy-<name>-<policy>: an inline policy the compromise put on a user, role or
    group; ``event_id`` is the CloudTrail record that put it (it holds the document)."""

    principal_type: str
    principal_name: str
    policy_name: str
    event_id: str | None = None


class QuarantineParams(Params):
    """quarantine-<type>-<name>: AWS's managed policy AWSDenyAll attached to a user or role the
    compromise made (or whose trust it changed), so none of its credentials or sessions can act."""

    principal_type: str
    principal_name: str
    event_id: str | None = None
# The runbook's retention for Performance Insights (7 days is also the free tier).
PERFORMANCE_INSIGHTS_RETENTION_DAYS = 7


class PerformanceInsightsParams(Params):
    """enable-performance-insights-<db>: the runbook's ``modify-db-instance --enable-performance-insights
    --performance-insights-retention-period 7``."""

    db_instance_identifier: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z][A-Za-z0-9-]*$")
    retention_days: int = Field(default=PERFORMANCE_INSIGHTS_RETENTION_DAYS, ge=7, le=731)


class StageSettingsParams(Params):
    """update-api-stage-<stage>: stage settings to reach; None leaves a setting as it is. The runbook's
    "Enable detailed monitoring" and "Check cache configuration" lines, done as ``update-stage``
    patch operations (its ``put-method-response`` line does not enable monitoring)."""

    rest_api_id: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9]+$")
    stage_name: str = Field(min_length=1, max_length=128)
    caching_enabled: bool | None = None
    cache_size_gb: CacheSize | None = None
    metrics_enabled: bool | None = None


PARAMS: dict[StepAction, type[Params]] = {
    StepAction.ASSESS: NoParams, StepAction.CLASSIFY: NoParams, StepAction.VERIFY: NoParams,
    StepAction.NOTIFY: NoParams,
    StepAction.UPDATE_FUNCTION_CODE: LambdaRollbackParams, StepAction.UPDATE_ALIAS: LambdaRollbackParams,
    StepAction.UPDATE_FUNCTION_CONFIGURATION: LambdaConfigurationParams,
    StepAction.RETRY_STAGE_EXECUTION: RetryStageParams, StepAction.START_PIPELINE_EXECUTION: StartPipelineParams,
    StepAction.TERRAFORM_FORCE_UNLOCK: ForceUnlockParams, StepAction.TERRAFORM_IMPORT: ImportParams,
    StepAction.DEACTIVATE_ACCESS_KEY: AccessKeyParams, StepAction.DELETE_ACCESS_KEY: AccessKeyParams,
    StepAction.DELETE_LOGIN_PROFILE: LoginProfileParams, StepAction.UPDATE_IP_SET: BlockIpsParams,
    StepAction.REVOKE_SECURITY_GROUP_INGRESS: RevokeIngressParams, StepAction.ROTATE_SECRET: RotateSecretParams,
    StepAction.MODIFY_DB_INSTANCE: PerformanceInsightsParams, StepAction.UPDATE_STAGE: StageSettingsParams,
    StepAction.DETACH_USER_POLICY: DetachPolicyParams, StepAction.DETACH_ROLE_POLICY: DetachPolicyParams,
    StepAction.DETACH_GROUP_POLICY: DetachPolicyParams, StepAction.DELETE_USER_POLICY: InlinePolicyParams,
    StepAction.DELETE_ROLE_POLICY: InlinePolicyParams, StepAction.DELETE_GROUP_POLICY: InlinePolicyParams,
    StepAction.ATTACH_USER_POLICY: QuarantineParams, StepAction.ATTACH_ROLE_POLICY: QuarantineParams,
}


def step(step_id: str, action: StepAction, params: Params | None = None, inputs: str | None = None,
         requires_approval: bool = False) -> Step:
    """A new Pending step; mutating unless its action is one of the runbook's reads. With
    ``requires_approval`` it waits for approval even in Auto mode."""
    params = params or NoParams()
    if not isinstance(params, PARAMS[action]):
        raise TypeError(f"{action} takes {PARAMS[action].__name__}, not {type(params).__name__}")
    return Step(id=step_id, action=action.value, mutating=action not in READS, params=params.wire(), inputs=inputs,
                requires_approval=requires_approval)


def params_of(s: Step) -> Params:
    """The step's parameters as its action's model. Raises ValueError for an unknown action."""
    return PARAMS[StepAction(s.action)].model_validate(s.params)


def slug(name: str) -> str:
    """A step-id-safe form of an AWS name: lowercase, [a-z0-9-], at most 60 characters."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:60] or "x"


# Idempotency tokens live in this namespace: uuid5(TOKENS, "<incident uid>/<step id>").
TOKENS = uuid.UUID("5b1f0d3e-8f3c-4a51-9d0e-6f7c1e2a4b90")


def request_token(incident_uid: str, step_id: str) -> str:
    """The idempotency token of one step of one incident (a UUID, 36 characters): the same on every
    attempt and after a restart, so AWS treats a repeated call as the one already made (Secrets
    Manager's ClientRequestToken, CodePipeline's clientRequestToken)."""
    return str(uuid.uuid5(TOKENS, f"{incident_uid}/{step_id}"))


READS = {StepAction.ASSESS, StepAction.CLASSIFY, StepAction.VERIFY, StepAction.NOTIFY}
