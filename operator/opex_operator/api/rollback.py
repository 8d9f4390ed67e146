"""The ``Rollback`` kind: restore a known-good release and verify it.

Runbook source: the runbook's "Rollback Deployment" (Lambda code back to a previous version or S3
object; static assets copied back from a backup prefix, then a CloudFront invalidation) and
"Lambda Function Issues" ("update environment variables if needed").
"""
from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from .conditions import RECONCILING, STALLED

# The Rollback's condition types (Ready is derived from them: RollbackStatus.READY_FROM).
ROLLED_BACK, PLANNED = "RolledBack", "Planned"
from .common import (AWS_REGION, DNS_LABEL, Condition, LocalObjectReference, Model, Status, TimelineEntry, bounded,
                     conditions_field, text, timeline_field)
from .incident import LAMBDA_NAME

S3_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
S3_PREFIX = r"^[^\x00]*$"

InvalidationPath = text(4096, r"^/")
Path = text(4096)

class S3Object(Model):
    """An object in S3 (a deployment package)."""

    bucket: str = Field(min_length=3, max_length=63, pattern=S3_BUCKET, description="Bucket name.")
    key: str = Field(min_length=1, max_length=1024, description="Object key.")
    object_version: str | None = Field(default=None, max_length=1024,
                                       description="Version id, in a versioned bucket.")


class LambdaTo(Model):
    """The known-good code: exactly one of version, s3 or previous."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "(has(self.version) ? 1 : 0) + (has(self.s3) ? 1 : 0) + "
                 "((has(self.previous) && self.previous) ? 1 : 0) == 1",
         "message": "set exactly one of to.version, to.s3 or to.previous: true"}]}}

    version: str | None = Field(default=None, max_length=16, pattern=r"^[0-9]+$", description="A published version.")
    s3: S3Object | None = Field(default=None, description="A deployment package in S3.")
    previous: bool | None = Field(default=None, description="The version before the one the alias (or $LATEST) runs now.")


class LambdaRollback(Model):
    """A Lambda function's code (or alias) back to a known-good version."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "!has(self.alias) || !has(self.to.s3)",
         "message": "an alias can only point at a published version: use to.version or to.previous with alias"}]}}

    function_name: str = Field(min_length=1, max_length=64, pattern=LAMBDA_NAME, description="Lambda function name.")
    alias: str | None = Field(default=None, max_length=128, pattern=r"^[a-zA-Z0-9-_]+$",
                              description="Point this alias at the target version instead of replacing $LATEST's code.")
    to: LambdaTo
    environment: dict[str, str] | None = Field(default=None, description="Variables merged into the function's "
                                               "environment after the code is restored.",
                                               json_schema_extra={"maxProperties": 64})


class CloudFrontInvalidation(Model):
    """The CloudFront invalidation after the restore."""

    distribution_id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Z0-9]+$",
                                 description="CloudFront distribution id.")
    paths: list[InvalidationPath] = Field(default=["/*"], min_length=1, max_length=100,
                                          description="Paths to invalidate (default /*).")
    wait_for_completion: bool = Field(default=True, description="Succeed only once the invalidation is Completed.")


class StaticSiteRollback(Model):
    """A static site in S3 back from a backup prefix (aws s3 sync, made exact and resumable)."""

    bucket: str = Field(min_length=3, max_length=63, pattern=S3_BUCKET, description="The live site's bucket.")
    backup_bucket: str | None = Field(default=None, min_length=3, max_length=63, pattern=S3_BUCKET,
                                      description="Bucket of the backup; the live bucket when omitted.")
    backup_prefix: str = Field(min_length=1, max_length=1024, pattern=S3_PREFIX,
                               description="Prefix holding the known-good copy, e.g. backups/2026-11-28/.")
    target_prefix: str = Field(default="", max_length=1024, pattern=S3_PREFIX,
                               description="Where the site lives in the bucket (default: the root).")
    delete_extraneous: bool = Field(default=False, description="Delete live objects absent from the backup "
                                    "(aws s3 sync --delete); never when the backup is empty.")
    cloud_front: CloudFrontInvalidation | None = None


class RollbackApproval(StrEnum):
    MANUAL = "Manual"
    AUTO = "Auto"


