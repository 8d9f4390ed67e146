"""What an acknowledgement does to escalation (pure): who acknowledged, when, and whether the
matrix holds, or escalates again.

The runbook's escalation matrix pages Level 1 at once, Level 2 after 30 minutes, Level 3 for
critical production issues (the runbook, "Escalation Matrix"), and keeps going while the
Incident is unresolved. An acknowledgement (``spec.acknowledgement``: someone is on it) stops it
at the level reached. With ``spec.escalation.reEscalateAfter`` the hold lasts that long: an
acknowledged Incident still unresolved then escalates to the next level (or pages the top level
again when every level was paged), and the hold starts over from that re-escalation. A new
acknowledgement (another person, or a new note) starts it over too. Resolution ends escalation
whatever the acknowledgement says.

The lifecycle calls :func:`hold` each pass: ``Hold.state`` says what to do, ``Hold.until`` when to
look again; after a re-escalation it records ``status.escalation.reEscalatedAt``.
:func:`time_to_acknowledge` is MTTA's sample (detection to acknowledgement) and
:func:`unacknowledged_since` feeds ``opex_incident_oldest_unacknowledged_seconds``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from ..api.approvals import AcknowledgementRecord, acknowledgement
from ..api.common import duration_seconds
from ..api.incident import EscalationLevel, IncidentPhase, IncidentSpec, IncidentStatus

OPEN = frozenset(IncidentPhase) - {IncidentPhase.RESOLVED, IncidentPhase.FAILED, IncidentPhase.CLOSED}


class HoldState(StrEnum):
    UNACKNOWLEDGED = "Unacknowledged"   # the matrix runs as usual
    HOLDING = "Holding"                 # acknowledged: no new level is paged
    RE_ESCALATE = "ReEscalate"          # acknowledged, and reEscalateAfter passed: page the next level now


@dataclass(frozen=True)
class Hold:
    """The acknowledgement (``record``: who, their note, when first seen), what it means for
    escalation now, and when that changes (``until``: None while it holds for good)."""

    state: HoldState
    record: AcknowledgementRecord | None = None
    until: dt.datetime | None = None

    @property
    def escalates(self) -> bool:
        """True when the matrix may page now (nobody acknowledged, or the hold ran out)."""
        return self.state != HoldState.HOLDING


def hold(spec: IncidentSpec, status: IncidentStatus, now: dt.datetime) -> Hold:
    """What the acknowledgement in ``spec`` does to escalation at ``now``, given the records in
    ``status`` (``acknowledgement``, ``escalation.reEscalatedAt``)."""
    record = acknowledgement(spec.acknowledgement, status.acknowledgement, now)
    if record is None:
        return Hold(HoldState.UNACKNOWLEDGED)
    after = spec.escalation.re_escalate_after if spec.escalation else None
    if after is None:
        return Hold(HoldState.HOLDING, record)
    again = status.escalation.re_escalated_at if status.escalation else None
    since = max(record.acknowledged_at, again) if again else record.acknowledged_at
    until = since + dt.timedelta(seconds=duration_seconds(after))
    return Hold(HoldState.RE_ESCALATE if now >= until else HoldState.HOLDING, record, until)


def re_escalation_level(levels: list[EscalationLevel], current_level: int) -> EscalationLevel | None:
    """The level a re-escalation pages: the next above ``current_level``, or the top one again when
    every level was paged (``levels``: ``notify.escalation.applicable``'s); None without levels."""
    if not levels:
        return None
    return next((lv for lv in levels if lv.level > current_level), levels[-1])


def time_to_acknowledge(status: IncidentStatus, record: AcknowledgementRecord | None) -> float | None:
    """Seconds from detection to the acknowledgement (MTTA's sample), None when either is unknown."""
    if record is None or status.detected_at is None:
        return None
    return max(0.0, (record.acknowledged_at - status.detected_at).total_seconds())


def unacknowledged_since(spec: IncidentSpec, status: IncidentStatus) -> dt.datetime | None:
    """When an open, unacknowledged Incident was detected; None once acknowledged or ended."""
    if spec.acknowledgement is not None or (status.phase is not None and status.phase not in OPEN):
        return None
    return status.detected_at
