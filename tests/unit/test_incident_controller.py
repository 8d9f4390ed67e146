"""The Incident controller's decisions end to end on fakes of every port: what it pages, waits for,
runs (once), verifies and records — the paths that otherwise only the e2e suite reaches."""
from __future__ import annotations

import datetime as dt
import warnings

import pytest

from opex_operator import metrics
from opex_operator.api.incident import ALERT_STATE_ANNOTATION, AlertRecord, IncidentStatus, StepState
from opex_operator.controllers.incident import IncidentController
from opex_operator.policy import Policy
from opex_operator.ports.facts import Execution
from support.builders import SHA1, SHA2, build, erroring_lambda, failed_pipeline, lines
from support.fakes import (T0, Clock, FakeAws, FakeObjects, FakeReader, FakeWorkspaces, IncidentWorld, aws_error,
                           condition, observed, sink_of)

TOPIC = "arn:aws:sns:us-east-1:123456789012:checkout-oncall"
STEP = "rollback-lambda-checkout-api"


def policy(*actions: str) -> Policy:
    return Policy.model_validate({"rules": [{"namespaces": ["*"], "actions": list(actions)}]})


def incident(mode: str = "Manual", **extra) -> dict:
    return {"type": "DeploymentFailure", "severity": "high", "title": "checkout deploy failed",
            "environment": "production", "remediation": {"mode": mode},
            "targets": {"pipeline": {"name": "checkout-pipeline"}, "lambda": {"functionNames": ["checkout-api"]}},
            "notify": {"snsTopicArns": [TOPIC]}, **extra}


class World(IncidentWorld):
    """An Incident, its controller and the fakes it acts on."""

    def __init__(self, spec: dict, reader: FakeReader | None = None, allowed=("lambda:*", "codepipeline:*")):
        self.aws = FakeAws(reader or FakeReader(pipeline=failed_pipeline(), builds=[build("POST_BUILD")],
                                                log=lines("ERROR smoke test failed"), lambdas=[erroring_lambda()]))
        self.aws.the_lambda.add("checkout-api", [SHA1, SHA2])
        self.objects, self.clock = FakeObjects(), Clock()
        self.ctl = IncidentController(self.aws, self.objects, FakeWorkspaces(), policy(*allowed), webhook=None,
                                      clock=self.clock)
        self.status = IncidentStatus()
        self.obj = observed(self.status, spec, "incidents", name="checkout")



def test_manual_incident_pages_level_one_with_the_root_cause_then_waits_for_approval():
    w = World(incident())
    wait = w.drive()
    st = w.status
    assert st.phase == "AwaitingApproval" and st.root_cause.category == "LambdaDeployment"
    ready = condition(st, "Ready")
    assert ready.status == "False" and "spec.remediation.approvals" in ready.message and ready.observed_generation == 1
    assert condition(st, "Escalated").reason == "Level1" and condition(st, "Reconciling") is None
    [(topic, subject, attributes)] = w.aws.the_sns.published
    assert topic == TOPIC and attributes == {"severity": "high", "level": "1", "type": "DeploymentFailure"}
    assert w.aws.the_lambda.mutations() == [] and w.objects.created == []
    assert 1790 <= wait <= 1800  # nothing to do until level 2 is due (30 minutes)
    # the timeline keeps every step; Events only what a person acts on, one per change (controllers.status)
    assert [e.reason for e in st.timeline][:6] == ["Detected", "Assessing", "Diagnosing", "Assessed",
                                                     "RootCauseIdentified", "Escalated"]
    assert w.reasons() == ["Diagnosing", "RootCauseIdentified", "Escalated", "AwaitingApproval"]
    assert "assessed: " in sink_of(w.obj).events[1][2]  # the complete assessment is told with its diagnosis


