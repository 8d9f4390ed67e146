"""The Incident's typed steps: each action, its parameters model, and how a step is built (pure).

A step's ``action`` names what it does the way the operator policy names it (IAM-style
``service:Operation``); mutating actions are gated (DESIGN.md §3). ``status.steps[].params`` is a
string map on the wire; :func:`params_of` reads it back into the action's model, the only way
code reads parameters. Executors are registered per action in ``controllers.incident_steps``.
"""
from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from ..api.incident import Step


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


class Params(BaseModel):
    """Base of the parameter models: camelCase on the wire, every value a string."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def wire(self) -> dict[str, str]:
        """The string map stored in ``status.steps[].params`` (unset values left out)."""
        return {k: str(v) for k, v in self.model_dump(by_alias=True, exclude_none=True).items()}


class NoParams(Params):
    """The read-only steps take none."""


class LambdaRollbackParams(Params):
    """rollback-lambda-<fn>: $LATEST's code (or ``alias``) back to ``to_version``."""

    function_name: str
    to_version: str
    alias: str | None = None


class LambdaEnvironmentParams(Params):
    """update-lambda-env-<fn>: the variables of spec.remediation.lambdaEnvironment (``keys``, comma-separated)."""

    function_name: str
    keys: str


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


PARAMS: dict[StepAction, type[Params]] = {
    StepAction.ASSESS: NoParams, StepAction.CLASSIFY: NoParams, StepAction.VERIFY: NoParams,
    StepAction.NOTIFY: NoParams,
    StepAction.UPDATE_FUNCTION_CODE: LambdaRollbackParams, StepAction.UPDATE_ALIAS: LambdaRollbackParams,
    StepAction.UPDATE_FUNCTION_CONFIGURATION: LambdaEnvironmentParams,
    StepAction.RETRY_STAGE_EXECUTION: RetryStageParams, StepAction.START_PIPELINE_EXECUTION: StartPipelineParams,
    StepAction.TERRAFORM_FORCE_UNLOCK: ForceUnlockParams, StepAction.TERRAFORM_IMPORT: ImportParams,
}


def step(step_id: str, action: StepAction, params: Params | None = None, inputs: str | None = None) -> Step:
    """A new Pending step; mutating unless its action is one of the runbook's reads."""
    params = params or NoParams()
    if not isinstance(params, PARAMS[action]):
        raise TypeError(f"{action} takes {PARAMS[action].__name__}, not {type(params).__name__}")
    return Step(id=step_id, action=action.value, mutating=action not in READS, params=params.wire(), inputs=inputs)


def params_of(s: Step) -> Params:
    """The step's parameters as its action's model. Raises ValueError for an unknown action."""
    return PARAMS[StepAction(s.action)].model_validate(s.params)


READS = {StepAction.ASSESS, StepAction.CLASSIFY, StepAction.VERIFY, StepAction.NOTIFY}
