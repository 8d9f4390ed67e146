"""The performance runbook and the runbook's database check end to end on the local stack: metrics put
into moto as Lambda publishes them, a real PostgreSQL the estate's RDS instance points at."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import boto3
import yaml

import estate
import perf_estate
import pglocal
import stack
from helpers import bump, wait_for

FN = "checkout-api"
STEP = f"raise-lambda-memory-{FN}"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "incident-performance.yaml"

SLOW = """
apiVersion: opex.dev/v1alpha1
kind: Incident
metadata:
  name: checkout-slow
spec:
  type: PerformanceDegradation
  severity: high
  environment: production
  title: checkout p99 above 1 s
  targets:
    lambda:
      functionNames: [checkout-api]
    metrics:
      windowSeconds: 3600
      periodSeconds: 10
      thresholds:
        lambdaDurationMs: 1000
  remediation:
    mode: Manual
"""


def status_of(kubectl, namespace, name):
    return kubectl.get("incident", name, namespace).get("status") or {}


def step_of(status, step_id):
    return next((s for s in status.get("steps", []) if s["id"] == step_id), None)


def memory_of(fn: str) -> int:
    return boto3.client("lambda").get_function_configuration(FunctionName=fn)["MemorySize"]


def test_memory_bound_lambda_near_its_timeout_gets_its_memory_raised_after_approval_and_verified(
        kubectl, namespace, aws, operator):
    perf_estate.slow_lambda(FN, memory_mb=128, timeout_seconds=3, used_mb=124)
    kubectl.apply(SLOW, namespace)

    status = wait_for(lambda: (s := status_of(kubectl, namespace, "checkout-slow")).get("phase") == "AwaitingApproval"
                      and s, timeout=60, what="AwaitingApproval")
    cause = status["rootCause"]
    assert cause["category"] == "LambdaMemoryBound"
    assert "max memory used 124 MB of 128 MB" in cause["summary"] and "of its 3 s timeout" in cause["summary"]
    findings = {f["id"]: f for f in status["findings"]}
    p99 = next(f for f in findings.values() if f["observed"].startswith("Duration p99 peaked at"))
    assert p99["severity"] == "Error" and p99["source"] == "CloudWatch" and p99["resource"] == f"function/{FN}"
    assert " ms (period from " in p99["observed"] and "threshold 1,000 ms: " in p99["observed"]
    assert p99["observed"].endswith("over") and p99["id"] in cause["evidence"]
    config = next(f for f in findings.values() if f["observed"].startswith("memory 128 MB, timeout 3 s"))
    assert "max memory used 124 MB in 30 REPORT lines" in config["observed"]
    step = step_of(status, STEP)
    assert step["state"] == "AwaitingApproval" and step["action"] == "lambda:UpdateFunctionConfiguration"
    assert {k: step["params"][k] for k in ("functionName", "memorySizeMb", "fromMb")} == {
        "functionName": FN, "memorySizeMb": "256", "fromMb": "128"}
    before = int(step["params"]["beforeP99Ms"])
    assert 2650 <= before <= 2940
    assert memory_of(FN) == 128

    kubectl("patch", "incident", "checkout-slow", "-n", namespace, "--type=merge",
            "-p", json.dumps({"spec": {"remediation": {"approvedSteps": [STEP]}}}))
    done = wait_for(lambda: (s := step_of(status_of(kubectl, namespace, "checkout-slow"), STEP))
                    and s["state"] == "Succeeded" and s, timeout=60, what="the memory raise")
    assert memory_of(FN) == 256
    changed = dt.datetime.fromisoformat(done["params"]["changedAt"].replace("Z", "+00:00"))
    perf_estate.faster_after(FN, changed, 10, duration_ms=900.0)

    status = wait_for(lambda: (s := status_of(kubectl, namespace, "checkout-slow")).get("phase") == "Resolved" and s,
                      timeout=90, what="Resolved")
    verify = step_of(status, "verify")["outputs"]
    assert f"{FN}: Duration p99 900 ms in the period from " in verify
    assert f"{before:,} ms before the change" in verify and "% lower)" in verify
    assert step_of(status, STEP)["attempts"] == 1 and memory_of(FN) == 256
    reasons = [e["reason"] for e in kubectl.events(namespace, "checkout-slow")]
    for reason in ("AwaitingApproval", "StepStarted", "StepSucceeded", "Verified", "Resolved"):
        assert reason in reasons
    assert operator.metric("opex_runbook_actions_total", action="lambda:UpdateFunctionConfiguration",
                           outcome="succeeded") >= 1


DATABASE = """
apiVersion: opex.dev/v1alpha1
kind: Incident
metadata:
  name: orders-db-unreachable
spec:
  type: DeploymentFailure
  severity: high
  environment: production
  title: orders-api cannot reach its database since the release
  targets:
    lambda:
      functionNames: [orders-api]
    rds:
      instanceId: orders-db
    probes:
      database:
        database: orders
        secretRef:
          name: orders-db
        tls: Disable
        timeoutSeconds: 3
  remediation:
    mode: Manual
