"""Approvals and acknowledgements with a name: the spec shapes people write and the status records.

A person approves a step (``spec.remediation.approvals[]: {step, by}``), a plan
(``spec.resolution.approvedPlanChecksum`` with ``approvedBy``) or a rollback (``spec.approved``
with ``approvedBy``), and acknowledges an Incident (``spec.acknowledgement: {by, note}``). ``by``
is a Kubernetes username, and the chart's ValidatingAdmissionPolicy
(``charts/opex-operator/templates/admission-policy.yaml``) admits a new entry only when ``by`` is
the requester's own ``request.userInfo.username``: who approved comes from the API server's
knowledge of the requester, not from a field anyone can type. The creator is recorded the same
way, in the annotation :data:`CREATED_BY_ANNOTATION`, which the policy requires to be the
creator's own username on CREATE and keeps immutable; under the policy's two-person rule an
approver who is the creator is refused.

The status records (who, and when the operator first saw it) are computed here, purely, from the
spec and the records written before (:func:`step_approvals`, :func:`acknowledgement`,
:func:`first_seen`); the controllers write them.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import Field

from .common import Bounded, Bounded1024, Model, Status

# Set by the creator of an Incident, DriftCheck or Rollback to its own username (the admission
# policy checks it on CREATE and keeps it immutable); the operator's intake sets it to its own.
CREATED_BY_ANNOTATION = "opex.dev/created-by"
# Kubernetes usernames: an OIDC email, a client certificate's CN, system:serviceaccount:NS:NAME.
USERNAME_MAX = 256
STEP_ID = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
Username = Annotated[str, Field(max_length=USERNAME_MAX)]
# A username the operator records in status (cut, never refused: it came from the API server).
BoundedUsername = Annotated[str, Bounded(USERNAME_MAX)]


def username_field(description: str) -> Any:
    return Field(min_length=1, max_length=USERNAME_MAX, description=description)


class StepApproval(Model):
    """One remediation step approved by one person."""

    step: str = Field(max_length=100, pattern=STEP_ID, description="The step's id, as status.steps[].id shows it.")
    by: str = username_field("Kubernetes username of the approver. The admission policy admits a new entry only "
                             "in the requester's own name (opex approve fills it in).")


class Acknowledgement(Model):
    """Someone is on it: escalation stops at the current level."""

    by: str = username_field("Kubernetes username of who acknowledged. The admission policy admits a change only "
                             "in the requester's own name (opex ack fills it in).")
    note: str | None = Field(default=None, max_length=1024, description="What they are doing, for the timeline "
                             "and the next notifications.")


class StepApprovalRecord(Status):
    """Who approved a step, and when the operator saw the approval."""

    step: str = Field(max_length=100, description="The step's id.")
    by: BoundedUsername | None = Field(default=None, description="The approver's Kubernetes username (admitted by the API server only in the "
                "requester's own name); absent for an id listed in spec.remediation.approvedSteps, which "
                "carries no name.")
    approved_at: dt.datetime = Field(description="When the operator first saw the approval (within seconds of "
                                     "the API server admitting it).")


class AcknowledgementRecord(Status):
    """Who acknowledged, with their note, and when the operator saw it."""

    by: BoundedUsername = Field(description="Kubernetes username of who acknowledged (admitted only in the requester's own name).")
    note: Bounded1024 | None = Field(default=None, description="Their note.")
    acknowledged_at: dt.datetime = Field(description="When the operator first saw this acknowledgement.")


def creator(metadata: dict[str, Any]) -> str | None:
    """The creator's username as admission recorded it (:data:`CREATED_BY_ANNOTATION`), or None."""
    return (metadata.get("annotations") or {}).get(CREATED_BY_ANNOTATION) or None


def first_seen(recorded_at: dt.datetime | None, same: bool, now: dt.datetime) -> dt.datetime:
    """When an approval or acknowledgement was first seen: ``recorded_at`` when the record written
    before is ``same`` (the same subject by the same person), else ``now``."""
    return recorded_at if same and recorded_at is not None else now


def step_approvals(approved_steps: list[str], approvals: list[StepApproval],
                   recorded: list[StepApprovalRecord], now: dt.datetime) -> list[StepApprovalRecord]:
    """One record per approved step, in the order approved: its approver from ``approvals`` (the
    named entry wins over a bare id in ``approved_steps``, which has no name), and the time of the
    record written before for the same step and approver, else ``now``. An approval withdrawn from
    the spec loses its record."""
    by_step = {a.step: a.by for a in approvals}
    before = {r.step: r for r in recorded}
    out: list[StepApprovalRecord] = []
    for step in dict.fromkeys([*[a.step for a in approvals], *approved_steps]):
        who = by_step.get(step)
        old = before.get(step)
        at = first_seen(old.approved_at if old else None, old is not None and old.by == who, now)
        out.append(StepApprovalRecord(step=step, by=who, approved_at=at))
    return out


def acknowledgement(spec_ack: Acknowledgement | None, recorded: AcknowledgementRecord | None,
                    now: dt.datetime) -> AcknowledgementRecord | None:
    """The acknowledgement record for ``spec_ack``: the one written before when by and note are
    unchanged (its time kept), a new one at ``now`` when they changed, None when withdrawn."""
    if spec_ack is None:
        return None
    same = recorded is not None and (recorded.by, recorded.note) == (spec_ack.by, spec_ack.note)
    return AcknowledgementRecord(by=spec_ack.by, note=spec_ack.note,
                                 acknowledged_at=first_seen(recorded.acknowledged_at if recorded else None, same, now))
