"""The Incident controller's decisions end to end on fakes of every port: what it pages, waits for,
runs (once), verifies and records — the paths that otherwise only the e2e suite reaches."""
from __future__ import annotations

import datetime as dt
import warnings

from opex_operator.api.incident import IncidentStatus, StepState
from opex_operator.controllers.incident import IncidentController
from opex_operator.policy import Policy
from support.builders import SHA1, SHA2, build, erroring_lambda, failed_pipeline, lines
from support.fakes import (Clock, FakeAws, FakeObjects, FakeReader, FakeWorkspaces, IncidentWorld, aws_error, condition,
                           observed)

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
    assert ready.status == "False" and "approvedSteps" in ready.message and ready.observed_generation == 1
    assert condition(st, "Escalated").reason == "Level1" and condition(st, "Reconciling") is None
    [(topic, subject, attributes)] = w.aws.the_sns.published
    assert topic == TOPIC and attributes == {"severity": "high", "level": "1", "type": "DeploymentFailure"}
    assert w.aws.the_lambda.mutations() == [] and w.objects.created == []
    assert 1790 <= wait <= 1800  # nothing to do until level 2 is due (30 minutes)
    assert w.reasons()[:6] == ["Detected", "Assessing", "Diagnosing", "Assessed", "RootCauseIdentified", "Escalated"]


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
