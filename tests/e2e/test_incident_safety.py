"""Incident safety rules on the local stack: dry run, approvals, policy, bad targets, escalation, closing."""
from __future__ import annotations

import json
import time

import boto3

import estate
from helpers import bump, wait_for, webhook_server
from test_incident_runbooks import EXAMPLE, phase_of, sqs_messages


def incident(name="checkout-deploy-failed", **spec_changes) -> str:
    doc = __import__("yaml").safe_load(EXAMPLE.read_text())
    doc["metadata"]["name"] = name
    for key, value in spec_changes.items():
        doc["spec"][key] = value
    return json.dumps(doc)


def conditions(kubectl, ns, name="checkout-deploy-failed"):
    return {c["type"]: c for c in (kubectl.get("incident", name, ns).get("status") or {}).get("conditions", [])}


def test_dry_run_records_the_plan_changes_nothing_then_auto_runs_it(kubectl, namespace, aws, operator):
    scenario = estate.deployment_failure("checkout")
    kubectl.apply(incident(remediation={"mode": "DryRun"}), namespace)
    wait_for(lambda: conditions(kubectl, namespace).get("Remediated", {}).get("reason") == "DryRun", what="DryRun")
    status = kubectl.get("incident", "checkout-deploy-failed", namespace)["status"]
    step = next(s for s in status["steps"] if s["id"] == "rollback-lambda-checkout-api")
    assert step["state"] == "DryRun" and step["outputs"].startswith("dry run: would replace the code of checkout-api")
    assert status["phase"] == "AwaitingApproval"
    assert kubectl("get", "rollbacks", "-n", namespace, "-o", "name").stdout == ""
    assert boto3.client("lambda").get_function(FunctionName="checkout-api")["Configuration"]["CodeSha256"] == \
        scenario.shas[1]
    kubectl("patch", "incident", "checkout-deploy-failed", "-n", namespace, "--type=merge",
            "-p", '{"spec":{"remediation":{"mode":"Auto"}}}')
    wait_for(lambda: phase_of(kubectl, namespace) == "Resolved", what="Resolved after switching to Auto")
    assert boto3.client("lambda").get_function(FunctionName="checkout-api")["Configuration"]["CodeSha256"] == \
        scenario.shas[0]


def test_unknown_approved_step_id_is_named_in_a_condition(kubectl, namespace, aws, operator):
    estate.deployment_failure("checkout")
    kubectl.apply(incident(remediation={"mode": "Manual", "approvedSteps": ["rollback-lambda-checkout"]}), namespace)
    wait_for(lambda: conditions(kubectl, namespace).get("ApprovalsValid", {}).get("status") == "False",
             what="ApprovalsValid=False")
    cond = conditions(kubectl, namespace)["ApprovalsValid"]
    assert cond["reason"] == "UnknownStepId"
    assert "['rollback-lambda-checkout']" in cond["message"] and "rollback-lambda-checkout-api" in cond["message"]
    assert phase_of(kubectl, namespace) == "AwaitingApproval"
    assert any(e["reason"] == "UnknownStepId" for e in kubectl.events(namespace, "checkout-deploy-failed"))


def test_unknown_targets_are_findings_and_a_condition_not_a_crash(kubectl, namespace, aws, operator):
    kubectl.apply(incident(name="ghosts", targets={"pipeline": {"name": "ghost-pipeline"},
                                                   "lambda": {"functionNames": ["ghost-fn"]},
                                                   "cloudTrail": {"logGroupName": "CloudTrail/none"}}), namespace)
    wait_for(lambda: phase_of(kubectl, namespace, "ghosts") == "ManualActionRequired", what="ManualActionRequired")
    cond = conditions(kubectl, namespace, "ghosts")
    assert cond["Assessed"]["reason"] == "TargetNotFound"
    assert "pipeline/ghost-pipeline not found" in cond["Assessed"]["message"]
    assert "function/ghost-fn not found" in cond["Assessed"]["message"]
    assert cond["RootCauseIdentified"]["status"] == "False" and cond["RootCauseIdentified"]["reason"] == "Unknown"
    assert cond["Ready"]["reason"] == "ManualActionRequired"
    findings = kubectl.get("incident", "ghosts", namespace)["status"]["findings"]
    assert any("lambda:GetFunction" in f["observed"] for f in findings)
    assert operator.metric("opex_reconcile_errors_total", kind="Incident", error="AwsError") is None
    assert cond["RootCauseIdentified"]["message"].startswith("no target could be read")
    # the example's SNS topic does not exist here: the page failed, and the condition says so
    assert (cond["Escalated"]["status"], cond["Escalated"]["reason"]) == ("False", "NotificationFailed")
    kubectl("patch", "incident", "ghosts", "-n", namespace, "--type=merge", "-p", '{"spec":{"closed":true}}')
    wait_for(lambda: phase_of(kubectl, namespace, "ghosts") == "Closed", what="Closed")
    steps = kubectl.get("incident", "ghosts", namespace)["status"]["steps"]
    assert [s["state"] for s in steps if s["id"] == "verify"] == ["Skipped"]
    assert not [s for s in steps if s["state"] == "Running"]


def test_closing_an_incident_skips_what_did_not_run(kubectl, namespace, aws, operator):
    estate.deployment_failure("checkout")
    kubectl.apply(incident(), namespace)
    wait_for(lambda: phase_of(kubectl, namespace) == "AwaitingApproval", what="AwaitingApproval")
    kubectl("patch", "incident", "checkout-deploy-failed", "-n", namespace, "--type=merge", "-p", '{"spec":{"closed":true}}')
    wait_for(lambda: phase_of(kubectl, namespace) == "Closed", what="Closed")
    status = kubectl.get("incident", "checkout-deploy-failed", namespace)["status"]
    assert next(s for s in status["steps"] if s["id"] == "rollback-lambda-checkout-api")["state"] == "Skipped"
    assert status["closedAt"] and status["postIncident"]["reportRef"]["name"] == "checkout-deploy-failed-postincident"
    assert "nextEscalationAt" not in status["escalation"]


