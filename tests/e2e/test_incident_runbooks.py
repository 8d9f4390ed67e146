"""Incidents on the local stack: the deployment-failure and pipeline-failure runbooks end to end."""
from __future__ import annotations

import json
from pathlib import Path

import boto3
import yaml

import estate
from helpers import wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "incident-deployment-failure.yaml"


def phase_of(kubectl, namespace, name="checkout-deploy-failed"):
    return (kubectl.get("incident", name, namespace).get("status") or {}).get("phase")


def sqs_messages(queue_url: str) -> list[dict]:
    sqs = boto3.client("sqs")
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return out
        out += [json.loads(m["Body"]) for m in got]


def test_deployment_failure_is_diagnosed_then_rolled_back_after_approval(kubectl, namespace, aws, operator):
    scenario = estate.deployment_failure("checkout")
    kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))

    wait_for(lambda: phase_of(kubectl, namespace) == "AwaitingApproval", timeout=60, what="AwaitingApproval")
    inc = kubectl.get("incident", "checkout-deploy-failed", namespace)
    status = inc["status"]
    assert status["rootCause"]["category"] == "LambdaDeployment"
    assert "checkout-api" in status["rootCause"]["summary"] and "pg8000" in status["rootCause"]["summary"]
    observed = {f["source"]: f["observed"] for f in status["findings"]}
    assert "Failed at stage Deploy, action DeployLambda" in observed["CodePipeline"]
    assert any("12 ERROR events" in f["observed"] for f in status["findings"])
    evidence = {f["id"] for f in status["findings"]}
    assert set(status["rootCause"]["evidence"]) <= evidence
    steps = {s["id"]: s for s in status["steps"]}
    assert list(steps) == ["assess", "classify", "rollback-lambda-checkout-api", "verify", "notify-resolved"]
    assert steps["rollback-lambda-checkout-api"]["state"] == "AwaitingApproval"
    assert steps["rollback-lambda-checkout-api"]["params"] == {"functionName": "checkout-api", "toVersion": "1"}
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Assessed"]["status"] == "True"
    assert conditions["RootCauseIdentified"]["reason"] == "LambdaDeployment"
    assert conditions["Ready"]["status"] == "False" and "approvedSteps" in conditions["Ready"]["message"]
    assert conditions["Escalated"]["reason"] == "Level1"
    assert status["escalation"]["currentLevel"] == 1 and status["escalation"]["nextLevel"] == 2
    # Level 1 paged through SNS with the message attributes subscribers filter on.
    pages = wait_for(lambda: sqs_messages(scenario.queue_url), what="the level 1 page")
    attrs = {k: v["Value"] for k, v in pages[0]["MessageAttributes"].items()}
    assert attrs == {"severity": "high", "level": "1", "type": "DeploymentFailure"}
    assert "rollback-lambda-checkout-api" in pages[0]["Message"]
    lam = boto3.client("lambda")
    assert lam.get_function(FunctionName="checkout-api")["Configuration"]["CodeSha256"] == scenario.shas[1]

    kubectl("patch", "incident", "checkout-deploy-failed", "-n", namespace, "--type=merge",
            "-p", '{"spec":{"remediation":{"approvedSteps":["rollback-lambda-checkout-api"]}}}')
    wait_for(lambda: phase_of(kubectl, namespace) == "Resolved", timeout=60, what="Resolved")

    assert lam.get_function(FunctionName="checkout-api")["Configuration"]["CodeSha256"] == scenario.shas[0]
    kubectl("wait", "incident/checkout-deploy-failed", "-n", namespace, "--for=condition=Ready", "--timeout=10s")
    kubectl("wait", "incident/checkout-deploy-failed", "-n", namespace, "--for=condition=Remediated", "--timeout=10s")
    status = kubectl.get("incident", "checkout-deploy-failed", namespace)["status"]
    step = next(s for s in status["steps"] if s["id"] == "rollback-lambda-checkout-api")
    assert step["state"] == "Succeeded" and step["attempts"] == 1
    child = kubectl.get("rollback", step["rollbackRef"]["name"], namespace)
    assert child["status"]["phase"] == "Succeeded"
    assert child["metadata"]["ownerReferences"][0]["uid"] == inc["metadata"]["uid"]
    assert child["status"]["from"]["codeSha256"] == scenario.shas[1]
    assert child["status"]["to"]["codeSha256"] == scenario.shas[0]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Remediated"] == "True"
    assert status["postIncident"]["postMortemRequired"] is True
    report = kubectl.get("configmap", status["postIncident"]["reportRef"]["name"], namespace)["data"]["report.md"]
    assert "LambdaDeployment" in report and "rollback-lambda-checkout-api" in report
    reasons = [e["reason"] for e in kubectl.events(namespace, "checkout-deploy-failed")]
    for reason in ("RootCauseIdentified", "AwaitingApproval", "Escalated", "StepStarted",
                   "StepSucceeded", "Verified", "Resolved", "PostIncidentRecorded"):
        assert reason in reasons, f"no {reason} event in {reasons}"
    # the phases passed within one write and the complete assessment are in the timeline, not posted
    assert {"Detected", "Assessing", "Assessed"} <= {e["reason"] for e in status["timeline"]}
    assert not {"Detected", "Assessing", "Assessed"} & set(reasons), reasons
    resolved = wait_for(lambda: [m for m in sqs_messages(scenario.queue_url) if "RESOLVED" in m["Subject"]],
                        what="the resolution notice")
    assert "rolled back" in resolved[0]["Message"]
    assert operator.metric("opex_runbook_actions_total", action="lambda:UpdateFunctionCode", outcome="succeeded") >= 1
    assert operator.metric("opex_incident_time_to_resolve_seconds_count", type="DeploymentFailure",
                           severity="high") >= 1
    assert operator.metric("opex_incidents", phase="Resolved", severity="high", type="DeploymentFailure") >= 1
    assert operator.metric("opex_rollbacks_total", target_type="lambda", outcome="succeeded") >= 1



