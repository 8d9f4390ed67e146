"""The ``DriftCheck`` kind: scheduled ``terraform plan -detailed-exitcode`` with a drift report.

Runbook source: the runbook's "Infrastructure Drift Detection" (production daily at 09:00 UTC,
development at 18:00 UTC; exit code 0 no changes, 1 error, 2 changes present) and its
resolution options (import, configuration update, apply, refresh).
"""
from __future__ import annotations

import datetime as dt
from enum import StrEnum

from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field

from .approvals import USERNAME_MAX, BoundedUsername
from .conditions import RECONCILING, STALLED

# The DriftCheck's condition types (Ready is derived from them: DriftCheckStatus.READY_FROM).
CHECKED, DRIFTED, REMEDIATING, SCHEDULED = "Checked", "Drifted", "Remediating", "Scheduled"
# Set when CloudTrail shows who changed a drifted resource: True when one of them is not a deployer.
OUT_OF_BAND_CHANGE = "OutOfBandChange"
from .common import (REASON, DNS_LABEL, DNS_SUBDOMAIN, DURATION, DURATION_RULE, Bounded128, Bounded256, Bounded512,
                     Bounded64, Bounded1024, Bounded2048, Condition, Duration, LocalObjectReference, Model, StateLock, Status,
                     TimelineEntry, conditions_field, duration_at_least, duration_seconds, obj_default, timeline_field)
from .gates import MAX_GATE_FAILURES, GateFailureRecord, PlanGates

# Five cron fields (minute hour day-of-month month day-of-week) or a macro. The API server checks
# the shape and then each field's values, so '25' as an hour or a '*/0' step is refused at
# admission; croniter (schedule.invalid) checks again, for objects stored before these rules.
_FIELDS = r"[0-9A-Za-z*?/,#-]+( +[0-9A-Za-z*?/,#-]+){4}"
CRON = rf"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|{_FIELDS})$"
_FIVE = rf"^{_FIELDS}$"
_STEP = r"/[1-9][0-9]{0,2}"
_DAY = r"(0?[1-9]|[12][0-9]|3[01])"
_WEEKDAY = r"(0?[0-7]|(?i:SUN|MON|TUE|WED|THU|FRI|SAT))"


def _field(value: str, special: str = "") -> str:
    """A comma-separated list of items: ``*``, a value or a range a-b, each with an optional /step
    (at least 1), or one of the ``special`` forms croniter also knows (L, nW, n#k, ?)."""
    item = rf"(\*|{value}(-{value})?)({_STEP})?"
    item = rf"({special}|{item})" if special else item
    return rf"{item}(,{item})*"


# (name, position, values, pattern of the field): croniter's ranges (schedule.py runs croniter).
CRON_FIELDS = [
    ("minute", 1, "0-59", _field(r"[0-5]?[0-9]")),
    ("hour", 2, "0-23", _field(r"([01]?[0-9]|2[0-3])")),
    ("day of month", 3, "1-31, L (last day), nW (the weekday nearest day n) or ?", _field(_DAY, rf"\?|L|{_DAY}W|{_DAY}-L({_STEP})?")),
    ("month", 4, "1-12 or JAN-DEC", _field(r"(0?[1-9]|1[0-2]|(?i:JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))")),
    ("day of week", 5, "0-7 or SUN-SAT (0 and 7 are Sunday), n#k (the k-th weekday n of the month) or ?",
     _field(_WEEKDAY, rf"\?|{_WEEKDAY}#[1-5]")),
]
ORDINAL = {1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 5: "5th"}


def _cron_rules() -> list[dict[str, str]]:
    rules = [{"rule": f"self.matches(r'{CRON}')",
              "message": "must be a cron expression of five fields (minute hour day-of-month month day-of-week), "
                         "e.g. '0 9 * * *', or a macro such as @daily"}]
    for name, position, values, pattern in CRON_FIELDS:
        rules.append({"rule": f"!self.matches(r'{_FIVE}') || self.matches(r'^([^ ]+ +){{{position - 1}}}({pattern})( |$)')",
                      "message": f"the {name} ({ORDINAL[position]} field) must be {values}: a value, a range a-b "
                                 f"or *, each with an optional step /n of at least 1, in a comma-separated list"})
    return rules


