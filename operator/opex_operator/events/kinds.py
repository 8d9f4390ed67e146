"""Each AWS event read by what it says happened (pure; no I/O).

The shapes are AWS's documented event samples:

* ``CodePipeline Pipeline|Stage|Action Execution State Change`` (CodePipeline User Guide,
  "Monitoring CodePipeline events"): ``pipeline``, ``execution-id``, ``state``; a stage's
  ``stage``; an action's ``action``, ``type`` (``category``, ``provider``) and, once it ended,
  ``execution-result`` (``external-execution-id``: for a CodeBuild action, the build's id). Only
  ``FAILED`` is a failure; STARTED, SUCCEEDED, RESUMED, CANCELED, SUPERSEDED and STOPPED are not.
* ``CodeBuild Build State Change`` (CodeBuild User Guide, "Build notifications input format
  reference"): ``build-status`` (FAILED, TIMED_OUT, FAULT and STOPPED are failures),
  ``project-name``, ``build-id`` (the build's ARN), ``additional-information`` (``initiator``:
  ``codepipeline/<name>`` when a pipeline started it; ``logs``; ``phases`` with their contexts;
  ``environment.environment-variables``). ``CodeBuild Build Phase Change`` is read and passed over.
* ``CloudWatch Alarm State Change`` (CloudWatch User Guide, "Alarm events and EventBridge"):
  ``alarmName``, ``state`` and ``previousState`` (``value``, ``reason``, ``timestamp``),
  ``configuration`` (``description``; ``metrics[].metricStat.metric`` with ``namespace``, ``name``,
  ``dimensions``; a composite alarm's ``alarmRule``); the alarm's ARN is ``resources[0]``.
* ``GuardDuty Finding`` (GuardDuty User Guide, "Finding format"): ``id``, ``type``, ``severity``
  (1.0 to 10.0), ``title``, ``description``, ``createdAt``, ``updatedAt``,
  ``resource.accessKeyDetails`` (``accessKeyId``, ``principalId``, ``userType``, ``userName``),
  ``service.action.awsApiCallAction`` (``api``, ``remoteIpDetails.ipAddressV4``),
  ``service.count``, ``service.additionalInfo.sample``.

:func:`read` returns one of the happenings below, :class:`Passed` for an event of a known kind that
is no failure (a build that succeeded), or raises :class:`EventError` for an event it cannot read.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from ..api.incident import ALARM_EVENT_SOURCE
from .envelope import AwsEvent, parse_time

PIPELINE_SOURCE, BUILD_SOURCE, FINDING_SOURCE = "aws.codepipeline", "aws.codebuild", "aws.guardduty"
PIPELINE_TYPES = {"CodePipeline Pipeline Execution State Change": "pipeline",
                  "CodePipeline Stage Execution State Change": "stage",
                  "CodePipeline Action Execution State Change": "action"}
BUILD_STATE, BUILD_PHASE = "CodeBuild Build State Change", "CodeBuild Build Phase Change"
ALARM_STATE, FINDING = "CloudWatch Alarm State Change", "GuardDuty Finding"
KNOWN = (*PIPELINE_TYPES, BUILD_STATE, BUILD_PHASE, ALARM_STATE, FINDING)
FAILED_BUILD = ("FAILED", "TIMED_OUT", "FAULT", "STOPPED")
PIPELINE_INITIATOR = "codepipeline/"
# Variables a team can set on a CodeBuild action to #{codepipeline.PipelineExecutionId}: the build's
# event then names its execution without an AWS read (CodePipeline User Guide, "Variables").
EXECUTION_VARIABLES = ("CODEPIPELINE_EXECUTION_ID", "PIPELINE_EXECUTION_ID", "EXECUTION_ID")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_TEXT = 1000


class EventError(ValueError):
    """An event that can never become an Incident as it is; ``reason`` is a metric label
    (``unknown_detail_type``, ``bad_detail``), the message one line naming what is wrong."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Passed:
    """An event of a known kind that reports no failure (why, in a few words)."""

    why: str


@dataclass(frozen=True)
class PipelineFailure:
    """A failed pipeline execution, as one of its pipeline, stage or action events says it."""

    pipeline: str
    execution_id: str
    level: str                       # pipeline, stage or action
    stage: str | None = None
    action: str | None = None
    category: str | None = None      # the action's type.category: Source, Build, Test, Deploy, Approval, Invoke
    provider: str | None = None
    external_id: str | None = None   # execution-result.external-execution-id (a CodeBuild build id)
    summary: str | None = None       # execution-result.external-execution-summary, or CodeStar's additionalInformation
    error_code: str | None = None


