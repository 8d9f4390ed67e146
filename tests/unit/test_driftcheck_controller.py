"""The DriftCheck controller on fakes of Terraform and Kubernetes: runs, reports, resolutions,
locks and schedules, with an injected clock (no real minutes waited)."""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gzip
import json
import random

import pytest

from opex_operator import metrics
from opex_operator.api.driftcheck import DriftCheckStatus
from opex_operator.controllers import drift_report
from opex_operator.controllers.driftcheck import DriftCheckController
from opex_operator.errors import KubeError
from opex_operator.terraform.runner import TerraformError
from opex_operator.policy import Policy
from support.fakes import (TERRAFORM_POLICY, drive, T0, Clock, FakeObjects, FakeWorkspaces, condition, init_failed,
                           observed, plan_doc, result,
                           sink_of)

LOCKED = """\
│ Error: Error acquiring the state lock
│ Lock Info:
│   ID:        0c3f-dead-apply
│   Path:      tfstate/network/terraform.tfstate
│   Operation: OperationTypeApply
│   Who:       ci@runner-7
│   Version:   1.11.4
│   Created:   2026-11-29 07:00:00.000 +0000 UTC
"""


class World:
    def __init__(self, workspaces: FakeWorkspaces, schedule=("0 9 * * *",), clock: Clock | None = None,
                 created: dt.datetime | None = None, name: str = "network", policy: Policy = TERRAFORM_POLICY,
                 namespace: str = "ns", **spec):
        self.ws, self.objects, self.clock = workspaces, FakeObjects(), clock or Clock(T0 + dt.timedelta(minutes=1))
        self.spec = {"schedule": list(schedule), "source": {"configMapRef": {"name": "tf"}}, **spec}
        self.status = DriftCheckStatus()
        self.ctl = DriftCheckController(self.objects, workspaces, policy, clock=self.clock)
        self.objects.config_maps[(namespace, "tf")] = {"data": {"main.tf": ""}, "labels": {}, "binary": {}}
        self.obj = observed(self.status, self.spec, "driftchecks", name=name, namespace=namespace,
                            created_at=created or self.clock.now - dt.timedelta(seconds=10))
        self.requests = 0

    def drive(self) -> float | None:
        return drive(self.ctl, self.obj)

    def run_now(self) -> float | None:
        self.requests += 1
        self.obj.annotations["opex.dev/run-requested"] = f"r{self.requests}"
        return self.drive()

    def approve(self, checksum: str) -> None:
        self.spec["resolution"]["approvedPlanChecksum"] = checksum
        self.obj.generation += 1

    def reasons(self) -> list[str]:
        return sink_of(self.obj).reasons()


def test_a_clean_run_reports_no_drift_and_ready_until_the_next_slot():
    w = World(FakeWorkspaces())
    wait = w.run_now()
    st = w.status
    assert st.last_result.outcome == "NoDrift" and st.last_result.exit_code == 0
    assert condition(st, "Ready").status == "True" and condition(st, "Drifted").reason == "NoDrift"
    assert condition(st, "Reconciling") is None and st.running_since is None
    assert st.report_ref.name.startswith("network-drift-") and ("ns", st.report_ref.name) in w.objects.config_maps
    assert st.next_schedule_time == dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.timezone.utc)
    assert wait == (st.next_schedule_time - w.clock.now).total_seconds()
    assert w.reasons() == ["Scheduled", "RunStarted", "NoDrift"]


def test_drift_waits_for_approval_of_its_checksum_then_the_plan_is_applied_once_and_verified():
    w = World(FakeWorkspaces(plans=[plan_doc(("terraform_data.net", ["update"])), plan_doc()]),
              resolution={"strategy": "Apply"})
    w.run_now()
    planned = w.status.last_result.plan_checksum
    remediating = condition(w.status, "Remediating")
    assert w.status.last_result.outcome == "DriftDetected" and remediating.reason == "AwaitingApproval"
    assert planned in remediating.message and w.ws.calls == ["plan"]
    w.approve(planned)
    w.drive()
    assert w.ws.calls == ["plan", "apply", "plan"]
    assert w.status.last_resolution.outcome == "Succeeded" and w.status.last_result.outcome == "NoDrift"
    assert w.status.last_result.trigger == "verification after Apply"
    w.drive()
    assert w.ws.calls == ["plan", "apply", "plan"]  # nothing runs twice


def test_auto_apply_of_a_plan_that_changes_on_every_run_backs_off_and_stops():
    plans = [plan_doc(("terraform_data.tag", ["update"]), marker=f"t{i}") for i in range(10)]
    w = World(FakeWorkspaces(plans=plans), resolution={"strategy": "Apply", "approval": "Auto"})
    wait = w.run_now()
    assert w.ws.calls.count("apply") == 1 and condition(w.status, "Remediating").reason == "ResolutionBackoff"
    assert 290 <= wait <= 300 and "ResolutionBackoff" in w.reasons()
    for expected_applies, minutes in ((2, 5), (3, 10)):
        w.clock.advance(minutes * 60 + 1)
        w.drive()
        assert w.ws.calls.count("apply") == expected_applies
    w.clock.advance(3600)
    w.drive()
    assert w.ws.calls.count("apply") == 3
    assert "paused" in condition(w.status, "Remediating").message


