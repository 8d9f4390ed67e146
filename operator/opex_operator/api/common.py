"""Building blocks shared by the three kinds: the model base, conditions, timeline, references.

Field names follow the Kubernetes API conventions (camelCase on the wire, snake_case in Python);
``status.conditions`` has the shape of ``metav1.Condition``.
"""
from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
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
Duration = Annotated[str, Field(max_length=32, json_schema_extra={"x-kubernetes-validations": [
    {"rule": f"self.matches(r'{DURATION}')", "message": "must be a duration such as 90s, 5m or 1h30m"}]})]

MAX_CONDITIONS = 16
MAX_TIMELINE = 50


def text(max_length: int, pattern: str | None = None) -> Any:
    """A bounded string type for list items and map values (``list[text(63)]``)."""
    return Annotated[str, Field(max_length=max_length, pattern=pattern)]


class Model(BaseModel):
    """Base of every spec/status model: camelCase aliases, unknown keys ignored on read.

    Unknown keys are refused earlier, by the API server (``kubectl`` and the tests send
    ``fieldValidation=Strict``); what reaches the operator has been pruned to the schema.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


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


class Condition(Model):
    """One aspect of the observed state, in the shape of ``metav1.Condition``."""

    type: str = Field(max_length=316, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
                      description="Type of condition in CamelCase, e.g. Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(min_length=1, max_length=1024, pattern=REASON,
                        description="A programmatic identifier for the last transition, in CamelCase.")
    message: str = Field(max_length=32768, description="A human-readable message: what happened and what to do.")
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


class TimelineEntry(Model):
    """One entry of a resource's audit trail; the same text is posted as a Kubernetes Event."""

    time: dt.datetime
    type: EventType = EventType.NORMAL
    reason: str = Field(max_length=128, pattern=REASON)
    message: str = Field(max_length=1024)


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


class StateLock(Model):
    """A Terraform state lock, as ``Error acquiring the state lock`` reports it (its Lock Info block)."""

    id: str = Field(max_length=256, description="Lock ID; a UUID for most backends, but not always.")
    path: str | None = Field(default=None, max_length=1024)
    operation: str | None = Field(default=None, max_length=128, description="e.g. OperationTypeApply.")
    who: str | None = Field(default=None, max_length=256, description="user@host that holds the lock.")
    version: str | None = Field(default=None, max_length=64, description="Terraform version of the holder.")
    created: dt.datetime | None = Field(default=None, description="When the lock was taken.")
    info: str | None = Field(default=None, max_length=1024)


def now() -> dt.datetime:
    """The current UTC time at second precision (what the API server stores)."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