TIME_ZONE = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
# An IANA zone the API server knows (CEL's timestamp accessors load it; kube-apiserver embeds the
# tz database): an unknown zone is refused at admission with "unknown time zone ...". Local is the
# server's own zone, not a name.
TIME_ZONE_RULE: dict[str, Any] = {"rule": "self != 'Local' && timestamp('2000-01-01T00:00:00Z').getHours(self) >= 0",
                  "message": "must be an IANA time zone such as UTC or Europe/Berlin"}
CHECKSUM = r"^sha256:[a-f0-9]{64}$"
# Stalled reasons of a spec the operator cannot act on: nothing runs until the spec is fixed. A
# configuration that does not plan is Stalled too (with the run's reason), but runs go on.
SPEC_STALLS = ("InvalidSpec", "InvalidSchedule")
# Annotate a DriftCheck with this (any new value) to run it once now (``opex run driftcheck``).
RUN_ANNOTATION = "opex.dev/run-requested"
# The mutating CloudTrail calls the event intake found on resources of the DriftCheck's last plan
# (a JSON list, newest last, at most MAX_CHANGES): written by the intake, read by the controller,
# which runs the check for those after status.answeredChange (runbooks.trail_changes).
CHANGES_ANNOTATION = "opex.dev/cloudtrail-changes"
MAX_CHANGES = 20
# A resource instance address (Terraform docs, "Resource Addressing"): module calls and a resource, each
# with an optional instance key, a number or a quoted string holding any characters (\" and \\ escaped),
# e.g. module.dns["eu west"].aws_route53_record.this["www A"].
_IDENT = r"[A-Za-z_][A-Za-z0-9_-]*"
_KEY = r'\[(?:[0-9]+|"(?:[^"\\]|\\.)*")\]'
TF_ADDRESS = rf"^(?:module\.{_IDENT}(?:{_KEY})?\.)*(?:data\.)?{_IDENT}\.{_IDENT}(?:{_KEY})?$"
# An ignore pattern: an address where * stands for any characters (terraform.plan.address_matches).
IGNORE_PATTERN = r"^[^\x00-\x1f\x7f]+$"
MAX_DRIFTED = 100

CronSchedule = Annotated[str, Field(max_length=128, json_schema_extra={"x-kubernetes-validations": _cron_rules()})]
AddressPattern = Annotated[str, Field(max_length=512, pattern=IGNORE_PATTERN)]
Action = Annotated[str, Field(max_length=16)]

class ConcurrencyPolicy(StrEnum):
    FORBID = "Forbid"
    REPLACE = "Replace"


class Runner(StrEnum):
    """Where plan and apply run (docs/scaling.md, section 4)."""

    JOB = "Job"
    IN_PROCESS = "InProcess"


class GitSource(Model):
    """A git repository holding the configuration (cloned with the git CLI; a mirror is cached)."""

    url: str = Field(min_length=1, max_length=2048,
                     description="Repository URL the git CLI can clone (https://, ssh://, file://, or a path).")
    ref: str = Field(default="main", min_length=1, max_length=255, description="Branch, tag or commit.")
    path: str = Field(default=".", max_length=1024, pattern=r"^[^\x00]*$",
                      description="Directory of the Terraform configuration inside the repository.",
                      json_schema_extra={"x-kubernetes-validations": [
                          {"rule": "!self.startsWith('/') && !self.contains('..')",
                           "message": "path must be relative and stay inside the repository"}]})


