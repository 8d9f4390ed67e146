"""One AWS event → one Incident: namespace, natural-key name and spec, through configurable rules (pure).

The rules (``OPEX_EVENT_MAPPING_FILE``, YAML; every key optional, the defaults below)::

    namespace: ""              # where Incidents go; OPEX_EVENT_NAMESPACE (else the operator's namespace) when empty
    environment: production    # production escalation applies when no rule says otherwise
    findingTypes:              # GuardDuty finding types that open a SecurityIncident (globs); others are passed over
      ["UnauthorizedAccess:IAMUser/*", "CredentialAccess:*", "*:IAMUser/AnomalousBehavior"]
    restApiIds: {}             # API Gateway alarms name the API (ApiName); the Incident needs its id: {checkout: a1b2c3d4e5}
    rules:                     # the first rule whose `match` fits the event decides what it sets
      - match:                 # globs; every key given must match
          source: aws.cloudwatch          # aws.codepipeline, aws.codebuild, aws.cloudwatch, aws.guardduty
          name: "prod-*"                  # the pipeline, the build's project, the alarm or the finding type
          account: "111122223333"
          region: "eu-*"
        namespace: payments
        environment: production
        type: DeploymentFailure   # instead of the default below
        severity: critical        # instead of the default below
        roleKey: payments         # spec.targets.roleKey: a role of the operator policy for that account

What each kind opens, and its natural key (the Incident's name derives from it, so every event and
every redelivery of one occurrence finds the same Incident):

==========================  ===========================================  ======================================
event                       Incident (defaults)                          one occurrence = name
==========================  ===========================================  ======================================
CodePipeline pipeline,      PipelineFailure, high; targets.pipeline      the execution: ``<pipeline>-<execution id>``
stage or action FAILED      (name, executionId)
CodeBuild build FAILED,     the same as its pipeline's, when initiator   the execution, as above
TIMED_OUT, FAULT, STOPPED   is ``codepipeline/<name>`` (the execution
                            from an execution variable, else looked up)
                            else PipelineFailure, high; targets.codeBuild the build: ``<project>-<build uuid>``
CloudWatch alarm to ALARM   from the metric: AWS/Lambda Errors           the alarm's ARN and the time it went to
(back to OK: resolved)      DeploymentFailure, other AWS/Lambda,         ALARM: ``alarm-<name>-<hash>``
                            AWS/ApiGateway, AWS/RDS, AWS/CloudFront
                            metrics PerformanceDegradation; high;
                            targets from the dimensions (FunctionName,
                            ApiName via restApiIds and Stage,
                            DBInstanceIdentifier, DistributionId)
GuardDuty Finding of a      SecurityIncident; severity from GuardDuty's  the finding: ``guardduty-<finding id>``
findingTypes type           (9.0+ critical, 7.0+ high, 4.0+ medium,
                            else low: GuardDuty User Guide, "Severity
                            levels"); the IAM user and AKIA key of
                            accessKeyDetails, the remote address
==========================  ===========================================  ======================================

A GuardDuty finding is one occurrence however often it is updated (GuardDuty publishes an update of an
active finding every 6 hours by default, and as often as every 15 minutes: keyed by ``updatedAt``,
one leak would open an Incident, with its containment, at every update); updates count in
``status.alert.occurrences``. A closed Incident is never reopened: an event its occurrence has not
recorded yet (a retried stage failing again, a finding updated after the review) opens a successor
named after the closed Incident's uid. An alarm's return to OK with no Incident, or one that could
not map, is passed over; so is an OK that arrives before its ALARM (SQS does not keep order; the two
are at least one evaluation period apart).
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import ipaddress
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from .. import API_VERSION
from ..api.incident import (ALERT_STATE_ANNOTATION, MAX_EVENT_IDS, AlertRecord, AlertState, IncidentSpec,
                            IncidentType, Severity, SourceKind)
from ..api.security import ACCESS_KEY_ID, IAM_USER_NAME
from ..kube import MAX_NAME, child_name, label_value
from ..mapping import DNS_LABEL, Rules, cut, load_rules, namespace_refusal, slug
from .envelope import AwsEvent
from .kinds import UUID, AlarmChange, BuildFailure, EventError, Finding, Happening, Passed, PipelineFailure, read

MAX_TITLE, MAX_SUMMARY = 200, 4096
SOURCE_LABEL, EVENT_SOURCE_LABEL, EVENTBRIDGE = "opex.dev/source", "opex.dev/event-source", "eventbridge"
DEFAULT_FINDING_TYPES = ["UnauthorizedAccess:IAMUser/*", "CredentialAccess:*", "*:IAMUser/AnomalousBehavior"]
# GuardDuty User Guide, "Severity levels for GuardDuty findings": the lower bound of each level.
GUARDDUTY_LEVELS = ((9.0, Severity.CRITICAL), (7.0, Severity.HIGH), (4.0, Severity.MEDIUM))
# The default type of an alarm's Incident by its metric: (namespace, metric name or None for any).
ALARM_TYPES = {("AWS/Lambda", "Errors"): IncidentType.DEPLOYMENT_FAILURE,
               ("AWS/Lambda", None): IncidentType.PERFORMANCE_DEGRADATION,
               ("AWS/ApiGateway", None): IncidentType.PERFORMANCE_DEGRADATION,
               ("AWS/RDS", None): IncidentType.PERFORMANCE_DEGRADATION,
               ("AWS/CloudFront", None): IncidentType.PERFORMANCE_DEGRADATION}
# The targets an Incident type needs (the CRD's CEL rules on spec), of those an event can name.
NEEDS = {IncidentType.PIPELINE_FAILURE: ("pipeline", "codeBuild"),
         IncidentType.DEPLOYMENT_FAILURE: ("pipeline", "codeBuild", "lambda"),
         IncidentType.PERFORMANCE_DEGRADATION: ("lambda", "apiGateway", "rds", "cloudFront"),
         IncidentType.SECURITY_INCIDENT: ("security",)}
Label = Field(default=None, max_length=63, pattern=DNS_LABEL.pattern)


class Match(Rules):
    """Globs an event must fit (each one given); ``name`` is the pipeline, project, alarm or finding type."""

    source: str | None = None
    detail_type: str | None = None
    account: str | None = None
    region: str | None = None
    name: str | None = None

    def fits(self, event: AwsEvent, name: str) -> bool:
        pairs = ((self.source, event.source), (self.detail_type, event.detail_type), (self.account, event.account),
                 (self.region, event.region), (self.name, name))
        return all(glob is None or fnmatch.fnmatchcase(value or "", glob) for glob, value in pairs)


class EventRule(Rules):
    match: Match = Field(default_factory=Match)
    namespace: str | None = Label
    environment: str | None = Label
    type: IncidentType | None = None
    severity: Severity | None = None
    role_key: str | None = Label


class EventRules(Rules):
    """How AWS events become Incidents (see the module docstring for the defaults)."""

    namespace: str | None = Label
    environment: str = Field(default="production", max_length=63, pattern=DNS_LABEL.pattern)
    finding_types: list[str] = Field(default_factory=lambda: list(DEFAULT_FINDING_TYPES))
    rest_api_ids: dict[str, str] = Field(default_factory=dict)
    rules: list[EventRule] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path | None) -> "EventRules":
        """The rules in the YAML file ``path`` (the defaults when None). Raises MappingError."""
        return load_rules(cls, path, "event mapping")

    def rule_for(self, event: AwsEvent, name: str) -> EventRule:
        return next((r for r in self.rules if r.match.fits(event, name)), EventRule())


@dataclass(frozen=True)
class Mapped:
    """An event's Incident (an ``intake.Delivery``): where it lives, what it is, and how the event
    changes its record. ``firing`` is False for an alarm's return to OK."""

    namespace: str
    name: str
    spec: dict[str, Any]          # the Incident's spec, wire form
    event: AwsEvent
    occurrence: str
    firing: bool
    at: dt.datetime | None        # when this event's change happened
    queue: str = ""

    @property
    def opens(self) -> bool:
        return self.firing

    def body(self, name: str) -> dict[str, Any]:
        """The Incident to create under ``name``."""
        return {"apiVersion": API_VERSION, "kind": "Incident",
                "metadata": {"name": name, "namespace": self.namespace,
                             "labels": {SOURCE_LABEL: EVENTBRIDGE,
                                        EVENT_SOURCE_LABEL: label_value(slug(self.event.source, 63) or "unknown")},
                             "annotations": {ALERT_STATE_ANNOTATION: AlertState.FIRING.value}},
                "spec": self.spec}

    def holds(self, incident: dict[str, Any]) -> bool:
        """True when ``incident`` recorded this very event (a message delivered again)."""
        return self.event.id in (((incident.get("status") or {}).get("alert") or {}).get("eventIds") or [])

    def successor(self, closed: dict[str, Any]) -> str:
        """The Incident that takes this occurrence's later events once ``closed`` was closed."""
        return child_name(self.name, (closed.get("metadata") or {}).get("uid", "")[:8] or "next")

    def record(self, current: AlertRecord | None, now: dt.datetime) -> AlertRecord | None:
        return next_record(current, self, now)

    def via(self, queue: str) -> "Mapped":
        return replace(self, queue=queue)