def test_an_orphaned_lock_is_force_unlocked_once_on_the_second_run_then_checked_again():
    w = World(FakeWorkspaces(plans=[result("plan", 1, stderr=LOCKED), result("plan", 1, stderr=LOCKED), plan_doc()]),
              lock={"forceUnlock": "IfOrphaned", "orphanedAfter": "30m"})
    w.run_now()
    assert w.status.last_result.outcome == "LockHeld" and w.status.lock.seen_count == 1
    ready = condition(w.status, "Ready")
    assert (ready.status, ready.reason) == ("False", "LockHeld") and "0c3f-dead-apply" in ready.message
    assert "the first run after 2026-11-29 09:31:00 UTC that still finds it force-unlocks it" in ready.message
    w.clock.advance(30 * 60)
    w.run_now()
    assert w.ws.calls == ["plan", "plan", "force-unlock 0c3f-dead-apply", "plan"]
    assert w.status.last_result.outcome == "NoDrift" and w.status.lock is None
    assert w.status.last_result.trigger.endswith(", after force-unlock")


def test_a_lock_still_held_after_force_unlock_is_not_unlocked_again():
    w = World(FakeWorkspaces(plans=[result("plan", 1, stderr=LOCKED)]),
              lock={"forceUnlock": "IfOrphaned", "orphanedAfter": "30m"})
    for _ in range(3):
        w.run_now()
        w.clock.advance(31 * 60)
    assert [c for c in w.ws.calls if c.startswith("force-unlock")] == ["force-unlock 0c3f-dead-apply"]
    assert "is not tried again" in condition(w.status, "Checked").message


def test_an_old_lock_seen_by_two_runs_seconds_apart_is_not_force_unlocked():
    """The lock is two hours old by its own clock, but a long CI apply may still hold it: the operator
    must itself have found it held for orphanedAfter."""
    w = World(FakeWorkspaces(plans=[result("plan", 1, stderr=LOCKED)]),
              lock={"forceUnlock": "IfOrphaned", "orphanedAfter": "30m"})
    for _ in range(3):
        w.run_now()
        w.clock.advance(3)
    assert w.status.lock.seen_count == 3 and not [c for c in w.ws.calls if c.startswith("force-unlock")]
    assert w.status.lock.last_seen_at - w.status.lock.first_seen_at == dt.timedelta(seconds=6)
    w.clock.advance(30 * 60)
    w.run_now()
    assert "force-unlock 0c3f-dead-apply" in w.ws.calls


def test_a_new_driftcheck_waiting_for_its_first_slot_is_ready_and_the_first_check_then_speaks_for_it():
    """Set up and waiting is healthy (kstatus Current: a Flux Kustomization with wait: true
    must not time out on it); once a run is recorded, Checked decides Ready."""
    w = World(FakeWorkspaces(plans=[plan_doc()]))
    assert w.drive() > 0 and w.ws.calls == []
    ready, scheduled = condition(w.status, "Ready"), condition(w.status, "Scheduled")
    assert (ready.status, ready.reason) == ("True", "Scheduled") and ready.message == scheduled.message
    assert scheduled.message.startswith("first check at 2026-11-30 09:00 UTC")
    w.run_now()
    assert condition(w.status, "Scheduled") is None and condition(w.status, "Ready").reason == "Checked"


def test_a_first_pass_recorded_by_an_older_operator_as_checked_unknown_becomes_scheduled():
    w = World(FakeWorkspaces())
    w.drive()
    w.status.conditions = [c.model_copy(update={"type": "Checked", "status": "Unknown"})
                           for c in w.status.conditions if c.type == "Scheduled"]
    w.obj.generation += 1
    w.drive()
    assert condition(w.status, "Checked") is None and condition(w.status, "Ready").status == "True"
    assert condition(w.status, "Scheduled").message.startswith("first check at")


BROKEN = TerraformError("terraform init failed", result("init", 1, stderr="""\
╷
│ Error: Unclosed configuration block
│
│   on main.tf line 20, in resource "terraform_data" "x":
│   20: resource "terraform_data" "x" {
│
│ There is no closing brace for this block before the end of the file.
╵
"""))


def test_a_configuration_that_cannot_plan_is_stalled_until_a_run_works_and_runs_go_on():
    """Flux's convention (a build that cannot succeed is Stalled): kstatus reads it as Failed, not
    InProgress. A spec-valid pass does not clear it; only a run does."""
    w = World(FakeWorkspaces(plans=[plan_doc()]))
    w.ws.open_error = BROKEN
    wait = w.run_now()
    stalled, ready = condition(w.status, "Stalled"), condition(w.status, "Ready")
    assert (stalled.status, stalled.reason) == ("True", "InitFailed") and "main.tf" in stalled.message
    assert (ready.status, ready.reason) == ("False", "InitFailed") and ready.message == stalled.message
    assert wait == (w.status.next_schedule_time - w.clock.now).total_seconds()  # the schedule goes on
    w.obj.generation += 1  # e.g. a label change: the spec is valid, the configuration still broken
    w.drive()
    assert condition(w.status, "Stalled").status == "True"
    w.ws.open_error = None  # fixed in the source
    w.clock.advance(60)
    w.run_now()
    assert condition(w.status, "Stalled") is None and condition(w.status, "Ready").status == "True"