RESTRICTIVE = """
rules:
  - namespaces: ["*"]
    roles: [""]
    regions: ["us-east-1"]
    actions: ["codepipeline:*"]
"""


def test_step_outside_policy_is_refused_with_the_rule_named(kubectl, solo_namespace, aws, solo_operator, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(RESTRICTIVE)
    solo_operator.env["OPEX_POLICY_FILE"] = str(policy)
    solo_operator.start()
    scenario = estate.deployment_failure("checkout")
    kubectl.apply(incident(remediation={"mode": "Auto"}), solo_namespace)
    wait_for(lambda: phase_of(kubectl, solo_namespace) == "Failed", what="Failed")
    status = kubectl.get("incident", "checkout-deploy-failed", solo_namespace)["status"]
    step = next(s for s in status["steps"] if s["id"] == "rollback-lambda-checkout-api")
    assert step["state"] == "Failed"
    assert "action lambda:UpdateFunctionCode is not allowed in namespace" in step["error"]
    assert "operator policy rule 1" in step["error"] and "['codepipeline:*']" in step["error"]
    ready = conditions(kubectl, solo_namespace)["Ready"]
    assert ready["reason"] == "StepFailed" and "not allowed" in ready["message"]
    assert boto3.client("lambda").get_function(FunctionName="checkout-api")["Configuration"]["CodeSha256"] == \
        scenario.shas[1]
    assert solo_operator.metric("opex_runbook_actions_total", action="lambda:UpdateFunctionCode",
                                outcome="denied") == 1


def test_levels_escalate_on_time_and_a_restart_neither_skips_nor_repeats(kubectl, solo_namespace, aws,
                                                                          solo_operator):
    scenario = estate.deployment_failure("checkout")
    solo_operator.start()
    levels = [{"level": 1, "contact": "DevOps lead", "afterSeconds": 0},
              {"level": 2, "contact": "Engineering manager", "afterSeconds": 12}]
    kubectl.apply(incident(escalation={"levels": levels}), solo_namespace)
    wait_for(lambda: phase_of(kubectl, solo_namespace) == "AwaitingApproval", what="AwaitingApproval")
    status = kubectl.get("incident", "checkout-deploy-failed", solo_namespace)["status"]
    assert status["escalation"]["currentLevel"] == 1 and status["escalation"]["nextLevel"] == 2
    solo_operator.stop()
    time.sleep(2)
    solo_operator.start()
    wait_for(lambda: kubectl.get("incident", "checkout-deploy-failed", solo_namespace)["status"]["escalation"]
             ["currentLevel"] == 2, timeout=40, what="level 2")
    bump(kubectl, "incident", "checkout-deploy-failed", solo_namespace, '{"spec":{"summary":"paged twice?"}}')
    pages = sqs_messages(scenario.queue_url)  # a pass after level 2 ran: a repeat would be here
    levels_paged = sorted(m["MessageAttributes"]["level"]["Value"] for m in pages)
    assert levels_paged == ["1", "2"], levels_paged
    assert "Engineering manager" in next(m["Message"] for m in pages if m["MessageAttributes"]["level"]["Value"] == "2")
    esc = kubectl.get("incident", "checkout-deploy-failed", solo_namespace)["status"]["escalation"]
    assert "nextEscalationAt" not in esc and [n["level"] for n in esc["notified"]] == [1, 2]


def test_environment_update_and_a_webhook_page_whose_url_stays_secret(kubectl, namespace, aws, operator):
    with webhook_server() as (base, received):
        url = f"{base}/hooks/T0KEN-s3cr3t"
        estate.deployment_failure("checkout")
        kubectl("create", "secret", "generic", "oncall-webhook", "-n", namespace, f"--from-literal=url={url}")
        kubectl.apply(incident(
            remediation={"mode": "Auto", "lambdaEnvironment": [
                {"functionName": "checkout-api", "variables": {"DB_HOST": "db-replica-2.internal"}}]},
            notify={"webhook": {"urlSecretRef": {"name": "oncall-webhook", "key": "url"}}}), namespace)
        wait_for(lambda: phase_of(kubectl, namespace) == "Resolved", timeout=90, what="Resolved")
        status = kubectl.get("incident", "checkout-deploy-failed", namespace)["status"]
        env_step = next(s for s in status["steps"] if s["id"] == "update-lambda-env-checkout-api")
        assert env_step["state"] == "Succeeded" and env_step["params"]["keys"] == "DB_HOST"
        env = boto3.client("lambda").get_function(FunctionName="checkout-api")["Configuration"]["Environment"]
        assert env["Variables"] == {"STAGE": "prod", "DB_HOST": "db-replica-2.internal"}
        wait_for(lambda: len(received) >= 2, what="the escalation and resolution webhooks")
        kinds = [payload["kind"] for _, payload in received]
        assert kinds[0] == "Escalation" and "Resolved" in kinds
        assert received[0][1]["level"] == 1 and received[0][1]["rootCause"] == "LambdaDeployment"
        written = json.dumps(kubectl.get("incident", "checkout-deploy-failed", namespace)["status"]) + json.dumps(
            kubectl.events(namespace, "checkout-deploy-failed"))  # what the operator wrote (the spec is the user's)
        assert "T0KEN-s3cr3t" not in written
        assert "db-replica-2.internal" not in written
        assert any(n["channel"] == "Webhook" and n["target"] == "webhook" for n in status["escalation"]["notified"])