@dataclass(frozen=True)
class Ignored:
    """An event that opens and updates nothing (a build that succeeded, a finding of another type), and why."""

    event: AwsEvent
    why: str


@dataclass(frozen=True)
class Refused:
    """An event that can never open an Incident as the rules stand; ``reason`` is a metric label."""

    event: AwsEvent | None
    reason: str
    message: str


@dataclass(frozen=True)
class Lookup:
    """A pipeline's build whose execution the event does not name: the intake asks CodePipeline
    which execution ran ``build_id`` (``codepipeline:GetPipelineState``)."""

    event: AwsEvent
    pipeline: str
    build_id: str


Result = Mapped | Ignored | Refused | Lookup


def next_record(current: AlertRecord | None, m: Mapped, now: dt.datetime) -> AlertRecord | None:
    """The record after ``m``'s event (received at ``now``); None when it holds that event already.

    A failure, an ALARM or a finding counts one more occurrence; an alarm's OK resolves (``resolvedAt``
    is its state change). An occurrence once resolved stays resolved (an alarm's next ALARM is another
    occurrence, another Incident). ``firstSeen`` and ``startsAt`` never move.
    """
    ids = list(current.event_ids) if current else []
    if m.event.id in ids:
        return None
    resolved = bool(current and current.state == AlertState.RESOLVED)
    if m.firing:
        occurrences = current.occurrences + 1 if current else 1
        resolved_at = current.resolved_at if resolved and current else None
    else:
        occurrences, resolved, resolved_at = current.occurrences if current else 1, True, m.at or now
    return AlertRecord(state=AlertState.RESOLVED if resolved else AlertState.FIRING, occurrences=occurrences,
                       first_seen=current.first_seen if current else now, last_seen=now,
                       starts_at=(current.starts_at if current else None) or m.at, resolved_at=resolved_at,
                       receiver=m.queue or None, event_ids=(ids + [m.event.id])[-MAX_EVENT_IDS:])


