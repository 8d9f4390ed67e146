"""What the initial assessment observed, as plain data (filled by ``aws.reader``).

Shapes follow the AWS API responses the runbook reads (CodePipeline GetPipelineExecution and
GetPipelineState, CodeBuild BatchGetBuilds, CloudWatch Logs FilterLogEvents, Lambda GetFunction
and ListVersionsByFunction, API Gateway GetStages, RDS DescribeDBInstances, EC2
DescribeSecurityGroups, CloudTrail records), reduced to the fields the runbook uses.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..api.common import StateLock
from ..errors import AwsError
from ..terraform.locks import LockError
from .cloudtrail import TrailEvent, trail_events  # noqa: F401 - the assessment's records are read there


@dataclass
class ReadProblem:
    """A read that failed; it becomes a finding, never a crash."""

    source: str          # e.g. CodePipeline
    resource: str        # e.g. pipeline/checkout-pipeline
    message: str         # AwsError.describe() text
    denied: bool = False
    not_found: bool = False

    @classmethod
    def of(cls, source: str, resource: str, err: AwsError | LookupError) -> "ReadProblem":
        """A failed read naming the denied action (``lambda:GetFunction``) or the missing resource."""
        if isinstance(err, AwsError):
            return cls(source, resource, err.describe(), denied=err.denied, not_found=err.not_found)
        return cls(source, resource, str(err), not_found=True)


@dataclass
class ActionState:
    stage: str
    action: str
    status: str
    error_code: str | None = None
    error_message: str | None = None
    external_execution_id: str | None = None
    summary: str | None = None


class Execution(NamedTuple):
    """One pipeline execution as CodePipeline's ListPipelineExecutions summarises it."""

    id: str
    status: str                                 # InProgress | Succeeded | Failed | Stopped | ...
    started_at: dt.datetime | None


@dataclass
class PipelineFacts:
    name: str
    execution_id: str
    status: str                                 # InProgress | Succeeded | Failed | Stopped | ...
    status_summary: str | None = None
    is_latest: bool = True
    failed_stage: str | None = None
    failed_action: ActionState | None = None
    started_at: dt.datetime | None = None


@dataclass
class PhaseContext:
    """CodeBuild's PhaseContext: why a phase ended as it did."""

    status_code: str | None                     # COMMAND_EXECUTION_ERROR, BUILD_TIMED_OUT, YAML_FILE_ERROR, ...
    message: str                                # "Error while executing command: npm test. Reason: exit status 1"


@dataclass
class BuildPhase:
    phase_type: str                             # INSTALL, PRE_BUILD, BUILD, POST_BUILD, ...
    status: str | None                          # SUCCEEDED | FAILED | FAULT | TIMED_OUT | ...
    contexts: list[PhaseContext] = field(default_factory=list)


@dataclass
class BuildFacts:
    id: str
    project: str
    status: str                                 # SUCCEEDED | FAILED | FAULT | TIMED_OUT | IN_PROGRESS | STOPPED
    phases: list[BuildPhase] = field(default_factory=list)
    log_group: str | None = None
    log_stream: str | None = None
    started_at: dt.datetime | None = None

    @property
    def failed_phase(self) -> BuildPhase | None:
        return next((p for p in self.phases if p.status in ("FAILED", "FAULT", "TIMED_OUT", "CLIENT_ERROR")), None)


@dataclass
class LogLine:
    time: dt.datetime
    message: str
    group: str
    stream: str = ""


@dataclass
class LambdaVersion:
    version: str
    code_sha256: str
    last_modified: str | None = None


def running_version(versions: list[LambdaVersion], code_sha256: str | None) -> str | None:
    """The newest published version whose code is ``code_sha256`` (what $LATEST runs), or None."""
    same = [v.version for v in versions if v.code_sha256 == code_sha256]
    return same[-1] if same else None


def previous_version(versions: list[LambdaVersion], code_sha256: str | None,
                     running: str | None = None) -> LambdaVersion | None:
    """The version before the running one: the newest published version older than ``running``
    (default: :func:`running_version`) whose code differs from ``code_sha256``. The runbook's
    "Rollback Deployment" target when no version is named; ``versions`` ascending."""
    running = running or running_version(versions, code_sha256)
    older = [v for v in versions if v.code_sha256 != code_sha256 and (running is None or int(v.version) < int(running))]
    return older[-1] if older else None


