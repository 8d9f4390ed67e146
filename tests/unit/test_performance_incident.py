"""The performance runbook and the endpoint probes on the Incident engine, with fakes of every port:
what a PerformanceDegradation incident reads (one metrics read), finds, plans (gated), changes (once)
and verifies (the next whole period's Duration), and what a DeploymentFailure's database probe says."""
from __future__ import annotations

import datetime as dt
import json
import logging
import time

from opex_operator.api.incident import IncidentStatus, RootCauseCategory as Cat, StepState
from opex_operator.playbooks import assessment as incident_assess
from opex_operator.controllers.incident import IncidentController
from opex_operator.policy import Policy
from opex_operator.ports.verification import AlarmState
from opex_operator.ports.facts import RdsFacts, SecurityGroupFacts
from opex_operator.ports.performance import (Credentials, DbProbeResult, GroupIngress, HttpProbeResult, LambdaConfig,
                                               ProbeFailure, RdsConfig, StageConfig)
from opex_operator.playbooks.performance.metrics import key
from support.builders import SHA1, SHA2, healthy_lambda
from support.fakes import Clock, FakeAws, FakeObjects, FakeReader, FakeWorkspaces, condition, drive, observed, sink_of

FN = "checkout-api"
STEP = f"raise-lambda-memory-{FN}"
PASSWORD = "Tr0ub4dor-orders-db"
TOKEN = "Bearer s3cr3t-probe-token"


def p99(fn: str = FN) -> str:
    return key(f"function/{fn}", "Duration", "p99")


def performance(mode: str = "Manual", **extra) -> dict:
    spec = {"type": "PerformanceDegradation", "severity": "high", "title": "checkout is slow",
            "environment": "production", "remediation": {"mode": mode},
            "targets": {"lambda": {"functionNames": [FN]},
                        "metrics": {"periodSeconds": 60, "thresholds": {"lambdaDurationMs": 1000}}}}
    for section, values in extra.items():
        spec[section].update(values)
    return spec


def deployment(**probes) -> dict:
    return {"type": "DeploymentFailure", "severity": "high", "title": "orders deploy broke the database",
            "environment": "production",
            "targets": {"lambda": {"functionNames": [FN]}, "rds": {"instanceId": "orders-db"},
                        "probes": probes or {"database": {"secretRef": {"name": "orders-db"}, "tls": "Disable"}}}}


class World:
    """An Incident, its controller and the fakes it acts on; ``FN`` is slow and memory-bound: its
    Duration p99 reached 2,950 ms 20 minutes ago, 124 MB of its 128 MB used, 3 s timeout."""

    def __init__(self, spec: dict, policy: dict | None = None, sources=("192.168.7.0/24",)):
        self.clock = Clock()
        now = self.clock.now
        rds = RdsFacts("orders-db", "available", "postgres", "orders-db.abc.us-east-1.rds.amazonaws.com", 5432,
                       [SecurityGroupFacts("sg-0db", "orders-db-sg", ["5432-5432/tcp from 10.0.0.0/16"])])
        self.aws = FakeAws(FakeReader(lambdas=[healthy_lambda(FN)], rds=rds))
        self.aws.the_lambda.add(FN, [SHA1, SHA2])
        perf = self.aws.the_perf_reader
        perf.lambdas[FN] = LambdaConfig(FN, 128, 3, max_memory_used_mb=124, report_lines=30,
                                        report_example="REPORT RequestId: 1\tMax Memory Used: 124 MB")
        perf.databases["orders-db"] = (RdsConfig("orders-db", "db.t3.micro", "postgres",
                                                 endpoint="orders-db.abc.us-east-1.rds.amazonaws.com", port=5432),
                                       [GroupIngress("sg-0db", "orders-db-sg", [(5432, 5432, ["10.0.0.0/16"])])])
        cw = self.aws.the_cloudwatch
        for i, (p, mx, avg) in enumerate([(900, 950, 400), (2950, 2990, 2700), (1200, 1300, 800)]):
            at = now - dt.timedelta(minutes=25 - 5 * i)
            cw.put(p99(), at, p)
            cw.put(key(f"function/{FN}", "Duration", "Maximum"), at, mx)
            cw.put(key(f"function/{FN}", "Duration", "Average"), at, avg)
            cw.put(key(f"function/{FN}", "Errors", "Sum"), at, 0)
            cw.put(key(f"function/{FN}", "Throttles", "Sum"), at, 0)
        self.objects = FakeObjects()
        self.objects.secrets[("ns", "orders-db")] = {"username": "opex", "password": PASSWORD}
        rules = policy or {"rules": [{"namespaces": ["*"], "actions": ["lambda:*", "rds:*", "apigateway:*"]}]}
        self.ctl = IncidentController(self.aws, self.objects, FakeWorkspaces(), Policy.model_validate(rules),
                                      webhook=None, clock=self.clock, sources=sources)
        self.status = IncidentStatus()
        self.obj = observed(self.status, spec, "incidents", name="slow")

    def drive(self) -> float | None:
        return drive(self.ctl, self.obj)

    def change_spec(self, section: str = "remediation", **values) -> None:
        self.obj.spec.setdefault(section, {}).update(values)
        self.obj.generation += 1
        self.obj.recorder.generation = self.obj.generation

    def step(self, step_id: str):
        return next(s for s in self.status.steps if s.id == step_id)

    def finding(self, fragment: str):
        return next(f for f in self.status.findings if fragment in f.observed)

    def reasons(self) -> list[str]:
        return sink_of(self.obj).reasons()


