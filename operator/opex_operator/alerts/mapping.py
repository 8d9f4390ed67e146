"""One alert → one Incident: namespace, name and spec, through configurable rules (pure; no I/O).

The rules (``OPEX_ALERT_MAPPING_FILE``, YAML; every key optional, the defaults below) say which
labels carry what. Each list of label names is tried in order, first match wins:

```yaml
namespaceLabels: [namespace]
type:                      # the runbook to run; no match is refused with the reason, never guessed
  labels: [incident_type]
  byAlertname: {}          # e.g. {CheckoutApiErrors: DeploymentFailure}
severity:
  labels: [severity]
  values: {critical: critical, page: critical, p1: critical, major: high, error: high, high: high,
           p2: high, warning: medium, warn: medium, medium: medium, p3: medium, minor: low,
           low: low, info: low, p4: low, p5: low, none: low, ...}   # see SEVERITY_WORDS
  default: medium          # also for a value the mapping does not know (said in the summary)
environment:
  labels: [environment, env]
  default: production      # production escalation applies when an alert does not say
targets:
  region: [region, aws_region]
  lambda: [function_name, dimension_FunctionName]            # yet-another-cloudwatch-exporter's dimension labels too
  pipeline: [pipeline, dimension_PipelineName]
  codeBuild: [codebuild_project, project, dimension_ProjectName]
  rds: [db_instance, dimension_DBInstanceIdentifier]
  apiGateway: [rest_api_id]
```

Severity words are compared case-insensitively with separators removed (``SEV-1``, ``Sev 1`` and
``sev1`` are one word), and cover the common rule sets: Prometheus mixins (critical, warning,
info, none), PagerDuty (critical, error, warning, info), Opsgenie and Datadog (P1–P5), incident
levels (SEV0–SEV4), syslog (emerg ... debug), Zabbix (disaster, high, average, warning,
information) and Azure Monitor (Sev0–Sev4). A value no rule set uses is not refused: a refusal is a
4xx Alertmanager never retries, so the alert would be lost; the default severity is used and the
Incident's summary says which value was not understood. Environments are kept as written (lower
case, a DNS label); ``prod``, ``prd``, ``live`` and ``production`` are production wherever an
environment is read (:mod:`opex_operator.environments`).

The title is the ``summary`` annotation (else the alert's name and its target); the Incident's
summary is the ``description`` annotation followed by the label set. The Incident is named after
the alert and its fingerprint (``checkoutapierrors-5d7e0b0c1c2e0f3a``), so every notification
of one alert finds the same object; a closed Incident is never reopened: the alert firing again
after it was closed opens a successor named after its ``startsAt`` as well.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from .. import API_VERSION
from ..api.incident import ALERT_STATE_ANNOTATION, AlertRecord, AlertState, IncidentSpec, IncidentType, Severity
from ..kube import label_value
from ..mapping import DNS_LABEL, MappingError, Rules as _Rules, cut, load_rules, namespace_refusal, slug
from .webhook import Alert, AlertStatus, Notification

MAX_TITLE, MAX_SUMMARY, MAX_GROUP_KEY, MAX_URL = 200, 4096, 1024, 2048
SOURCE_LABEL, FINGERPRINT_LABEL, ALERTNAME_LABEL = "opex.dev/source", "opex.dev/alert-fingerprint", "opex.dev/alertname"


class TypeRule(_Rules):
    labels: list[str] = Field(default_factory=lambda: ["incident_type"])
    by_alertname: dict[str, IncidentType] = Field(default_factory=dict)


# Severity words of common rule sets (see the module docstring), keyed by :func:`severity_key`.
SEVERITY_WORDS: dict[str, Severity] = {
    **dict.fromkeys(["critical", "crit", "page", "p1", "p0", "sev0", "sev1", "emergency", "emerg", "alert", "fatal",
                     "disaster", "urgent", "blocker"], Severity.CRITICAL),
    **dict.fromkeys(["major", "error", "err", "high", "p2", "sev2", "severe"], Severity.HIGH),
    **dict.fromkeys(["warning", "warn", "medium", "moderate", "average", "p3", "sev3"], Severity.MEDIUM),
    **dict.fromkeys(["minor", "low", "info", "information", "informational", "notice", "debug", "verbose", "none",
                     "trivial", "p4", "p5", "sev4", "sev5", "notclassified"], Severity.LOW),
}


def severity_key(value: str) -> str:
    """``value`` as the severity tables key it: lower case, letters and digits only (``SEV-1`` is ``sev1``)."""
    return re.sub(r"[^a-z0-9]", "", value.lower())


class SeverityRule(_Rules):
    labels: list[str] = Field(default_factory=lambda: ["severity"])
    values: dict[str, Severity] = Field(default_factory=lambda: dict(SEVERITY_WORDS))
    default: Severity = Severity.MEDIUM

    @field_validator("values")
    @classmethod
    def _lower(cls, values: dict[str, Severity]) -> dict[str, Severity]:
        return {severity_key(k): v for k, v in values.items()}


class EnvironmentRule(_Rules):
    labels: list[str] = Field(default_factory=lambda: ["environment", "env"])
    default: str = Field(default="production", pattern=DNS_LABEL.pattern, max_length=63)


class TargetRules(_Rules):
    region: list[str] = Field(default_factory=lambda: ["region", "aws_region"])
    lambda_: list[str] = Field(default_factory=lambda: ["function_name", "dimension_FunctionName"], alias="lambda")
    pipeline: list[str] = Field(default_factory=lambda: ["pipeline", "dimension_PipelineName"])
    code_build: list[str] = Field(default_factory=lambda: ["codebuild_project", "project", "dimension_ProjectName"])
    rds: list[str] = Field(default_factory=lambda: ["db_instance", "dimension_DBInstanceIdentifier"])
    api_gateway: list[str] = Field(default_factory=lambda: ["rest_api_id"])


class MappingRules(_Rules):
    """How labels become an Incident (see the module docstring for the defaults)."""

    namespace_labels: list[str] = Field(default_factory=lambda: ["namespace"])
    type: TypeRule = Field(default_factory=TypeRule)
    severity: SeverityRule = Field(default_factory=SeverityRule)
    environment: EnvironmentRule = Field(default_factory=EnvironmentRule)
    targets: TargetRules = Field(default_factory=TargetRules)

    @classmethod
    def load(cls, path: Path | None) -> "MappingRules":
        """The rules in the YAML file ``path`` (the defaults when None). Raises MappingError."""
        return load_rules(cls, path, "alert mapping")


@dataclass(frozen=True)
class Mapped:
    """Where an alert's Incident lives and what it is: an ``intake.Delivery``."""

    namespace: str
    name: str
    spec: dict[str, Any]        # the Incident's spec, wire form
    alert: Alert
    receiver: str = ""          # the Alertmanager receiver that sent the notification

    @property
    def opens(self) -> bool:
        """A resolved alert opens nothing (it was never opened, or it was refused)."""
        return self.alert.status == AlertStatus.FIRING

    def successor(self, closed: dict[str, Any] | None = None) -> str:
        """The name used when the Incident of ``name`` was closed and the alert fires again."""
        starts = self.alert.starts_at.isoformat() if self.alert.starts_at else ""
        return f"{self.name}-{hashlib.sha256(starts.encode()).hexdigest()[:8]}"

    def holds(self, incident: dict[str, Any]) -> bool:
        """True when ``incident`` was opened by this firing of the alert (the same startsAt)."""
        alert = (incident.get("status") or {}).get("alert") or {}
        source = ((incident.get("spec") or {}).get("source") or {}).get("alert") or {}
        recorded = alert.get("startsAt") or source.get("startsAt")
        if recorded is None or self.alert.starts_at is None:
            return recorded is None and self.alert.starts_at is None
        return dt.datetime.fromisoformat(recorded.replace("Z", "+00:00")) == self.alert.starts_at

    def record(self, current: AlertRecord | None, now: dt.datetime) -> AlertRecord:
        return next_record(current, self.alert, self.receiver, now)

    def body(self, name: str) -> dict[str, Any]:
        """The Incident to create under ``name``."""
        return {"apiVersion": API_VERSION, "kind": "Incident",
                "metadata": {"name": name, "namespace": self.namespace,
                             "labels": {SOURCE_LABEL: "alertmanager", FINGERPRINT_LABEL: self.alert.fingerprint,
                                        ALERTNAME_LABEL: label_value(slug(self.alert.name) or "alert")},
                             "annotations": {ALERT_STATE_ANNOTATION: state_of(self.alert).value}},
                "spec": self.spec}


