"""The ``Incident`` kind: one operational incident, worked through the runbook by the operator.

Runbook source: the runbook's "Deployment Failure Runbook", "Pipeline Failure Runbook" and its
escalation matrix (Level 1 DevOps lead immediately, Level 2 engineering manager after 30
minutes unresolved, Level 3 CTO for critical production issues).
"""
from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, model_validator

from .approvals import (Acknowledgement, AcknowledgementRecord, BoundedUsername, StepApproval, StepApprovalRecord,
                        USERNAME_MAX)
from .conditions import RECONCILING, STALLED
from .gates import PlanGates
from .guardrails import BakeVerification, StepVerification, verify_rules

# The Incident's condition types (Ready is derived from them: IncidentStatus.READY_FROM).
ASSESSED, ROOT_CAUSE_IDENTIFIED, REMEDIATED, ESCALATED = "Assessed", "RootCauseIdentified", "Remediated", "Escalated"
APPROVALS_VALID, CLOSED, ALERT_RESOLVED, ALARM_RESOLVED = "ApprovalsValid", "Closed", "AlertResolved", "AlarmResolved"
from .common import (AWS_REGION, DNS_LABEL, Bounded128, Bounded512, Bounded1024, Bounded2048, Condition,
                     LocalObjectReference, Model, SecretKeyReference, StateLock, Status, TimelineEntry,
                     conditions_field, duration_at_least, obj_default, timeline_field)
from .security import SPEC_RULES as SECURITY_RULES, SecurityRemediation, SecurityTargets, security_remediation_field
from .performance import TARGET_RULES, CloudFrontTarget, MetricsQuery, PerformanceRemediation, Probes

STEP_ID = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
LAMBDA_NAME = r"^[a-zA-Z0-9-_]+$"
SNS_TOPIC_ARN = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+(\.fifo)?$"
# Set by the alert and event intakes when the state of what opened the Incident flips (Firing/Resolved):
# wakes the reconcile loop wherever it runs; the record itself is status.alert.
ALERT_STATE_ANNOTATION = "opex.dev/alert-state"
MAX_FINDINGS = 40
MAX_STEPS = 40

LambdaName = Annotated[str, Field(max_length=64, pattern=LAMBDA_NAME)]
StepId = Annotated[str, Field(max_length=100, pattern=STEP_ID)]
Environment = Annotated[str, Field(max_length=63, pattern=DNS_LABEL)]
TopicArn = Annotated[str, Field(max_length=256, pattern=SNS_TOPIC_ARN)]
FindingId = Annotated[str, Field(max_length=16)]
ActionItem = Annotated[str, Field(max_length=512)]

_EXTENSION_TYPES: set[str] = set()


class IncidentType(StrEnum):
    """Which runbook, and so which playbook (``playbooks.playbook_for``), works the incident."""

    DEPLOYMENT_FAILURE = "DeploymentFailure"
    PIPELINE_FAILURE = "PipelineFailure"
    PERFORMANCE_DEGRADATION = "PerformanceDegradation"
    SECURITY_INCIDENT = "SecurityIncident"

    @classmethod
    def _missing_(cls, value: object) -> "IncidentType | None":
        if isinstance(value, str) and value in _EXTENSION_TYPES:
            member = str.__new__(cls, value)
            member._name_, member._value_ = value, value
            return member
        return None


def accept_incident_type(name: str) -> IncidentType:
    """Accept ``name`` as an incident type besides the built-in ones, for a playbook registered at
    run time (a test's toy type). The CRD lists the built-in types only: a type Incidents are
    created with in a cluster is a member above, with its own playbook package."""
    _EXTENSION_TYPES.add(name)
    return IncidentType(name)


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