class RollbackSpec(Model):
    """Desired state of a Rollback: exactly one target, and whether it may run."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "has(self.lambda) != has(self.staticSite)", "message": "set exactly one target: lambda or staticSite"},
        {"rule": "has(self.lambda) == has(oldSelf.lambda) && (!has(self.lambda) || self.lambda == oldSelf.lambda)",
         "message": "the lambda target is immutable; create a new Rollback"},
        {"rule": "has(self.staticSite) == has(oldSelf.staticSite) && "
                 "(!has(self.staticSite) || self.staticSite == oldSelf.staticSite)",
         "message": "the staticSite target is immutable; create a new Rollback"},
    ]}}

    lambda_: LambdaRollback | None = Field(default=None, alias="lambda")
    static_site: StaticSiteRollback | None = None
    region: str | None = Field(default=None, max_length=32, pattern=AWS_REGION,
                               description="AWS region; the operator's default region when omitted.")
    role_key: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL,
                                 description="Key of an AWS role in the operator's policy.")
    incident_ref: LocalObjectReference | None = Field(default=None, description="The Incident this rollback serves.")
    approval: RollbackApproval = Field(default=RollbackApproval.MANUAL,
                                       description="Manual waits for approved: true; Auto runs at once.")
    approved: bool = Field(default=False, description="With approval Manual: true lets the rollback run.")
    dry_run: bool = Field(default=False, description="Record what would change and change nothing.")
    abort: bool = Field(default=False, description="Stop a rollback in flight; it ends Aborted.")
    progress_deadline_seconds: int = Field(default=600, ge=30, le=7200,
                                           description="Seconds from start to verified end before it fails.")


# ---- status ----------------------------------------------------------------------------------

class RollbackPhase(StrEnum):
    PENDING = "Pending"
    AWAITING_APPROVAL = "AwaitingApproval"
    IN_PROGRESS = "InProgress"
    VERIFYING = "Verifying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ABORTED = "Aborted"


class Revision(Status):
    """A release of the target: enough to roll back to it (or to undo the rollback)."""

    description: bounded(256, "Short form for printer columns, e.g. v2 (wErUWPWtkx…).") | None = None
    version: str | None = Field(default=None, max_length=16, description="Lambda: the published version.")
    code_sha256: str | None = Field(default=None, max_length=64, description="Lambda: CodeSha256 of the code.")
    s3: S3Object | None = Field(default=None, description="Lambda: the package in S3.")
    objects: int | None = Field(default=None, ge=0, description="Static site: object count.")
    manifest_ref: LocalObjectReference | None = Field(
        default=None, description="Static site: ConfigMap listing each key's ETag and size.")


class RollbackStepState(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    DRY_RUN = "DryRun"


class RollbackStepId(StrEnum):
    CAPTURE = "capture"
    APPLY = "apply"
    DELETE = "delete"
    INVALIDATE = "invalidate"
    VERIFY = "verify"
    ENVIRONMENT = "environment"


class RollbackStep(Status):
    """One step of the rollback and its checkpoint."""

    id: RollbackStepId = Field(description="capture, apply, delete, invalidate, verify or environment.")
    state: RollbackStepState = Field(description="Pending, Running, Succeeded, Failed, Skipped or DryRun.")
    message: bounded(1024, "What the step did or saw.") | None = None
    started_at: dt.datetime | None = Field(default=None, description="When the step started.")
    finished_at: dt.datetime | None = Field(default=None, description="When the step ended.")
    runner: bounded(128, "The operator process (host/pid/start) with a call of this step in flight; found under "
                    "another one, that call was cut off (interrupted) and the step resumes from the real state.") | None = None


class Progress(Status):
    """Static site restore: objects in the backup (total), copied, already equal (unchanged), and live
    objects absent from the backup (extraneous) and how many of them were deleted."""

    total: int = Field(default=0, ge=0, description="Objects in the backup.")
    copied: int = Field(default=0, ge=0, description="Objects copied back so far.")
    unchanged: int = Field(default=0, ge=0, description="Objects that already matched the backup.")
    extraneous: int = Field(default=0, ge=0, description="Live objects absent from the backup (deleteExtraneous).")
    deleted: int = Field(default=0, ge=0, description="Extraneous objects deleted.")


class Invalidation(Status):
    """The CloudFront invalidation the rollback created."""

    id: str = Field(max_length=64, description="Invalidation id.")
    status: str = Field(max_length=32, description="InProgress or Completed, as CloudFront reports it.")
    paths: list[Path] = Field(default_factory=list, max_length=100, description="Paths invalidated.")


class RollbackStatus(Status):
    """Observed state of a Rollback, written only by the operator."""

    PHASE_MARKERS: ClassVar[dict[RollbackPhase, str | None]] = {
        RollbackPhase.PENDING: RECONCILING, RollbackPhase.IN_PROGRESS: RECONCILING,
        RollbackPhase.VERIFYING: RECONCILING, RollbackPhase.FAILED: STALLED, RollbackPhase.AWAITING_APPROVAL: None,
        RollbackPhase.SUCCEEDED: None, RollbackPhase.ABORTED: None}
    READY_FROM: ClassVar[tuple[str, ...]] = (STALLED, RECONCILING, PLANNED, ROLLED_BACK)

    phase: RollbackPhase | None = Field(default=None, description="Pending, AwaitingApproval, InProgress, Verifying, "
                                        "Succeeded, Failed or Aborted.")
    observed_generation: int | None = Field(default=None, ge=0, description="The generation last reconciled.")
    conditions: list[Condition] = conditions_field("Ready (the summary of Stalled, Reconciling, Planned and "
                                                   "RolledBack), RolledBack, Planned (a dry run's plan).")
    target: bounded(256, "lambda:NAME[:ALIAS] or s3://BUCKET/PREFIX.") | None = None
    approval: RollbackApproval | None = Field(default=None, description="Manual or Auto: the spec.approval the "
                                              "operator acts under (a misspelt field is pruned and its default "
                                              "applies: this says which).")
    dry_run: bool | None = Field(default=None, description="Whether the operator treats this rollback as a dry run "
                                 "(spec.dryRun as it read it).")
    from_: Revision | None = Field(default=None, alias="from", description="What ran before the rollback (to undo it).")
    to: Revision | None = Field(default=None, description="The known-good release restored.")
    steps: list[RollbackStep] = Field(default_factory=list, max_length=20, description="Steps and their checkpoints.")
    progress: Progress | None = Field(default=None, description="Static site: objects restored so far.")
    invalidation: Invalidation | None = Field(default=None, description="Static site: the CloudFront invalidation.")
    started_at: dt.datetime | None = Field(default=None, description="When the rollback started.")
    finished_at: dt.datetime | None = Field(default=None, description="When it ended (any terminal phase).")
    message: bounded(2048, "How it ended: what was and was not changed.") | None = None
    timeline: list[TimelineEntry] = timeline_field()


PRINTER_COLUMNS = [
    {"name": "Target", "type": "string", "jsonPath": ".status.target"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "From", "type": "string", "jsonPath": ".status.from.description"},
    {"name": "To", "type": "string", "jsonPath": ".status.to.description"},
    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