class Source(Model):
    """Where the Terraform configuration comes from: exactly one of git or configMapRef."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "has(self.git) != has(self.configMapRef)",
         "message": "set exactly one of source.git or source.configMapRef"}]}}

    git: GitSource | None = Field(default=None, description="A git repository.")
    config_map_ref: LocalObjectReference | None = Field(
        default=None, description="A ConfigMap whose keys are the files of a small configuration.")


class ValuesFromKind(StrEnum):
    SECRET = "Secret"
    CONFIG_MAP = "ConfigMap"


class ValuesFrom(Model):
    """A Secret or ConfigMap whose keys become Terraform input variables."""

    kind: ValuesFromKind = Field(description="Secret or ConfigMap.")
    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="Its name, in this namespace.")
    optional: bool = Field(default=False, description="Run without it when it does not exist.")


class SecretRef(Model):
    """A Secret whose keys become environment variables of Terraform."""

    secret_ref: LocalObjectReference = Field(description="A Secret whose keys become environment variables "
                                                          "of Terraform (provider credentials).")


class ResolutionStrategy(StrEnum):
    REPORT_ONLY = "ReportOnly"
    APPLY = "Apply"
    REFRESH_ONLY = "RefreshOnly"
    IMPORT = "Import"


class Approval(StrEnum):
    MANUAL = "Manual"
    AUTO = "Auto"


class ImportEntry(Model):
    """An existing object to bring under Terraform: terraform import ADDRESS ID."""

    address: str = Field(min_length=1, max_length=512, pattern=TF_ADDRESS,
                         description='Resource instance address in the configuration, e.g. aws_instance.web[0] or '
                                     'module.dns.aws_route53_record.this["www A"].')
    id: str = Field(min_length=1, max_length=1024, description="The provider's ID of the existing object.")


class Resolution(Model):
    """What to do about drift: report it, apply the approved plan, refresh the state, or import objects."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "!has(self.strategy) || self.strategy != 'Import' || (has(self.imports) && size(self.imports) > 0)",
         "message": "strategy Import needs at least one entry in resolution.imports"},
        {"rule": "!has(self.approvedPlanChecksum) || (has(self.strategy) && self.strategy != 'ReportOnly')",
         "message": "approvedPlanChecksum approves a resolution: it needs strategy Apply, RefreshOnly or Import"},
        {"rule": "!has(self.approvedBy) || has(self.approvedPlanChecksum)",
         "message": "approvedBy names who approved approvedPlanChecksum: set both"},
    ]}}

    strategy: ResolutionStrategy = Field(default=ResolutionStrategy.REPORT_ONLY, description=(
        "ReportOnly (default) reports; Apply applies the saved plan; RefreshOnly runs apply -refresh-only; "
        "Import imports the addresses in imports that the state lacks."))
    approval: Approval = Field(default=Approval.MANUAL, description=(
        "Manual (default): the resolution runs only for the run whose plan checksum equals approvedPlanChecksum; "
        "Auto: it runs on every drift."))
    approved_plan_checksum: str | None = Field(
        default=None, max_length=71, pattern=CHECKSUM,
        description="With approval Manual, the resolution runs only for the run whose status.lastResult.planChecksum "
                    "equals this (Apply applies exactly that saved plan).")
    approved_by: str | None = Field(default=None, min_length=1, max_length=USERNAME_MAX, description=(
        "Kubernetes username of who approved approvedPlanChecksum (opex approve fills it in). The admission policy "
        "admits a new approval only in the requester's own name, and under its two-person rule requires it and "
        "refuses the DriftCheck's creator."))
    imports: list[ImportEntry] = Field(default_factory=list, max_length=50, description="For strategy Import.")
    gates: PlanGates | None = Field(default=None, description=(
        "With approval Auto, the plan is applied only if it passes these gates and the operator policy's (which "
        "these can narrow, never widen); a plan that fails one waits for approval, as with Manual, and the "
        "Drifted condition names the gate and the resources."))


class ForceUnlock(StrEnum):
    NEVER = "Never"
    IF_ORPHANED = "IfOrphaned"


MIN_ORPHANED_AFTER = 60  # seconds: a lock younger than this may belong to a Terraform run that is still going
if TYPE_CHECKING:  # a type built at run time: mypy sees the str it validates
    OrphanedAfter = str
else:
    OrphanedAfter = duration_at_least(MIN_ORPHANED_AFTER, "a younger lock may be held by a Terraform run that is still "
                                                           "going")


class LockPolicy(Model):
    timeout: Duration = Field(default="60s", description="Terraform -lock-timeout: how long to wait for a held lock.")
    force_unlock: ForceUnlock = Field(default=ForceUnlock.NEVER, description="IfOrphaned unlocks a lock older than "
                                      "orphanedAfter that runs at least orphanedAfter apart found held.")
    orphaned_after: OrphanedAfter = Field(default="1h", description=(
        f"Age after which a held lock counts as orphaned (at least {MIN_ORPHANED_AFTER}s); the operator must also "
        f"have found it held on runs this far apart."))


