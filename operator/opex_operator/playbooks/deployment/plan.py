"""Which runbook steps an incident gets: the fixed read steps and the gated remediation steps.

Resolution steps from the runbook, Deployment Failure Runbook (Resolution Steps) and Pipeline
Failure Runbook (Recovery Procedures), each with a stable id:

=========================  ====================================  ==========================================
step id                    action (policy name)                  planned when
=========================  ====================================  ==========================================
rollback-lambda-<fn>       lambda:UpdateFunctionCode or          root cause LambdaDeployment, the function's update
                           lambda:UpdateAlias                    failed or its errors are tied to the release
                                                                 (diagnose.release_evidence), and a known-good
                                                                 version exists (previous, or the one in spec)
update-lambda-env-<fn>     lambda:UpdateFunctionConfiguration    spec.remediation.lambdaEnvironment lists <fn>
terraform-force-unlock     terraform:ForceUnlock                 root cause TerraformStateLock and a DriftCheck
                                                                 names the workspace
retry-stage-<stage>        codepipeline:RetryStageExecution      the failed execution is the latest and the
                                                                 cause is transient (lock, backend fault,
                                                                 network, install); not a registry's rate
                                                                 limit, which a retry hits again until its
                                                                 window resets
start-pipeline-execution   codepipeline:StartPipelineExecution   as above, when the execution is not the latest
terraform-import-<addr>    terraform:Import                      root cause DeployNamingConflict from a Terraform
                                                                 error naming the resource address and the
                                                                 existing object's id, and a DriftCheck names
                                                                 the workspace
=========================  ====================================  ==========================================

Other incident types add their own steps to these (their playbooks: ``playbooks.security.response``,
``playbooks.performance.plan``).

Refresh-only and ``state rm`` are not planned: no failure signal reliably calls for them (a
DriftCheck's ``RefreshOnly`` resolution covers state that drifted). Every other root cause
(permission denied, a naming conflict outside Terraform, quota, validation, failing tests,
database connectivity) needs a human: no automated step, the incident waits in Remediating
until verification sees the fix (a new successful pipeline execution).
"""
from __future__ import annotations

import re

from ...api.incident import IncidentSpec, RootCause, RootCauseCategory as Cat, Step
from ...ports.facts import Observations
from ...steps import slug, step
from ...steps.lambda_code import UPDATE_ALIAS, UPDATE_FUNCTION_CODE, LambdaRollbackParams
from ...steps.lambda_configuration import UPDATE_FUNCTION_CONFIGURATION, LambdaConfigurationParams
from ...steps.pipeline import (RETRY_STAGE_EXECUTION, START_PIPELINE_EXECUTION, RetryStageParams,
                               StartPipelineParams)
from ...steps.terraform import TERRAFORM_FORCE_UNLOCK, TERRAFORM_IMPORT, ForceUnlockParams, ImportParams
from ..diagnose import release_broke

RETRYABLE = {Cat.TERRAFORM_STATE_LOCK, Cat.TERRAFORM_BACKEND, Cat.DEPLOY_NETWORK, Cat.BUILD_DEPENDENCY_INSTALL}
# Terraform's AWS provider: "Error: creating IAM Role (name): ... already exists" then "with ADDRESS,".
TF_CONFLICT = re.compile(r"Error: creating [^(\n]+\((?P<id>[^)\s]+)\)[^\n]*(?:already exists|AlreadyExists)"
                         r"(?:.|\n){0,400}?with (?P<address>[\w.\[\]\"-]+),")


def remediation_steps(spec: IncidentSpec, cause: RootCause, obs: Observations) -> list[Step]:
    """The gated steps for ``cause`` in runbook order (may be empty: a human must act)."""
    steps: list[Step] = []
    if cause.category == Cat.LAMBDA_DEPLOYMENT:
        wanted = spec.remediation.lambda_rollback
        for fn in obs.lambdas:
            if not (release_broke(fn) or fn.state == "Failed" or fn.last_update_status == "Failed"):
                continue
            target = wanted.to_version if wanted and wanted.to_version else (
                fn.previous_version.version if fn.previous_version else None)
            if target is None:
                continue
            alias = wanted.alias if wanted and wanted.alias else None
            current = fn.aliases.get(alias) if alias else (fn.current_version or "$LATEST")
            steps.append(step(
                f"rollback-lambda-{slug(fn.name)}", UPDATE_ALIAS if alias else UPDATE_FUNCTION_CODE,
                LambdaRollbackParams(function_name=fn.name, to_version=target, alias=alias),
                f"point alias {alias} of {fn.name} from version {current} to {target}" if alias else
                f"replace the code of {fn.name} ($LATEST, now {current}) with version {target}'s"))
    if cause.category == Cat.TERRAFORM_STATE_LOCK and cause.lock is not None and spec.targets.drift_check_ref:
        dc = spec.targets.drift_check_ref.name
        steps.append(step(
            "terraform-force-unlock", TERRAFORM_FORCE_UNLOCK,
            ForceUnlockParams(lock_id=cause.lock.id, drift_check=dc, path=cause.lock.path or ""),
            f"terraform force-unlock {cause.lock.id} in DriftCheck {dc}'s workspace "
            f"(only if still held and older than {spec.remediation.force_unlock.min_lock_age_seconds}s)"))
    if cause.category == Cat.DEPLOY_NAMING_CONFLICT and spec.targets.drift_check_ref:
        dc = spec.targets.drift_check_ref.name
        text = "\n".join(line.message.lstrip("│ ") for line in obs.build_log_lines)
        for m in TF_CONFLICT.finditer(text):
            steps.append(step(
                f"terraform-import-{slug(m.group('address'))}", TERRAFORM_IMPORT,
                ImportParams(drift_check=dc, address=m.group("address"), id=m.group("id")),
                f"terraform import {m.group('address')} {m.group('id')} in DriftCheck {dc}'s workspace"))
    p = obs.pipeline
    imported = any(s.action == TERRAFORM_IMPORT for s in steps)
    if (cause.category in RETRYABLE or imported) and p is not None and p.status == "Failed":
        if p.is_latest and p.failed_stage:
            steps.append(step(
                f"retry-stage-{slug(p.failed_stage)}", RETRY_STAGE_EXECUTION,
                RetryStageParams(pipeline=p.name, stage=p.failed_stage, execution_id=p.execution_id),
                f"retry the failed actions of stage {p.failed_stage} in execution {p.execution_id} of {p.name}"))
        else:
            steps.append(step("start-pipeline-execution", START_PIPELINE_EXECUTION,
                              StartPipelineParams(pipeline=p.name), f"start a new execution of {p.name}"))
    for env in spec.remediation.lambda_environment:
        keys = ",".join(sorted(env.variables))
        steps.append(step(f"update-lambda-env-{slug(env.function_name)}", UPDATE_FUNCTION_CONFIGURATION,
                          LambdaConfigurationParams(function_name=env.function_name, keys=keys),
                          f"set environment variables {keys} of {env.function_name}"))
    return steps