def test_a_failure_that_names_no_configuration_file_is_not_stalled():
    w = World(FakeWorkspaces())
    w.ws.open_error = init_failed()  # a backend that cannot be reached: it may work next time
    w.run_now()
    assert condition(w.status, "Stalled") is None and condition(w.status, "Ready").status == "False"


def test_a_failed_init_is_plan_failed_with_the_diagnostic_and_the_schedule_goes_on():
    w = World(FakeWorkspaces())
    w.ws.open_error = init_failed()
    w.run_now()
    ready = condition(w.status, "Ready")
    assert w.status.last_result.outcome == "PlanFailed" and (ready.status, ready.reason) == ("False", "InitFailed")
    assert "Failed to get existing workspaces" in ready.message and "next scheduled run still happens" in ready.message
    assert condition(w.status, "Drifted").status == "Unknown" and w.status.consecutive_failures == 1


def test_a_slot_missed_while_the_operator_was_down_runs_once_even_across_a_restart():
    clock = Clock(T0 + dt.timedelta(seconds=30))
    w = World(FakeWorkspaces(), schedule=("*/5 * * * *",), clock=clock, created=T0 - dt.timedelta(days=1))
    w.drive()
    assert w.status.last_result.trigger == "schedule 2026-11-29T09:00Z"
    clock.advance(11 * 60)  # down through 09:05 and 09:10
    w.drive()
    assert w.status.last_result.trigger == "schedule 2026-11-29T09:10Z" and w.ws.calls == ["plan", "plan"]
    restarted = DriftCheckController(w.objects, w.ws, TERRAFORM_POLICY, clock=clock)
    asyncio.run(restarted.reconcile(w.obj))
    assert w.ws.calls == ["plan", "plan"]
    assert [r for r in w.reasons() if r == "RunStarted"] == ["RunStarted", "RunStarted"]


def test_import_of_addresses_already_in_the_state_is_skipped_and_not_retried():
    w = World(FakeWorkspaces(plans=[plan_doc(("terraform_data.dns", ["update"]))], state=["terraform_data.dns"]),
              resolution={"strategy": "Import", "approval": "Auto",
                          "imports": [{"address": "terraform_data.dns", "id": "Z1"}]})
    w.run_now()
    w.drive()
    assert w.status.last_resolution.outcome == "Skipped" and condition(w.status, "Remediating").reason == "NothingToDo"
    assert not [c for c in w.ws.calls if c.startswith("import")]


def test_metrics_count_driftchecks_by_result_and_environment_without_a_series_per_object():
    labels = {"result": "DriftDetected", "environment": "production"}
    before = metrics.REGISTRY.get_sample_value("opex_driftchecks", labels) or 0
    drifted = {"action": "delete", "environment": "production"}
    drifted_before = metrics.REGISTRY.get_sample_value("opex_driftcheck_drifted_resources", drifted) or 0
    w = World(FakeWorkspaces(plans=[plan_doc(("terraform_data.a", ["create"]), ("terraform_data.b", ["delete"]))]),
              name="metered", environment="production")
    w.run_now()
    assert metrics.REGISTRY.get_sample_value("opex_driftchecks", labels) == before + 1
    assert metrics.REGISTRY.get_sample_value("opex_driftcheck_drifted_resources", drifted) == drifted_before + 1
    names = {tuple(sorted(s.labels)) for f in metrics.REGISTRY.collect() if f.name.startswith("opex_driftcheck")
             for s in f.samples}
    assert not any("driftcheck" in n or "namespace" in n or "name" in n for n in names)
    w.ctl.forget(w.obj.ref)
    assert metrics.REGISTRY.get_sample_value("opex_driftchecks", labels) == before
    assert metrics.REGISTRY.get_sample_value("opex_driftcheck_drifted_resources", drifted) == drifted_before


def test_a_check_that_missed_two_slots_counts_as_overdue_until_it_runs_again(monkeypatch):
    def overdue() -> float:
        return metrics.REGISTRY.get_sample_value("opex_driftchecks_overdue", {"environment": "staging"}) or 0

    before = overdue()
    # Hourly; created at 09:00:50, so the slots are 10:00 and 11:00; the deadline adds the run timeout (30 s).
    w = World(FakeWorkspaces(plans=[plan_doc()] * 3), schedule=("0 * * * *",), name="hourly", environment="staging",
              timeoutSeconds=30, created=T0 + dt.timedelta(seconds=50))
    w.drive()
    deadline = T0 + dt.timedelta(hours=2, seconds=30)
    monkeypatch.setattr(metrics.DRIFTCHECKS_OVERDUE, "clock", (deadline - dt.timedelta(seconds=1)).timestamp)
    assert overdue() == before
    monkeypatch.setattr(metrics.DRIFTCHECKS_OVERDUE, "clock", deadline.timestamp)
    assert overdue() == before + 1
    w.clock.now = deadline  # the operator is back: the 11:00 slot runs and the deadline moves on
    w.drive()
    assert w.status.last_result.started_at == deadline
    assert overdue() == before
    w.ctl.forget(w.obj.ref)


def test_a_suspended_check_is_never_overdue(monkeypatch):
    w = World(FakeWorkspaces(), schedule=("* * * * *",), name="paused", environment="paused-env", suspend=True)
    w.drive()
    monkeypatch.setattr(metrics.DRIFTCHECKS_OVERDUE, "clock", (T0 + dt.timedelta(days=30)).timestamp)
    assert not metrics.REGISTRY.get_sample_value("opex_driftchecks_overdue", {"environment": "paused-env"})