class ReportPolicy(Model):
    keep: int = Field(default=5, ge=1, le=50, description="How many past report ConfigMaps to keep.")


class Triggers(Model):
    cloud_trail: bool = Field(default=False, description=(
        "Run when CloudTrail shows a mutating call on a resource of the last plan's prior state (the "
        "operator's event intake consumes 'AWS API Call via CloudTrail' events), debounced by "
        "eventDebounceSeconds; the drift report then names who changed each drifted resource."))


class DriftCheckSpec(Model):
    """Desired state of a DriftCheck: which configuration, when, and what to do about drift."""

    schedule: list[CronSchedule] = Field(min_length=1, max_length=10, description="Cron schedules (several "
                                            "windows allowed), e.g. ['0 9 * * *'] for production at 09:00.")
    time_zone: str = Field(default="UTC", max_length=64, pattern=TIME_ZONE, description="IANA time zone of the schedule.",
                           json_schema_extra={"x-kubernetes-validations": [TIME_ZONE_RULE]})
    environment: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL, description=(
        "The environment this configuration describes, e.g. production (the runbook checks production at 09:00 UTC "
        "and development at 18:00 UTC). Labels the drift metrics, so alerts can tell production drift apart."))
    suspend: bool = Field(default=False, description="Stops new scheduled runs; a run in progress finishes.")
    starting_deadline_seconds: int | None = Field(default=None, ge=1, le=604800,
                                                  description="A run missed by more than this is skipped.")
    concurrency_policy: ConcurrencyPolicy = Field(default=ConcurrencyPolicy.FORBID, description=(
        "Forbid (default): a slot that comes while a run is going is skipped; Replace: the run is cut at the next slot."))
    source: Source
    workspace: str = Field(default="default", max_length=90, pattern=r"^[A-Za-z0-9_.-]+$",
                           description="Terraform workspace (selected, or created, after init).")
    backend_config: dict[str, str] = Field(default_factory=dict, description="terraform init -backend-config key=value.",
                                           json_schema_extra={"maxProperties": 32})
    vars: dict[str, str] = Field(default_factory=dict, description="Input variables.",
                                 json_schema_extra={"maxProperties": 128})
    vars_from: list[ValuesFrom] = Field(default_factory=list, max_length=16,
                                        description="Secrets/ConfigMaps whose keys become input variables.")
    env_from: list[SecretRef] = Field(default_factory=list, max_length=16,
                                      description="Secrets whose keys become environment variables of Terraform.")
    ignore: list[AddressPattern] = Field(default_factory=list, max_length=50, description=(
        "Resource addresses left out of the drift result. * matches any characters (dots and brackets "
        "included); every other character is itself, so aws_instance.web[0] is that instance and "
        "module.legacy.* everything in that module."))
    timeout_seconds: int = Field(default=1800, ge=30, le=21600, description="Hard limit of one run; the Terraform "
                                 "process tree is interrupted, then killed.")
    runner: Runner | None = Field(default=None, description=(
        "Where the plan and an approved apply run: Job (a Kubernetes Job per run, from the chart's template, "
        "under the namespace's role) or InProcess (a child process of the operator). Unset: the operator's "
        "default (the chart's planJob.defaultRunner; InProcess without the chart)."))
    resolution: Resolution = Field(default_factory=Resolution, json_schema_extra=obj_default())
    lock: LockPolicy = Field(default_factory=LockPolicy, json_schema_extra=obj_default(),
                             description="How a held state lock is waited for and, if orphaned, released.")
    report: ReportPolicy = Field(default_factory=ReportPolicy, json_schema_extra=obj_default(),
                                 description="Report ConfigMaps kept.")
    triggers: Triggers = Field(default_factory=Triggers, json_schema_extra=obj_default(),
                               description="What runs the check besides its schedule.")
    event_debounce_seconds: int = Field(default=120, ge=0, le=86400, description=(
        "At most one run started by CloudTrail changes per this many seconds (changes in between wait for "
        "the next); never during a run."))


