"""The Rollback controller's moves on fakes: capture, change once, verify, finish — and every stop says
what was and was not changed."""
from __future__ import annotations

import asyncio
import threading
import time

from opex_operator.api.rollback import RollbackStatus, RollbackStepState as State
from opex_operator.aws.budget import Budget, counting
from opex_operator.aws.clients import POOL_CONNECTIONS
from opex_operator.controllers.rollback import COPY_CONCURRENCY, RollbackController, run_batch
from opex_operator.policy import Policy
from opex_operator.ports.facts import ObjectInfo
from support.fakes import drive, Clock, FakeAws, FakeObjects, aws_error, condition, observed, sink_of

ALL = Policy.model_validate({"rules": [{"namespaces": ["*"], "actions": ["lambda:*", "s3:*", "cloudfront:*"]}]})


class World:
    def __init__(self, spec: dict, policy: Policy = ALL):
        self.aws, self.objects, self.clock = FakeAws(), FakeObjects(), Clock()
        self.ctl = RollbackController(self.aws, self.objects, policy, clock=self.clock)
        self.status = RollbackStatus()
        self.obj = observed(self.status, spec, "rollbacks", name="rb")

    def drive(self) -> float | None:
        return drive(self.ctl, self.obj)

    def until_done(self, passes: int = 20) -> None:
        for _ in range(passes):
            if self.status.phase in ("Succeeded", "Failed", "Aborted"):
                return
            self.drive()
        raise AssertionError(f"still {self.status.phase}")

    def ready(self):
        return condition(self.status, "Ready")


def lambda_spec(**extra) -> dict:
    return {"lambda": {"functionName": "pricing-api", "to": {"previous": True}, **extra}, "approval": "Auto"}


def test_lambda_goes_back_to_the_previous_version_once_and_is_verified():
    w = World(lambda_spec())
    w.aws.the_lambda.add("pricing-api", ["s1", "s2", "s3"])
    w.aws.the_lambda.settle_after = 2  # the update takes two reads to settle
    w.until_done()
    st = w.status
    assert st.phase == "Succeeded" and w.aws.the_lambda.mutations() == [("UpdateFunctionCode", "pricing-api", "2")]
    assert (st.from_.description, st.to.description) == ("v3 = $LATEST (s3…)", "v2 (s2…)")
    assert {c.type: c.status for c in st.conditions} == {"Ready": "True", "RolledBack": "True"}
    assert [(s.id, s.state) for s in st.steps] == [("capture", State.SUCCEEDED), ("apply", State.SUCCEEDED),
                                                   ("verify", State.SUCCEEDED)]
    for reason in ("InProgress", "Captured", "Verifying", "Verified", "RolledBack"):
        assert reason in sink_of(w.obj).reasons()


def test_a_restart_after_the_call_does_not_call_again():
    w = World(lambda_spec())
    w.aws.the_lambda.add("pricing-api", ["s1", "s2"])
    w.aws.the_lambda.settle_after = 5
    w.drive()  # the update was issued; now verifying
    assert w.status.phase == "Verifying"
    apply = next(s for s in w.status.steps if s.id == "apply")
    apply.state = State.RUNNING  # as if the operator died after the call, before recording its end
    restarted = World(lambda_spec())
    restarted.aws, restarted.status = w.aws, w.status
    restarted.ctl = RollbackController(w.aws, restarted.objects, ALL, clock=w.clock)
    restarted.obj = observed(w.status, lambda_spec(), "rollbacks", name="rb")
    restarted.until_done()
    assert w.aws.the_lambda.mutations() == [("UpdateFunctionCode", "pricing-api", "1")]
    assert next(s for s in w.status.steps if s.id == "apply").state == State.SKIPPED


def test_a_function_without_an_earlier_version_fails_and_changes_nothing():
    w = World(lambda_spec())
    w.aws.the_lambda.add("pricing-api", ["s1"])
    w.until_done()
    assert w.status.phase == "Failed" and w.ready().reason == "NoPreviousVersion"
    assert "nothing was changed" in w.ready().message and w.aws.the_lambda.mutations() == []


def test_manual_approval_waits_then_a_spec_change_lets_it_run():
    w = World({**lambda_spec(), "approval": "Manual"})
    w.aws.the_lambda.add("pricing-api", ["s1", "s2"])
    assert w.drive() is None and w.status.phase == "AwaitingApproval"
    assert w.ready().status == "False" and "spec.approved: true" in w.ready().message
    w.obj.spec["approved"] = True
    w.until_done()
    assert w.status.phase == "Succeeded"