def drifted_status(checksum: str, runner: str | None, outcome: str = "Running") -> DriftCheckStatus:
    from opex_operator.api.driftcheck import ResolutionRecord, RunResult

    return DriftCheckStatus(
        last_schedule_time=T0, observed_generation=1,
        last_result=RunResult(outcome="DriftDetected", plan_checksum=checksum, finished_at=T0, trigger="on demand"),
        last_resolution=ResolutionRecord(strategy="Apply", plan_checksum=checksum, outcome=outcome, time=T0,
                                         runner=runner))


def test_an_apply_left_running_by_a_dead_operator_is_never_applied_again_without_a_new_approval_even_under_auto():
    from opex_operator.terraform.plan import checksum

    plan = plan_doc(("terraform_data.net", ["update"]))
    w = World(FakeWorkspaces(plans=[plan]), resolution={"strategy": "Apply", "approval": "Auto"})
    w.status = w.obj.status = drifted_status(checksum(plan, w.ws.plan_inputs), runner="old-pod/1/1")
    w.drive()
    reasons = w.reasons()
    assert "ResolutionInterrupted" in reasons and reasons.index("ResolutionInterrupted") < reasons.index("RunStarted")
    # The plan after it is the same, but a provisioner may have run: nothing is applied again by itself.
    assert w.ws.calls == ["plan"]
    done = w.status.last_resolution
    assert done.outcome == "Interrupted" and "outcome is unknown" in done.message
    new = w.status.last_result.plan_checksum
    assert new != checksum(plan, w.ws.plan_inputs)   # no approval given before the interruption matches it
    waiting = condition(w.status, "Remediating")
    assert waiting.reason == "AwaitingApproval" and "outcome is unknown" in waiting.message and new in waiting.message
    summary, _ = report_of(w)
    assert summary["afterInterruptedApply"]["planChecksum"] == checksum(plan, w.ws.plan_inputs)
    w.drive()
    assert w.ws.calls == ["plan"]   # still waiting: Auto is not an approval after an unknown outcome
    w.approve(new)
    w.drive()
    assert w.ws.calls == ["plan", "apply", "plan"] and w.status.last_resolution.outcome == "Succeeded"
    assert w.status.interrupted_apply is None


def test_an_apply_interrupted_midway_is_not_repeated_on_a_plan_that_changed_under_manual_approval():
    from opex_operator.terraform.plan import checksum

    old = plan_doc(("terraform_data.net", ["update"]))
    new = plan_doc(("terraform_data.net", ["update"]), marker="half applied")
    w = World(FakeWorkspaces(plans=[new]),
              resolution={"strategy": "Apply", "approvedPlanChecksum": checksum(old, FakeWorkspaces().plan_inputs)})
    w.status = w.obj.status = drifted_status(checksum(old, w.ws.plan_inputs), runner="old-pod/1/1")
    w.drive()
    assert w.status.last_resolution.outcome == "Interrupted" and w.ws.calls == ["plan"]
    remediating = condition(w.status, "Remediating")
    assert remediating.reason == "AwaitingApproval" and w.status.last_result.plan_checksum in remediating.message


def test_a_plan_run_left_by_a_dead_operator_runs_again():
    w = World(FakeWorkspaces())
    w.status = w.obj.status = DriftCheckStatus(observed_generation=1, running_since=T0, running_trigger="schedule x",
                                               runner="old-pod/1/1", last_schedule_time=T0)
    w.drive()
    assert "Interrupted" in w.reasons() and w.ws.calls == ["plan"]
    assert w.status.running_since is None and w.status.last_result.trigger == "schedule x, again after an interruption"


def stopped_midway(w: World) -> str:
    """Request a run and cancel its pass 50 ms in, as the operator stopping does; "cancelled" when
    the pass let the cancellation through."""
    w.obj.annotations["opex.dev/run-requested"] = "r1"

    async def stop_midway():
        task = asyncio.create_task(w.ctl.reconcile(w.obj))
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return "finished"

    return asyncio.run(stop_midway())


def test_a_run_cut_short_by_the_operator_stopping_says_so_and_is_owed():
    import asyncio as aio

    class Hanging(FakeWorkspaces):
        async def open(self, *args, **kwargs):
            await aio.sleep(3600)

    w = World(Hanging())
    assert stopped_midway(w) == "cancelled"
    assert sink_of(w.obj).patches[0]["runningSince"]  # on record as started while the workspace opened
    assert condition(w.status, "Checked").reason == "Interrupted" and w.status.running_since is None
    assert w.status.pending_run.endswith("again after an interruption")
    assert sink_of(w.obj).patches[-1]["pendingRun"]  # written before the operator went


def many(n: int, value=lambda i: "new") -> dict:
    """A plan that creates ``n`` terraform_data resources (``value(i)`` as each one's input)."""
    return {"format_version": "1.2", "terraform_version": "1.11.4", "resource_changes": [
        {"address": f"terraform_data.r[{i}]", "mode": "managed", "type": "terraform_data", "name": "r", "index": i,
         "change": {"actions": ["create"], "before": None, "after": {"input": value(i)}}} for i in range(n)]}


def report_of(w: World) -> tuple[dict, dict]:
    cm = w.objects.config_maps[("ns", w.status.report_ref.name)]
    return json.loads(cm["data"]["summary.json"]), cm["binary"]