# ---- status ----------------------------------------------------------------------------------

class Outcome(StrEnum):
    NO_DRIFT = "NoDrift"
    DRIFT_DETECTED = "DriftDetected"
    PLAN_FAILED = "PlanFailed"
    LOCK_HELD = "LockHeld"
    INTERRUPTED = "Interrupted"


class RunResult(Status):
    """One run of the check: terraform plan -detailed-exitcode and what it found."""

    exit_code: int | None = Field(default=None, description="terraform plan -detailed-exitcode: 0 no changes, 1 error, "
                                                            "2 changes present.")
    outcome: Outcome = Field(description="NoDrift, DriftDetected, PlanFailed, LockHeld, or Interrupted (the operator "
                                         "stopped during the run).")
    terraform_version: str | None = Field(default=None, max_length=64, description="Version of the CLI that ran.")
    plan_checksum: str | None = Field(default=None, max_length=71, pattern=CHECKSUM,
                                      description="sha256 of what the saved plan would do; approve it in "
                                                  "spec.resolution.approvedPlanChecksum.")
    add: int = Field(default=0, ge=0, description="Resources to add.")
    change: int = Field(default=0, ge=0, description="Resources to change in place.")
    import_: int = Field(default=0, ge=0, alias="import", description="Resources to import.")
    remove: int = Field(default=0, ge=0, description="Resources to destroy.")
    duration_seconds: float | None = Field(default=None, ge=0, description="Wall time of the run, in seconds.")
    started_at: dt.datetime | None = Field(default=None, description="When the run started.")
    finished_at: dt.datetime | None = Field(default=None, description="When the run ended.")
    source_revision: Bounded256 | None = Field(default=None, description="Git commit or ConfigMap checked.")
    trigger: Bounded128 | None = Field(default=None, description="Schedule slot or on-demand request.")
    message: Bounded2048 | None = Field(default=None, description="First lines of Terraform's diagnostic when the run failed.")
    reason: str | None = Field(default=None, max_length=64, pattern=REASON,
                               description="Why the run ended as it did, as the Checked condition says it: Checked, "
                                           "PlanFailed, InitFailed, TimedOut, LockHeld, PolicyRefused, InvalidPlan "
                                           "or why the source could not be read.")
    gate_failures: list[GateFailureRecord] = Field(
        default_factory=list, max_length=MAX_GATE_FAILURES,
        description="The plan gates this plan fails (spec.resolution.gates and the operator policy's): approval "
                    "Auto does not apply it; it waits for spec.resolution.approvedPlanChecksum like Manual.")


class DriftedResource(Status):
    """One resource that differs, as the plan JSON names it."""

    address: Bounded512 = Field(description="Resource address, e.g. module.vpc.aws_subnet.private[0].")
    actions: list[Action] = Field(max_length=4, description="Planned actions, e.g. [update] or [delete, create].")
    reason: str = Field(max_length=32, description="drift (changed outside Terraform) or change (config differs).")
    action_reason: Bounded128 | None = Field(default=None, description="Terraform's action_reason, e.g. replace_because_cannot_update.")


class ReportRef(Status):
    """The report ConfigMap of the last successful run."""

    name: str = Field(max_length=253, description="ConfigMap name, in this namespace.")
    truncated: bool = Field(default=False, description="The full plan JSON did not fit and was left out (see planFile).")
    summary_truncated: bool = Field(default=False, description="The summary lists only the first resources (a "
                                    "ConfigMap holds 1 MiB); its counts are complete.")
    plan_file: Bounded1024 | None = Field(default=None, description="Where the full plan is when it is not in the report: the saved plan file in the "
                             "operator's work directory, until the next run replaces it.")


class ObservedLock(StateLock):
    """A held state lock as the last runs saw it."""

    first_seen_at: dt.datetime | None = Field(default=None, description="When a run first found this lock.")
    last_seen_at: dt.datetime | None = Field(default=None, description="When a run last found this lock.")
    seen_count: int = Field(default=1, ge=1, description="Consecutive runs that found this lock.")
    unlock_attempted_at: dt.datetime | None = Field(default=None, description="When the operator ran force-unlock "
                                                    "on it (lock.forceUnlock IfOrphaned); never twice for one lock.")