# ---- PerformanceDegradation -------------------------------------------------------------------------

def test_breaching_metrics_become_findings_with_values_and_units_and_the_memory_step_waits_for_approval():
    w = World(performance())
    w.drive()
    st = w.status
    assert st.phase == "AwaitingApproval"
    assert st.root_cause.category == Cat.LAMBDA_MEMORY_BOUND
    assert "124 MB of 128 MB (97%" in st.root_cause.summary
    assert "Duration Maximum 2,990 ms is 100% of its 3 s timeout" in st.root_cause.summary
    breach = w.finding("Duration p99 peaked")
    assert breach.observed == ("Duration p99 peaked at 2,950 ms (period from 08:40 UTC) over the last 1 h; "
                               "threshold 1,000 ms: 1,950 ms (195%) over")
    assert breach.severity == "Error" and breach.id in st.root_cause.evidence
    assert w.finding("memory 128 MB, timeout 3 s").id in st.root_cause.evidence
    step = w.step(STEP)
    assert (step.state, step.action, step.mutating) == (StepState.AWAITING_APPROVAL,
                                                        "lambda:UpdateFunctionConfiguration", True)
    assert step.params == {"functionName": FN, "memorySizeMb": "256", "fromMb": "128", "beforeP99Ms": "2950"}
    assert step.inputs == f"raise the memory of {FN} from 128 MB to 256 MB (cap 3008 MB)"
    assert [s.id for s in st.steps] == ["assess", "classify", STEP, "verify", "notify-resolved"]
    assert len(w.aws.the_cloudwatch.reads) == 1  # every series in one metrics read
    assert w.aws.the_perf_actions.calls == []
    assert condition(st, "RootCauseIdentified").reason == "LambdaMemoryBound"


def test_approved_memory_raise_runs_once_and_is_verified_by_the_next_whole_periods_duration():
    w = World(performance())
    w.drive()
    w.clock.advance(5)
    w.change_spec(approvedSteps=[STEP])
    assert w.drive() == 2.0  # UpdateFunctionConfiguration issued; the function settles
    assert w.aws.the_perf_actions.calls == [("UpdateFunctionConfiguration", FN, 256)]
    assert w.step(STEP).state == StepState.RUNNING
    assert w.step(STEP).params["changedAt"] == "2026-11-29T09:00:05Z"
    w.drive()
    assert w.step(STEP).state == StepState.SUCCEEDED
    verify = w.step("verify")
    assert verify.state == StepState.RUNNING
    assert verify.outputs.endswith("waiting for the first whole 60-second period after the change (ends 09:02:00 UTC)")
    reads = len(w.aws.the_cloudwatch.reads)
    w.clock.advance(50)
    w.drive()
    assert len(w.aws.the_cloudwatch.reads) == reads  # the period has not ended: nothing to read yet
    w.aws.the_cloudwatch.put(p99(), dt.datetime(2026, 11, 29, 9, 1, 10, tzinfo=dt.timezone.utc), 900)
    w.clock.advance(70)
    w.drive()
    assert w.status.phase == "Resolved"
    assert w.aws.the_cloudwatch.reads[-1] == (dt.datetime(2026, 11, 29, 9, 1, tzinfo=dt.timezone.utc),
                                              dt.datetime(2026, 11, 29, 9, 2, tzinfo=dt.timezone.utc))
    assert ("checkout-api: Duration p99 900 ms in the period from 09:01 UTC, 2,950 ms before the change "
            "(69% lower)") in w.step("verify").outputs
    assert w.aws.the_perf_actions.calls == [("UpdateFunctionConfiguration", FN, 256)]  # once
    assert condition(w.status, "Remediated").reason == "Verified"


