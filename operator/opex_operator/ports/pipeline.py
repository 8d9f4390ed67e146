"""CodePipeline's execution states and the start action's parameters and record (``aws.pipeline``)."""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ..api.security import PIPELINE_NAME
from .actions import Change, Params

# PipelineExecution.status values after which nothing more happens (CodePipeline API reference).
FINISHED = {"Succeeded", "Failed", "Stopped", "Superseded", "Cancelled"}


class StartPipelineParams(Params):
    """A new execution of a pipeline (the security runbook's "force re-deployment of affected services")."""

    action: ClassVar[str] = "codepipeline:StartPipelineExecution"
    name: str = Field(min_length=1, max_length=100, pattern=PIPELINE_NAME)
    client_request_token: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9-]+$",
                                             description="Idempotency token: the same for every attempt of one step.")


class PipelineStart(Change):
    pipeline: str
    execution_id: str

    def describe(self) -> str:
        return f"started execution {self.execution_id} of pipeline {self.pipeline}"

    def undo(self) -> str | None:
        return (f"a deployment cannot be unstarted; to stop it: aws codepipeline stop-pipeline-execution "
                f"--pipeline-name {self.pipeline} --pipeline-execution-id {self.execution_id}")