class ResolutionOutcome(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    INTERRUPTED = "Interrupted"


class ResolutionRecord(Status):
    """The last resolution of drift (apply, refresh-only or import) and how it ended."""

    strategy: ResolutionStrategy = Field(description="Apply, RefreshOnly or Import.")
    plan_checksum: str | None = Field(default=None, max_length=71, description="The plan it resolved.")
    outcome: ResolutionOutcome = Field(description="Running (recorded before Terraform starts), Succeeded, Failed, "
                                                   "Skipped (nothing to do, e.g. every address already imported) or "
                                                   "Interrupted (the operator stopped during it; never counted as done).")
    time: dt.datetime = Field(description="When it was recorded.")
    message: Bounded1024 | None = Field(default=None, description="What Terraform did, or its diagnostic.")
    runner: Bounded128 | None = Field(default=None, description="The operator process (host/pid/start) running it; found Running under another one, it "
                    "was interrupted and is resolved from the real state.")


class InterruptedApply(Status):
    """An apply that was interrupted: its outcome is unknown (some changes may have been made,
    provisioners may have run). Until an apply succeeds or a run finds no drift, every plan's
    checksum covers this record, so no approval given before it applies anything, and approval
    Auto waits for a person too."""

    plan_checksum: str = Field(max_length=71, description="The plan whose apply was interrupted.")
    time: dt.datetime = Field(description="When the interruption was found.")
    message: Bounded1024 | None = Field(default=None, description="How it was interrupted.")


class UnfinishedReason(StrEnum):
    INTERRUPTED = "Interrupted"                 # the operator stopped during the run
    REPORT_WRITE_FAILED = "ReportWriteFailed"   # the plan worked, its report ConfigMap was refused


class UnfinishedRun(Status):
    """A run that ended without a result of its own: status keeps the previous run whole
    (``lastResult``, report, checksum) and owes a new run (``pendingRun``). The Checked condition
    says so until a run records a result."""

    reason: UnfinishedReason = Field(description="Interrupted or ReportWriteFailed.")
    message: Bounded1024 = Field(description="What happened, and what the operator does next.")
    time: dt.datetime = Field(description="When it was found.")


class ResolutionPolicy(Status):
    """How the operator resolves drift, as it read the spec (a misspelt field is pruned by the API
    server, and its default applies: this says which)."""

    strategy: ResolutionStrategy = Field(description="ReportOnly, Apply, RefreshOnly or Import.")
    approval: Approval = Field(description="Manual (only an approved plan checksum) or Auto.")
    approved_plan_checksum: str | None = Field(default=None, max_length=71, description="The plan checksum approved "
                                               "(spec.resolution.approvedPlanChecksum).")
    approved_by: BoundedUsername | None = Field(default=None, description="Who approved it (spec.resolution.approvedBy, admitted only in the "
                         "requester's own name); absent when the approval carries no name.")
    approved_at: dt.datetime | None = Field(default=None, description="When the operator first saw this approval.")


class ResourceChange(Status):
    """A mutating call CloudTrail recorded on a resource of the last plan, and whether its caller deploys it."""

    address: Bounded512 = Field(description="The resource's address in the plan.")
    event_name: Bounded128 = Field(description="The API operation, e.g. UpdateIPSet.")
    event_id: Bounded64 = Field(description="CloudTrail's eventID.")
    principal: Bounded512 = Field(description="Who called: the user or assumed-role ARN.")
    session_issuer: Bounded512 | None = Field(default=None, description="The role of an assumed-role session.")
    time: dt.datetime | None = Field(default=None, description="eventTime.")
    source_address: Bounded256 | None = Field(default=None, description="sourceIPAddress (an address, or the AWS service that called).")
    user_agent: Bounded256 | None = Field(default=None, description="userAgent.")
    deployer: bool = Field(default=False, description="The caller is a deployer of this namespace (operator policy "
                           "terraform.deployers, or Terraform's own role): not an out-of-band change.")


class DriftCheckStatus(Status):
    """Observed state of a DriftCheck, written only by the operator."""

    READY_FROM: ClassVar[tuple[str, ...]] = (STALLED, RECONCILING, CHECKED, SCHEDULED)

    observed_generation: int | None = Field(default=None, ge=0, description="The generation last reconciled.")
    conditions: list[Condition] = conditions_field(
        "Ready (the summary of Stalled, Reconciling and Checked), Checked (the last run worked), Drifted "
        "(NoDrift, DriftDetected, PlanFailed, LockHeld), Remediating.")
    last_schedule_time: dt.datetime | None = Field(default=None, description="The last schedule slot taken (run or "
                                                   "skipped); recorded before the run, so a restart never repeats it.")
    next_schedule_time: dt.datetime | None = Field(default=None, description="The next slot; absent while suspended.")
    running_since: dt.datetime | None = Field(default=None, description="Set while a run is in progress.")
    running_trigger: Bounded128 | None = Field(default=None, description="What started the run in progress.")
    runner: Bounded128 | None = Field(default=None, description="The operator process (host/pid/start) running it; found under another one, the run was "
                    "interrupted.")
    pending_run: Bounded128 | None = Field(default=None, description="A run the operator owes right away, and why: to verify a resolution, or after "
                         "force-unlocking an orphaned lock.")
    last_successful_check_time: dt.datetime | None = Field(default=None, description="When a run last succeeded.")
    last_drift_detected_time: dt.datetime | None = Field(default=None, description="When a run last found drift.")
    last_result: RunResult | None = Field(default=None, description="The last run.")
    unfinished_run: UnfinishedRun | None = Field(default=None, description="A run after lastResult that ended "
                                                 "without a result (interrupted, or its report refused); cleared "
                                                 "by the next run's result.")
    drifted_count: int | None = Field(default=None, ge=0, description="Resources that differ in the last run.")
    drifted_resources: list[DriftedResource] = Field(default_factory=list, max_length=MAX_DRIFTED,
                                                     description=f"The first {MAX_DRIFTED} resources that differ.")
    report_ref: ReportRef | None = Field(default=None, description="Report ConfigMap of the last successful run.")
    lock: ObservedLock | None = Field(default=None, description="The state lock the last run found held.")
    consecutive_failures: int = Field(default=0, ge=0, description="Runs in a row that did not succeed.")
    last_run_request: str | None = Field(default=None, max_length=64,
                                         description="The opex.dev/run-requested annotation value last honoured.")
    answered_run_request: str | None = Field(
        default=None, max_length=64, description="The opex.dev/run-requested value whose run is over with all it led "
        "to at once (a force-unlock and the run after it, a resolution and its verification): lastResult is then "
        "the answer to that request (opex run driftcheck waits for this).")
    resolution: ResolutionPolicy | None = Field(default=None, description="The resolution strategy and approval the "
                                                "operator acts under.")
    last_resolution: ResolutionRecord | None = Field(default=None, description="The last resolution of drift.")
    answered_change: str | None = Field(default=None, max_length=128, description=(
        "The CloudTrail eventID of the newest recorded change a run has started for (later ones owe a run)."))
    settled_change: str | None = Field(default=None, max_length=128, description=(
        "The newest recorded CloudTrail change when a run that found no drift started: calls up to it are not "
        "named as the cause of a later drift."))
    last_change_run_time: dt.datetime | None = Field(default=None, description=(
        "When the last run started by CloudTrail changes started (eventDebounceSeconds counts from it)."))
    changes: list[ResourceChange] = Field(default_factory=list, max_length=MAX_CHANGES, description=(
        "The CloudTrail calls on the resources that drifted in the last run (who changed what)."))
    interrupted_apply: InterruptedApply | None = Field(default=None, description="An apply whose outcome is "
                                                       "unknown: nothing is applied again without a new approval.")
    resolution_attempts: int = Field(default=0, ge=0, description="Resolutions since the last run without drift; "
                                     "approval Auto backs off as it grows and stops at 3.")
    timeline: list[TimelineEntry] = timeline_field()


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
    {"name": "Last Result", "type": "string", "jsonPath": ".status.lastResult.outcome"},
    {"name": "Drifted", "type": "integer", "jsonPath": ".status.driftedCount"},
    {"name": "Next Run", "type": "string", "jsonPath": ".status.nextScheduleTime"},
    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