def test_duration_that_did_not_drop_after_the_raise_fails_verification():
    w = World(performance(mode="Auto"))
    w.drive()
    w.aws.the_cloudwatch.put(p99(), w.clock.now + dt.timedelta(seconds=20), 2900)
    w.clock.advance(125)
    w.drive()
    assert w.status.phase == "Failed" and w.step("verify").state == StepState.FAILED
    assert "Duration p99 2,900 ms" in w.step("verify").error and "(2% lower)" in w.step("verify").error


def test_verification_timeout_counts_from_the_end_of_the_first_period_after_the_change():
    w = World(performance(mode="Auto", remediation={"steps": [{"id": "verify", "timeoutSeconds": 30}],
                                                    "mode": "Auto"},
                          targets={"metrics": {"periodSeconds": 300}}))
    w.drive()
    w.clock.advance(290)  # longer than the verify timeout, but the first period after the change has not ended
    w.drive()
    assert w.step("verify").state == StepState.RUNNING
    w.clock.advance(300)
    w.drive()
    assert w.step("verify").state == StepState.FAILED and "not verified within 30s" in w.step("verify").error


def test_operator_policy_caps_the_memory_below_the_specs_cap():
    policy = {"rules": [{"namespaces": ["*"], "actions": ["lambda:*"], "limits": {"lambdaMemoryMb": 192}}]}
    w = World(performance(), policy=policy)
    w.drive()
    assert w.step(STEP).params["memorySizeMb"] == "192"
    assert w.step(STEP).inputs.endswith("(cap 192 MB)")


def test_memory_already_at_the_cap_is_not_planned_and_the_timeline_says_why():
    w = World(performance(remediation={"performance": {"lambdaMemory": {"maxMb": 128}}}))
    w.drive()
    assert STEP not in [s.id for s in w.status.steps]
    note = next(e for e in w.status.timeline if e.reason == "NotPlanned")
    assert "checkout-api already has 128 MB, at or above the 128 MB cap" in note.message
    assert w.status.phase == "ManualActionRequired"


def test_performance_insights_and_stage_caching_run_in_auto_mode_and_are_verified():
    spec = performance(mode="Auto", targets={
        "lambda": {"functionNames": [FN]}, "rds": {"instanceId": "orders-db"},
        "apiGateway": {"restApiId": "a1b2c3", "stage": "prod"}})
    spec["remediation"]["performance"] = {"apiStage": {"cachingEnabled": True}}
    w = World(spec)
    w.aws.the_perf_reader.lambdas[FN] = LambdaConfig(FN, 1024, 30, max_memory_used_mb=200)
    w.aws.the_perf_reader.stages[("a1b2c3", "prod")] = StageConfig("a1b2c3", "orders-api", "prod")
    nine_minutes_ago = w.clock.now - dt.timedelta(minutes=9)
    w.aws.the_cloudwatch.put(key("db/orders-db", "CPUUtilization", "Maximum"), nine_minutes_ago, 97)
    w.aws.the_cloudwatch.put(key("api/orders-api/prod", "Latency", "p99"), nine_minutes_ago, 2400)
    w.drive()
    assert w.status.root_cause.category == Cat.DATABASE_CPU
    assert w.aws.the_perf_actions.calls == [("ModifyDBInstance", "orders-db", 7), ("UpdateStage", "prod", True, None)]
    assert w.status.phase == "Resolved"
    verify = w.step("verify").outputs
    assert "orders-db has Performance Insights on (7 days)" in verify and "stage prod of orders-api has the settings" \
        in verify


def test_performance_incident_reads_no_cloudtrail():
    w = World(performance())
    w.drive()
    assert not [f for f in w.status.findings if f.source == "CloudTrail"]
    assert condition(w.status, "Assessed").reason == "Assessed"


# ---- the database and HTTP probes ---------------------------------------------------------------

def refused() -> DbProbeResult:
    return DbProbeResult("orders-db.abc.us-east-1.rds.amazonaws.com", 5432, "postgres", "opex", ok=False,
                         failure=ProbeFailure.REFUSED, detail="connection to orders-db.abc...:5432 refused")