def guardduty_severity(score: float) -> Severity:
    return next((s for floor, s in GUARDDUTY_LEVELS if score >= floor), Severity.LOW)


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _named(prefix: str, key: str) -> str:
    """``<prefix>-<key>`` as an object name: the key as it is when it is lower-case letters, digits and
    dashes (a UUID), else a hash of it."""
    key = key.lower()
    tail = key if re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,62}[a-z0-9])?", key) else _digest(key)[:16]
    return f"{prefix or 'event'}-{tail}"[:MAX_NAME]


def _address(value: str | None) -> str | None:
    try:
        ip = ipaddress.ip_address(value or "")
    except ValueError:
        return None
    return f"{ip}/{ip.max_prefixlen}"


@dataclass
class _Draft:
    """What a kind contributes: the rest comes from the rules."""

    name: str
    occurrence: str
    subject: str                      # what the rules' match.name is tested against
    default_type: IncidentType | None
    default_severity: Severity
    targets: dict[str, Any]
    title: str
    summary: str
    firing: bool = True
    at: dt.datetime | None = None
    no_type: str = ""                 # why there is no default type (an alarm on another namespace)


def _pipeline_draft(p: PipelineFailure, event: AwsEvent) -> _Draft:
    where = " ".join(part for part in (f"stage {p.stage}" if p.stage else "", f"action {p.action}" if p.action else "",
                                       f"({p.provider})" if p.provider else "") if part)
    detail = "; ".join(x for x in (where, p.summary, f"error {p.error_code}" if p.error_code else "",
                                   f"external execution {p.external_id}" if p.external_id else "") if x)
    return _execution(p.pipeline, p.execution_id, event,
                      f"CodePipeline reported the {p.level} failed" + (f": {detail}" if detail else "."))


def _execution(pipeline: str, execution_id: str, event: AwsEvent, said: str) -> _Draft:
    return _Draft(name=_named(slug(pipeline, 100), execution_id), occurrence=f"pipeline {pipeline} execution {execution_id}",
                  subject=pipeline, default_type=IncidentType.PIPELINE_FAILURE, default_severity=Severity.HIGH,
                  targets={"pipeline": {"name": pipeline, "executionId": execution_id}},
                  title=f"Pipeline {pipeline}: execution {execution_id[:8]} failed", summary=said, at=event.time)