@dataclass(frozen=True)
class Refused:
    """An alert that maps to no Incident, and why (one line a person can act on)."""

    alert: Alert
    reason: str


def _first(labels: dict[str, str], names: list[str]) -> str | None:
    return next((labels[n] for n in names if labels.get(n)), None)


def _environment(labels: dict[str, str], rule: "EnvironmentRule") -> str:
    """The environment label as a DNS label (``Production`` is ``production``, ``EU West`` is ``eu-west``), else
    the rule's default: a capital letter must not cost the alert."""
    raw = _first(labels, rule.labels)
    name = re.sub(r"[^a-z0-9-]+", "-", raw.strip().lower()).strip("-")[:63].strip("-") if raw else ""
    return name or rule.default


def state_of(alert: Alert) -> AlertState:
    return AlertState.RESOLVED if alert.status == AlertStatus.RESOLVED else AlertState.FIRING


def _incident_type(alert: Alert, rule: TypeRule) -> IncidentType | str:
    """The type, or the reason there is none."""
    for label in rule.labels:
        value = alert.labels.get(label)
        if value:
            match = next((t for t in IncidentType if t.value.lower() == value.lower()), None)
            if match is None:
                return (f"label {label}={value!r} is not an incident type "
                        f"({', '.join(t.value for t in IncidentType)})")
            return match
    if alert.name in rule.by_alertname:
        return rule.by_alertname[alert.name]
    return (f"no incident type: the alert has no {' or '.join(rule.labels)} label and its alertname is not in the "
            f"mapping's type.byAlertname; add one of them")