def test_an_auto_code_rollback_whose_bake_alarm_goes_to_alarm_is_undone_by_a_second_rollback_once(
        kubectl, namespace, aws, operator):
    scenario = estate.deployment_failure("checkout")
    cloudwatch, lam = boto3.client("cloudwatch"), boto3.client("lambda")
    cloudwatch.put_metric_alarm(AlarmName="checkout-5xx", Namespace="AWS/Lambda", MetricName="Errors",
                                Dimensions=[{"Name": "FunctionName", "Value": "checkout-api"}], Statistic="Sum",
                                Period=60, EvaluationPeriods=1, Threshold=1,
                                ComparisonOperator="GreaterThanOrEqualToThreshold")
    cloudwatch.set_alarm_state(AlarmName="checkout-5xx", StateValue="OK", StateReason="no errors")
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["remediation"] = {"mode": "Auto", "verify": {"window": "60s", "alarms": ["checkout-5xx"]}}
    kubectl.apply(json.dumps(doc), namespace)
    step_id = "rollback-lambda-checkout-api"

    def step():
        status = kubectl.get("incident", "checkout-deploy-failed", namespace).get("status") or {}
        return next((s for s in status.get("steps", []) if s["id"] == step_id), None)

    baking = wait_for(lambda: (s := step()) and s["state"] == "Succeeded" and s.get("verification") and s,
                      timeout=90, what="the bake window after the rollback")
    assert baking["params"]["fromVersion"] == "2" and baking["verification"]["outcome"] == "Baking"
    assert lam.get_function(FunctionName="checkout-api")["Configuration"]["CodeSha256"] == scenario.shas[0]

    cloudwatch.set_alarm_state(AlarmName="checkout-5xx", StateValue="ALARM", StateReason="errors since the rollback")
    wait_for(lambda: phase_of(kubectl, namespace) == "Failed", timeout=90, what="the undo and the incident's end")
    rolled = step()
    assert rolled["state"] == "RolledBack" and rolled["attempts"] == 1
    assert rolled["verification"]["breach"]["name"] == "checkout-5xx"
    assert lam.get_function(FunctionName="checkout-api")["Configuration"]["CodeSha256"] == scenario.shas[1]
    undo = kubectl.get("rollback", f"checkout-deploy-failed-{step_id}-undo", namespace)
    assert undo["spec"]["lambda"]["to"] == {"version": "2"} and undo["status"]["phase"] == "Succeeded"
    rollbacks = kubectl.json("get", "rollbacks", "-n", namespace, "-l", "opex.dev/incident=checkout-deploy-failed")
    assert len(rollbacks["items"]) == 2  # the rollback and its one undo
    reasons = [e["reason"] for e in kubectl.events(namespace, "checkout-deploy-failed")]
    assert {"BakeStarted", "BakeBreached", "RolledBack"} <= set(reasons) and reasons.count("RolledBack") == 1
    assert operator.metric("opex_runbook_actions_total", action="lambda:UpdateFunctionCode",
                           outcome="rolled_back") == 1