@dataclass(frozen=True)
class BuildFailure:
    """A CodeBuild build that ended FAILED, TIMED_OUT, FAULT or STOPPED."""

    project: str
    build_id: str                    # project:uuid, as BatchGetBuilds takes it
    status: str
    initiator: str | None = None
    execution_id: str | None = None  # from an execution variable (EXECUTION_VARIABLES), when the action sets one
    phase: str | None = None         # the phase that failed, with its context
    log_link: str | None = None

    @property
    def pipeline(self) -> str | None:
        """The pipeline that started the build (initiator ``codepipeline/<name>``), or None."""
        if self.initiator and self.initiator.startswith(PIPELINE_INITIATOR):
            return self.initiator[len(PIPELINE_INITIATOR):] or None
        return None


@dataclass(frozen=True)
class Metric:
    namespace: str
    name: str
    dimensions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AlarmChange:
    """A CloudWatch alarm that went to ALARM (``firing``) or came back to OK from ALARM."""

    name: str
    arn: str
    firing: bool
    since: dt.datetime               # when it went to ALARM: its occurrence's natural key with the ARN
    at: dt.datetime                  # when this change happened
    reason: str | None = None
    description: str | None = None
    metrics: tuple[Metric, ...] = ()
    composite: bool = False


@dataclass(frozen=True)
class Finding:
    """A GuardDuty finding (new, or updated: ``count`` and ``updated_at`` move)."""

    id: str
    type: str
    severity: float
    updated_at: dt.datetime | None
    title: str | None = None
    description: str | None = None
    user_name: str | None = None
    user_type: str | None = None
    access_key_id: str | None = None
    remote_ip: str | None = None
    api: str | None = None
    count: int | None = None
    sample: bool = False


Happening = PipelineFailure | BuildFailure | AlarmChange | Finding


def _text(value: Any, limit: int = MAX_TEXT) -> str | None:
    if value in (None, "") or isinstance(value, (dict, list)):
        return None
    return str(value)[:limit]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _required(detail: dict[str, Any], key: str, kind: str) -> str:
    value = _text(detail.get(key), 256)
    if not value:
        raise EventError("bad_detail", f"{kind} event without detail.{key}")
    return value


def _pipeline(event: AwsEvent) -> PipelineFailure | Passed:
    d, kind = event.detail, event.detail_type
    pipeline = _required(d, "pipeline", kind)
    execution = _required(d, "execution-id", kind)
    state = str(d.get("state") or "")
    if state != "FAILED":
        return Passed(f"{PIPELINE_TYPES[kind]} state {state or '(none)'}")
    result, action_type = _dict(d.get("execution-result")), _dict(d.get("type"))
    extra = event.extra
    failed: Any = next(iter(extra.get("failedActions") or []), {}) if isinstance(extra.get("failedActions"), list) else {}
    summary = (_text(result.get("external-execution-summary")) or _text(extra.get("additionalInformation"))
               or _text(_dict(failed).get("additionalInformation")))
    return PipelineFailure(pipeline=pipeline, execution_id=execution, level=PIPELINE_TYPES[kind],
                           stage=_text(d.get("stage"), 100) or _text(extra.get("failedStage"), 100),
                           action=_text(d.get("action"), 100) or _text(_dict(failed).get("action"), 100),
                           category=_text(action_type.get("category"), 32),
                           provider=_text(action_type.get("provider"), 64),
                           external_id=_text(result.get("external-execution-id"), 256), summary=summary,
                           error_code=_text(result.get("error-code"), 64))


def _build_id(raw: str) -> str:
    """``project:uuid`` from a build ARN (``arn:aws:codebuild:...:build/project:uuid``) or id."""
    return raw.split(":build/", 1)[1] if ":build/" in raw else raw


def _failed_phase(info: dict[str, Any]) -> str | None:
    for phase in info.get("phases") or []:
        phase = _dict(phase)
        status = phase.get("phase-status")
        if status and status not in ("SUCCEEDED",):
            context = "; ".join(c for c in (phase.get("phase-context") or []) if isinstance(c, str) and c.strip(": "))
            return f"{phase.get('phase-type')} {status}" + (f": {context}" if context else "")
    return None


def _build(event: AwsEvent) -> BuildFailure | Passed:
    d, kind = event.detail, event.detail_type
    if kind == BUILD_PHASE:
        return Passed("a build phase change (the build's own state change is what counts)")
    project = _required(d, "project-name", kind)
    build = _build_id(_required(d, "build-id", kind))
    status = str(d.get("build-status") or "")
    if status not in FAILED_BUILD:
        return Passed(f"build status {status or '(none)'}")
    info = _dict(d.get("additional-information"))
    variables = {v.get("name"): v.get("value") for v in _dict(info.get("environment")).get("environment-variables") or []
                 if isinstance(v, dict)}
    execution = next((str(variables[n]) for n in EXECUTION_VARIABLES if UUID.match(str(variables.get(n) or ""))),
                     None)
    logs = _dict(info.get("logs"))
    return BuildFailure(project=project, build_id=build, status=status, initiator=_text(info.get("initiator"), 256),
                        execution_id=execution, phase=_failed_phase(info), log_link=_text(logs.get("deep-link"), 2048))