def _targets(labels: dict[str, str], rules: TargetRules) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    if region := _first(labels, rules.region):
        targets["region"] = region
    if fn := _first(labels, rules.lambda_):
        targets["lambda"] = {"functionNames": [fn]}
    if pipeline := _first(labels, rules.pipeline):
        targets["pipeline"] = {"name": pipeline}
    if project := _first(labels, rules.code_build):
        targets["codeBuild"] = {"project": project}
    if db := _first(labels, rules.rds):
        targets["rds"] = {"instanceId": db}
    if api := _first(labels, rules.api_gateway):
        targets["apiGateway"] = {"restApiId": api}
    return targets


def _title(alert: Alert, subject: str | None) -> str:
    if alert.annotations.get("summary", "").strip():
        return cut(alert.annotations["summary"].strip().splitlines()[0], MAX_TITLE)
    return cut(f"{alert.name or 'alert'} firing" + (f" for {subject}" if subject else ""), MAX_TITLE)


def _summary(alert: Alert, note: str = "") -> str:
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    text = "\n\n".join(part for part in (alert.annotations.get("description", "").strip(), note,
                                          f"Alert labels: {labels}") if part)
    return cut(text, MAX_SUMMARY)


def map_alert(alert: Alert, notification: Notification, rules: MappingRules, default_namespace: str,
              namespaces: tuple[str, ...] = ()) -> Mapped | Refused:
    """The Incident ``alert`` opens (or updates), or why it opens none. ``namespaces`` are the
    globs of the namespaces the operator watches (all when empty): an Incident nobody reconciles
    is refused rather than written."""
    label = alert.name or alert.fingerprint
    namespace = _first(alert.labels, rules.namespace_labels) or default_namespace
    refusal = namespace_refusal(namespace, namespaces)
    if refusal:
        return Refused(alert, f"alert {label}: {refusal}")
    kind = _incident_type(alert, rules.type)
    if not isinstance(kind, IncidentType):
        return Refused(alert, f"alert {label}: {kind}")
    raw_severity = _first(alert.labels, rules.severity.labels)
    severity = rules.severity.values.get(severity_key(raw_severity)) if raw_severity else None
    unknown = (f"Severity label {raw_severity!r} is not one the alert mapping knows; {rules.severity.default.value} "
               f"(its default) assumed.") if raw_severity and severity is None else ""
    severity = severity or rules.severity.default
    targets = _targets(alert.labels, rules.targets)
    source_alert: dict[str, Any] = {"name": cut(alert.name or "alert", 253), "fingerprint": alert.fingerprint,
                                    "groupKey": cut(notification.group_key, MAX_GROUP_KEY) or None,
                                    "startsAt": alert.starts_at.isoformat() if alert.starts_at else None}
    if alert.generator_url and len(alert.generator_url) <= MAX_URL:
        source_alert["generatorUrl"] = alert.generator_url
    t = rules.targets
    subject = _first(alert.labels, t.lambda_ + t.pipeline + t.code_build + t.rds + t.api_gateway)
    raw = {"type": kind.value, "severity": severity.value, "title": _title(alert, subject),
           "summary": _summary(alert, unknown),
           "environment": _environment(alert.labels, rules.environment),
           "targets": targets, "source": {"kind": "Alertmanager", "alert": source_alert}}
    try:
        spec = IncidentSpec.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        return Refused(alert, f"alert {label}: spec.{'.'.join(map(str, first['loc']))} from its labels: {first['msg']}")
    name = f"{slug(alert.name) or 'alert'}-{alert.fingerprint}"
    return Mapped(namespace, name, spec.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True),
                  alert, notification.receiver)


def next_record(current: AlertRecord | None, alert: Alert, receiver: str, now: dt.datetime) -> AlertRecord:
    """The intake's record after one more notification carrying ``alert`` (received at ``now``).

    Firing: one more occurrence, ``resolvedAt`` cleared. Resolved: the count stays, ``resolvedAt``
    is the alert's ``endsAt`` (else ``now``). ``firstSeen`` never moves.
    """
    firing = alert.status == AlertStatus.FIRING
    occurrences = (current.occurrences + 1 if current else 1) if firing else (current.occurrences if current else 1)
    return AlertRecord(state=state_of(alert), occurrences=occurrences,
                       first_seen=current.first_seen if current else now, last_seen=now,
                       starts_at=alert.starts_at or (current.starts_at if current else None),
                       resolved_at=None if firing else (alert.ends_at or now), receiver=receiver or None)