def test_example_manifest_targets_the_seeded_estate():
    spec = yaml.safe_load(EXAMPLE.read_text())["spec"]
    assert spec["targets"]["lambda"]["functionNames"] == ["checkout-api"]
    assert spec["remediation"]["mode"] == "Manual"


PIPELINE_INCIDENT = """
apiVersion: opex.dev/v1alpha1
kind: Incident
metadata:
  name: orders-pipeline-failed
spec:
  type: PipelineFailure
  severity: medium
  environment: development
  title: orders pipeline failed in Build
  targets:
    pipeline:
      name: orders-pipeline
    cloudTrail:
      logGroupName: CloudTrail/management-events
  remediation:
    mode: Auto
"""


def test_pipeline_failure_transient_install_error_is_retried_automatically(kubectl, namespace, aws, operator):
    scenario = estate.pipeline_failure("orders")
    kubectl.apply(PIPELINE_INCIDENT, namespace)
    wait_for(lambda: phase_of(kubectl, namespace, "orders-pipeline-failed") == "Resolved", timeout=60,
             what="Resolved")
    status = kubectl.get("incident", "orders-pipeline-failed", namespace)["status"]
    assert status["rootCause"]["category"] == "BuildDependencyInstall"
    assert "ETIMEDOUT" in status["rootCause"]["summary"]
    step = next(s for s in status["steps"] if s["id"] == "retry-stage-build")
    assert step["state"] == "Succeeded" and step["action"] == "codepipeline:RetryStageExecution"
    assert step["params"] == {"pipeline": "orders-pipeline", "stage": "Build", "executionId": scenario.execution_id}
    verify = next(s for s in status["steps"] if s["id"] == "verify")
    assert f"execution {scenario.execution_id} of orders-pipeline is Succeeded" in verify["outputs"]
    execution = boto3.client("codepipeline").get_pipeline_execution(
        pipelineName="orders-pipeline", pipelineExecutionId=scenario.execution_id)["pipelineExecution"]
    assert execution["status"] == "Succeeded"
    # level 1 was paged at once; resolution cancels the level 2 escalation that was scheduled
    assert status["escalation"]["currentLevel"] == 1
    assert "nextEscalationAt" not in status["escalation"] and "nextLevel" not in status["escalation"]


DATABASE_INCIDENT = """
apiVersion: opex.dev/v1alpha1
kind: Incident
metadata:
  name: orders-api-errors
spec:
  type: DeploymentFailure
  severity: high
  environment: production
  title: orders-api fails since release 2
  targets:
    lambda:
      functionNames: [orders-api]
  remediation:
    mode: Auto
"""


def test_lambda_errors_from_an_unreachable_database_get_no_code_rollback(kubectl, namespace, aws, operator):
    shas = estate.database_unreachable("orders-api")
    kubectl.apply(DATABASE_INCIDENT, namespace)

    def settled():
        status = kubectl.get("incident", "orders-api-errors", namespace).get("status") or {}
        reasons = {c["type"]: c["reason"] for c in status.get("conditions", [])}
        return status if reasons.get("Remediated") == "ManualActionRequired" else None

    status = wait_for(settled, timeout=60, what="the incident waiting for a human")
    cause = status["rootCause"]
    assert cause["category"] == "DatabaseConnectivity", cause
    assert "orders-api cannot reach its database" in cause["summary"]
    assert "Can't reach database server at `orders-db.internal`:`5432`" in cause["summary"]
    # Auto mode, and the errors began with release 2 while release 1 ran clean: still no rollback.
    assert [s["id"] for s in status["steps"]] == ["assess", "classify", "verify", "notify-resolved"]
    assert status["phase"] == "ManualActionRequired"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert "no automated remediation for DatabaseConnectivity" in conditions["Remediated"]["message"]
    logs = next(f for f in status["findings"] if f["resource"] == "/aws/lambda/orders-api")
    assert "12 ERROR events" in logs["observed"] and "version 1: 6, version 2: 12" in logs["observed"]
    assert not any(e["reason"] == "StepStarted" and "rollback" in e["message"]
                   for e in kubectl.events(namespace, "orders-api-errors"))
    code = boto3.client("lambda").get_function(FunctionName="orders-api")["Configuration"]["CodeSha256"]
    assert code == shas[1]  # the release is still the one running
