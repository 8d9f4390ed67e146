"""The status writer: a save without a checkpoint is held for the next write; Events of one write
come once per reason."""
import asyncio

from opex_operator.api.common import EventType
from opex_operator.api.incident import IncidentStatus
from opex_operator.controllers.status import StatusWriter
from support.fakes import ListSink

NORMAL, WARNING = EventType.NORMAL, EventType.WARNING


def test_a_save_without_checkpoint_writes_nothing_until_the_next_write_which_carries_both():
    sink, status = ListSink(), IncidentStatus()
    writer = StatusWriter(sink, {})
    status.phase = "Assessing"
    asyncio.run(writer.save(status, [(NORMAL, "Assessed", "3 findings")], checkpoint=False))
    assert sink.patches == [] and sink.events == []
    status.phase = "Diagnosing"
    asyncio.run(writer.save(status, [(NORMAL, "RootCauseIdentified", "LambdaDeployment")]))
    [patch] = sink.patches
    assert patch["phase"] == "Diagnosing"
    assert [e["reason"] for e in patch["timeline"]] == [r for _, r, _ in sink.events] == [
        "Assessed", "RootCauseIdentified"]
    asyncio.run(writer.flush())  # nothing held: nothing written twice
    assert len(sink.patches) == 1 and len(sink.events) == 2


def test_events_of_one_write_are_posted_once_per_reason_and_the_timeline_keeps_each():
    sink, status = ListSink(), IncidentStatus()
    writer = StatusWriter(sink, {})
    asyncio.run(writer.save(status, [(NORMAL, "AwaitingApproval", "step a waits"), (NORMAL, "Detected", "new"),
                                     (WARNING, "AwaitingApproval", "approve step a: kubectl patch ...")]))
    assert sink.events == [("Warning", "AwaitingApproval", "step a waits; approve step a: kubectl patch ..."),
                           ("Normal", "Detected", "new")]
    assert [e.reason for e in status.timeline] == ["AwaitingApproval", "Detected", "AwaitingApproval"]
