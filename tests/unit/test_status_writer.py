"""The status writer: a save without a checkpoint is held for the next write; Events of one write
come once per reason, only for the phase the write lands in, never for timeline-only entries."""
import asyncio

from opex_operator.api.common import EventType
from opex_operator.api.incident import IncidentStatus
from opex_operator.controllers.base import Event
from opex_operator.controllers.status import StatusWriter
from support.fakes import ListSink

NORMAL, WARNING = EventType.NORMAL, EventType.WARNING


def test_a_save_without_checkpoint_writes_nothing_until_the_next_write_which_carries_both():
    sink, status = ListSink(), IncidentStatus()
    writer = StatusWriter(sink, {})
    status.phase = "Assessing"
    asyncio.run(writer.save(status, [Event(NORMAL, "Assessed", "3 findings")], checkpoint=False))
    assert sink.patches == [] and sink.events == []
    status.phase = "Diagnosing"
    asyncio.run(writer.save(status, [Event(NORMAL, "RootCauseIdentified", "LambdaDeployment")]))
    [patch] = sink.patches
    assert patch["phase"] == "Diagnosing"
    assert [e["reason"] for e in patch["timeline"]] == [r for _, r, _ in sink.events] == [
        "Assessed", "RootCauseIdentified"]
    asyncio.run(writer.flush())  # nothing held: nothing written twice
    assert len(sink.patches) == 1 and len(sink.events) == 2


def test_events_of_one_write_are_posted_once_per_reason_and_the_timeline_keeps_each():
    sink, status = ListSink(), IncidentStatus()
    writer = StatusWriter(sink, {})
    asyncio.run(writer.save(status, [Event(NORMAL, "AwaitingApproval", "step a waits"), Event(NORMAL, "Detected", "new"),
                                     Event(WARNING, "AwaitingApproval", "approve step a: kubectl patch ...")]))
    assert sink.events == [("Warning", "AwaitingApproval", "step a waits; approve step a: kubectl patch ..."),
                           ("Normal", "Detected", "new")]
    assert [e.reason for e in status.timeline] == ["AwaitingApproval", "Detected", "AwaitingApproval"]


def test_a_write_posts_only_the_phase_it_lands_in_and_no_timeline_only_entry():
    sink, status = ListSink(), IncidentStatus()
    writer = StatusWriter(sink, {})
    held = [Event(NORMAL, "Detected", "new", phase=True), Event(NORMAL, "Assessing", "reading", phase=True),
            Event(NORMAL, "Assessed", "3 findings", timeline_only=True)]
    asyncio.run(writer.save(status, held, checkpoint=False))
    asyncio.run(writer.save(status, [Event(WARNING, "Escalated", "nobody paged"),
                                     Event(NORMAL, "AwaitingApproval", "approve step a", phase=True)]))
    assert sink.events == [("Warning", "Escalated", "nobody paged"), ("Normal", "AwaitingApproval", "approve step a")]
    assert [e.reason for e in status.timeline] == ["Detected", "Assessing", "Assessed", "Escalated", "AwaitingApproval"]
    asyncio.run(writer.save(status, [Event(NORMAL, "Resolved", "verified", phase=True)]))  # a write of its own
    assert sink.events[-1] == ("Normal", "Resolved", "verified")
