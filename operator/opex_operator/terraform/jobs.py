"""DriftCheck plans and approved applies as Kubernetes Jobs: the pure parts (docs/scaling.md, section 4).

What the operator hands a Job and what the Job hands back, with no I/O here:

* :func:`job_name`: ``<driftcheck>-<purpose>-<digest of the DriftCheck's uid and the run's slot>``, so
  a restarted operator that asks for the same run computes the same name and finds the Job (the API
  server refuses a second of that name) instead of creating another.
* :func:`build_job`: the chart's Job template (same image and security context as the operator,
  the namespace's runner ServiceAccount, no operator credentials) filled in: ``backoffLimit: 0``
  (the schedule is the retry), ``activeDeadlineSeconds`` from the run's budget (``timeoutSeconds``,
  or up to the next slot under ``concurrencyPolicy: Replace``), an owner reference to the
  DriftCheck, the input Secret mounted read-only.
* :func:`encode_result` / :func:`decode_result`: the result ConfigMap the Job writes, gzip-compressed
  JSON in ``binaryData``; a result that does not fit :data:`MAX_RESULT_BYTES` is replaced by a
  ``ResultTooLarge`` error that says so (the run fails with that reason; nothing is cut silently).
* :func:`verify_plan`: the apply Job's refusal of a downloaded plan file that is not the one planned
  (its SHA-256) or whose plan is not the approved one (its checksum, ``terraform.plan.checksum``).
"""
from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..ports.objects import ObjectRef
from ..ports.terraform import Result

PLAN, APPLY = "plan", "apply"
# Labels of the Jobs and result ConfigMaps: whose (the DriftCheck's uid) and which kind of run.
# Not ``opex.dev/driftcheck``: that label selects the report ConfigMaps the controller prunes.
OWNER_LABEL, PURPOSE_LABEL = "opex.dev/run-of", "opex.dev/run"
INPUT_DIR, INPUT_KEY, RESULT_KEY = "/run/opex/input", "input.json", "result.json.gz"
# A ConfigMap holds at most 1 MiB (data and binaryData together, core.MaxSecretSize); the rest is
# left to metadata.
MAX_RESULT_BYTES = 1024 * 1024 - 16 * 1024
# Where the saved plan waits for its apply: beside the state, in the backend's bucket, never in etcd
# (a plan can be large and holds the configuration's values).
PLAN_PREFIX = "opex-plans"
# How long a finished Job is kept if no operator reads it (the operator deletes it once read).
TTL_AFTER_FINISHED = 24 * 3600


class JobRefused(Exception):
    """The plan file or its plan is not what was approved: nothing is applied."""


def job_name(driftcheck: str, purpose: str, uid: str, slot: str) -> str:
    """A DNS-1123 label (at most 63 characters, the limit of the ``job-name`` label Kubernetes puts
    on the Job's pods) that is the same for the same DriftCheck (``uid``), ``purpose`` and ``slot``
    (the run's start as recorded in status) and differs otherwise."""
    digest = hashlib.sha256(f"{uid}/{purpose}/{slot}".encode()).hexdigest()[:10]
    stem = re.sub(r"[^a-z0-9-]", "-", driftcheck.lower())[: 63 - len(purpose) - len(digest) - 2].strip("-") or "dc"
    return f"{stem}-{purpose}-{digest}"


def plan_key(namespace: str, driftcheck: str, sha256: str) -> str:
    """The object key of a saved plan in the state bucket."""
    return f"{PLAN_PREFIX}/{namespace}/{driftcheck}/{sha256}.tfplan"


def deadline_seconds(budget: float) -> int:
    """``activeDeadlineSeconds`` of a run whose budget is ``budget`` seconds (at least 1)."""
    return max(1, math.ceil(budget))


def build_job(template: dict[str, Any], name: str, owner: ObjectRef, purpose: str, deadline: int,
              input_secret: str) -> dict[str, Any]:
    """The Job for one run: ``template`` (the chart's ``plan-job.yaml``: a Job whose pod template
    has the operator's image, security context, resources and environment, and the runner
    ServiceAccount) with what is this run's. ``template`` is not modified. Raises ValueError when it
    has no container."""
    job = json.loads(json.dumps(template))
    meta = job.setdefault("metadata", {})
    labels = {**(meta.get("labels") or {}), OWNER_LABEL: owner.uid, PURPOSE_LABEL: purpose}
    meta.update(name=name, namespace=owner.namespace, labels=labels,
                ownerReferences=[owner.owner_reference(controller=True) | {"blockOwnerDeletion": False}])
    for key in ("generateName", "resourceVersion", "uid", "creationTimestamp"):
        meta.pop(key, None)
    spec = job.setdefault("spec", {})
    spec.update(backoffLimit=0, activeDeadlineSeconds=deadline, ttlSecondsAfterFinished=TTL_AFTER_FINISHED)
    pod = spec.setdefault("template", {})
    pod.setdefault("metadata", {}).setdefault("labels", {}).update({OWNER_LABEL: owner.uid, PURPOSE_LABEL: purpose})
    pod_spec = pod.setdefault("spec", {})
    pod_spec["restartPolicy"] = "Never"
    containers = pod_spec.get("containers") or []
    if not containers:
        raise ValueError("the plan Job template has no container")
    container = containers[0]
    container["command"] = ["opex", "plan-job", "--input", f"{INPUT_DIR}/{INPUT_KEY}"]
    container.pop("args", None)
    mounts = [m for m in container.get("volumeMounts") or [] if m.get("name") != "opex-input"]
    container["volumeMounts"] = [*mounts, {"name": "opex-input", "mountPath": INPUT_DIR, "readOnly": True}]
    volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") != "opex-input"]
    pod_spec["volumes"] = [*volumes, {"name": "opex-input",
                                      "secret": {"secretName": input_secret, "defaultMode": 0o400}}]
    return job