"""
PASSWORD = "Orders-e2e-Secret-71"


def test_stopped_database_behind_a_group_without_the_operator_is_database_connectivity_until_started(
        kubectl, namespace, aws, operator):
    pg = pglocal.LocalPostgres(password=PASSWORD)
    try:
        pg.start()
        db = perf_estate.database("orders-db", pg.host, pg.port, pg.user, PASSWORD)
        role = estate.role("orders-api-role", "lambda.amazonaws.com")
        boto3.client("lambda").create_function(FunctionName="orders-api", Runtime="python3.12", Role=role,
                                               Handler="app.handler", Code={"ZipFile": estate.GOOD})
        kubectl("create", "secret", "generic", "orders-db", "-n", namespace, "--from-literal=username=opex",
                f"--from-literal=password={PASSWORD}")
        pg.stop()
        kubectl.apply(DATABASE, namespace)

        def waiting_for_a_person():
            s = status_of(kubectl, namespace, "orders-db-unreachable")
            return s if s.get("phase") == "ManualActionRequired" else None

        status = wait_for(waiting_for_a_person, timeout=60, what="ManualActionRequired")
        cause = status["rootCause"]
        assert cause["category"] == "DatabaseConnectivity", cause
        assert (f"security group {db.security_group} (orders-db-sg) does not admit the operator's source "
                f"{stack.SOURCES} on port {pg.port}") in cause["summary"]
        probe = next(f for f in status["findings"] if f["source"] == "Database")
        assert probe["observed"].startswith(f"SELECT 1 on 127.0.0.1:{pg.port}/orders as opex failed: ConnectionRefused")
        assert probe["id"] in cause["evidence"]
        assert [s["id"] for s in status["steps"]] == ["assess", "classify", "verify", "notify-resolved"]
        remediated = {c["type"]: c for c in status["conditions"]}["Remediated"]
        assert "waiting for the probes to pass" in remediated["message"]

        pg.start()
        bump(kubectl, "incident", "orders-db-unreachable", namespace, '{"spec":{"summary":"orders-db started again"}}')
        status = wait_for(lambda: (s := status_of(kubectl, namespace, "orders-db-unreachable")).get("phase")
                          == "Resolved" and s, timeout=60, what="Resolved")
        verify = step_of(status, "verify")["outputs"]
        assert verify == f"the probes pass again: SELECT 1 on 127.0.0.1:{pg.port}/orders answered"

        seen = [json.dumps(kubectl.get("incident", "orders-db-unreachable", namespace)),
                json.dumps(kubectl.events(namespace)), operator.log_text(), operator.metrics()]
        assert not [text[:200] for text in seen if PASSWORD in text]
    finally:
        pg.remove()


def test_performance_example_targets_the_demo_estate_and_the_local_api_app():
    spec = yaml.safe_load(EXAMPLE.read_text())["spec"]
    assert spec["targets"]["lambda"]["functionNames"] == [perf_estate.DEMO_FUNCTION]
    assert spec["targets"]["rds"]["instanceId"] == perf_estate.DEMO_DATABASE
    assert spec["targets"]["probes"]["http"]["url"].startswith(f"{stack.API_URL}/prod/")
    credentials = spec["targets"]["probes"]["database"]["secretsManager"]["secretId"]
    assert credentials == f"{perf_estate.DEMO_DATABASE}/credentials"


def test_an_auto_memory_raise_whose_bake_alarm_goes_to_alarm_is_undone_once_and_the_incident_fails(
        kubectl, namespace, aws, operator):
    perf_estate.slow_lambda(FN, memory_mb=128, timeout_seconds=3, used_mb=124)
    cloudwatch = boto3.client("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName="checkout-errors", Namespace="AWS/Lambda", MetricName="Errors",
                                Dimensions=[{"Name": "FunctionName", "Value": FN}], Statistic="Sum", Period=60,
                                EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
    cloudwatch.set_alarm_state(AlarmName="checkout-errors", StateValue="OK", StateReason="no errors")
    doc = yaml.safe_load(SLOW)
    doc["spec"]["remediation"] = {"mode": "Auto", "verify": {"window": "60s", "alarms": ["checkout-errors"]}}
    kubectl.apply(json.dumps(doc), namespace)
    baking = wait_for(lambda: (s := step_of(status_of(kubectl, namespace, "checkout-slow"), STEP))
                      and s["state"] == "Succeeded" and s.get("verification") and s, timeout=90, what="the bake window")
    assert baking["verification"]["outcome"] == "Baking" and memory_of(FN) == 256

    cloudwatch.set_alarm_state(AlarmName="checkout-errors", StateValue="ALARM", StateReason="errors since the change")
    status = wait_for(lambda: (s := status_of(kubectl, namespace, "checkout-slow")).get("phase") == "Failed" and s,
                      timeout=60, what="the undo and the incident's end")
    step = step_of(status, STEP)
    assert step["state"] == "RolledBack" and memory_of(FN) == 128
    breach = step["verification"]["breach"]
    assert (breach["source"], breach["name"]) == ("CloudWatchAlarm", "checkout-errors")
    assert "errors since the change" in breach["value"] and "checkout-errors" in step["error"]
    assert step["verification"]["undoStartedAt"] and step["verification"]["undoneAt"]
    events = kubectl.events(namespace, "checkout-slow")
    reasons = [e["reason"] for e in events]
    for reason in ("BakeStarted", "BakeBreached", "RolledBack"):
        assert reason in reasons
    assert reasons.count("RolledBack") == 1 and step["attempts"] == 1  # undone once, the step never tried again
    timeline = [t.get("reason") for t in status.get("timeline", [])]
    assert "RolledBack" in timeline
    assert operator.metric("opex_runbook_actions_total", action="lambda:UpdateFunctionConfiguration",
                           outcome="rolled_back") == 1