MAX_EVENT_IDS = 20
# The EventBridge source of CloudWatch alarm state changes: the one kind of event that resolves (back to OK).
ALARM_EVENT_SOURCE = "aws.cloudwatch"


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

    model_config = Model.model_config | ConfigDict(json_schema_extra={"x-kubernetes-validations": TARGET_RULES})

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
    cloud_front: CloudFrontTarget | None = None
    metrics: MetricsQuery | None = Field(default=None, description="CloudWatch window and thresholds.")
    probes: Probes | None = None


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
    """How far the operator may act: every step that changes AWS or Terraform state is gated here.

    A step is approved when its id is in approvedSteps (no name recorded) or in approvals (with its
    approver's name, admitted by the API server only in the requester's own name).
    """

    mode: RemediationMode = Field(default=RemediationMode.MANUAL, description="DryRun records what would run; "
                                  "Manual (default) waits until a step is approved (approvals or approvedSteps); "
                                  "Auto runs within policy.")
    approved_steps: list[StepId] = Field(default_factory=list, max_length=50,
                                         description="Ids of approved steps, without a name (kept for compatibility; "
                                                     "refused under the admission policy's two-person rule: use "
                                                     "approvals).",
                                         json_schema_extra={"x-kubernetes-list-type": "set"})
    approvals: list[StepApproval] = Field(
        default_factory=list, max_length=50,
        description="Approved steps, each with its approver's Kubernetes username (opex approve). The admission "
                    "policy admits a new entry only when by is the requester's own username, and under its "
                    "two-person rule not the Incident's creator's.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["step"]})
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
    performance: PerformanceRemediation | None = None
    gates: PlanGates | None = Field(default=None, description=(
        "Plan gates of the incident's Terraform steps in Auto (an import, an apply): added to the operator "
        "policy's and to the DriftCheck's (spec.targets.driftCheckRef), never wider; a step whose plan fails "
        "one waits for approval."))
    verify: BakeVerification | None = Field(default=None, description=(
        "A bake window after each step that changed something reversible (Lambda code or configuration, an alias, "
        "stage settings): a breach undoes the step once and pages; a security containment step is never undone "
        "automatically, its breach only pages."))

    # In the operator's model approved_steps holds every approved id (approvedSteps first, then the
    # named approvals): the engine and the pages read one list.
    @model_validator(mode="after")
    def _named_approvals_approve(self) -> "Remediation":
        self.approved_steps = list(dict.fromkeys([*self.approved_steps, *(a.step for a in self.approvals)]))
        return self


class Sender(StrEnum):
    """Where a page goes: an SNS topic, the JSON webhook, PagerDuty (Events API v2) or Slack."""

    SNS = "SNS"
    WEBHOOK = "Webhook"
    PAGER_DUTY = "PagerDuty"
    SLACK = "Slack"


class EscalationLevel(Model):
    """Who is notified, and when, while the incident is unresolved."""

    level: int = Field(ge=1, le=3, description="1 (first responder) to 3 (executive).")
    contact: str = Field(min_length=1, max_length=128, description="Who is paged, e.g. 'DevOps lead'.")
    after_seconds: int = Field(default=0, ge=0, le=604800, description="Seconds after detection while unresolved.")
    severities: list[Severity] = Field(default_factory=list, max_length=4,
                                       description="Only for these severities (all when empty).")
    environments: list[Environment] = Field(default_factory=list, max_length=10,
                                                    description="Only in these environments (all when empty).")
    senders: list[Sender] = Field(default_factory=list, max_length=4,
                                  description="Which senders page this level: SNS, Webhook, PagerDuty, Slack (every "
                                              "sender configured in spec.notify and the policy when empty).",
                                  json_schema_extra={"x-kubernetes-list-type": "set"})


# An acknowledgement holds escalation at least this long before it may escalate again.
MIN_RE_ESCALATE_AFTER = 60
if TYPE_CHECKING:  # a type built at run time: mypy sees the str it validates
    ReEscalateAfter = str
else:
    ReEscalateAfter = duration_at_least(MIN_RE_ESCALATE_AFTER)


class Escalation(Model):
    """Override of the operator's default escalation matrix, and what an acknowledgement does to it."""

    levels: list[EscalationLevel] = Field(default_factory=list, max_length=3,
                                          description="Replaces the operator's default matrix (Level 1 DevOps lead "
                                                      "at once, Level 2 engineering manager after 30 minutes, Level "
                                                      "3 CTO for critical production).",
                                          json_schema_extra={"x-kubernetes-list-type": "map",
                                                             "x-kubernetes-list-map-keys": ["level"]})
    re_escalate_after: ReEscalateAfter | None = Field(
        default=None,
        description=f"An acknowledged Incident still unresolved this long after its acknowledgement (a duration "
                    f"such as 30m, at least {MIN_RE_ESCALATE_AFTER}s) escalates to the next level, and again each "
                    f"time as long again passes; without it an acknowledgement stops escalation until resolution.")


class Webhook(Model):
    """An HTTP endpoint that receives each notification as JSON."""

    url_secret_ref: SecretKeyReference = Field(description="Secret key holding the webhook URL (it may carry a token).")


class PagerDutyRoute(Model):
    """The PagerDuty Events API v2 integration (routing key) an escalation level triggers."""

    level: int = Field(ge=1, le=3, description="Escalation level.")
    routing_key_secret_ref: SecretKeyReference = Field(description="Secret key holding the 32-character "
                                                       "integration key of an Events API v2 integration.")


class PagerDutyNotify(Model):
    """PagerDuty: one alert per Incident (dedup key from its uid), triggered, acknowledged and resolved."""

    routes: list[PagerDutyRoute] = Field(min_length=1, max_length=3, description="Routing key per escalation level.",
                                         json_schema_extra={"x-kubernetes-list-type": "map",
                                                            "x-kubernetes-list-map-keys": ["level"]})


class SlackNotify(Model):
    """Slack: one message per Incident, through the Web API (updated in place, threaded) or an
    incoming webhook (post only)."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "has(self.tokenSecretRef) != has(self.webhookUrlSecretRef)",
         "message": "set exactly one of slack.tokenSecretRef (with channel) or slack.webhookUrlSecretRef"},
        {"rule": "has(self.tokenSecretRef) == has(self.channel)",
         "message": "slack.channel goes with slack.tokenSecretRef (the Web API posts to a channel id)"}]}}

    channel: str | None = Field(default=None, max_length=80, pattern=r"^[A-Z0-9]+$",
                                description="Channel id for chat.postMessage, e.g. C0123456789.")
    token_secret_ref: SecretKeyReference | None = Field(default=None, description="Secret key holding the bot token "
                                                        "(xoxb-...) with chat:write.")
    webhook_url_secret_ref: SecretKeyReference | None = Field(default=None, description="Secret key holding an "
                                                              "incoming webhook URL (post only: no update in place).")


class Notify(Model):
    """Where pages go (besides the topics the operator's policy adds to every incident)."""

    sns_topic_arns: list[TopicArn] = Field(default_factory=list, max_length=10,
                                           description="SNS topics; messages carry severity, level and type attributes.")
    webhook: Webhook | None = None
    pager_duty: PagerDutyNotify | None = None
    slack: SlackNotify | None = None


class SourceKind(StrEnum):
    MANUAL = "Manual"
    ALERTMANAGER = "Alertmanager"
    EVENT_BRIDGE = "EventBridge"


class AlertSource(Model):
    """The Alertmanager alert that opened the incident."""

    name: str = Field(max_length=253, description="alertname label.")
    fingerprint: str | None = Field(default=None, max_length=64, description="Alertmanager's hash of the label set.")
    group_key: str | None = Field(default=None, max_length=1024, description="Alertmanager's groupKey.")
    generator_url: str | None = Field(default=None, max_length=2048, description="Link to the alert's expression.")
    starts_at: dt.datetime | None = Field(default=None, description="When the alert fired: the detection time.")


class EventSource(Model):
    """The AWS event (EventBridge, through SQS) that opened the incident: the first one of its occurrence."""

    detail_type: str = Field(max_length=128, description="The event's detail-type, e.g. CodePipeline Pipeline "
                                                         "Execution State Change.")
    source: str = Field(max_length=64, description="The event's source, e.g. aws.codepipeline.")
    id: str | None = Field(default=None, max_length=128, description="The event's id.")
    account: str | None = Field(default=None, max_length=12, pattern=r"^[0-9]{12}$",
                                description="The AWS account the event came from.")
    region: str | None = Field(default=None, max_length=32, description="The region the event came from.")
    time: dt.datetime | None = Field(default=None, description="When it happened (the state change, the finding's "
                                                               "update): the detection time.")
    occurrence: str = Field(max_length=512, description="What makes it one occurrence, e.g. pipeline checkout "
                                                        "execution 1f0e...: events naming it add to this incident.")
    resources: list[Annotated[str, Field(max_length=2048)]] = Field(default_factory=list, max_length=10,
                                        description="ARNs the event names.")


class Source(Model):
    """Who opened the incident."""

    kind: SourceKind = Field(default=SourceKind.MANUAL, description="Manual (a person or GitOps), Alertmanager, or "
                                                                    "EventBridge (an AWS event through SQS).")
    alert: AlertSource | None = None
    event: EventSource | None = None

    @property
    def started_at(self) -> dt.datetime | None:
        """When what opened the incident started: the alert's startsAt or the event's time."""
        if self.alert and self.alert.starts_at:
            return self.alert.starts_at
        return self.event.time if self.event else None


class IncidentSpec(Model):
    """Desired state of an Incident: what happened, where, and how far the operator may act."""

    model_config = Model.model_config | ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "self.type != 'PipelineFailure' || has(self.targets.pipeline) || has(self.targets.codeBuild)",
         "message": "a PipelineFailure incident needs spec.targets.pipeline or codeBuild"},
        {"rule": "self.type != 'DeploymentFailure' || has(self.targets.pipeline) || has(self.targets.codeBuild) "
                 "|| has(self.targets.lambda) || has(self.targets.driftCheckRef)",
         "message": "a DeploymentFailure incident needs one of spec.targets.pipeline, codeBuild, lambda or driftCheckRef"},
        {"rule": "self.type != 'SecurityIncident' || has(self.targets.security)",
         "message": "a SecurityIncident needs spec.targets.security (the users, keys, addresses or groups involved)"},
        {"rule": "self.type != 'PerformanceDegradation' || has(self.targets.lambda) || has(self.targets.apiGateway) "
                 "|| has(self.targets.rds) || has(self.targets.cloudFront) || has(self.targets.probes)",
         "message": "a PerformanceDegradation incident needs one of spec.targets.lambda, apiGateway, rds, cloudFront "
                    "or probes"},
        {"rule": "!has(oldSelf.closed) || !oldSelf.closed || (has(self.closed) && self.closed)",
         "message": "a closed Incident cannot be reopened; create a new one"},
        *SECURITY_RULES,
        *verify_rules(),
    ]})

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
    source: Source | None = Field(default=None, description="Who opened it (set by the alert and event intakes).")
    closed: bool = Field(default=False, description="Set when the post-incident review is done; the phase becomes Closed.")
    acknowledgement: Acknowledgement | None = Field(
        default=None, description="Someone is on it (opex ack): escalation stops at the current level (see "
                                  "escalation.reEscalateAfter); admitted only in the requester's own name.")


