"""``opex plan-job``: one DriftCheck run inside its Job's pod (``terraform.job_runner`` creates the Job).

The pod runs the same code as the in-process runner (``terraform.session.prepare``: the minimal
environment, the backend checked against the operator policy before and after ``init``), on the
input the operator mounted (``jobs.INPUT_DIR``): the spec, the ConfigMaps and Secrets it names,
the policy and the namespace role's credentials. It reports through one ConfigMap (named as the
Job, owned by the DriftCheck) and exits 0 whenever it could report, whatever Terraform said.

* plan: ``plan -detailed-exitcode -json``; with changes, ``show -json`` of the saved plan, its
  inputs, and the plan file uploaded to the state's bucket (``jobs.plan_key``), where the apply Job
  fetches it. A backend other than s3 has no bucket: the run fails with ``PlanStoreUnavailable``.
* apply: the plan file fetched, refused unless its SHA-256 is the one the plan Job saved and its
  checksum (``terraform.plan.checksum``) the one the operator matched to the approval
  (``jobs.verify_plan``), then ``apply`` of exactly that file.
"""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any, cast

from ..api.driftcheck import DriftCheckSpec
from ..policy import Policy
from ..ports.terraform import Result, SourceError, TerraformError
from . import jobs
from .plan import checksum
from .session import Session, prepare
from .workspace import RunDir


class Snapshot:
    """``session.ConfigSource`` over the ConfigMaps and Secrets the operator read for the run."""

    def __init__(self, config_maps: dict[str, dict[str, str] | None], secrets: dict[str, dict[str, str] | None]):
        self.config_maps, self.secrets = config_maps, secrets

    def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.config_maps.get(name)

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.secrets.get(name)


def s3_client(session: Session, role_env: dict[str, str]) -> Any:
    """An S3 client for the state's bucket with the namespace role's credentials (never the pod's)."""
    import boto3
    from botocore.config import Config

    settings = session.backend.settings
    path_style = settings.get("use_path_style", settings.get("force_path_style", "")).lower() == "true"
    return boto3.client("s3", region_name=settings.get("region") or os.environ.get("AWS_REGION"),
                        aws_access_key_id=role_env.get("AWS_ACCESS_KEY_ID"),
                        aws_secret_access_key=role_env.get("AWS_SECRET_ACCESS_KEY"),
                        aws_session_token=role_env.get("AWS_SESSION_TOKEN"),
                        config=Config(s3={"addressing_style": "path" if path_style else "auto"}))


def bucket_of(session: Session) -> str:
    if session.backend.type != "s3" or not session.backend.settings.get("bucket"):
        raise SourceError("PlanStoreUnavailable", f"runner Job keeps the saved plan in the state's S3 bucket; this "
                                                  f"configuration's backend is {session.backend.type}: use spec.runner: "
                                                  f"InProcess")
    return session.backend.settings["bucket"]


async def run(request: dict[str, Any], work: Path, cache: Path, binary: str) -> jobs.JobResult:
    """The run ``request`` asks for (the input ``job_runner.JobSession.input`` wrote); never raises
    for what Terraform or the source did: that goes in the result."""
    ns, name, purpose = request["namespace"], request["driftCheck"], request["purpose"]
    spec = DriftCheckSpec.model_validate(request["spec"])
    grant = Policy.model_validate(request["policy"]).terraform_grant(ns, request["action"], spec.workspace)
    role_env = request.get("roleEnv") or {}
    out = jobs.JobResult()
    try:
        session = await prepare(Snapshot(request.get("configMaps") or {}, request.get("secrets") or {}), ns, spec,
                                RunDir(work / ns / name / "check"), binary, cache, float(request["timeout"]), grant,
                                role_env)
        out.version, out.revision = session.version, session.revision
        lock_timeout = spec.lock.timeout
        if purpose == jobs.PLAN:
            out.result = await session.plan(lock_timeout, json_stream=True)
            if out.result.exit_code == 2:
                out.doc = await session.show_plan()
                out.inputs = session.plan_inputs()
                data = session.run_dir.plan.read_bytes()
                bucket, sha = bucket_of(session), jobs.sha256_hex(data)
                key = jobs.plan_key(ns, name, sha)
                await asyncio.to_thread(s3_client(session, role_env).put_object, Bucket=bucket, Key=key, Body=data)
                out.plan = {"bucket": bucket, "key": key, "sha256": sha}
            elif out.result.exit_code == 0 and spec.triggers.cloud_trail:
                # no change, but the prior state's ids are what the event intake matches CloudTrail calls to
                out.doc = await session.show_plan()
        else:
            plan = request["plan"]
            body = await asyncio.to_thread(s3_client(session, role_env).get_object, Bucket=plan["bucket"],
                                           Key=plan["key"])
            data = body["Body"].read()
            session.run_dir.plan.write_bytes(data)
            saved = checksum(await session.show_plan(), session.plan_inputs())
            try:
                jobs.verify_plan(data, plan["sha256"], saved, request["approvedChecksum"])
            except jobs.JobRefused as err:
                out.result = Result("apply", 1, "", str(err), 0.0)
                return out
            out.result = await session.apply_saved_plan(lock_timeout)
    except SourceError as err:
        out.error = {"type": "SourceError", "reason": err.reason, "message": str(err)}
    except TerraformError as err:
        out.error = {"type": "TerraformError", "message": str(err), "result": jobs.result_dict(err.result)}
    except Exception as err:  # noqa: BLE001 - S3, a plan file that cannot be read: reported, never lost
        out.error = {"type": "SourceError", "reason": "JobFailed", "message": f"{type(err).__name__}: {err}"}
    return out


def report(request: dict[str, Any], result: jobs.JobResult) -> None:
    """Create the result ConfigMap (owned by the DriftCheck; the runner ServiceAccount may create
    ConfigMaps, nothing else). Raises the client's errors: the Job then fails, and says so."""
    import kubernetes

    from ..kube import load_client_config

    load_client_config()
    owner = {"apiVersion": "opex.dev/v1alpha1", "kind": "DriftCheck", "name": request["driftCheck"],
             "uid": request["uid"], "controller": False, "blockOwnerDeletion": False}
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": request["result"], "namespace": request["namespace"], "ownerReferences": [owner],
                         "labels": {jobs.OWNER_LABEL: request["uid"], jobs.PURPOSE_LABEL: request["purpose"],
                                    "app.kubernetes.io/managed-by": "opex-operator"}},
            "binaryData": jobs.encode_result(result)}
    kubernetes.client.CoreV1Api().create_namespaced_config_map(request["namespace"], cast(Any, body))


def main(input_path: Path) -> int:
    """Run the request in ``input_path`` and report it; 0 once reported."""
    request = json.loads(Path(input_path).read_text())
    tmp = Path(os.environ.get("TMPDIR") or "/tmp")
    work = Path(os.environ.get("OPEX_WORK_DIR") or tmp / "opex" / "work")
    cache = Path(os.environ.get("OPEX_CACHE_DIR") or tmp / "opex" / "cache")
    result = asyncio.run(run(request, work, cache, os.environ.get("OPEX_TERRAFORM") or "terraform"))
    report(request, result)
    outcome = result.error or (result.result and {"command": result.result.command, "exitCode": result.result.exit_code})
    print(json.dumps({"driftCheck": request["driftCheck"], "purpose": request["purpose"], "outcome": outcome}))
    return 0
