"""Building blocks shared by the three kinds: the model base, conditions, timeline, references.

Field names follow the Kubernetes API conventions (camelCase on the wire, snake_case in Python);
``status.conditions`` has the shape of ``metav1.Condition``.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Iterator

from annotated_types import GroupedMetadata, MaxLen

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

# DNS-1123 label: names of Kubernetes objects, step ids, environments.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# DNS-1123 subdomain: names of ConfigMaps, Secrets and custom resources.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A CamelCase reason, as metav1.Condition requires.
REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
# An AWS region such as us-east-1 or us-gov-west-1.
AWS_REGION = r"^[a-z]{2}(-[a-z]+)+-[0-9]$"
# A Go-style duration as Terraform's -lock-timeout and Kubernetes' metav1.Duration take it.
DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
DURATION_RULE = {"rule": f"self.matches(r'{DURATION}')", "message": "must be a duration such as 90s, 5m or 1h30m"}
Duration = Annotated[str, Field(max_length=32, json_schema_extra={"x-kubernetes-validations": [DURATION_RULE]})]


def duration_seconds(text: str) -> float:
    """Seconds in a :data:`Duration` such as ``90s``, ``5m`` or ``1h30m`` (the CRD checks the form)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(ms|s|m|h)", text))


def duration_at_least(seconds: int, why: str = "") -> Any:
    """A :data:`Duration` of at least ``seconds``: refused below it by the API server (CEL) and by the
    model, with ``why`` after the message."""
    message = f"must be at least {seconds}s" + (f": {why}" if why else "")

    def check(value: str) -> str:
        if duration_seconds(value) < seconds:
            raise ValueError(message)
        return value

    extra: dict[str, Any] = {"x-kubernetes-validations": [
        DURATION_RULE,
        {"rule": f"!self.matches(r'{DURATION}') || duration(self) >= duration('{seconds}s')", "message": message}]}
    return Annotated[str, Field(max_length=32, json_schema_extra=extra), AfterValidator(check)]

MAX_CONDITIONS = 16
MAX_TIMELINE = 50


TRUNCATED = " …[truncated]"


def truncate(value: str, max_length: int) -> str:
    """``value`` cut to ``max_length`` characters, ending in :data:`TRUNCATED` when it was longer.

    The one way text is shortened for status, conditions and Events: a reader always sees that
    something was cut, and where."""
    if len(value) <= max_length:
        return value
    return value[: max_length - len(TRUNCATED)] + TRUNCATED


@dataclass(frozen=True)
class Bounded(GroupedMetadata):
    """The marker of a status string of at most ``max_length`` characters (the CRD's ``maxLength``).

    Longer values are cut with :data:`TRUNCATED` when assigned, so text the operator writes (AWS
    messages, Terraform diagnostics, log lines) can never make a status write fail with 422 and is
    never cut by hand. Used through the aliases below (``message: Bounded1024 = Field(...)``);
    spec strings are refused instead: ``Annotated[str, Field(max_length=...)]``.
    """

    max_length: int

    def __iter__(self) -> Iterator[object]:
        yield BeforeValidator(self.cut)
        yield MaxLen(self.max_length)

    def cut(self, value: object) -> object:
        return truncate(value, self.max_length) if isinstance(value, str) else value


# The lengths status strings use (one alias each, so a field's bound reads as its type).
Bounded64 = Annotated[str, Bounded(64)]
Bounded128 = Annotated[str, Bounded(128)]
Bounded256 = Annotated[str, Bounded(256)]
Bounded512 = Annotated[str, Bounded(512)]
Bounded1024 = Annotated[str, Bounded(1024)]
Bounded2048 = Annotated[str, Bounded(2048)]
Bounded32768 = Annotated[str, Bounded(32768)]


class Model(BaseModel):
    """Base of every spec/status model: camelCase aliases, unknown keys ignored on read.

    Unknown keys are refused earlier, by the API server, for clients that send
    ``fieldValidation=Strict`` (``kubectl`` and the tests do); for others the API server prunes
    them silently, so what reaches the operator is the schema's, defaults included. Each kind's
    status records the mode or approval the operator acts under, to make a pruned field visible.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Status(Model):
    """Base of the status models: every assignment is validated, so bounded strings are cut and
    nested models are built from their own types (never a dict stored in a typed field)."""

    model_config = Model.model_config | ConfigDict(validate_assignment=True)


def obj_default() -> dict[str, Any]:
    """Schema extra giving an object field ``default: {}`` so the API server fills its defaults.

    Without it, defaults inside an omitted optional object are never applied (the
    kubebuilder ``+kubebuilder:default={}`` idiom).
    """
    return {"default": {}}


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(Status):
    """One aspect of the observed state, in the shape of ``metav1.Condition``."""

    type: str = Field(max_length=316, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
                      description="Type of condition in CamelCase, e.g. Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(min_length=1, max_length=1024, pattern=REASON,
                        description="A programmatic identifier for the last transition, in CamelCase.")
    message: Bounded32768 = Field(description="A human-readable message: what happened and what to do.")
    last_transition_time: dt.datetime = Field(description="When the status last changed.")
    observed_generation: int | None = Field(default=None, ge=0,
                                            description="The .metadata.generation the condition was set from.")


def conditions_field(description: str) -> Any:
    """A ``conditions`` list declared as a map list keyed by ``type`` (API conventions)."""
    return Field(default_factory=list, max_length=MAX_CONDITIONS, description=description,
                 json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]})


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class TimelineEntry(Status):
    """One entry of a resource's audit trail; the same text is posted as a Kubernetes Event."""

    time: dt.datetime = Field(description="When it happened.")
    type: EventType = Field(default=EventType.NORMAL, description="Normal or Warning, as the Event's type.")
    reason: str = Field(max_length=128, pattern=REASON, description="What happened, in CamelCase (the Event's reason).")
    message: Bounded1024 = Field(description="What happened and what to do, as the Event's message.")


def timeline_field() -> Any:
    return Field(default_factory=list, max_length=MAX_TIMELINE,
                 description=f"Audit trail of what the operator did, newest last; the last {MAX_TIMELINE} entries are kept.")


class LocalObjectReference(Model):
    """A reference to an object in the same namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN,
                      description="Name of the object, in the same namespace.")


class SecretKeyReference(Model):
    """A key of a Secret in the same namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="Name of the Secret.")
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key within the Secret.")


class StateLock(Status):
    """A Terraform state lock, as ``Error acquiring the state lock`` reports it (its Lock Info block)."""

    id: str = Field(max_length=256, description="Lock ID; a UUID for most backends, but not always.")
    path: Bounded1024 | None = Field(default=None, description="State path the lock guards.")
    operation: Bounded128 | None = Field(default=None, description="What the holder runs, e.g. OperationTypeApply.")
    who: Bounded256 | None = Field(default=None, description="user@host that holds the lock.")
    version: Bounded64 | None = Field(default=None, description="Terraform version of the holder.")
    created: dt.datetime | None = Field(default=None, description="When the lock was taken.")
    info: Bounded1024 | None = Field(default=None, description="Free text the holder attached.")


def parse_time(value: Any) -> dt.datetime | None:
    """An aware UTC-or-offset datetime from what APIs give: a datetime (naive means UTC), Unix
    seconds, or an RFC 3339 / ISO 8601 string (``Z`` accepted); None when absent or unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    try:
        return parse_time(dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return None


def now() -> dt.datetime:
    """The current UTC time at second precision (what the API server stores)."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