# ---- status ----------------------------------------------------------------------------------

class IncidentPhase(StrEnum):
    DETECTED = "Detected"
    ASSESSING = "Assessing"
    DIAGNOSING = "Diagnosing"
    AWAITING_APPROVAL = "AwaitingApproval"
    REMEDIATING = "Remediating"
    MANUAL_ACTION_REQUIRED = "ManualActionRequired"
    RESOLVED = "Resolved"
    FAILED = "Failed"
    CLOSED = "Closed"


class FindingSeverity(StrEnum):
    INFO = "Info"
    WARNING = "Warning"
    ERROR = "Error"


class Finding(Status):
    """Something the assessment saw, with the evidence excerpt that shows it."""

    id: str = Field(max_length=16, description="F1, F2, ... (root causes cite them).")
    source: str = Field(max_length=64, description="CodePipeline, CodeBuild, CloudWatchLogs, Lambda, APIGateway, "
                                                   "RDS, EC2, CloudTrail, Terraform or Operator.")
    resource: Bounded512 = Field(description="The resource it is about, e.g. function/checkout-api or pipeline/checkout.")
    severity: FindingSeverity = Field(default=FindingSeverity.INFO, description="Info, Warning or Error.")
    observed: Bounded1024 = Field(description="What was seen.")
    evidence: Bounded2048 | None = Field(default=None, description="Excerpt that shows it (log lines, API fields); never a secret value.")
    time: dt.datetime | None = Field(default=None, description="When it happened, when the source says.")