def test_refused_database_behind_a_group_not_admitting_the_operator_is_database_connectivity_naming_it():
    w = World(deployment())
    w.aws.the_probes.database_result = refused()
    w.drive()
    st = w.status
    assert st.root_cause.category == Cat.DATABASE_CONNECTIVITY
    assert ("security group sg-0db (orders-db-sg) does not admit the operator's source 192.168.7.0/24 on port 5432"
            in st.root_cause.summary)
    probe = w.finding("SELECT 1 on")
    assert probe.id in st.root_cause.evidence and probe.severity == "Error"
    (_, target, credentials), *again = w.aws.the_probes.calls  # again: verification probes again
    assert target == "orders-db.abc.us-east-1.rds.amazonaws.com:5432/postgres"  # the RDS endpoint
    assert (credentials.username, credentials.password) == ("opex", PASSWORD)
    assert [s.id for s in st.steps] == ["assess", "classify", "verify", "notify-resolved"]
    assert st.phase == "ManualActionRequired"
    assert "waiting for the probes to pass" in condition(st, "Remediated").message


def test_database_started_again_is_verified_by_the_probe_passing():
    w = World(deployment())
    w.aws.the_probes.database_result = refused()
    w.drive()
    w.aws.the_probes.database_result = DbProbeResult(refused().host, 5432, "postgres", "opex", ok=True,
                                                     latency_seconds=0.004, max_connections=20)
    w.obj.spec["summary"] = "orders-db restarted"
    w.obj.generation += 1
    w.drive()
    assert w.status.phase == "Resolved"
    assert w.step("verify").outputs.startswith("the probes pass again: SELECT 1 on orders-db.abc")


def test_a_group_admitting_the_operator_is_not_blamed():
    w = World(deployment(), sources=("10.0.3.4/32",))
    w.aws.the_probes.database_result = refused()
    w.drive()
    summary = w.status.root_cause.summary
    assert w.status.root_cause.category == Cat.DATABASE_CONNECTIVITY and "security group" not in summary
    assert "cannot be used: ConnectionRefused" in summary


def test_missing_secret_is_named_in_the_assessed_condition_and_the_probe_does_not_run():
    w = World(deployment())
    del w.objects.secrets[("ns", "orders-db")]
    w.drive()
    assessed = condition(w.status, "Assessed")
    assert (assessed.reason, assessed.message) == ("TargetNotFound", "secret/orders-db not found")
    assert w.aws.the_probes.calls == []
    assert "probes.database.secretRef: Secret orders-db not found" in w.finding("secret/orders-db").observed


def test_secret_without_the_password_key_is_named():
    w = World(deployment())
    w.objects.secrets[("ns", "orders-db")] = {"username": "opex"}
    w.drive()
    assessed = condition(w.status, "Assessed")
    assert assessed.reason == "PartiallyAssessed"
    assert assessed.message == "probes.database.secretRef: Secret orders-db has no key password"
    assert w.aws.the_probes.calls == []


def test_credentials_from_secrets_manager_and_a_secret_lacking_the_password():
    w = World(deployment(database={"secretsManager": {"secretId": "orders-db/credentials"}, "tls": "Disable"}))
    w.aws.the_perf_reader.credentials["orders-db/credentials"] = Credentials("app", PASSWORD)
    w.aws.the_probes.database_result = refused()
    w.drive()
    assert w.aws.the_probes.calls[0][2].username == "app"
    w2 = World(deployment(database={"secretsManager": {"secretId": "orders-db/credentials"}}))
    w2.aws.the_perf_reader.credentials["orders-db/credentials"] = LookupError(
        "Secrets Manager secret orders-db/credentials has no password key")
    w2.drive()
    assert condition(w2.status, "Assessed").message == (
        "probes.database.secretsManager: Secrets Manager secret orders-db/credentials has no password key")


def test_probe_that_hangs_ends_at_its_timeout(monkeypatch):
    monkeypatch.setattr(incident_assess, "PROBE_GRACE", 0.1)
    w = World(deployment(database={"secretRef": {"name": "orders-db"}, "timeoutSeconds": 1}))
    w.aws.the_probes.hang = True
    started = time.monotonic()
    w.drive()
    assert time.monotonic() - started < 5
    assert "failed: Timeout: no answer within 1 s" in w.finding("SELECT 1 on").observed


