"""The ``Incident`` kind: one operational incident, worked through the runbook by the operator.

Runbook source: the runbook's "Deployment Failure Runbook", "Pipeline Failure Runbook" and its
escalation matrix (Level 1 DevOps lead immediately, Level 2 engineering manager after 30
minutes unresolved, Level 3 CTO for critical production issues).
"""
from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import Field

from .common import (AWS_REGION, DNS_LABEL, Condition, LocalObjectReference, Model,
                     SecretKeyReference, StateLock, TimelineEntry, conditions_field, obj_default,
                     text, timeline_field)
from .security import SPEC_RULES as SECURITY_RULES, SecurityRemediation, SecurityTargets, security_remediation_field

STEP_ID = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
LAMBDA_NAME = r"^[a-zA-Z0-9-_]+$"
SNS_TOPIC_ARN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+(\.fifo)?$"
MAX_FINDINGS = 40
MAX_STEPS = 40

LambdaName = text(64, LAMBDA_NAME)
StepId = text(100, STEP_ID)
Environment = text(63, DNS_LABEL)
TopicArn = text(256, SNS_TOPIC_ARN)
FindingId = text(16)
ActionItem = text(512)

class IncidentType(StrEnum):
    DEPLOYMENT_FAILURE = "DeploymentFailure"
    PIPELINE_FAILURE = "PipelineFailure"
    PERFORMANCE_DEGRADATION = "PerformanceDegradation"
    SECURITY_INCIDENT = "SecurityIncident"


class Severity(StrEnum):
    """How bad it is (the runbook's classification): critical, high, medium or low."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class RemediationMode(StrEnum):
    DRY_RUN = "DryRun"
    MANUAL = "Manual"
    AUTO = "Auto"


class OnFailure(StrEnum):
    STOP = "Stop"
    CONTINUE = "Continue"
    ESCALATE = "Escalate"


class PipelineTarget(Model):
    """A CodePipeline and, optionally, the execution to assess."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9.@\-_]+$",
                      description="CodePipeline name.")
    execution_id: str | None = Field(default=None, max_length=64, pattern=r"^[0-9a-fA-F-]+$",
                                     description="Execution to assess; the newest execution when omitted.")


class CodeBuildTarget(Model):
    """A CodeBuild project whose recent builds are read (newest first)."""

    project: str = Field(min_length=2, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9\-_]*$",
                         description="CodeBuild project name.")


class LambdaTarget(Model):
    """Lambda functions whose state, versions and ERROR logs of the last hour are read."""

    function_names: list[LambdaName] = Field(min_length=1, max_length=10,
                                                         description="Lambda function names.")


class ApiGatewayTarget(Model):
    """An API Gateway REST API whose stages are read."""

    rest_api_id: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9]+$", description="REST API id.")
    stage: str | None = Field(default=None, max_length=128, description="Only this stage (all when omitted).")


class RdsTarget(Model):
    """An RDS instance whose status and security groups are read."""

    instance_id: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z][A-Za-z0-9-]*$",
                             description="RDS DB instance identifier.")


class CloudTrailTarget(Model):
    """Where CloudTrail records are read; without it, CloudTrail LookupEvents is used."""

    log_group_name: str = Field(min_length=1, max_length=512, pattern=r"^[\.\-_/#A-Za-z0-9]+$",
                                description="CloudWatch Logs group CloudTrail delivers to, as the runbook reads it "
                                            "(aws logs filter-log-events --log-group-name CloudTrail/...).")


class Targets(Model):
    """What the incident is about: the AWS resources the runbook inspects and may act on."""

    region: str | None = Field(default=None, max_length=32, pattern=AWS_REGION,
                               description="AWS region; the operator's default region when omitted.")
    role_key: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL,
                                 description="Key of an AWS role in the operator's policy; never an ARN taken on trust.")
    pipeline: PipelineTarget | None = None
    code_build: CodeBuildTarget | None = None
    lambda_: LambdaTarget | None = Field(default=None, alias="lambda")
    api_gateway: ApiGatewayTarget | None = None
    rds: RdsTarget | None = None
    cloud_trail: CloudTrailTarget | None = None
    drift_check_ref: LocalObjectReference | None = Field(
        default=None, description="The DriftCheck that owns the Terraform workspace involved.")
    security: SecurityTargets | None = Field(
        default=None, description="Users, keys, addresses, groups and secrets of a SecurityIncident.")