class RootCauseCategory(StrEnum):
    BUILD_DEPENDENCY_INSTALL = "BuildDependencyInstall"
    BUILD_TEST_FAILURE = "BuildTestFailure"
    BUILD_LINT = "BuildLint"
    BUILD_TIMED_OUT = "BuildTimedOut"
    BUILD_FAILURE = "BuildFailure"
    DEPLOY_PERMISSION_DENIED = "DeployPermissionDenied"
    DEPLOY_NAMING_CONFLICT = "DeployNamingConflict"
    DEPLOY_QUOTA_EXCEEDED = "DeployQuotaExceeded"
    DEPLOY_NETWORK = "DeployNetwork"
    TERRAFORM_STATE_LOCK = "TerraformStateLock"
    TERRAFORM_BACKEND = "TerraformBackend"
    REGISTRY_RATE_LIMITED = "RegistryRateLimited"
    TERRAFORM_VALIDATION = "TerraformValidation"
    LAMBDA_DEPLOYMENT = "LambdaDeployment"
    LAMBDA_TIMEOUT = "LambdaTimeout"
    LAMBDA_OUT_OF_MEMORY = "LambdaOutOfMemory"
    LAMBDA_FUNCTION_ERROR = "LambdaFunctionError"
    DATABASE_CONNECTIVITY = "DatabaseConnectivity"
    # The runbook's "Performance Degradation" section.
    LAMBDA_NEAR_TIMEOUT = "LambdaNearTimeout"
    LAMBDA_MEMORY_BOUND = "LambdaMemoryBound"
    LAMBDA_THROTTLED = "LambdaThrottled"
    API_INTEGRATION_LATENCY = "ApiIntegrationLatency"
    API_GATEWAY_LATENCY = "ApiGatewayLatency"
    API_CACHING_OFF = "ApiCachingOff"
    CLOUD_FRONT_LOW_HIT_RATIO = "CloudFrontLowHitRatio"
    DATABASE_CPU = "DatabaseCpu"
    DATABASE_CONNECTIONS = "DatabaseConnections"
    PERFORMANCE_INSIGHTS_OFF = "PerformanceInsightsOff"
    # The runbook's "Security Incident Response" section.
    COMPROMISED_CREDENTIALS = "CompromisedCredentials"
    EXPOSED_ADMIN_PORT = "ExposedAdminPort"
    UNKNOWN = "Unknown"