def _build_draft(b: BuildFailure, event: AwsEvent, execution_id: str | None) -> _Draft:
    said = (f"CodeBuild reported build {b.build_id} {b.status}" + (f" in {b.phase}" if b.phase else "")
            + (f" (initiator {b.initiator})" if b.initiator else "") + (f"; log: {b.log_link}" if b.log_link else ""))
    pipeline = b.pipeline
    if pipeline and execution_id:
        return _execution(pipeline, execution_id, event, said + ".")
    uuid = b.build_id.rsplit(":", 1)[-1]
    targets: dict[str, Any] = {"codeBuild": {"project": b.project}}
    if pipeline:
        targets["pipeline"] = {"name": pipeline}
        said += f". Pipeline {pipeline} started it, but which of its executions could not be found, so the build " \
                f"opened an Incident of its own"
    return _Draft(name=_named(slug(b.project, 100), uuid), occurrence=f"build {b.build_id}", subject=b.project,
                  default_type=IncidentType.PIPELINE_FAILURE, default_severity=Severity.HIGH, targets=targets,
                  title=f"CodeBuild {b.project}: build {uuid[:8]} {b.status}", summary=said + ".", at=event.time)


def _alarm_draft(a: AlarmChange, rules: EventRules) -> _Draft:
    targets: dict[str, Any] = {}
    default: IncidentType | None = None
    notes = []
    for metric in a.metrics:
        dims = metric.dimensions
        kind = ALARM_TYPES.get((metric.namespace, metric.name)) or ALARM_TYPES.get((metric.namespace, None))
        default = default or kind
        if dims.get("FunctionName"):
            names = targets.setdefault("lambda", {"functionNames": []})["functionNames"]
            if dims["FunctionName"] not in names:
                names.append(dims["FunctionName"])
        if dims.get("DBInstanceIdentifier"):
            targets.setdefault("rds", {"instanceId": dims["DBInstanceIdentifier"]})
        if dims.get("DistributionId"):
            targets.setdefault("cloudFront", {"distributionId": dims["DistributionId"]})
        if metric.namespace == "AWS/ApiGateway" and dims.get("ApiName"):
            api_id = rules.rest_api_ids.get(dims["ApiName"])
            if api_id:
                targets.setdefault("apiGateway", {"restApiId": api_id, **({"stage": dims["Stage"]} if dims.get("Stage")
                                                                          else {})})
            else:
                notes.append(f"it watches API Gateway API {dims['ApiName']} (ApiName), and the Incident needs its "
                             f"REST API id: add it to the event mapping's restApiIds")
    watched = ", ".join(f"{m.namespace} {m.name}" + (f" ({', '.join(f'{k}={v}' for k, v in m.dimensions.items())})"
                                                     if m.dimensions else "") for m in a.metrics[:4])
    said = "; ".join(x for x in (a.description, f"alarm {a.name} went to ALARM at {a.since.isoformat()}", a.reason,
                                 f"metrics: {watched}" if watched else "composite alarm" if a.composite else "") if x)
    return _Draft(name=f"alarm-{slug(a.name) or 'alarm'}-{_digest(a.arn, a.since.isoformat())[:10]}",
                  occurrence=f"alarm {a.name} in ALARM since {a.since.isoformat()} ({a.arn})", subject=a.name,
                  default_type=default, default_severity=Severity.HIGH, targets=targets,
                  title=f"CloudWatch alarm {a.name} in ALARM", summary=said, firing=a.firing, at=a.at,
                  no_type="; ".join(notes) or (f"no default incident type for the alarm's metrics ({watched or 'none'})"
                                               f": add a rule with a type for it"))


def _finding_draft(f: Finding) -> _Draft:
    users = []
    if f.user_type == "IAMUser" and f.user_name and re.fullmatch(IAM_USER_NAME, f.user_name) and len(f.user_name) <= 64:
        keys = [f.access_key_id] if f.access_key_id and re.fullmatch(ACCESS_KEY_ID, f.access_key_id) else []
        users.append({"userName": f.user_name, "accessKeyIds": keys})
    address = _address(f.remote_ip)
    security: dict[str, Any] = {"iamUsers": users, **({"sourceIps": [address]} if address else {})}
    said = "; ".join(x for x in (
        f.description, f"GuardDuty {f.type}, severity {f.severity:g}",
        f"{f.count} times" if f.count else "", f"API {f.api}" if f.api else "",
        f"{f.user_type or 'principal'} {f.user_name}" + (f" with access key {f.access_key_id}" if f.access_key_id else "")
        if f.user_name else "", "a GuardDuty sample finding" if f.sample else "") if x)
    return _Draft(name=_named("guardduty", f.id), occurrence=f"GuardDuty finding {f.id} ({f.type})", subject=f.type,
                  default_type=IncidentType.SECURITY_INCIDENT, default_severity=guardduty_severity(f.severity),
                  targets={"security": security}, title=f.title or f"GuardDuty {f.type}", summary=said,
                  at=f.updated_at)