def site(objects: int, changed: int, extra: int) -> tuple[FakeAws, dict]:
    aws = FakeAws()
    backup = {f"backups/d1/f{i}.html": ObjectInfo(f"e{i}", 10) for i in range(objects)}
    live = {f"f{i}.html": ObjectInfo(f"x{i}" if i < changed else f"e{i}", 10) for i in range(objects)}
    live.update({f"stale{i}.js": ObjectInfo("s", 1) for i in range(extra)})
    aws.the_site.buckets["www"] = {**backup, **live}
    aws.the_site.distributions.add("E123")
    spec = {"staticSite": {"bucket": "www", "backupPrefix": "backups/d1/", "deleteExtraneous": True,
                           "cloudFront": {"distributionId": "E123"}}, "approval": "Auto"}
    return aws, spec


def test_static_site_copies_in_batches_deletes_invalidates_and_verifies():
    aws, spec = site(objects=450, changed=420, extra=3)
    w = World(spec)
    w.aws = w.ctl.aws = aws
    w.until_done()
    st = w.status
    assert st.phase == "Succeeded", st.message
    assert len(aws.the_site.copies) == 420 == len(set(aws.the_site.copies))  # three batches, nothing twice
    assert sorted(aws.the_site.deletes) == ["stale0.js", "stale1.js", "stale2.js"]
    assert (st.progress.copied, st.progress.unchanged, st.progress.deleted) == (420, 30, 3)
    assert st.invalidation.id == "I1" and len(aws.the_site.invalidations) == 1
    assert ("ns", "rb-from") in w.objects.config_maps
    assert "Copied" in sink_of(w.obj).reasons() and "InvalidationCreated" in sink_of(w.obj).reasons()


def test_abort_between_batches_stops_copying_and_says_what_was_restored():
    aws, spec = site(objects=500, changed=500, extra=0)
    w = World(spec)
    w.aws = w.ctl.aws = aws
    for _ in range(3):  # start, capture, the first batch
        asyncio.run(w.ctl.reconcile(w.obj))
    copied = len(aws.the_site.copies)
    assert 0 < copied < 500
    w.obj.spec["abort"] = True
    w.until_done()
    assert w.status.phase == "Aborted" and len(aws.the_site.copies) == copied
    assert w.ready().reason == "AbortRequested"
    assert f"restored {copied} of 500 differing objects" in w.status.message and "ConfigMap rb-from" in w.status.message
    apply = next(s for s in w.status.steps if s.id == "apply")
    assert apply.state == State.SKIPPED and apply.message.endswith("stopped (AbortRequested)")


def test_a_throttled_copy_is_retried_and_a_denied_one_ends_the_rollback_with_progress():
    aws, spec = site(objects=10, changed=10, extra=0)
    w = World(spec)
    w.aws = w.ctl.aws = aws
    aws.the_site.fail_copy = aws_error("s3", "SlowDown", "CopyObject", 503)
    assert w.drive() == 5.0 and w.status.phase == "InProgress"
    assert "Retrying" in sink_of(w.obj).reasons()
    aws.the_site.fail_copy = aws_error("s3", "AccessDenied", "CopyObject", 403)
    w.until_done()
    assert w.status.phase == "Failed" and w.ready().reason == "AccessDenied"
    assert "restored 0 of 10 differing objects" in w.ready().message


def test_dry_run_reports_the_plan_is_ready_and_changes_nothing():
    aws, spec = site(objects=12, changed=4, extra=2)
    w = World({**spec, "dryRun": True})
    w.aws = w.ctl.aws = aws
    w.until_done()
    assert w.status.phase == "Succeeded" and aws.the_site.copies == [] and aws.the_site.deletes == []
    assert "would copy 4 objects (8 unchanged), delete 2 not in the backup" in w.status.message
    assert condition(w.status, "RolledBack").status == "False" and w.ready().status == "True"


def test_an_action_outside_policy_fails_before_anything_is_read():
    aws, spec = site(objects=3, changed=3, extra=0)
    w = World(spec, policy=Policy.model_validate({"rules": [{"namespaces": ["*"], "actions": ["s3:PutObject"]}]}))
    w.aws = w.ctl.aws = aws
    w.until_done()
    assert w.status.phase == "Failed" and w.ready().reason == "PolicyDenied"
    assert "s3:DeleteObject" in w.ready().message and aws.the_site.copies == []


def test_the_approval_and_dry_run_it_acts_under_are_in_status():
    w = World({**lambda_spec(), "approval": "Manual", "dryrun": True})  # misspelt: ignored, so not a dry run
    w.aws.the_lambda.add("pricing-api", ["s1", "s2"])
    w.drive()
    assert (w.status.approval, w.status.dry_run, w.status.phase) == ("Manual", False, "AwaitingApproval")