def test_a_plan_of_10000_changes_gets_a_report_within_a_config_map_with_complete_counts():
    w = World(FakeWorkspaces(plans=[many(10_000)]))
    w.run_now()
    st = w.status
    report, binary = report_of(w)
    assert st.last_result.outcome == "DriftDetected" and st.last_result.add == 10_000 and st.drifted_count == 10_000
    assert len(st.drifted_resources) == 100 and condition(st, "Checked").status == "True"
    summary = report["summary"]
    assert summary["add"] == 10_000 and summary["truncated"]["changes"]["total"] == 10_000
    assert 0 < len(summary["changes"]) == summary["truncated"]["changes"]["listed"] < 10_000
    assert summary["changes"][0]["address"] == "terraform_data.r[0]" and summary["note"].startswith("…[truncated]")
    assert len(json.dumps(report, indent=2)) <= drift_report.SUMMARY_BYTES + 1024
    assert report["planIncluded"] and st.report_ref.summary_truncated and not st.report_ref.truncated
    plan = json.loads(gzip.decompress(base64.b64decode(binary["plan.json.gz"])))
    assert len(plan["resource_changes"]) == 10_000  # every resource is in the report's plan


def test_a_plan_too_large_for_a_config_map_is_left_in_the_workspace_and_the_report_says_where():
    rng = random.Random(11)
    w = World(FakeWorkspaces(plans=[many(10_000, lambda i: "%0160x" % rng.getrandbits(640))]))
    w.run_now()
    st = w.status
    report, binary = report_of(w)
    assert binary == {} and report["planIncluded"] is False
    assert report["planFile"] == st.report_ref.plan_file == "/var/lib/opex/work/ns/x/check/drift.tfplan"
    assert st.report_ref.truncated and "does not fit in a ConfigMap" in report["note"]
    drifted = condition(st, "Drifted")
    assert drifted.reason == "DriftDetected" and st.report_ref.plan_file in drifted.message
    assert st.last_result.plan_checksum in drifted.message


def test_a_refused_report_write_keeps_the_previous_run_whole_and_the_run_is_repeated():
    w = World(FakeWorkspaces(plans=[plan_doc(), plan_doc(("terraform_data.net", ["update"]))]),
              resolution={"strategy": "Apply"})
    w.run_now()
    before = w.status.model_copy(deep=True)
    w.objects.fail_put = KubeError(403, "Forbidden", 'configmaps is forbidden: User "opex" cannot create resource '
                                                    '"configmaps"', "put_config_map")
    with pytest.raises(KubeError):
        w.run_now()
    st = w.status
    assert st.last_result == before.last_result and st.report_ref == before.report_ref
    assert condition(st, "Drifted") == condition(before, "Drifted") and st.drifted_count == 0
    checked = condition(st, "Checked")
    assert (checked.status, checked.reason) == ("False", "ReportWriteFailed")
    assert "HTTP 403 Forbidden" in checked.message and "DriftDetected" in checked.message
    assert "\n" not in checked.message and "HTTP response headers" not in checked.message
    assert st.pending_run and "ReportWriteFailed" in w.reasons()
    assert condition(st, "Remediating") is None  # nobody is asked to approve a plan without a report
    w.objects.fail_put = None
    w.drive()  # the runtime's retry after its backoff: the run is repeated and recorded whole
    assert st.last_result.outcome == "DriftDetected" and st.pending_run is None
    assert st.last_result.trigger.endswith("again: its report could not be written")
    assert ("ns", st.report_ref.name) in w.objects.config_maps and condition(st, "Checked").status == "True"
    assert st.last_result.plan_checksum in condition(st, "Remediating").message


def test_a_run_request_is_answered_once_nothing_more_follows_at_once():
    """opex run driftcheck waits for answeredRunRequest: after an Auto apply, the answer is the verification run."""
    w = World(FakeWorkspaces(plans=[plan_doc(("terraform_data.net", ["update"])), plan_doc()]),
              resolution={"strategy": "Apply", "approval": "Auto"})
    w.obj.annotations["opex.dev/run-requested"] = "r1"
    answered = []
    while True:
        delay = asyncio.run(w.ctl.reconcile(w.obj))
        last = w.status.last_result
        answered.append((last.outcome.value if last else None, w.status.answered_run_request))
        if delay != 0.0:
            break
    # A run is one pass; the apply is the next; the verification run's pass answers (it waits then).
    assert answered == [("DriftDetected", None), ("DriftDetected", None), ("NoDrift", "r1")]
    assert w.ws.calls == ["plan", "apply", "plan"]


def test_a_run_request_is_answered_in_the_write_of_its_result():
    w = World(FakeWorkspaces())
    w.obj.annotations["opex.dev/run-requested"] = "r1"
    assert asyncio.run(w.ctl.reconcile(w.obj)) not in (0.0, None)  # one pass: nothing more at once
    started, done = sink_of(w.obj).patches
    assert started["runningSince"] and started["lastRunRequest"] == "r1" and "lastResult" not in started
    assert done["lastResult"]["outcome"] == "NoDrift" and done["answeredRunRequest"] == "r1"
    assert done["runningSince"] is None