class RootCause(Status):
    """The diagnosis: the failure category the findings support best, and which findings carried it."""

    category: RootCauseCategory = Field(description="The runbook's failure category; Unknown when no rule matched.")
    summary: Bounded1024 = Field(description="One line naming what failed and why, e.g. the denied IAM action and its principal.")
    evidence: list[FindingId] = Field(default_factory=list, max_length=10,
                                     description="Ids of the findings that decided it.")
    identified_at: dt.datetime | None = Field(default=None, description="When the diagnosis was made.")
    lock: StateLock | None = Field(default=None, description="The state lock, for TerraformStateLock.")


class StepState(StrEnum):
    PENDING = "Pending"
    AWAITING_APPROVAL = "AwaitingApproval"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    DRY_RUN = "DryRun"
    ROLLED_BACK = "RolledBack"   # its bake window breached and its undo ran (status.steps[].verification says why)


class Step(Status):
    """A runbook step and its checkpoint: intent is recorded before a call, the outcome after."""

    id: str = Field(max_length=100, pattern=STEP_ID, description="Stable id; approve it in spec.remediation.approvedSteps.")
    action: str = Field(max_length=128, description="The IAM-style action the operator policy checks, e.g. "
                                                    "lambda:UpdateAlias, codepipeline:RetryStageExecution.")
    mutating: bool = Field(default=False, description="True when the step changes AWS or Terraform state (gated).")
    requires_approval: bool = Field(default=False, description="True when the step waits for its id in "
                                    "spec.remediation.approvedSteps even in Auto mode (a SecurityIncident's "
                                    "recovery: rotating secrets and redeploying are a person's decision).")
    state: StepState = Field(default=StepState.PENDING, description="Pending, AwaitingApproval, Running, Succeeded, "
                                                                    "Failed, Skipped, DryRun or RolledBack.")
    attempts: int = Field(default=0, ge=0, description="How many times the step was started.")
    inputs: Bounded1024 | None = Field(default=None, description="What the step does, in words (no secret values).")
    params: dict[str, str] = Field(default_factory=dict, description="Structured inputs the step runs with (its "
                                   "action's parameters; never a secret value).", json_schema_extra={"maxProperties": 12})
    outputs: Bounded2048 | None = Field(default=None, description="What the step did or saw.")
    started_at: dt.datetime | None = Field(default=None, description="When the step (its last attempt) started.")
    finished_at: dt.datetime | None = Field(default=None, description="When the step ended.")
    error: Bounded2048 | None = Field(default=None, description="Why the last attempt failed.")
    undo: Bounded1024 | None = Field(default=None, description="How to reverse what the step changed (an AWS CLI command or an instruction); "
                        "absent when it changed nothing.")
    rollback_ref: LocalObjectReference | None = Field(default=None, description="The Rollback this step created.")
    verification: StepVerification | None = Field(default=None, description="The bake window after the step "
                                                  "(spec.remediation.verify) and what it found.")
    runner: Bounded128 | None = Field(default=None, description="The operator process (host/pid/start) with a call of this step in flight; found under "
                    "another one, that call was cut off (interrupted) and the step resumes from the real state.")