def map_event(event: AwsEvent, rules: EventRules, default_namespace: str, namespaces: tuple[str, ...] = (),
              execution_id: str | None = None, final: bool = False) -> Result:
    """The Incident ``event`` opens or adds to, or why none.

    ``execution_id``: the pipeline execution a pipeline's build belongs to, when the intake looked it
    up; without it such a build is a :class:`Lookup`, unless ``final`` (the last receive before the
    dead-letter queue): then it opens an Incident of its own. ``namespaces`` are the globs the
    operator watches.
    """
    try:
        happened: Happening | Passed = read(event)
    except EventError as err:
        return Refused(event, err.reason, str(err))
    if isinstance(happened, Passed):
        return Ignored(event, happened.why)
    if isinstance(happened, Finding) and not any(fnmatch.fnmatchcase(happened.type, g) for g in rules.finding_types):
        return Ignored(event, f"GuardDuty finding type {happened.type} is not in the mapping's findingTypes")
    if isinstance(happened, BuildFailure) and happened.pipeline and not (happened.execution_id or execution_id or final):
        return Lookup(event, happened.pipeline, happened.build_id)
    if isinstance(happened, PipelineFailure):
        draft = _pipeline_draft(happened, event)
    elif isinstance(happened, BuildFailure):
        draft = _build_draft(happened, event, happened.execution_id or execution_id)
    elif isinstance(happened, AlarmChange):
        draft = _alarm_draft(happened, rules)
    else:
        draft = _finding_draft(happened)
    result = _mapped(event, draft, rules, default_namespace, namespaces)
    if not draft.firing and isinstance(result, Refused):  # an OK never opens anything: nothing to refuse
        return Ignored(event, f"an alarm's return to OK that maps to no Incident ({result.message})")
    return result


def _mapped(event: AwsEvent, d: _Draft, rules: EventRules, default_namespace: str,
            namespaces: tuple[str, ...]) -> Mapped | Refused:
    rule = rules.rule_for(event, d.subject)
    namespace = rule.namespace or rules.namespace or default_namespace
    refusal = namespace_refusal(namespace, namespaces)
    if refusal:
        return Refused(event, "namespace", f"{d.occurrence}: {refusal}")
    kind = rule.type or d.default_type
    if kind is None:
        return Refused(event, "no_incident_type", f"{d.occurrence}: {d.no_type}")
    targets = dict(d.targets)
    if not any(targets.get(t) for t in NEEDS[kind]):
        return Refused(event, "no_target", f"{d.occurrence}: a {kind.value} Incident needs one of targets "
                                           f"{', '.join(NEEDS[kind])}, and the event names none"
                                           + (f" ({d.no_type})" if d.no_type and "restApiIds" in d.no_type else ""))
    if event.region:
        targets["region"] = event.region
    if rule.role_key:
        targets["roleKey"] = rule.role_key
    source = {"detailType": event.detail_type[:128], "source": event.source[:64], "id": event.id,
              "account": event.account if event.account and re.fullmatch(r"[0-9]{12}", event.account) else None,
              "region": event.region, "time": d.at.isoformat() if d.at else None,
              "occurrence": cut(d.occurrence, 512), "resources": [r[:2048] for r in event.resources]}
    via = f" It came through {event.via}." if event.via != "eventbridge" else ""
    raw = {"type": kind.value, "severity": (rule.severity or d.default_severity).value, "title": cut(d.title, MAX_TITLE),
           "summary": cut(f"{d.summary}\n\nOpened by the {event.detail_type} event {event.id}.{via}", MAX_SUMMARY),
           "environment": rule.environment or rules.environment, "targets": targets,
           "source": {"kind": SourceKind.EVENT_BRIDGE.value, "event": {k: v for k, v in source.items() if v is not None}}}
    try:
        spec = IncidentSpec.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        return Refused(event, "invalid_spec", f"{d.occurrence}: spec.{'.'.join(map(str, first['loc']))} from the "
                                              f"event: {first['msg']}")
    return Mapped(namespace, d.name, spec.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True),
                  event, d.occurrence, d.firing, d.at)