def test_approved_rollback_runs_once_through_a_child_rollback_then_is_verified_and_resolved():
    w = World(incident())
    w.drive()
    w.change_spec(approvedSteps=[STEP])
    assert w.drive() == 2.0  # the child Rollback is created; its outcome is awaited
    [child] = w.objects.created
    assert child == f"checkout-{STEP}" and w.step(STEP).state == StepState.RUNNING
    assert w.step(STEP).rollback_ref.name == child
    assert w.drive() == 2.0 and w.objects.created == [child]  # asked again: not created twice
    w.objects.custom[("rollbacks", "ns", child)]["status"] = {"phase": "Succeeded", "message": "rolled back to v1"}
    w.clock.advance(30)
    assert w.drive() is None  # resolved: nothing more to wake up for
    st = w.status
    assert st.phase == "Resolved" and condition(st, "Ready").status == "True"
    assert condition(st, "Remediated").reason == "Verified"
    assert [s.state for s in st.steps] == [StepState.SUCCEEDED] * len(st.steps)
    assert ("ns", "checkout-postincident") in w.objects.config_maps
    assert st.escalation.next_escalation_at is None and st.resolved_at == w.clock.now
    assert "StepSucceeded" in w.reasons() and "Verified" in w.reasons()


def test_the_child_rollback_carries_the_incidents_shard_so_the_same_replica_reconciles_it():
    w = World(incident(mode="Auto"))
    w.obj.labels.update({"opex.dev/shard": "payments", "team": "checkout"})
    w.drive()
    [child] = w.objects.created
    labels = w.objects.custom[("rollbacks", "ns", child)]["metadata"]["labels"]
    assert labels == {"opex.dev/incident": "checkout", "opex.dev/shard": "payments"}  # not every label: the shard


def test_errors_logged_after_the_rollback_fail_verification_and_the_incident():
    w = World(incident(mode="Auto"))
    w.drive()
    w.objects.custom[("rollbacks", "ns", f"checkout-{STEP}")]["status"] = {"phase": "Succeeded"}
    w.clock.advance(60)
    w.aws.the_reader.errors_after = lines("[ERROR] still broken", group="/aws/lambda/checkout-api")
    for line in w.aws.the_reader.errors_after:
        line.time = w.clock.now + dt.timedelta(minutes=1)
    w.drive()
    assert w.status.phase == "Failed" and w.step("verify").state == StepState.FAILED
    assert condition(w.status, "Stalled").reason == "StepFailed"
    assert condition(w.status, "Ready").status == "False" and "still broken" in condition(w.status, "Ready").message


def test_a_step_the_operator_policy_does_not_allow_fails_naming_the_rule_and_nothing_runs():
    w = World(incident(mode="Auto"), allowed=("codepipeline:*",))
    w.drive()
    assert w.status.phase == "Failed" and w.objects.created == []
    ready = condition(w.status, "Ready")
    assert ready.reason == "StepFailed" and "action lambda:UpdateFunctionCode is not allowed" in ready.message


def test_the_manual_fix_watch_first_looks_with_the_assessments_read_then_a_new_successful_run_verifies():
    reader = FakeReader(pipeline=failed_pipeline(), builds=[build("BUILD", "COMMAND_EXECUTION_ERROR")],
                        log=lines("compiling..."))
    w = World(incident(targets={"pipeline": {"name": "checkout-pipeline"}}), reader=reader)
    w.drive()
    assert w.status.phase == "ManualActionRequired"
    # one ListPipelineExecutions between them: the watch's first look shared the assessment's read
    assert reader.execution_reads == 1
    w.clock.advance(60)
    fixed = Execution("e-124", "Succeeded", w.clock.now - dt.timedelta(seconds=30))  # started after detection
    reader.the_executions = [fixed, Execution("e-123", "Failed", T0 - dt.timedelta(minutes=5))]
    w.drive()
    assert reader.execution_reads == 2
    assert w.step("verify").state == StepState.SUCCEEDED, w.step("verify")
    assert condition(w.status, "Remediated").message == "a new execution e-124 of checkout-pipeline succeeded"


def test_dry_run_records_what_would_run_and_changes_nothing():
    w = World(incident(mode="DryRun"))
    assert w.drive() > 0
    assert w.step(STEP).state == StepState.DRY_RUN and w.objects.created == []
    assert condition(w.status, "Remediated").reason == "DryRun" and w.status.phase == "AwaitingApproval"


def test_without_an_automated_step_the_phase_says_a_person_must_act_and_escalation_goes_on():
    reader = FakeReader(pipeline=failed_pipeline(), builds=[build("BUILD", "COMMAND_EXECUTION_ERROR")],
                        log=lines("compiling..."))
    w = World(incident(targets={"pipeline": {"name": "checkout-pipeline"}}), reader=reader)
    wait = w.drive()
    assert w.status.phase == "ManualActionRequired" and condition(w.status, "Reconciling") is None
    ready = condition(w.status, "Ready")
    assert (ready.status, ready.reason) == ("False", "ManualActionRequired") and "spec.closed" in ready.message
    assert 48 <= wait <= 72  # the manual fix is looked for after a minute (jittered); level 2 is further away
    w.clock.advance(480)
    assert 384 <= w.drive() <= 576  # then as long as it has waited: re-checks back off, a restart keeps that
    w.clock.advance(1321)
    w.drive()
    assert w.status.escalation.current_level == 2 and len(w.aws.the_sns.published) == 2