class Notification(Status):
    """One page sent (or attempted) to one channel."""

    level: int = Field(ge=1, le=3, description="Escalation level paged.")
    contact: Bounded128 = Field(description="Who the level pages, e.g. DevOps lead.")
    channel: str = Field(max_length=16, description="SNS, Webhook, PagerDuty or Slack.")
    target: str = Field(max_length=256, description="Topic ARN; 'webhook' (its URL is a secret); the Secret "
                                                    "NAME/KEY of the PagerDuty routing key; the Slack channel id, or "
                                                    "'slack-webhook'.")
    time: dt.datetime = Field(description="When it was sent.")
    message_id: str | None = Field(default=None, max_length=128, description="SNS MessageId, or Slack message ts, of "
                                   "a delivered page.")
    error: Bounded1024 | None = Field(default=None, description="Why delivery failed.")


class SlackMessage(Status):
    """The Incident's one Slack message (Web API): updated in place, with replies in its thread."""

    channel: str = Field(max_length=80, description="Channel id chat.postMessage answered with.")
    ts: str = Field(max_length=32, description="The message's ts (its id in the channel; the thread's parent).")


class EscalationStatus(Status):
    """Where the incident stands in the escalation matrix."""

    current_level: int = Field(default=0, ge=0, le=3, description="Highest level paged so far (0: none yet).")
    next_level: int | None = Field(default=None, ge=1, le=3, description="The level paged next if still unresolved.")
    next_escalation_at: dt.datetime | None = Field(default=None, description="When the next level is due.")
    notified: list[Notification] = Field(default_factory=list, max_length=30,
                                         description="Pages sent, newest last (the last 30).")
    re_escalated_at: dt.datetime | None = Field(default=None, description="When an acknowledged Incident last "
                                                "escalated again (spec.escalation.reEscalateAfter).")
    slack: SlackMessage | None = Field(default=None, description="The Incident's Slack message, once posted.")


