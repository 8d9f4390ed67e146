"""Named approvals and acknowledgements in the API: what the spec approves, the status records of
who and when, and what an acknowledgement does to escalation (pure functions)."""
from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from support.builders import NOW, spec
from opex_operator.api.approvals import (AcknowledgementRecord, StepApproval, StepApprovalRecord, acknowledgement,
                                         creator, step_approvals)
from opex_operator.api.incident import (EscalationLevel, EscalationStatus, IncidentPhase, IncidentStatus, Step,
                                        StepState)
from opex_operator.notify.acknowledgement import (HoldState, hold, re_escalation_level, time_to_acknowledge,
                                                  unacknowledged_since)

LATER = NOW + dt.timedelta(minutes=5)


def test_a_named_approval_approves_its_step_like_an_approved_step_id():
    s = spec(remediation={"approvedSteps": ["retry-stage"],
                          "approvals": [{"step": "rollback-lambda-checkout-api", "by": "bob@example.com"},
                                        {"step": "retry-stage", "by": "carol"}]})
    assert s.remediation.approved_steps == ["retry-stage", "rollback-lambda-checkout-api"]
    assert spec().remediation.approved_steps == []


def test_re_escalation_after_is_a_duration_of_at_least_a_minute():
    assert spec(escalation={"reEscalateAfter": "1h30m"}).escalation.re_escalate_after == "1h30m"
    for bad in ("30s", "soon"):
        with pytest.raises(ValidationError):
            spec(escalation={"reEscalateAfter": bad})


def test_the_creator_is_the_annotation_admission_checked():
    assert creator({"annotations": {"opex.dev/created-by": "alice@example.com"}}) == "alice@example.com"
    assert creator({"annotations": {"opex.dev/created-by": ""}}) is None and creator({}) is None


def test_step_approval_records_keep_when_each_was_first_seen_and_who_approved_it():
    first = step_approvals(["retry-stage"], [StepApproval(step="rollback-x", by="bob")], [], NOW)
    assert [(r.step, r.by, r.approved_at) for r in first] == [("rollback-x", "bob", NOW), ("retry-stage", None, NOW)]
    # Later: one more approval; the earlier ones keep their time; a withdrawn one loses its record.
    second = step_approvals([], [StepApproval(step="rollback-x", by="bob"), StepApproval(step="revoke-y", by="carol")],
                            first, LATER)
    assert [(r.step, r.by, r.approved_at) for r in second] == [("rollback-x", "bob", NOW), ("revoke-y", "carol", LATER)]
    # A bare id that gains a name is a new approval, by that person, from now.
    third = step_approvals([], [StepApproval(step="retry-stage", by="dave")], first, LATER)
    assert [(r.step, r.by, r.approved_at) for r in third] == [("retry-stage", "dave", LATER)]


def test_an_acknowledgement_is_dated_when_first_seen_and_again_when_it_changes():
    ack = spec(acknowledgement={"by": "alice", "note": "on it"}).acknowledgement
    first = acknowledgement(ack, None, NOW)
    assert (first.by, first.note, first.acknowledged_at) == ("alice", "on it", NOW)
    assert acknowledgement(ack, first, LATER).acknowledged_at == NOW
    taken_over = spec(acknowledgement={"by": "bob"}).acknowledgement
    assert acknowledgement(taken_over, first, LATER).acknowledged_at == LATER
    assert acknowledgement(None, first, LATER) is None


def status(**kw) -> IncidentStatus:
    return IncidentStatus(phase=IncidentPhase.AWAITING_APPROVAL, detected_at=NOW - dt.timedelta(minutes=3), **kw)


def test_nobody_acknowledged_the_matrix_runs():
    h = hold(spec(), status(), NOW)
    assert h.state == HoldState.UNACKNOWLEDGED and h.escalates and h.record is None


def test_an_acknowledgement_without_re_escalation_holds_until_resolution():
    s = spec(acknowledgement={"by": "alice"})
    h = hold(s, status(), NOW)
    assert h.state == HoldState.HOLDING and not h.escalates and h.until is None and h.record.by == "alice"
    assert hold(s, status(acknowledgement=h.record), NOW + dt.timedelta(days=2)).state == HoldState.HOLDING


def test_an_acknowledged_incident_still_open_after_re_escalate_after_escalates_again_and_holds_anew():
    s = spec(acknowledgement={"by": "alice"}, escalation={"reEscalateAfter": "30m"})
    recorded = AcknowledgementRecord(by="alice", acknowledged_at=NOW)
    h = hold(s, status(acknowledgement=recorded), NOW + dt.timedelta(minutes=29))
    assert h.state == HoldState.HOLDING and h.until == NOW + dt.timedelta(minutes=30)
    due = hold(s, status(acknowledgement=recorded), NOW + dt.timedelta(minutes=30))
    assert due.state == HoldState.RE_ESCALATE and due.escalates
    # The lifecycle pages the next level and records it: the hold starts over from then.
    again = status(acknowledgement=recorded, escalation=EscalationStatus(
        current_level=2, re_escalated_at=NOW + dt.timedelta(minutes=30)))
    assert hold(s, again, NOW + dt.timedelta(minutes=45)).until == NOW + dt.timedelta(minutes=60)
    # A new acknowledgement (bob takes over) starts the hold from when it was seen, not from the old one.
    taken = hold(spec(acknowledgement={"by": "bob"}, escalation={"reEscalateAfter": "30m"}),
                 status(acknowledgement=recorded), NOW + dt.timedelta(minutes=40))
    assert taken.state == HoldState.HOLDING and taken.until == NOW + dt.timedelta(minutes=70)


def test_re_escalation_pages_the_next_level_or_the_top_one_again():
    levels = [EscalationLevel(level=1, contact="DevOps lead"), EscalationLevel(level=2, contact="EM")]
    assert re_escalation_level(levels, 1).level == 2
    assert re_escalation_level(levels, 2).level == 2
    assert re_escalation_level([], 1) is None


def test_time_to_acknowledge_and_the_unacknowledged_clock():
    st = status()
    assert time_to_acknowledge(st, AcknowledgementRecord(by="a", acknowledged_at=NOW)) == 180
    assert time_to_acknowledge(st, None) is None
    assert unacknowledged_since(spec(), st) == st.detected_at
    assert unacknowledged_since(spec(acknowledgement={"by": "a"}), st) is None
    assert unacknowledged_since(spec(), status(resolved_at=NOW).model_copy(update={"phase": IncidentPhase.RESOLVED})) \
        is None


def test_the_status_records_round_trip_through_the_wire_form():
    st = status(acknowledgement=AcknowledgementRecord(by="alice", note="n", acknowledged_at=NOW),
                approvals=[StepApprovalRecord(step="s", by="bob", approved_at=NOW)], created_by="carol",
                steps=[Step(id="s", action="lambda:UpdateFunctionCode", mutating=True, state=StepState.SUCCEEDED)])
    wire = st.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert wire["acknowledgement"]["acknowledgedAt"] and wire["approvals"][0]["approvedAt"] and wire["createdBy"]
    assert IncidentStatus.model_validate(wire) == st