def test_closing_skips_what_is_left_and_keeps_ready_true():
    w = World(incident())
    w.drive()
    w.obj.spec["closed"] = True
    w.obj.generation += 1
    assert w.drive() is None
    assert w.status.phase == "Closed" and condition(w.status, "Ready").reason == "Closed"
    assert w.step(STEP).state == StepState.SKIPPED and w.objects.created == []


def test_a_step_left_running_by_a_dead_operator_is_reported_interrupted_and_resumed_without_acting_twice():
    w = World(incident(mode="Auto"))
    assert w.drive() == 2.0  # the child Rollback exists; the step is Running
    step = w.step(STEP)
    step.runner = "old-pod/1/1"  # as a restarted operator finds it
    w.drive()
    assert "Interrupted" in w.reasons() and w.objects.created == [f"checkout-{STEP}"]
    assert w.step(STEP).runner != "old-pod/1/1"


def alert_incident(**extra) -> dict:
    return incident(source={"kind": "Alertmanager", "alert": {"name": "CheckoutApiErrors",
                                                              "fingerprint": "5d7e0b0c1c2e0f3a"}}, **extra)


def test_a_resolved_alert_is_recorded_and_neither_cancels_the_approved_step_nor_closes_the_incident():
    w = World(alert_incident())
    w.status.alert = AlertRecord(state="Firing", first_seen=T0, last_seen=T0, starts_at=T0)
    w.drive()
    firing = condition(w.status, "AlertResolved")
    assert (firing.status, firing.reason) == ("False", "Firing") and "CheckoutApiErrors" in firing.message
    assert w.status.phase == "AwaitingApproval"
    w.change_spec(approvedSteps=[STEP])
    # what the intake writes when Alertmanager says resolved: the record, and the annotation that wakes the loop
    w.status.alert = AlertRecord(state="Resolved", first_seen=T0, last_seen=w.clock.now, starts_at=T0,
                                 resolved_at=w.clock.now)
    w.obj.annotations[ALERT_STATE_ANNOTATION] = "Resolved"
    w.drive()
    resolved = condition(w.status, "AlertResolved")
    assert (resolved.status, resolved.reason) == ("True", "Resolved") and "stays open" in resolved.message
    assert w.objects.created == [f"checkout-{STEP}"]  # the approved rollback went ahead
    assert w.status.phase == "Remediating" and not w.obj.spec.get("closed")
    assert [e.reason for e in w.status.timeline].count("AlertResolved") == 1
    assert w.reasons().count("AlertFiring") == 1 and w.reasons().count("AlertResolved") == 1


def test_a_status_older_than_the_alert_annotation_is_completed_from_the_api_server():
    w = World(alert_incident())
    w.drive()
    record = AlertRecord(state="Resolved", first_seen=T0, last_seen=T0, starts_at=T0, resolved_at=T0)
    # the status this pass holds has no record yet; the API server's copy has the intake's
    w.objects.custom[("incidents", "ns", "checkout")] = {
        "status": {"alert": record.model_dump(mode="json", by_alias=True, exclude_none=True)}}
    w.obj.annotations[ALERT_STATE_ANNOTATION] = "Resolved"
    w.clock.advance(5)
    w.drive()
    assert condition(w.status, "AlertResolved").status == "True" and w.status.alert is None  # read, never written
    assert all("alert" not in patch for patch in sink_of(w.obj).patches)


def test_an_incident_opened_by_hand_has_no_alert_condition():
    w = World(incident())
    w.drive()
    assert condition(w.status, "AlertResolved") is None