class PostIncident(Status):
    """The post-incident record; the same in Markdown in the ConfigMap named by report_ref."""

    written_at: dt.datetime = Field(description="When the record was written.")
    duration_seconds: int | None = Field(default=None, ge=0, description="Detection to resolution, in seconds.")
    time_to_assess_seconds: int | None = Field(default=None, ge=0, description="Detection to the end of the initial "
                                               "assessment, in seconds.")
    time_to_acknowledge_seconds: int | None = Field(default=None, ge=0, description="Detection to acknowledgement "
                                                    "(MTTA's sample), in seconds; absent when nobody acknowledged.")
    acknowledged_by: BoundedUsername | None = Field(default=None, description="Who acknowledged.")
    approvals: list[StepApprovalRecord] = Field(default_factory=list, max_length=50,
                                                description="Who approved each step that ran.")
    root_cause: Bounded1024 | None = Field(default=None, description="Category and summary of the root cause.")
    action_items: list[ActionItem] = Field(default_factory=list, max_length=20,
                                           description="Follow-ups (post-mortem, runbook updates, monitoring gaps).")
    post_mortem_required: bool = Field(default=False, description="True for critical and high severity.")
    report_ref: LocalObjectReference | None = Field(default=None, description="ConfigMap with the Markdown report.")


class Classification(Status):
    """The severity the evidence supports (the runbook's security "Incident Classification"): the
    declared severity, raised by evidence, never lowered."""

    declared_severity: Severity = Field(description="spec.severity: what the reporter declared.")
    severity: Severity = Field(description="The effective severity; escalation, pages and metrics use it.")
    raised: bool = Field(default=False, description="True when the evidence raised the declared severity.")
    reason: Bounded1024 = Field(description="Why the severity is what it is: the evidence that raised it, or that it was kept.")
    evidence: list[Bounded512] = Field(default_factory=list, max_length=10,
                                         description="Each piece of evidence and the severity it supports, most "
                                                     "severe first.")
    classified_at: dt.datetime = Field(description="When the investigation classified it.")


class AlertState(StrEnum):
    FIRING = "Firing"
    RESOLVED = "Resolved"


class AlertRecord(Status):
    """What the operator's intakes have received of the alert or AWS event that opened the incident.

    Written by the intakes alone (with the object's resourceVersion, so two deliveries never lose a
    count); the Incident controller reads it and records AlertResolved (AlarmResolved for a
    CloudWatch alarm's events) and the timeline.
    """

    state: AlertState = Field(description="Firing, or Resolved as Alertmanager or the alarm's events last reported it.")
    occurrences: int = Field(default=1, ge=1, description="Notifications that carried the alert firing (Alertmanager "
                             "repeats a firing alert every repeat_interval; a burst of the same alert counts here), or "
                             "AWS events of this occurrence (a failed execution's build, action, stage and pipeline "
                             "events; a redelivered event is not counted again).")
    first_seen: dt.datetime = Field(description="When the intake first received the alert or event.")
    last_seen: dt.datetime = Field(description="When the intake last received one, firing or resolved.")
    starts_at: dt.datetime | None = Field(default=None, description="The alert's startsAt in the last notification, "
                                          "or the time of the occurrence's first event.")
    resolved_at: dt.datetime | None = Field(default=None, description="When the alert ended (its endsAt, else when the "
                                            "resolved notification came; an alarm's return to OK); cleared when it "
                                            "fires again.")
    receiver: Bounded128 | None = Field(default=None, description="The Alertmanager receiver that sent the last "
                                        "notification, or the SQS queue the last event came through.")
    event_ids: list[Bounded128] = Field(default_factory=list, max_length=MAX_EVENT_IDS,
                                        description="Ids of the last AWS events recorded (newest last): a message "
                                                    "delivered again finds its id here and is not counted twice.")


class RemediationStatus(Status):
    """How the operator acts on this incident, as it read the spec (a misspelt field is pruned by the
    API server, and its default applies: this says which)."""

    mode: RemediationMode = Field(description="DryRun, Manual or Auto: the spec.remediation.mode the operator "
                                              "acts under.")