def test_no_plan_runs_when_the_run_cannot_be_put_on_record():
    class Refusing:
        async def patch(self, patch):
            raise KubeError(503, "ServiceUnavailable", "etcdserver: request timed out")

        def event(self, *args):
            pass

    w = World(FakeWorkspaces())
    w.obj.annotations["opex.dev/run-requested"] = "r1"
    w.obj.recorder.sink = Refusing()
    with pytest.raises(KubeError):
        asyncio.run(w.ctl.reconcile(w.obj))
    assert w.ws.calls == [] and w.status.last_result is None


def test_a_run_whose_opening_runs_the_plan_is_on_record_before_it_opens():
    """A Job runner's open runs the plan, named after the started record: that write comes first."""
    seen = []

    class PlansInOpen(FakeWorkspaces):
        def opens_by_reading(self, spec, grant, purpose=""):
            return False

        async def open(self, *args, **kwargs):
            seen.append([dict(p) for p in sink_of(w.obj).patches])
            return await super().open(*args, **kwargs)

    w = World(PlansInOpen())
    w.run_now()
    assert len(seen[0]) == 1 and seen[0][0]["runningSince"] and w.status.last_result.outcome == "NoDrift"


def test_the_resolution_it_acts_under_is_in_status():
    w = World(FakeWorkspaces(), resolution={"stratgy": "Apply", "approval": "Auto"})  # misspelt: ReportOnly
    w.run_now()
    assert (w.status.resolution.strategy, w.status.resolution.approval) == ("ReportOnly", "Auto")


def test_a_suspended_driftcheck_says_so_from_its_first_message():
    w = World(FakeWorkspaces(), suspend=True)
    assert w.drive() is None and w.ws.calls == []
    scheduled = condition(w.status, "Scheduled")
    assert (scheduled.status, scheduled.reason) == ("True", "Scheduled") and w.status.next_schedule_time is None
    assert scheduled.message.startswith("suspended: no scheduled check") and "first check" not in scheduled.message
    assert sink_of(w.obj).events[0][2] == scheduled.message and condition(w.status, "Checked") is None


def test_what_checked_says_about_the_schedule_follows_suspend():
    w = World(FakeWorkspaces(plans=[plan_doc(), init_failed()]))
    w.run_now()
    assert condition(w.status, "Checked").message.endswith("next 2026-11-30 09:00 UTC")
    w.spec["suspend"] = True
    w.obj.generation += 1
    w.drive()
    checked = condition(w.status, "Checked")
    assert checked.message == "last check 2026-11-29 09:01:00 UTC; suspended: no scheduled check"
    assert checked.reason == "Checked" and w.status.next_schedule_time is None
    w.ws.open_error = init_failed()
    w.run_now()
    assert condition(w.status, "Checked").message.endswith("(failed 1 runs in a row; suspended: no scheduled run)")
    w.spec["suspend"] = False
    w.obj.generation += 1
    w.drive()
    assert condition(w.status, "Checked").message.endswith("the next scheduled run still happens)")


def test_approval_is_no_longer_asked_for_once_the_drift_is_gone():
    w = World(FakeWorkspaces(plans=[plan_doc(("terraform_data.net", ["update"])), plan_doc()]),
              resolution={"strategy": "Apply"})
    w.run_now()
    assert condition(w.status, "Remediating").reason == "AwaitingApproval"
    w.run_now()  # someone fixed it by hand: no drift, nothing to approve
    assert w.status.last_result.outcome == "NoDrift" and condition(w.status, "Remediating") is None


def test_a_run_that_outlasts_its_slot_names_the_next_slot_after_it():
    class SlowPlans(FakeWorkspaces):
        async def open(self, namespace, name, spec, timeout, grant, purpose="", **kw):
            session = await super().open(namespace, name, spec, timeout, grant, purpose, **kw)
            plan = session.plan

            async def slow(lock_timeout, json_stream=False):
                w.clock.advance(7 * 60)  # the plan takes 7 minutes: the 09:05 slot comes meanwhile
                return await plan(lock_timeout, json_stream)
            session.plan = slow
            return session

    w = World(SlowPlans(), schedule=("*/5 * * * *",), clock=Clock(T0 + dt.timedelta(seconds=30)),
              created=T0 - dt.timedelta(days=1))
    w.drive()
    assert w.status.last_result.trigger == "schedule 2026-11-29T09:00Z"
    assert w.status.next_schedule_time == T0 + dt.timedelta(minutes=10)
    assert condition(w.status, "Checked").message.endswith("next 2026-11-29 09:10 UTC")


def test_an_unfinished_run_speaks_in_checked_over_the_previous_runs_result_until_a_new_result():
    from opex_operator.api.driftcheck import RunResult, UnfinishedRun

    w = World(FakeWorkspaces())
    st = w.status
    st.observed_generation, st.consecutive_failures, st.pending_run = 1, 1, "schedule x, again after an interruption"
    st.last_result = RunResult(outcome="PlanFailed", trigger="schedule x", finished_at=T0, message="boom")
    st.unfinished_run = UnfinishedRun(reason="Interrupted", message="the operator is stopping: the plan was interrupted",
                                      time=T0)
    w.drive()
    checkpoint = sink_of(w.obj).patches[0]  # written as the owed run starts
    checked = next(c for c in checkpoint["conditions"] if c["type"] == "Checked")
    assert (checked["reason"], checked["message"]) == ("Interrupted", "the operator is stopping: the plan was interrupted")