def test_an_incident_whose_assessment_keeps_failing_shows_in_the_unassessed_gauge(monkeypatch):
    class BrokenReader(FakeReader):
        def pipeline(self, name, execution_id, recent=None):
            raise RuntimeError("the assessment hangs up")

    def oldest() -> float:
        return metrics.REGISTRY.get_sample_value("opex_incident_oldest_unassessed_seconds", {"severity": "critical"})

    w = World(incident(severity="critical"), reader=BrokenReader(pipeline=failed_pipeline()))
    monkeypatch.setattr(metrics.INCIDENTS_UNASSESSED, "clock", lambda: (T0 + dt.timedelta(seconds=75)).timestamp())
    with pytest.raises(RuntimeError):
        w.drive()
    assert oldest() == 75.0  # detected at T0 (its creation); 75 s without an assessment
    w.aws.the_reader = FakeReader(pipeline=failed_pipeline(), builds=[build("POST_BUILD")], lambdas=[erroring_lambda()])
    w.drive()
    assert w.status.assessed_at is not None and oldest() == 0.0
    w.ctl.forget(w.obj.ref)


def test_an_incident_unresolved_when_its_last_level_is_due_counts_as_past_its_escalation_window(monkeypatch):
    def past() -> float:
        return metrics.REGISTRY.get_sample_value("opex_incidents_past_escalation_window", {"severity": "high"})

    before = past()
    w = World(incident())
    w.drive()  # the default matrix: level 2 after 30 minutes is the last one for high severity
    monkeypatch.setattr(metrics.INCIDENTS_PAST_ESCALATION, "clock", lambda: (T0 + dt.timedelta(seconds=1799)).timestamp())
    assert past() == before
    monkeypatch.setattr(metrics.INCIDENTS_PAST_ESCALATION, "clock", lambda: (T0 + dt.timedelta(seconds=1800)).timestamp())
    assert past() == before + 1
    w.obj.spec["closed"] = True
    w.obj.generation += 1
    w.drive()
    assert past() == before


def test_a_misspelt_mode_is_pruned_and_status_says_the_incident_runs_in_the_default_mode():
    """The API server drops unknown fields for clients that do not ask for strict validation;
    remediation.mdoe: Auto becomes the default Manual, and status says so."""
    spec = incident()
    spec["remediation"] = {"mdoe": "Auto"}
    w = World(spec)
    w.drive()
    assert w.status.remediation.mode == "Manual" and w.step(STEP).state == StepState.AWAITING_APPROVAL
    assert w.aws.the_lambda.mutations() == []
    w.change_spec(mode="Auto")
    w.drive()
    assert w.status.remediation.mode == "Auto"