class StepPolicy(Model):
    """Per-step overrides of how a remediation step is run."""

    id: str = Field(max_length=100, pattern=STEP_ID, description="Step id as status.steps[].id shows it.")
    on_failure: OnFailure = Field(default=OnFailure.STOP, description="Stop the incident (Failed), Continue with "
                                  "the next step, or Escalate to the next level and stop.")
    max_attempts: int = Field(default=3, ge=1, le=10, description="Attempts of a step that fails transiently.")
    timeout_seconds: int = Field(default=300, ge=5, le=3600,
                                 description="Seconds a step may run (for verify: to see the fix hold).")


class LambdaEnvironment(Model):
    """Environment variables for one function (the runbook's "update environment variables if needed")."""

    function_name: str = Field(max_length=64, pattern=LAMBDA_NAME, description="Lambda function name.")
    variables: dict[str, str] = Field(description="Variables merged into the function's environment.",
                                      json_schema_extra={"maxProperties": 64})


class LambdaRollback(Model):
    """Where a Lambda rollback step takes a function."""

    alias: str | None = Field(default=None, max_length=128, pattern=r"^[a-zA-Z0-9-_]+$",
                              description="Alias to move back; $LATEST's code is replaced when omitted.")
    to_version: str | None = Field(default=None, max_length=16, pattern=r"^[0-9]+$",
                                   description="Published version to roll back to; the previous one when omitted.")


class ForceUnlock(Model):
    """Limits of the terraform-force-unlock step (it also requires the diagnosed lock id)."""

    min_lock_age_seconds: int = Field(default=900, ge=60, le=604800,
                                      description="Only a lock older than this is force-unlocked.")


class Remediation(Model):
    """How far the operator may act: every step that changes AWS or Terraform state is gated here."""

    mode: RemediationMode = Field(default=RemediationMode.MANUAL, description="DryRun records what would run; "
                                  "Manual (default) waits until a step's id is in approvedSteps; Auto runs within policy.")
    approved_steps: list[StepId] = Field(default_factory=list, max_length=50,
                                                     description="Ids of approved steps.",
                                                     json_schema_extra={"x-kubernetes-list-type": "set"})
    steps: list[StepPolicy] = Field(default_factory=list, max_length=40,
                                    description="Per-step onFailure, maxAttempts and timeoutSeconds, by step id.",
                                    json_schema_extra={"x-kubernetes-list-type": "map",
                                                       "x-kubernetes-list-map-keys": ["id"]})
    lambda_rollback: LambdaRollback | None = Field(
        default=None, description="Where the rollback-lambda step takes a function (default: its previous version).")
    lambda_environment: list[LambdaEnvironment] = Field(
        default_factory=list, max_length=10,
        description="Environment variables the update-lambda-env step sets, per function.")
    force_unlock: ForceUnlock = Field(default_factory=ForceUnlock, json_schema_extra=obj_default(),
                                      description="Limits of the terraform-force-unlock step.")
    security: SecurityRemediation = security_remediation_field()


class EscalationLevel(Model):
    """Who is notified, and when, while the incident is unresolved."""

    level: int = Field(ge=1, le=3, description="1 (first responder) to 3 (executive).")
    contact: str = Field(min_length=1, max_length=128, description="Who is paged, e.g. 'DevOps lead'.")
    after_seconds: int = Field(default=0, ge=0, le=604800, description="Seconds after detection while unresolved.")
    severities: list[Severity] = Field(default_factory=list, max_length=4,
                                       description="Only for these severities (all when empty).")
    environments: list[Environment] = Field(default_factory=list, max_length=10,
                                                    description="Only in these environments (all when empty).")


class Escalation(Model):
    """Override of the operator's default escalation matrix."""

    levels: list[EscalationLevel] = Field(default_factory=list, max_length=3,
                                          description="Replaces the operator's default matrix (Level 1 DevOps lead "
                                                      "at once, Level 2 engineering manager after 30 minutes, Level "
                                                      "3 CTO for critical production).",
                                          json_schema_extra={"x-kubernetes-list-type": "map",
                                                             "x-kubernetes-list-map-keys": ["level"]})


class Webhook(Model):
    """An HTTP endpoint that receives each notification as JSON."""

    url_secret_ref: SecretKeyReference = Field(description="Secret key holding the webhook URL (it may carry a token).")