def test_http_probe_with_headers_from_a_secret_reports_status_and_body_but_no_header_value():
    w = World(deployment(http={"url": "https://api.example.com/prod/orders?token=abc", "body": {"test": "data"},
                               "headersSecretRef": {"name": "api-probe"}}))
    w.objects.secrets[("ns", "api-probe")] = {"Authorization": TOKEN}
    w.aws.the_probes.http_result = HttpProbeResult("POST", "https://api.example.com/prod/orders", 200, status=502,
                                                   latency_seconds=0.042,
                                                   body_head='{"message": "Internal server error"}')
    w.drive()
    (_, url, headers, body), *_ = w.aws.the_probes.calls
    assert headers == {"Authorization": TOKEN} and body == {"test": "data"}
    http = w.finding("answered 502")
    assert http.observed == "POST https://api.example.com/prod/orders answered 502 in 0.042 s (expected 200)"
    assert "Internal server error" in http.evidence
    assert TOKEN not in json.dumps(w.status.model_dump(mode="json"))


def test_passwords_reach_no_status_event_or_log(caplog):
    caplog.set_level(logging.DEBUG)
    w = World(deployment())
    w.aws.the_probes.database_result = refused()
    w.drive()
    w.aws.the_probes.database_result = DbProbeResult(refused().host, 5432, "postgres", "opex", ok=False,
                                                     failure=ProbeFailure.AUTH, sqlstate="28P01",
                                                     detail="28P01: password authentication failed for user opex")
    w.obj.spec["summary"] = "rotated"
    w.obj.generation += 1
    w.drive()
    wire = json.dumps(w.status.model_dump(mode="json"))
    events = json.dumps(sink_of(w.obj).events)
    assert PASSWORD not in wire and PASSWORD not in events and PASSWORD not in caplog.text
    assert "SELECT 1 on" in wire  # the probe did report


class FakeAlarms:
    """``ports.verification.AlarmPort``: alarms by name, set by the test."""

    def __init__(self):
        self.states: dict[str, AlarmState] = {}

    def alarms(self, names):
        return {n: self.states[n] for n in names if n in self.states}

    def went_to_alarm(self, name, since):
        return None


def raised(w: World, step_id: str = STEP) -> None:
    """Drive until step ``step_id`` (default: the memory raise, which waits for the function to settle) succeeded."""
    for _ in range(10):
        w.drive()
        if w.step(step_id).state == StepState.SUCCEEDED:
            return
        w.clock.advance(2)
    raise AssertionError(f"step {step_id} did not end: {w.step(step_id)}")


def test_a_bake_alarm_in_alarm_after_an_auto_memory_raise_undoes_it_once_and_fails_the_incident():
    w = World(performance(mode="Auto", remediation={"verify": {"window": "5m", "alarms": ["checkout-errors"]}}))
    alarms = FakeAlarms()
    alarms.states["checkout-errors"] = AlarmState("checkout-errors", "OK", w.clock.now - dt.timedelta(days=1))
    w.aws.alarms = lambda region, role: alarms
    perf_calls = w.aws.the_perf_actions.calls
    raised(w)
    assert w.step(STEP).state == StepState.SUCCEEDED and w.step(STEP).verification.outcome == "Baking"
    assert w.step("verify").state != StepState.SUCCEEDED  # verification waits for the bake window
    w.clock.advance(30)
    alarms.states["checkout-errors"] = AlarmState("checkout-errors", "ALARM", w.clock.now, "Errors >= 1")
    w.clock.advance(1)
    w.drive()
    assert w.step(STEP).verification.undo_started_at is not None and "BakeBreached" in w.reasons()
    for _ in range(3):  # the undo sets the size back, then waits for the function to settle
        w.clock.advance(2)
        w.drive()
    step = w.step(STEP)
    assert step.state == StepState.ROLLED_BACK and w.aws.the_perf_reader.lambdas[FN].memory_mb == 128
    assert step.verification.breach.name == "checkout-errors" and "Errors >= 1" in step.verification.breach.value
    assert step.verification.undo_started_at is not None and step.verification.undone_at is not None
    assert [c[2] for c in perf_calls if c[0] == "UpdateFunctionConfiguration"] == [256, 128]
    assert w.status.phase == "Failed" and {"BakeStarted", "BakeBreached", "RolledBack"} <= set(w.reasons())
    w.clock.advance(60)
    w.drive()
    assert [c[2] for c in perf_calls if c[0] == "UpdateFunctionConfiguration"] == [256, 128]  # never twice