@dataclass
class JobState:
    """Where a Job is, from its ``status`` (batch/v1): ``finished`` once Complete or Failed."""

    finished: bool
    succeeded: bool
    reason: str = ""        # the Failed condition's reason: DeadlineExceeded, BackoffLimitExceeded, ...
    message: str = ""


def job_state(job: dict[str, Any]) -> JobState:
    """The state of ``job`` (a batch/v1 Job as the API server returns it)."""
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return JobState(True, True)
        if cond.get("type") == "Failed":
            return JobState(True, False, cond.get("reason") or "Failed", cond.get("message") or "")
    return JobState(False, False)


@dataclass
class JobResult:
    """What a plan or apply Job reports.

    ``error``: the run ended before Terraform's command (``{"type": "SourceError"|"TerraformError",
    "reason", "message", "result"}``); ``result``: the command's Result (plan or apply); ``doc``: the
    saved plan's ``show -json`` when the plan had changes; ``inputs``: its
    ``Session.plan_inputs``; ``plan``: where the plan file is (``key``, ``sha256``)."""

    version: str = ""
    revision: str = ""
    error: dict[str, Any] | None = None
    result: Result | None = None
    doc: dict[str, Any] | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    plan: dict[str, str] = field(default_factory=dict)


def result_dict(result: Result) -> dict[str, Any]:
    return {"command": result.command, "exitCode": result.exit_code, "stdout": result.stdout,
            "stderr": result.stderr, "duration": result.duration, "timedOut": result.timed_out,
            "stopped": result.stopped}


def result_from(data: dict[str, Any]) -> Result:
    return Result(data["command"], data.get("exitCode"), data.get("stdout", ""), data.get("stderr", ""),
                  float(data.get("duration") or 0.0), bool(data.get("timedOut")), data.get("stopped"))


def encode_result(res: JobResult) -> dict[str, str]:
    """The result ConfigMap's ``binaryData`` (base64 of gzip of JSON). Past :data:`MAX_RESULT_BYTES`
    compressed, an error result instead that says how large it was and what to do."""
    doc = {"version": res.version, "revision": res.revision, "error": res.error,
           "result": result_dict(res.result) if res.result else None, "doc": res.doc, "inputs": res.inputs,
           "plan": res.plan}
    packed = gzip.compress(json.dumps(doc).encode(), 6)
    if len(packed) > MAX_RESULT_BYTES:
        too_large = JobResult(res.version, res.revision, error={
            "type": "SourceError", "reason": "ResultTooLarge",
            "message": f"the run's result (plan JSON and Terraform's output) is {len(packed)} bytes compressed, "
                       f"over the {MAX_RESULT_BYTES} a ConfigMap can carry back from the Job: run this DriftCheck "
                       f"with spec.runner: InProcess"})
        return encode_result(too_large)
    return {RESULT_KEY: base64.b64encode(packed).decode()}


def decode_result(binary: dict[str, str]) -> JobResult:
    """The JobResult of a result ConfigMap's ``binaryData``. Raises ValueError when it is not one."""
    try:
        doc = json.loads(gzip.decompress(base64.b64decode(binary[RESULT_KEY])))
    except (KeyError, ValueError, OSError, EOFError) as err:
        raise ValueError(f"the Job's result cannot be read: {err}") from None
    if not isinstance(doc, dict):
        raise ValueError("the Job's result is not an object")
    return JobResult(doc.get("version") or "", doc.get("revision") or "", doc.get("error"),
                     result_from(doc["result"]) if doc.get("result") else None, doc.get("doc"),
                     doc.get("inputs") or {}, doc.get("plan") or {})


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_plan(data: bytes, expected_sha256: str, saved_checksum: str, approved_checksum: str) -> None:
    """Refuse (JobRefused) a downloaded plan file whose SHA-256 is not ``expected_sha256`` (what
    the plan Job uploaded), or whose checksum (``saved_checksum``: ``terraform.plan.checksum`` of
    its ``show -json`` and inputs, computed in the apply Job) is not ``approved_checksum``."""
    got = sha256_hex(data)
    if got != expected_sha256:
        raise JobRefused(f"the plan file fetched is sha256 {got}, not the {expected_sha256} the plan Job saved; "
                         f"nothing was applied")
    if saved_checksum != approved_checksum:
        raise JobRefused(f"the saved plan is {saved_checksum}, not the approved {approved_checksum}; nothing was "
                         f"applied")


def now_slot(value: dt.datetime | str | None) -> str:
    """A slot as text (an ISO time, or the text given)."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value or ""