class Notify(Model):
    """Where pages go (besides the topics the operator's policy adds to every incident)."""

    sns_topic_arns: list[TopicArn] = Field(default_factory=list, max_length=10,
                                           description="SNS topics; messages carry severity, level and type attributes.")
    webhook: Webhook | None = None


class SourceKind(StrEnum):
    MANUAL = "Manual"
    ALERTMANAGER = "Alertmanager"


class AlertSource(Model):
    """The Alertmanager alert that opened the incident."""

    name: str = Field(max_length=253, description="alertname label.")
    fingerprint: str | None = Field(default=None, max_length=64, description="Alertmanager's hash of the label set.")
    group_key: str | None = Field(default=None, max_length=1024, description="Alertmanager's groupKey.")
    generator_url: str | None = Field(default=None, max_length=2048, description="Link to the alert's expression.")
    starts_at: dt.datetime | None = Field(default=None, description="When the alert fired: the detection time.")


class Source(Model):
    """Who opened the incident."""

    kind: SourceKind = Field(default=SourceKind.MANUAL, description="Manual (a person or GitOps) or Alertmanager.")
    alert: AlertSource | None = None


class IncidentSpec(Model):
    """Desired state of an Incident: what happened, where, and how far the operator may act."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "self.type != 'PipelineFailure' || has(self.targets.pipeline)",
         "message": "a PipelineFailure incident needs spec.targets.pipeline"},
        {"rule": "self.type != 'DeploymentFailure' || has(self.targets.pipeline) || has(self.targets.codeBuild) "
                 "|| has(self.targets.lambda) || has(self.targets.driftCheckRef)",
         "message": "a DeploymentFailure incident needs one of spec.targets.pipeline, codeBuild, lambda or driftCheckRef"},
        {"rule": "!has(oldSelf.closed) || !oldSelf.closed || (has(self.closed) && self.closed)",
         "message": "a closed Incident cannot be reopened; create a new one"},
        *SECURITY_RULES,
    ]}}

    type: IncidentType = Field(description="Which runbook: DeploymentFailure, PipelineFailure, "
                                           "PerformanceDegradation or SecurityIncident. Immutable.",
                               json_schema_extra={"x-kubernetes-validations": [
                                   {"rule": "self == oldSelf", "message": "type is immutable"}]})
    severity: Severity = Field(description="critical, high, medium or low; decides the escalation levels and "
                                           "whether a post-mortem is required.")
    title: str = Field(min_length=1, max_length=200, description="One line for pages and tables.")
    summary: str | None = Field(default=None, max_length=4096, description="What is known so far, in prose.")
    environment: str = Field(max_length=63, pattern=DNS_LABEL, description="e.g. production, development.")
    targets: Targets = Field(default_factory=Targets, json_schema_extra=obj_default())
    remediation: Remediation = Field(default_factory=Remediation, json_schema_extra=obj_default())
    escalation: Escalation | None = None
    notify: Notify | None = None
    source: Source | None = Field(default=None, description="Who opened it (set by the Alertmanager receiver).")
    closed: bool = Field(default=False, description="Set when the post-incident review is done; the phase becomes Closed.")


# ---- status ----------------------------------------------------------------------------------

class IncidentPhase(StrEnum):
    DETECTED = "Detected"
    ASSESSING = "Assessing"
    DIAGNOSING = "Diagnosing"
    AWAITING_APPROVAL = "AwaitingApproval"
    REMEDIATING = "Remediating"
    RESOLVED = "Resolved"
    FAILED = "Failed"
    CLOSED = "Closed"


class FindingSeverity(StrEnum):
    INFO = "Info"
    WARNING = "Warning"
    ERROR = "Error"


class Finding(Model):
    """Something the assessment saw, with the evidence excerpt that shows it."""

    id: str = Field(max_length=16, description="F1, F2, ... (root causes cite them).")
    source: str = Field(max_length=64, description="CodePipeline, CodeBuild, CloudWatchLogs, Lambda, APIGateway, "
                                                   "RDS, EC2, CloudTrail, Terraform or Operator.")
    resource: str = Field(max_length=512)
    severity: FindingSeverity = FindingSeverity.INFO
    observed: str = Field(max_length=1024, description="What was seen.")
    evidence: str | None = Field(default=None, max_length=2048, description="Excerpt (log lines, API fields).")
    time: dt.datetime | None = None


class RootCauseCategory(StrEnum):
    BUILD_DEPENDENCY_INSTALL = "BuildDependencyInstall"
    BUILD_TEST_FAILURE = "BuildTestFailure"
    BUILD_LINT = "BuildLint"
    BUILD_FAILURE = "BuildFailure"
    DEPLOY_PERMISSION_DENIED = "DeployPermissionDenied"
    DEPLOY_NAMING_CONFLICT = "DeployNamingConflict"
    DEPLOY_QUOTA_EXCEEDED = "DeployQuotaExceeded"
    DEPLOY_NETWORK = "DeployNetwork"
    TERRAFORM_STATE_LOCK = "TerraformStateLock"
    TERRAFORM_VALIDATION = "TerraformValidation"
    LAMBDA_DEPLOYMENT = "LambdaDeployment"
    DATABASE_CONNECTIVITY = "DatabaseConnectivity"
    UNKNOWN = "Unknown"


class RootCause(Model):
    category: RootCauseCategory
    summary: str = Field(max_length=1024)
    evidence: list[FindingId] = Field(default_factory=list, max_length=10,
                                     description="Ids of the findings that decided it.")
    identified_at: dt.datetime | None = None
    lock: StateLock | None = Field(default=None, description="The state lock, for TerraformStateLock.")


class StepState(StrEnum):
    PENDING = "Pending"
    AWAITING_APPROVAL = "AwaitingApproval"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    DRY_RUN = "DryRun"


class Step(Model):
    """A runbook step and its checkpoint: intent is recorded before a call, the outcome after."""

    id: str = Field(max_length=100, pattern=STEP_ID)
    action: str = Field(max_length=128, description="e.g. lambda:UpdateAlias, codepipeline:RetryStageExecution.")
    mutating: bool = False
    state: StepState = StepState.PENDING
    attempts: int = Field(default=0, ge=0)
    inputs: str | None = Field(default=None, max_length=1024, description="Summary of the inputs (no secret values).")
    params: dict[str, str] = Field(default_factory=dict, description="Structured inputs the step runs with.",
                                   json_schema_extra={"maxProperties": 12})
    outputs: str | None = Field(default=None, max_length=2048)
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    error: str | None = Field(default=None, max_length=2048)
    rollback_ref: LocalObjectReference | None = Field(default=None, description="The Rollback this step created.")


class Notification(Model):
    level: int = Field(ge=1, le=3)
    contact: str = Field(max_length=128)
    channel: str = Field(max_length=16, description="SNS or Webhook.")
    target: str = Field(max_length=256, description="Topic ARN, or 'webhook' (its URL is a secret).")
    time: dt.datetime
    message_id: str | None = Field(default=None, max_length=128)
    error: str | None = Field(default=None, max_length=1024)


class EscalationStatus(Model):
    current_level: int = Field(default=0, ge=0, le=3)
    next_level: int | None = Field(default=None, ge=1, le=3)
    next_escalation_at: dt.datetime | None = None
    notified: list[Notification] = Field(default_factory=list, max_length=30)


class PostIncident(Model):
    """The post-incident record; the same in Markdown in the ConfigMap named by report_ref."""

    written_at: dt.datetime
    duration_seconds: int | None = Field(default=None, ge=0, description="Detection to resolution.")
    time_to_assess_seconds: int | None = Field(default=None, ge=0)
    root_cause: str | None = Field(default=None, max_length=1024)
    action_items: list[ActionItem] = Field(default_factory=list, max_length=20)
    post_mortem_required: bool = False
    report_ref: LocalObjectReference | None = None


class IncidentStatus(Model):
    """Observed state of an Incident, written only by the operator."""

    phase: IncidentPhase | None = None
    observed_generation: int | None = Field(default=None, ge=0)
    conditions: list[Condition] = conditions_field(
        "Ready, Assessed, RootCauseIdentified, Remediated, Escalated.")
    findings: list[Finding] = Field(default_factory=list, max_length=MAX_FINDINGS)
    root_cause: RootCause | None = None
    steps: list[Step] = Field(default_factory=list, max_length=MAX_STEPS)
    escalation: EscalationStatus | None = None
    timeline: list[TimelineEntry] = timeline_field()
    detected_at: dt.datetime | None = None
    assessed_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    post_incident: PostIncident | None = None


PRINTER_COLUMNS = [
    {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
    {"name": "Severity", "type": "string", "jsonPath": ".spec.severity"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Root Cause", "type": "string", "jsonPath": ".status.rootCause.category"},
    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