class IncidentStatus(Status):
    """Observed state of an Incident, written only by the operator."""

    PHASE_MARKERS: ClassVar[dict[IncidentPhase, str | None]] = {
        IncidentPhase.DETECTED: RECONCILING, IncidentPhase.ASSESSING: RECONCILING,
        IncidentPhase.DIAGNOSING: RECONCILING, IncidentPhase.REMEDIATING: RECONCILING,
        IncidentPhase.FAILED: STALLED, IncidentPhase.AWAITING_APPROVAL: None,
        IncidentPhase.MANUAL_ACTION_REQUIRED: None, IncidentPhase.RESOLVED: None, IncidentPhase.CLOSED: None}
    READY_FROM: ClassVar[tuple[str, ...]] = (STALLED, RECONCILING, CLOSED, REMEDIATED)

    phase: IncidentPhase | None = Field(default=None, description="Detected, Assessing, Diagnosing, AwaitingApproval, "
                                        "Remediating, ManualActionRequired, Resolved, Failed or Closed.")
    observed_generation: int | None = Field(default=None, ge=0, description="The generation last reconciled.")
    conditions: list[Condition] = conditions_field(
        "Ready (the summary of Stalled, Reconciling, Closed and Remediated), Assessed, RootCauseIdentified, "
        "Remediated, Escalated, ApprovalsValid, Closed, AlertResolved (an incident opened by an alert), "
        "AlarmResolved (one opened by a CloudWatch alarm's event).")
    findings: list[Finding] = Field(default_factory=list, max_length=MAX_FINDINGS,
                                    description="What the assessment saw (F1, F2, ...).")
    root_cause: RootCause | None = Field(default=None, description="The diagnosis and the findings it cites.")
    classification: Classification | None = Field(
        default=None, description="Severity raised by evidence (SecurityIncident); spec.severity applies when absent.")
    steps: list[Step] = Field(default_factory=list, max_length=MAX_STEPS,
                              description="The runbook's steps in order, each with its checkpoint.")
    remediation: RemediationStatus | None = Field(default=None, description="The remediation mode the operator "
                                                  "acts under.")
    escalation: EscalationStatus | None = Field(default=None, description="Escalation level and pages sent.")
    timeline: list[TimelineEntry] = timeline_field()
    detected_at: dt.datetime | None = Field(default=None, description="When the incident started (the alert's "
                                            "startsAt, else the object's creation).")
    assessed_at: dt.datetime | None = Field(default=None, description="When the initial assessment finished.")
    resolved_at: dt.datetime | None = Field(default=None, description="When the fix was verified (MTTR).")
    closed_at: dt.datetime | None = Field(default=None, description="When spec.closed was honoured.")
    post_incident: PostIncident | None = Field(default=None, description="The post-incident record.")
    alert: AlertRecord | None = Field(default=None, description="The alert or AWS event that opened the incident, as "
                                      "the intakes last received it (deliveries, firing or resolved).")
    created_by: BoundedUsername | None = Field(default=None, description="Who created the Incident, as admission recorded it (the opex.dev/created-by "
                        "annotation).")
    acknowledgement: AcknowledgementRecord | None = Field(default=None, description="Who acknowledged, and when "
                                                          "(spec.acknowledgement as the operator saw it).")
    approvals: list[StepApprovalRecord] = Field(default_factory=list, max_length=50,
                                                description="Who approved each approved step, and when the operator "
                                                            "saw it (spec.remediation.approvals; approvedSteps without "
                                                            "a name).")


def effective_severity(spec: IncidentSpec, status: IncidentStatus) -> Severity:
    """The severity escalation, pages and metrics use: the classification's when the investigation
    raised it (``status.classification``), else what ``spec.severity`` declares."""
    return status.classification.severity if status.classification else spec.severity


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
    {"name": "Severity", "type": "string", "jsonPath": ".spec.severity"},
    {"name": "Classified", "type": "string", "jsonPath": ".status.classification.severity", "priority": 1},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Root Cause", "type": "string", "jsonPath": ".status.rootCause.category"},
    {"name": "Acked By", "type": "string", "jsonPath": ".spec.acknowledgement.by"},
    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
