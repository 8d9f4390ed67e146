"""What moto 5.2.5 lacks for the runbooks, added to its in-process server for the local stack only.

The operator's code is the same against AWS and against this: real boto3 calls over HTTP. What
is added here follows the AWS API reference shapes:

* CodePipeline ``GetPipelineState`` and ``RetryStageExecution`` (moto has neither), with stage
  and action states set by :func:`fail_pipeline_execution` (moto reports every execution
  ``Succeeded``);
* CodeBuild ``BatchGetBuilds`` keeps a build's final state once :func:`finish_build` set it
  (moto rewrites every build to ``SUCCEEDED`` and appends its phases again on each call);
* Lambda ``GetFunction``'s ``Code.Location``: AWS returns a presigned URL of the deployment
  package; moto returns an AWS hostname nobody can reach. Here it is a URL on this server that
  serves the package bytes, so the operator downloads it exactly as from AWS;
* Lambda ``LastUpdateStatus``/``StateReason`` of a failed deployment (:func:`fail_lambda_update`).

:class:`Server` is moto's ThreadedMotoServer with the package URL route in front.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any

from moto.awslambda.models import LambdaFunction, lambda_backends
from moto.codebuild.models import CodeBuildBackend
from moto.codepipeline.models import codepipeline_backends
from moto.codepipeline.responses import CodePipelineResponse
from moto.core.exceptions import JsonRESTError
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

CODE_PATH = "/_opex_ext/lambda-code/"
_lock = threading.Lock()
# The URL the request being served was sent to (scheme and Host): a package's Code.Location names
# the server the client reached, however many servers this process runs and whichever address the
# client used (a pod reaches the node's address, a test 127.0.0.1). Each request has its own thread.
_request = threading.local()
# (account, region, pipeline) -> {"executionId": str, "stages": [{"stageName", "status", "actions": [...]}]}
_pipeline_states: dict[tuple[str, str, str], dict[str, Any]] = {}
_final_builds: set[str] = set()


# ---- the server ------------------------------------------------------------------------------

class Server(ThreadedMotoServer):
    """ThreadedMotoServer that also serves Lambda deployment packages under :data:`CODE_PATH`."""

    def _server_entry(self) -> None:  # same as moto's, with the package route in front
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(self._ip_address, self._port, _with_code_route(app), True,
                                   request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


def _with_code_route(app):
    def wsgi(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith(CODE_PATH):
            _request.base_url = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
            return app(environ, start_response)
        try:
            account, region, name, version = path[len(CODE_PATH):].split("/")
            fn = lambda_backends[account][region].get_function(name, version)
            body = fn.code_bytes
        except Exception as err:  # noqa: BLE001 - answer like S3 does for a missing key
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [f"NoSuchKey: {err}".encode()]
        start_response("200 OK", [("Content-Type", "application/zip"), ("Content-Length", str(len(body)))])
        return [body]
    return wsgi


# ---- Lambda ----------------------------------------------------------------------------------

_original_get_code = LambdaFunction.get_code
_original_get_configuration = LambdaFunction.get_configuration
_original_update_code = LambdaFunction.update_function_code


def _get_code(self: LambdaFunction) -> dict[str, Any]:
    resp = _original_get_code(self)
    base_url = getattr(_request, "base_url", "")
    if "Code" in resp and resp["Code"].get("RepositoryType") == "S3" and base_url:
        resp["Code"]["Location"] = (f"{base_url}{CODE_PATH}{self.account_id}/{self.region}/"
                                    f"{self.function_name}/{self.version}")
    return resp


def _get_configuration(self: LambdaFunction, on_create: bool = False) -> dict[str, Any]:
    config = _original_get_configuration(self, on_create)
    config.update(getattr(self, "_ext_overrides", {}))
    return config


def _update_function_code(self: LambdaFunction, updated_spec: dict[str, Any]) -> dict[str, Any]:
    self._ext_overrides = {}  # a new deployment replaces a failed one's status
    return _original_update_code(self, updated_spec)


LambdaFunction.get_code = _get_code
LambdaFunction.get_configuration = _get_configuration
LambdaFunction.update_function_code = _update_function_code


def fail_lambda_update(account: str, region: str, name: str, reason: str, code: str = "InternalError") -> None:
    """Make ``$LATEST`` of ``name`` report a failed last update (LastUpdateStatus Failed)."""
    fn = lambda_backends[account][region].get_function(name)
    fn._ext_overrides = {"LastUpdateStatus": "Failed", "LastUpdateStatusReason": reason,
                         "LastUpdateStatusReasonCode": code}


# ---- CodeBuild -------------------------------------------------------------------------------

_original_batch_get_builds = CodeBuildBackend.batch_get_builds


def _batch_get_builds(self: CodeBuildBackend, ids: list[str]) -> list[dict[str, Any]]:
    final = [b for history in self.build_metadata_history.values() for b in history
             if b["id"] in ids and b["id"] in _final_builds]
    rest = [i for i in ids if i not in _final_builds]
    return final + (_original_batch_get_builds(self, rest) if rest else [])


CodeBuildBackend.batch_get_builds = _batch_get_builds


def finish_build(backend: CodeBuildBackend, build_id: str, status: str, phases: list[dict[str, Any]],
                 log_group: str, log_stream: str) -> None:
    """Give a started build its final ``status`` (e.g. FAILED), ``phases`` and CloudWatch log location."""
    for history in backend.build_metadata_history.values():
        for build in history:
            if build["id"] == build_id:
                now = time.time()
                build.update(buildStatus=status, currentPhase="COMPLETED", buildComplete=True, endTime=now,
                             phases=phases)
                build["logs"].update(groupName=log_group, streamName=log_stream,
                                     deepLink=f"https://console.aws.amazon.com/cloudwatch/home#logEvent:"
                                              f"group={log_group};stream={log_stream}")
                _final_builds.add(build_id)
                return
    raise KeyError(build_id)


# ---- CodePipeline ----------------------------------------------------------------------------

class StageNotRetryableException(JsonRESTError):
    code = 400

    def __init__(self, message: str):
        super().__init__("StageNotRetryableException", message)


class NotLatestPipelineExecutionException(JsonRESTError):
    code = 400

    def __init__(self, message: str):
        super().__init__("NotLatestPipelineExecutionException", message)


def fail_pipeline_execution(account: str, region: str, pipeline: str, execution_id: str, failed_stage: str,
                            failed_action: str, error_code: str, error_message: str,
                            external_execution_id: str | None = None, summary: str | None = None) -> None:
    """Mark an execution ``Failed`` at ``failed_stage``/``failed_action``; earlier stages succeeded."""
    backend = codepipeline_backends[account][region]
    definition, _ = backend.get_pipeline(pipeline)
    execution = backend.get_pipeline_execution(pipeline, execution_id)
    execution.status = "Failed"
    execution.status_summary = summary or f"{failed_stage} stage failed: {error_message}"[:200]
    stages, reached = [], True
    for stage in definition["stages"]:
        name = stage["name"]
        status = "Succeeded" if reached and name != failed_stage else ("Failed" if name == failed_stage else None)
        actions = []
        for action in stage.get("actions", []):
            state: dict[str, Any] = {"actionName": action["name"]}
            if status is not None:
                failed = name == failed_stage and action["name"] == failed_action
                state["latestExecution"] = {
                    "actionExecutionId": f"{execution_id[:8]}-{name}-{action['name']}",
                    "status": "Failed" if failed else "Succeeded",
                    "lastStatusChange": time.time(),
                    **({"errorDetails": {"code": error_code, "message": error_message}} if failed else {}),
                    **({"externalExecutionId": external_execution_id} if failed and external_execution_id else {}),
                }
            actions.append(state)
        stages.append({"stageName": name, "status": status, "actions": actions})
        if name == failed_stage:
            reached = False
    with _lock:
        _pipeline_states[(account, region, pipeline)] = {"executionId": execution_id, "stages": stages}


def _get_pipeline_state(self: CodePipelineResponse) -> str:
    name = self._get_param("name")
    definition, metadata = self.codepipeline_backend.get_pipeline(name)
    with _lock:
        state = json.loads(json.dumps(_pipeline_states.get((self.current_account, self.region, name), {})))
    known = {s["stageName"]: s for s in state.get("stages", [])}
    stage_states = []
    for stage in definition["stages"]:
        entry: dict[str, Any] = {"stageName": stage["name"], "inboundTransitionState": {"enabled": True}}
        seen = known.get(stage["name"])
        if seen and seen["status"]:
            entry["latestExecution"] = {"pipelineExecutionId": state["executionId"], "status": seen["status"]}
            entry["actionStates"] = seen["actions"]
        else:
            entry["actionStates"] = [{"actionName": a["name"]} for a in stage.get("actions", [])]
        stage_states.append(entry)
    return json.dumps({"pipelineName": name, "pipelineVersion": definition.get("version", 1),
                       "stageStates": stage_states})


def _retry_stage_execution(self: CodePipelineResponse) -> str:
    name, stage_name = self._get_param("pipelineName"), self._get_param("stageName")
    execution_id = self._get_param("pipelineExecutionId")
    self.codepipeline_backend.get_pipeline(name)
    key = (self.current_account, self.region, name)
    with _lock:
        state = _pipeline_states.get(key)
        if not state or state["executionId"] != execution_id:
            raise NotLatestPipelineExecutionException(
                f"Execution {execution_id} is not the latest execution of pipeline {name}")
        stage = next((s for s in state["stages"] if s["stageName"] == stage_name), None)
        if stage is None or stage["status"] != "Failed":
            raise StageNotRetryableException(f"Stage {stage_name} of execution {execution_id} is not failed")
        # The retried actions succeed; so do the stages after it (nothing else is simulated).
        after = False
        for s in state["stages"]:
            if s["stageName"] == stage_name:
                after = True
            if after:
                s["status"] = "Succeeded"
                for action in s["actions"]:
                    action["latestExecution"] = {"status": "Succeeded", "lastStatusChange": time.time(),
                                                 "summary": "retried"}
    execution = self.codepipeline_backend.get_pipeline_execution(name, execution_id)
    execution.status = "Succeeded"
    execution.status_summary = None
    return json.dumps({"pipelineExecutionId": execution_id})


CodePipelineResponse.get_pipeline_state = _get_pipeline_state
CodePipelineResponse.retry_stage_execution = _retry_stage_execution


def reset() -> None:
    """Forget the extension's own state (moto's reset forgets the rest)."""
    with _lock:
        _pipeline_states.clear()
        _final_builds.clear()
