"""CodePipeline actions of the runbook's "retry the failed stage or start a new execution"."""
from __future__ import annotations

import datetime as dt
from typing import ClassVar

from pydantic import Field

from ..api.security import PIPELINE_NAME
from ..ports.pipeline import FINISHED, PipelineStart, StartPipelineParams  # noqa: F401 - the port's types
from .clients import AwsClients

class PipelineActions:
    def __init__(self, clients: AwsClients, region: str | None, role_key: str | None):
        self.cp = clients.client("codepipeline", region, role_key)

    def stage_status(self, pipeline: str, stage: str, execution_id: str) -> str | None:
        """The status of ``stage`` in ``execution_id`` per GetPipelineState (None when the stage's
        latest execution is another one)."""
        for s in self.cp.get_pipeline_state(name=pipeline).get("stageStates", []):
            latest = s.get("latestExecution") or {}
            if s["stageName"] == stage and latest.get("pipelineExecutionId") == execution_id:
                return latest.get("status")
        return None

    def retry_stage(self, pipeline: str, stage: str, execution_id: str) -> str:
        """RetryStageExecution of the failed actions only; returns the execution id."""
        return self.cp.retry_stage_execution(pipelineName=pipeline, stageName=stage,
                                             pipelineExecutionId=execution_id,
                                             retryMode="FAILED_ACTIONS")["pipelineExecutionId"]

    def start(self, pipeline: str, client_request_token: str | None = None) -> str:
        """StartPipelineExecution; returns the new execution id. The same ``client_request_token``
        on a repeated call starts no second execution (CodePipeline API reference)."""
        return self.start_execution(StartPipelineParams(name=pipeline,
                                                        client_request_token=client_request_token)).execution_id

    def start_execution(self, p: StartPipelineParams) -> PipelineStart:
        """StartPipelineExecution with the step's idempotency token; follow it with
        :meth:`execution_status` until the status is in :data:`FINISHED`."""
        token = {"clientRequestToken": p.client_request_token} if p.client_request_token else {}
        execution_id = self.cp.start_pipeline_execution(name=p.name, **token)["pipelineExecutionId"]
        return PipelineStart(changed=True, pipeline=p.name, execution_id=execution_id)

    def execution_status(self, pipeline: str, execution_id: str) -> str:
        return self.cp.get_pipeline_execution(pipelineName=pipeline,
                                              pipelineExecutionId=execution_id)["pipelineExecution"]["status"]

    def newest_execution(self, pipeline: str) -> tuple[str, str, dt.datetime | None] | None:
        """(id, status, startTime) of the newest execution, or None."""
        runs = self.cp.list_pipeline_executions(pipelineName=pipeline, maxResults=1)["pipelineExecutionSummaries"]
        return (runs[0]["pipelineExecutionId"], runs[0]["status"], runs[0].get("startTime")) if runs else None