@dataclass
class LambdaFacts:
    name: str
    state: str | None = None                    # Pending | Active | Inactive | Failed
    state_reason: str | None = None
    last_update_status: str | None = None       # Successful | Failed | InProgress
    last_update_reason: str | None = None
    code_sha256: str | None = None
    last_modified: str | None = None
    versions: list[LambdaVersion] = field(default_factory=list)   # published, ascending
    aliases: dict[str, str] = field(default_factory=dict)         # alias -> version
    error_lines: list[LogLine] = field(default_factory=list)      # ERROR, timeout and crash events of the last hour
    reports: list[LogLine] = field(default_factory=list)          # REPORT lines: one per invocation
    error_count: int = 0

    @property
    def current_version(self) -> str | None:
        """The newest published version whose code is what $LATEST runs now."""
        return running_version(self.versions, self.code_sha256)

    @property
    def previous_version(self) -> LambdaVersion | None:
        """The known-good version a rollback goes to (see :func:`previous_version`)."""
        return previous_version(self.versions, self.code_sha256)

    def went_live(self, version: str | None) -> dt.datetime | None:
        """When ``version`` (a published version, or None/"$LATEST" for $LATEST) got its code: its
        LastModified (Lambda's ``2026-11-29T08:20:00.000+0000``), None when unknown."""
        stamp = self.last_modified if version in (None, "$LATEST") else next(
            (v.last_modified for v in self.versions if v.version == version), None)
        try:
            when = dt.datetime.fromisoformat(stamp) if stamp else None
        except ValueError:
            return None
        return when.replace(tzinfo=when.tzinfo or dt.timezone.utc) if when else None


# Lambda names log streams "YYYY/MM/DD/[VERSION]<instance id>" ($LATEST or a published version number).
_STREAM_VERSION = re.compile(r"^\d{4}/\d{2}/\d{2}/\[(?P<version>\$LATEST|\d+)\]")


def stream_version(stream: str) -> str | None:
    """The function version a Lambda log stream belongs to (``2026/11/29/[3]abcdef`` -> "3"), or None."""
    m = _STREAM_VERSION.match(stream)
    return m.group("version") if m else None


# One invocation's REPORT line, plain or in the JSON log format; INIT_REPORT, START and END lines are not.
_INVOCATION_REPORT = re.compile(r'^\s*REPORT RequestId:|"type"\s*:\s*"platform\.report"')


def invocation_report(message: str) -> bool:
    """True when ``message`` is the REPORT line of one invocation (Lambda docs, "Lambda function logs":
    ``REPORT RequestId: ...``, or a JSON ``platform.report`` record), not an ``INIT_REPORT`` of an init
    phase nor a ``START``/``END`` line."""
    return _INVOCATION_REPORT.search(message) is not None


@dataclass
class ApiStage:
    name: str
    deployment_id: str | None = None
    last_updated: dt.datetime | None = None


@dataclass
class SecurityGroupFacts:
    id: str
    name: str | None = None
    ingress_ports: list[str] = field(default_factory=list)   # "5432/tcp from sg-1, 10.0.0.0/16"


@dataclass
class RdsFacts:
    instance_id: str
    status: str
    engine: str | None = None
    endpoint: str | None = None
    port: int | None = None
    security_groups: list[SecurityGroupFacts] = field(default_factory=list)


@dataclass
class Observations:
    """Everything the initial assessment saw, per source; absent sources stay empty."""

    pipeline: PipelineFacts | None = None
    builds: list[BuildFacts] = field(default_factory=list)      # newest first
    build_log_lines: list[LogLine] = field(default_factory=list)  # error lines of the failed build
    lambdas: list[LambdaFacts] = field(default_factory=list)
    api_stages: list[ApiStage] = field(default_factory=list)
    api_id: str | None = None
    rds: RdsFacts | None = None
    trail_events: list[TrailEvent] = field(default_factory=list)  # error events only
    trail_source: str | None = None
    terraform_lock: StateLock | None = None                     # the lock to force-unlock, when its id is known
    lock_error: LockError | None = None                         # the failed command's state-lock error
    problems: list[ReadProblem] = field(default_factory=list)

    @property
    def failed_build(self) -> BuildFacts | None:
        ext = self.pipeline.failed_action.external_execution_id if self.pipeline and self.pipeline.failed_action else None
        if ext:
            for b in self.builds:
                if b.id == ext:
                    return b
        return next((b for b in self.builds if b.status in ("FAILED", "FAULT", "TIMED_OUT")), None)


@dataclass
class FunctionState:
    """What a function (or an alias) runs now."""

    name: str
    version: str                    # the alias's version, or "$LATEST"
    code_sha256: str
    state: str | None
    last_update_status: str | None
    last_update_reason: str | None = None
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def settled(self) -> bool:
        """Active and its last update Successful: safe to verify or to update again."""
        return self.state == "Active" and self.last_update_status in ("Successful", None)

    @property
    def update_failed(self) -> bool:
        return self.state == "Failed" or self.last_update_status == "Failed"


@dataclass(frozen=True)
class ObjectInfo:
    """An S3 object as the static-site comparison needs it (``checksum``/``restored_from`` only for
    multipart objects, whose ETag changes with every copy)."""

    etag: str
    size: int
    checksum: str | None = None         # "ChecksumCRC64NVME:<base64>", a full-object checksum
    restored_from: str | None = None    # ETag of the backup object this one was copied from

    def same(self, other: "ObjectInfo | None") -> bool:
        """True when ``other`` (a live object) holds this (backup) object's content."""
        if other is None or other.size != self.size:
            return False
        return (other.etag == self.etag or (self.checksum is not None and other.checksum == self.checksum)
                or other.restored_from == self.etag)