def test_a_bake_window_that_ends_clean_lets_verification_go_on():
    w = World(performance(mode="Auto", remediation={"verify": {"window": "60s", "alarms": ["checkout-errors"]}}))
    alarms = FakeAlarms()
    alarms.states["checkout-errors"] = AlarmState("checkout-errors", "OK", w.clock.now - dt.timedelta(days=1))
    w.aws.alarms = lambda region, role: alarms
    raised(w)
    w.clock.advance(61)
    w.drive()
    assert w.step(STEP).verification.outcome == "Passed" and "BakePassed" in w.reasons()
    assert w.step(STEP).state == StepState.SUCCEEDED


def stage_caching_baking(w: World, alarms: FakeAlarms) -> None:
    """Drive an Auto stage-caching step until it has run and its bake window is open."""
    alarms.states["checkout-errors"] = AlarmState("checkout-errors", "OK", w.clock.now - dt.timedelta(days=1))
    w.aws.alarms = lambda region, role: alarms
    w.aws.the_perf_reader.lambdas[FN] = LambdaConfig(FN, 1024, 30, max_memory_used_mb=200)
    w.aws.the_perf_reader.stages[("a1b2c3", "prod")] = StageConfig("a1b2c3", "orders-api", "prod")
    w.aws.the_cloudwatch.put(key("api/orders-api/prod", "Latency", "p99"), w.clock.now - dt.timedelta(minutes=9), 2400)
    raised(w, STAGE_STEP)


STAGE_STEP = "update-api-stage-prod"


def test_a_bake_breach_after_stage_caching_turns_it_off_again_once_and_fails_the_incident():
    spec = performance(mode="Auto", targets={"lambda": {"functionNames": [FN]},
                                             "apiGateway": {"restApiId": "a1b2c3", "stage": "prod"}},
                       remediation={"verify": {"window": "5m", "alarms": ["checkout-errors"]}})
    spec["remediation"]["performance"] = {"apiStage": {"cachingEnabled": True}}
    w, alarms = World(spec), FakeAlarms()
    stage_caching_baking(w, alarms)
    step = w.step(STAGE_STEP)
    assert step.params["wasCachingEnabled"] == "False" and step.verification.outcome == "Baking"
    stage = w.aws.the_perf_reader.stages[("a1b2c3", "prod")]
    assert stage.cache_cluster_enabled and stage.caching_enabled
    w.clock.advance(30)
    alarms.states["checkout-errors"] = AlarmState("checkout-errors", "ALARM", w.clock.now, "5XXError >= 1")
    w.clock.advance(1)
    w.drive()
    assert w.step(STAGE_STEP).verification.undo_started_at is not None
    w.drive()
    step = w.step(STAGE_STEP)
    assert step.state == StepState.ROLLED_BACK and "5XXError >= 1" in step.verification.breach.value
    assert not stage.cache_cluster_enabled and not stage.caching_enabled
    assert w.status.phase == "Failed" and {"BakeBreached", "RolledBack"} <= set(w.reasons())
    calls = [c for c in w.aws.the_perf_actions.calls if c[0] == "UpdateStage"]
    assert calls == [("UpdateStage", "prod", True, None), ("UpdateStage", "prod", False, None)]
    w.ctl.intents.clear()  # as after a restart: nothing in memory
    w.clock.advance(60)
    w.drive()
    assert [c for c in w.aws.the_perf_actions.calls if c[0] == "UpdateStage"] == calls  # never twice


def test_a_stage_step_is_undoable_only_with_what_it_replaced_recorded_for_every_setting_it_asked():
    from opex_operator.ports.performance import StageSettingsParams
    from opex_operator.steps.api_stage import UpdateApiStage, replaced

    asked = StageSettingsParams(rest_api_id="a1b2c3", stage_name="prod", caching_enabled=True, metrics_enabled=True)
    assert not UpdateApiStage().undoable(asked)
    assert not UpdateApiStage().undoable(asked.model_copy(update={"was_caching_enabled": False}))  # metrics unknown
    assert UpdateApiStage().undoable(asked.model_copy(update=replaced(asked, StageConfig("a1b2c3", "api", "prod"))))
    # a cache cluster on with the methods' caching off: one flag cannot set that back, so it is not recorded
    cluster_only = StageConfig("a1b2c3", "api", "prod", cache_cluster_enabled=True)
    assert replaced(asked, cluster_only) == {"was_metrics_enabled": False}