def test_a_step_records_its_rollback_without_a_serializer_warning():
    """Status models validate on assignment, so the reference is a model when status is written."""
    w = World(incident(mode="Auto"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        w.drive()
    assert w.step(STEP).rollback_ref.name == f"checkout-{STEP}"
    assert [str(c.message) for c in caught if "serializ" in str(c.message).lower()] == []


def test_a_step_waiting_to_be_retried_is_not_said_to_be_running():
    reader = FakeReader(pipeline=failed_pipeline(stage="Build", action="Build"),
                        builds=[build("INSTALL", "npm ERR! network timeout")],
                        log=lines("npm ERR! code ETIMEDOUT", "npm ERR! network request to registry.npmjs.org failed"))
    w = World({"type": "PipelineFailure", "severity": "high", "title": "build failed", "environment": "production",
               "remediation": {"mode": "Auto"}, "targets": {"pipeline": {"name": "checkout-pipeline"}}}, reader=reader)
    w.aws.the_pipeline.stages[("Build", "e-123")] = "Failed"

    def throttled(*args):
        raise aws_error("codepipeline", "ThrottlingException", "RetryStageExecution", 400)
    w.aws.the_pipeline.retry_stage = throttled
    assert w.drive() == 5.0
    step = w.step("retry-stage-build")
    assert step.state == StepState.PENDING and step.attempts == 1
    for cond in (condition(w.status, "Remediated"), condition(w.status, "Ready")):
        assert cond.reason == "StepRetrying" and "running" not in cond.message
        assert cond.message.startswith("step retry-stage-build attempt 1 failed (ThrottlingException")
        assert cond.message.endswith("retrying in 5s")


def test_every_pass_writes_status_at_most_once_and_a_step_is_on_record_before_its_call():
    import asyncio

    w = World(incident("Auto"))
    sink = sink_of(w.obj)
    writes_per_pass, intent_recorded_before_call = [], False
    for _ in range(40):
        before, calls = len(sink.patches), len(w.aws.the_lambda.mutations()) + len(w.objects.created)
        delay = asyncio.run(w.ctl.reconcile(w.obj))
        writes_per_pass.append(len(sink.patches) - before)
        step = next((s for s in w.status.steps if s.id == STEP), None)
        if step is not None and step.state == StepState.RUNNING and not intent_recorded_before_call:
            # the pass that started the step wrote it Running and made no call
            last = sink.patches[-1]
            assert any(s.get("id") == STEP and s.get("state") == "Running" for s in last.get("steps", []))
            assert len(w.aws.the_lambda.mutations()) + len(w.objects.created) == calls
            intent_recorded_before_call = True
        if delay != 0.0:
            break
    assert intent_recorded_before_call and max(writes_per_pass) == 1
    assert w.objects.created  # the rollback's call came in the pass after its intent


def test_a_pass_that_changes_nothing_writes_nothing():
    import asyncio

    w = World(incident())
    w.drive()
    sink = sink_of(w.obj)
    before = len(sink.patches)
    asyncio.run(w.ctl.reconcile(w.obj))  # still waiting for approval: nothing new to record
    assert len(sink.patches) == before


def test_an_incident_reaches_approval_in_one_write_per_page_and_its_reads_are_never_written_alone():
    # The assessment only reads: its status waits for the next pass's write. Paging is on record
    # before anything else happens (a restart must not page again).
    paged, quiet = World(incident()), World({**incident(), "notify": None})
    for w in (paged, quiet):
        assert w.drive() is not None and w.status.phase == "AwaitingApproval"
    assert len(sink_of(paged.obj).patches) == 2 and len(sink_of(quiet.obj).patches) == 1
    first = sink_of(paged.obj).patches[0]
    assert first["escalation"]["notified"] and first["phase"] == "Diagnosing"  # the assessment went with the page
    # one write: the phases it passed through (Detected, Assessing, Diagnosing) are in the timeline
    # only, as is the complete assessment (told with the diagnosis); three Events, one per change
    assert quiet.reasons() == ["RootCauseIdentified", "Escalated", "AwaitingApproval"]
    assert {"Detected", "Assessing", "Diagnosing", "Assessed"} <= {e.reason for e in quiet.status.timeline}


def test_past_the_breakers_limit_an_auto_step_waits_for_approval_with_circuit_open_and_runs_once_approved():
    from opex_operator.guardrails.breaker_store import BreakerStore
    from test_circuit_breaker import FakeLeases

    w = World(incident(mode="Auto"))
    w.ctl.policy = Policy.model_validate({"rules": [{"namespaces": ["*"], "actions": ["lambda:*", "codepipeline:*"],
                                                     "limits": {"automatedChangesPerHour": 0}}]})
    w.ctl.breaker = BreakerStore(FakeLeases(), "opex-system", clock=w.clock)
    w.drive()
    assert w.objects.created == [] and w.step(STEP).state == StepState.AWAITING_APPROVAL
    assert w.status.phase == "AwaitingApproval" and condition(w.status, "Remediated").reason == "CircuitOpen"
    assert condition(w.status, "CircuitOpen").status == "True" and "CircuitOpen" in w.reasons()
    assert "automatedChangesPerHour" in condition(w.status, "Remediated").message
    w.drive()
    assert w.objects.created == [] and w.reasons().count("CircuitOpen") == 1  # said once
    w.change_spec(approvedSteps=[STEP])  # a person approves: it runs and is not counted
    w.drive()
    assert w.objects.created == [f"checkout-{STEP}"]
    released = condition(w.status, "CircuitOpen")
    assert (released.status, released.reason) == ("False", "Approved")



def rolled_back_and_breached(w: World, was: dict | None = None) -> None:
    """An Auto code rollback baking on alarm checkout-errors, whose child Rollback replaced ``was``
    (default: $LATEST running version 2's code) and succeeded; then the alarm goes to ALARM."""
    from opex_operator.ports.verification import AlarmState
    from test_performance_incident import FakeAlarms

    w.change_spec(verify={"window": "5m", "alarms": ["checkout-errors"]})
    alarms = FakeAlarms()
    alarms.states["checkout-errors"] = AlarmState("checkout-errors", "OK", w.clock.now - dt.timedelta(days=1))
    w.aws.alarms = lambda region, role: alarms
    w.drive()
    w.objects.custom[("rollbacks", "ns", f"checkout-{STEP}")]["status"] = {
        "phase": "Succeeded", "message": "rolled back to v1", "from": was or {"version": "$LATEST", "codeSha256": SHA2}}
    w.drive()
    assert w.step(STEP).state == StepState.SUCCEEDED and w.step(STEP).verification.outcome == "Baking"
    w.clock.advance(30)
    alarms.states["checkout-errors"] = AlarmState("checkout-errors", "ALARM", w.clock.now, "Errors >= 1")
    w.clock.advance(1)
    w.drive()
    assert "BakeBreached" in w.reasons()


def test_a_bake_breach_after_a_code_rollback_undoes_it_once_through_a_child_rollback_back_to_the_replaced_version():
    w = World(incident(mode="Auto"))
    rolled_back_and_breached(w)
    step = w.step(STEP)
    assert step.params["fromVersion"] == "2" and step.undo == "a Rollback of checkout-api back to version 2"
    assert step.verification.undo_started_at is not None
    w.drive()
    undo = f"checkout-{STEP}-undo"
    assert w.objects.created == [f"checkout-{STEP}", undo]
    spec = w.objects.custom[("rollbacks", "ns", undo)]["spec"]
    assert spec["lambda"] == {"functionName": "checkout-api", "to": {"version": "2"}} and spec["approval"] == "Auto"
    w.drive()
    assert w.step(STEP).state == StepState.SUCCEEDED and w.objects.created == [f"checkout-{STEP}", undo]
    w.objects.custom[("rollbacks", "ns", undo)]["status"] = {"phase": "Succeeded", "message": "rolled back to v2"}
    w.drive()
    step = w.step(STEP)
    assert step.state == StepState.ROLLED_BACK and step.verification.breach.name == "checkout-errors"
    assert step.verification.undone_at is not None and step.outputs == "rolled back to v2"
    assert w.status.phase == "Failed" and {"BakeBreached", "RolledBack"} <= set(w.reasons())
    w.clock.advance(60)
    w.drive()
    assert w.objects.created == [f"checkout-{STEP}", undo]  # never undone twice


def test_an_undo_resumed_by_a_restarted_operator_finds_its_child_rollback_and_does_not_create_another():
    w = World(incident(mode="Auto"))
    rolled_back_and_breached(w)
    w.drive()
    undo = f"checkout-{STEP}-undo"
    w.ctl = IncidentController(w.aws, w.objects, FakeWorkspaces(), policy("lambda:*", "codepipeline:*"), webhook=None,
                               clock=w.clock)  # a new process: nothing in memory
    w.drive()
    assert w.objects.created == [f"checkout-{STEP}", undo] and w.step(STEP).state == StepState.SUCCEEDED
    w.objects.custom[("rollbacks", "ns", undo)]["status"] = {"phase": "Succeeded", "message": "rolled back to v2"}
    w.drive()
    assert w.step(STEP).state == StepState.ROLLED_BACK and w.objects.created == [f"checkout-{STEP}", undo]


def test_a_code_rollback_whose_replaced_code_no_published_version_has_only_pages_on_a_breach():
    w = World(incident(mode="Auto"))
    w.aws.the_lambda.published["checkout-api"] = w.aws.the_lambda.published["checkout-api"][:1]  # v2's code unpublished
    rolled_back_and_breached(w)
    step = w.step(STEP)
    assert "fromVersion" not in step.params and step.undo is None and step.verification.undo_started_at is None
    assert step.verification.outcome == "Breached" and w.status.escalation.current_level == 2
    w.drive()
    assert w.objects.created == [f"checkout-{STEP}"] and w.step(STEP).state == StepState.SUCCEEDED


def test_an_alias_rollback_is_undone_by_pointing_the_alias_back_at_the_version_it_replaced():
    w = World(incident(mode="Auto"))
    w.obj.spec["remediation"]["lambdaRollback"] = {"alias": "live", "toVersion": "1"}
    rolled_back_and_breached(w, was={"version": "2", "codeSha256": SHA2})
    assert w.step(STEP).params["fromVersion"] == "2"
    assert w.step(STEP).undo == "a Rollback of checkout-api:live back to version 2"
    w.drive()
    spec = w.objects.custom[("rollbacks", "ns", f"checkout-{STEP}-undo")]["spec"]
    assert spec["lambda"] == {"functionName": "checkout-api", "alias": "live", "to": {"version": "2"}}