DENIED_LOCK = """\
│ Error: Error acquiring the state lock
│ 
│ Error message: operation error DynamoDB: PutItem, https response error StatusCode: 400, RequestID: Q3P4,
│ api error AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/opex/drift is not authorized
│ to perform: dynamodb:PutItem on resource: arn:aws:dynamodb:us-east-1:123456789012:table/terraform-locks
"""


def test_a_lock_the_operator_may_not_write_is_a_failed_plan_naming_the_permission_not_a_held_lock():
    w = World(FakeWorkspaces(plans=[result("plan", 1, stderr=DENIED_LOCK)]),
              lock={"forceUnlock": "IfOrphaned", "orphanedAfter": "30m"})
    w.run_now()
    assert w.status.last_result.outcome == "PlanFailed" and w.status.lock is None
    checked = condition(w.status, "Checked")
    assert checked.reason == "PlanFailed" and "dynamodb:PutItem denied to arn:aws:sts::123456789012" in checked.message
    assert not [c for c in w.ws.calls if c.startswith("force-unlock")]


def test_an_auto_plan_that_fails_a_gate_is_not_applied_until_a_person_approves_it():
    w = World(FakeWorkspaces(plans=[plan_doc(("aws_db_instance.main", ["delete", "create"])), plan_doc()]),
              resolution={"strategy": "Apply", "approval": "Auto", "gates": {"denyActions": ["replace"]}})
    w.run_now()
    held = condition(w.status, "Remediating")
    assert held.reason == "GateFailed" and "replace of aws_db_instance.main" in held.message
    assert [f.gate for f in w.status.last_result.gate_failures] == ["denyActions"]
    w.drive()
    assert w.ws.calls == ["plan"] and "GateFailed" in w.reasons()
    w.approve(w.status.last_result.plan_checksum)
    w.drive()
    assert w.ws.calls == ["plan", "apply", "plan"]


def test_the_policys_gates_hold_an_auto_plan_the_resource_does_not_gate():
    policy = Policy.model_validate({"rules": [{"namespaces": ["*"], "actions": ["terraform:*"],
                                               "terraform": {"backends": [{"type": "s3"}]},
                                               "gates": {"maxChangedResources": 1}}]})
    w = World(FakeWorkspaces(plans=[plan_doc(("terraform_data.a", ["update"]), ("terraform_data.b", ["update"]))]),
              policy=policy, resolution={"strategy": "Apply", "approval": "Auto", "gates": {"maxChangedResources": 5}})
    w.run_now()
    held = condition(w.status, "Remediating")
    assert held.reason == "GateFailed" and "2 resources changed, at most 1 allowed" in held.message
    assert "operator policy rule" in held.message and w.ws.calls == ["plan"]


def test_past_the_limit_an_auto_apply_waits_with_circuit_open_and_an_approved_one_is_never_held():
    from opex_operator.guardrails.breaker_store import BreakerStore
    from test_circuit_breaker import FakeLeases

    policy = Policy.model_validate({"rules": [{"namespaces": ["*"], "actions": ["terraform:*"],
                                               "terraform": {"backends": [{"type": "s3"}]},
                                               "limits": {"automatedChangesPerHour": 1}}]})
    plans = [plan_doc(("terraform_data.net", ["update"]), marker=m) for m in ("a", "a2", "b", "b2", "c", "c2")]
    w = World(FakeWorkspaces(plans=[plans[0], plan_doc(), plans[2], plans[4], plan_doc()]), policy=policy,
              resolution={"strategy": "Apply", "approval": "Auto"})
    w.ctl.breaker = BreakerStore(FakeLeases(), "opex-system", clock=w.clock)
    w.run_now()
    assert w.ws.calls == ["plan", "apply", "plan"]  # the first automated change of the hour
    wait = w.run_now()
    assert w.ws.calls.count("apply") == 1
    assert condition(w.status, "CircuitOpen").status == "True" and "CircuitOpen" in w.reasons()
    assert condition(w.status, "Remediating").reason == "CircuitOpen"
    assert 3500 <= wait <= 3600  # when the hour frees a place
    w.approve(w.status.last_result.plan_checksum)  # a person approves this plan: it runs, uncounted
    w.drive()
    assert w.ws.calls.count("apply") == 2


def test_an_auto_apply_the_breaker_admits_carries_no_circuit_condition():
    from opex_operator.guardrails.breaker_store import BreakerStore
    from test_circuit_breaker import FakeLeases

    w = World(FakeWorkspaces(plans=[plan_doc(("terraform_data.net", ["update"])), plan_doc()]),
              resolution={"strategy": "Apply", "approval": "Auto"})
    w.ctl.breaker = BreakerStore(FakeLeases(), "opex-system", clock=w.clock)
    w.run_now()
    assert w.ws.calls == ["plan", "apply", "plan"] and condition(w.status, "CircuitOpen") is None


def test_an_auto_import_its_gates_deny_waits_for_approval():
    w = World(FakeWorkspaces(plans=[plan_doc(("terraform_data.net", ["create"]))]),
              resolution={"strategy": "Import", "approval": "Auto", "gates": {"denyActions": ["import"]},
                          "imports": [{"address": "terraform_data.net", "id": "net-1"}]})
    w.run_now()
    held = condition(w.status, "Remediating")
    assert held.reason == "GateFailed" and "import of terraform_data.net" in held.message
    assert "import" not in w.ws.calls and "state_list" not in w.ws.calls