def _metrics(config: dict[str, Any]) -> tuple[Metric, ...]:
    found = []
    for item in config.get("metrics") or []:
        metric = _dict(_dict(_dict(item).get("metricStat")).get("metric"))
        if metric.get("namespace") and metric.get("name"):
            dims = {str(k): str(v) for k, v in _dict(metric.get("dimensions")).items()}
            found.append(Metric(str(metric["namespace"]), str(metric["name"]), dims))
    return tuple(found)


def _alarm(event: AwsEvent) -> AlarmChange | Passed:
    d, kind = event.detail, event.detail_type
    name = _required(d, "alarmName", kind)
    state, previous = _dict(d.get("state")), _dict(d.get("previousState"))
    now, before = state.get("value"), previous.get("value")
    if now == "ALARM":
        since = parse_time(state.get("timestamp"))
    elif now == "OK" and before == "ALARM":
        since = parse_time(previous.get("timestamp"))
    else:
        return Passed(f"alarm state {before or '(none)'} -> {now or '(none)'}")
    at = parse_time(state.get("timestamp")) or event.time
    if since is None or at is None:
        raise EventError("bad_detail", f"{kind} event of {name} without the state's timestamp")
    arn = next((r for r in event.resources if ":alarm:" in r), None)
    if arn is None:
        if not (event.account and event.region):
            raise EventError("bad_detail", f"{kind} event of {name} names no alarm ARN (resources) nor account and region")
        arn = f"arn:aws:cloudwatch:{event.region}:{event.account}:alarm:{name}"
    config = _dict(d.get("configuration"))
    return AlarmChange(name=name, arn=arn, firing=now == "ALARM", since=since, at=at, reason=_text(state.get("reason")),
                       description=_text(config.get("description")), metrics=_metrics(config),
                       composite="alarmRule" in config)


def _finding(event: AwsEvent) -> Finding:
    d, kind = event.detail, event.detail_type
    finding_id = _required(d, "id", kind)
    finding_type = _required(d, "type", kind)
    try:
        severity = float(d.get("severity"))  # type: ignore[arg-type]  # None or text: refused below
    except (TypeError, ValueError):
        raise EventError("bad_detail", f"{kind} {finding_id}: severity {d.get('severity')!r} is not a number") from None
    key = _dict(_dict(d.get("resource")).get("accessKeyDetails"))
    service = _dict(d.get("service"))
    call = _dict(_dict(service.get("action")).get("awsApiCallAction"))
    remote = _dict(call.get("remoteIpDetails"))
    count = service.get("count")
    return Finding(id=finding_id, type=finding_type, severity=severity,
                   updated_at=parse_time(d.get("updatedAt")) or parse_time(d.get("createdAt")) or event.time,
                   title=_text(d.get("title")), description=_text(d.get("description")),
                   user_name=_text(key.get("userName"), 128), user_type=_text(key.get("userType"), 64),
                   access_key_id=_text(key.get("accessKeyId"), 128),
                   remote_ip=_text(remote.get("ipAddressV4") or remote.get("ipAddressV6"), 64),
                   api=_text(call.get("api"), 128),
                   count=int(str(count)) if str(count or "").isdigit() else None,
                   sample=bool(_dict(service.get("additionalInfo")).get("sample")))


def read(event: AwsEvent) -> Happening | Passed:
    """What ``event`` says happened (see the module docstring). Raises EventError."""
    kind = event.detail_type
    if kind not in KNOWN:
        raise EventError("unknown_detail_type", f"detail-type {kind!r} (source {event.source or '(none)'}) is not one "
                                                f"the intake reads ({', '.join(KNOWN)})")
    if not event.detail:
        raise EventError("bad_detail", f"{kind} event without a detail object")
    if kind in PIPELINE_TYPES:
        return _pipeline(event)
    if kind in (BUILD_STATE, BUILD_PHASE):
        return _build(event)
    if kind == ALARM_STATE:
        return _alarm(event)
    return _finding(event)


SOURCES = {PIPELINE_SOURCE: "CodePipeline", BUILD_SOURCE: "CodeBuild", ALARM_EVENT_SOURCE: "CloudWatch",
           FINDING_SOURCE: "GuardDuty"}