def test_rolled_back_and_planned_are_derived_from_the_typed_status_of_the_rollback():
    from opex_operator.api.common import ConditionStatus as CS
    from opex_operator.api.rollback import RollbackPhase, RollbackStatus
    from opex_operator.runbooks import rollback as rb

    waiting = RollbackStatus(phase=RollbackPhase.AWAITING_APPROVAL, target="lambda:checkout")
    assert rb.conditions(waiting) == {"RolledBack": (CS.FALSE, "AwaitingApproval", rb.approval_text("lambda:checkout"))}
    assert rb.conditions(RollbackStatus(phase=RollbackPhase.IN_PROGRESS)) == {}  # under way: Reconciling speaks
    done = RollbackStatus(phase=RollbackPhase.SUCCEEDED, reason="RolledBack", message="runs v2")
    assert rb.conditions(done) == {"RolledBack": (CS.TRUE, "RolledBack", "runs v2"), "Planned": None}
    planned = RollbackStatus(phase=RollbackPhase.SUCCEEDED, reason="DryRun", message="dry run: would copy 3")
    assert rb.conditions(planned) == {"RolledBack": (CS.FALSE, "DryRun", "dry run: would copy 3"),
                                      "Planned": (CS.TRUE, "DryRun", "dry run: would copy 3")}
    aborted = RollbackStatus(phase=RollbackPhase.ABORTED, reason="AbortRequested", message="restored 2 of 5")
    assert rb.conditions(aborted)["RolledBack"] == (CS.FALSE, "AbortRequested", "restored 2 of 5")


def test_a_failing_copy_in_a_batch_keeps_the_others_completions_and_ends_the_rollback():
    aws, spec = site(objects=10, changed=10, extra=0)
    fail = aws_error("s3", "AccessDenied", "CopyObject", 403)
    copy = aws.the_site.copy

    def copy_but_f9(source_bucket, source_key, bucket, key):
        if key == "f9.html":
            raise fail
        copy(source_bucket, source_key, bucket, key)

    aws.the_site.copy = copy_but_f9
    w = World(spec)
    w.aws = w.ctl.aws = aws
    w.until_done()
    assert w.status.phase == "Failed" and w.ready().reason == "AccessDenied"
    assert sorted(aws.the_site.copies) == sorted(f"f{i}.html" for i in range(9))
    assert w.status.progress.copied == 9 and "restored 9 of 10 differing objects" in w.ready().message
    apply = next(s for s in w.status.steps if s.id == "apply")
    assert apply.state == State.FAILED and apply.message == "copying: 9 of 10 done; stopped (AccessDenied)"


def test_a_batch_keeps_at_most_its_bound_of_copies_in_flight_and_counts_each():
    active, peak, lock = [0], [0], threading.Lock()
    together = threading.Barrier(4, timeout=10)  # the first four pass only when four run at once

    def work(item: int) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        if item < 4:
            together.wait()
        time.sleep(0.002)
        with lock:
            active[0] -= 1

    assert run_batch(work, range(40), seconds=60, concurrency=4) == (40, None)
    assert peak[0] == 4


def test_a_batch_starts_no_copy_after_its_deadline_and_waits_for_those_in_flight():
    now, started, go = [0.0], [], threading.Event()

    def work(item: int) -> None:
        started.append(item)
        assert go.wait(10)

    result: list = []
    batch = threading.Thread(target=lambda: result.append(
        run_batch(work, range(20), seconds=5, concurrency=4, clock=lambda: now[0])))
    batch.start()
    for _ in range(1000):
        if len(started) == 4:
            break
        time.sleep(0.01)
    now[0] = 5.1  # past the deadline while four are in flight
    go.set()
    batch.join(10)
    assert result == [(4, None)] and sorted(started) == [0, 1, 2, 3]


def test_a_batch_stops_starting_copies_after_one_fails_and_returns_its_error():
    fail, calls = aws_error("s3", "InternalError", "CopyObject", 500), []

    def work(item: str) -> None:
        calls.append(item)
        if item == "b":
            raise fail
        time.sleep(0.05)

    done, error = run_batch(work, list("abcdefgh"), seconds=60, concurrency=3)
    assert error is fail and {"a", "c"} <= set(calls) and len(calls) < 8
    assert done == len(calls) - 1  # every copy that completed, beside the failed one


def test_the_copies_of_a_batch_are_counted_against_the_aws_budget_of_its_caller():
    """Each copy runs in a copy of the caller's context, where the budget's counter (and its
    background share) live."""
    budget = Budget()
    with counting() as calls:
        run_batch(lambda _: budget.acquire("s3", "CopyObject", "us-east-1"), range(6), seconds=60, concurrency=3)
    assert calls.calls == 6


def test_a_batch_never_has_more_copies_in_flight_than_an_s3_client_keeps_connections():
    assert COPY_CONCURRENCY <= POOL_CONNECTIONS