# -- the source checked while Terraform plans ------------------------------------------------------

def test_a_plan_of_the_exported_revision_stands_when_the_source_did_not_move():
    w = World(FakeWorkspaces(plans=[plan_doc(("terraform_data.net", ["update"]))]))
    w.run_now()
    assert w.ws.opens == ["source checked later"] and w.ws.calls == ["plan"]
    assert w.ws.sessions[0].check == "asked"
    assert w.status.last_result.source_revision == "abc123" and w.status.last_result.outcome == "DriftDetected"
    report, _ = report_of(w)
    assert report["sourceRevision"] == "abc123"


def test_a_source_that_moved_while_it_was_planned_is_planned_again_and_reports_the_new_revision():
    w = World(FakeWorkspaces(plans=[plan_doc(), plan_doc(("terraform_data.net", ["update"]))], remote="def456"))
    w.run_now()
    assert w.ws.opens == ["source checked later", "source checked first"] and w.ws.calls == ["plan", "plan"]
    st = w.status
    assert st.last_result.source_revision == "def456"
    assert st.last_result.outcome == "DriftDetected" and st.drifted_count == 1   # the new revision's plan, not the first
    report, _ = report_of(w)
    assert report["sourceRevision"] == "def456" and report["planChecksum"] == st.last_result.plan_checksum
    assert "NoDrift" not in w.reasons()   # the thrown-away plan said nothing
    assert len([n for (_, n) in w.objects.config_maps if n.startswith("network-drift-")]) == 1


def test_a_source_git_cannot_answer_for_is_planned_again_checked_first():
    from opex_operator.ports.terraform import SourceError

    w = World(FakeWorkspaces(source_check_error=SourceError("SourceUnavailable", "git is not installed")))
    w.run_now()
    st = w.status
    assert w.ws.opens == ["source checked later"] and w.ws.calls == ["plan"]
    assert st.last_result.reason == "SourceUnavailable" and "git is not installed" in st.last_result.message
    assert st.report_ref is None and condition(st, "Drifted").status == "Unknown"


def test_resolutions_and_unlocks_check_the_source_before_terraform_runs():
    w = World(FakeWorkspaces(plans=[plan_doc(("terraform_data.net", ["update"])), plan_doc()]),
              resolution={"strategy": "Apply"})
    w.run_now()
    w.ws.remote = "def456"    # the remote moved after the plan that was approved
    w.approve(w.status.last_result.plan_checksum)
    w.drive()
    by_action = list(zip([g.action for g in w.ws.grants], w.ws.opens))
    assert by_action[:2] == [("terraform:Plan", "source checked later"), ("terraform:Apply", "source checked first")]
    assert all(how == "source checked first" for action, how in by_action if action != "terraform:Plan")
    assert w.ws.sessions[1].revision == "def456" and w.ws.sessions[1].remote is None   # nothing left running


def test_a_source_check_left_running_is_cancelled_when_the_plan_times_out():
    w = World(FakeWorkspaces(plans=[result("plan", None)], remote="def456", source_check_seconds=3600))
    w.run_now()
    assert w.ws.calls == ["plan"] and w.ws.opens == ["source checked later"]   # no budget left for a second
    assert w.ws.sessions[0].check == "cancelled" and w.status.last_result.outcome == "PlanFailed"


def test_a_source_check_left_running_is_cancelled_when_reading_the_plan_fails():
    class Unreadable(FakeWorkspaces):
        async def open(self, *args, **kwargs):
            session = await super().open(*args, **kwargs)

            async def show_plan():
                raise TerraformError("terraform show failed", result("show", 1, stderr="Error: bad plan"))
            session.show_plan = show_plan
            return session

    w = World(Unreadable(plans=[plan_doc(("terraform_data.net", ["update"]))], source_check_seconds=3600))
    w.run_now()
    assert w.ws.sessions[0].check == "cancelled" and w.status.last_result.outcome == "PlanFailed"


def test_a_source_check_left_running_is_cancelled_when_the_operator_stops_during_the_plan():
    import asyncio as aio

    class Hanging(FakeWorkspaces):
        async def open(self, *args, **kwargs):
            session = await super().open(*args, **kwargs)

            async def plan(lock_timeout, json_stream=False):
                await aio.sleep(3600)
            session.plan = plan
            return session

    w = World(Hanging(source_check_seconds=3600))
    assert stopped_midway(w) == "cancelled"
    assert w.ws.sessions[0].check == "cancelled" and condition(w.status, "Checked").reason == "Interrupted"


def test_a_plan_of_a_revision_the_remote_no_longer_names_is_stopped_at_once_not_awaited():
    import asyncio as aio

    class FirstHangs(FakeWorkspaces):
        async def open(self, *args, **kwargs):
            session = await super().open(*args, **kwargs)
            if len(self.sessions) == 1:
                async def plan(lock_timeout, json_stream=False):
                    self.calls.append("plan of the old revision")
                    await aio.sleep(3600)   # e.g. it reads a remote state that never answers
                session.plan = plan
            return session

    w = World(FirstHangs(plans=[plan_doc(("terraform_data.net", ["update"]))], remote="def456"))
    w.run_now()
    assert w.ws.calls == ["plan of the old revision", "plan"]
    assert w.ws.opens == ["source checked later", "source checked first"]
    assert w.status.last_result.source_revision == "def456" and w.status.last_result.outcome == "DriftDetected"
