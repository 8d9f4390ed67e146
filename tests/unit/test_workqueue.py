"""The work queue: one worker per key, dirty re-queue, one timer heap, backoff, priority and fairness."""
from __future__ import annotations

import asyncio

from opex_operator.workqueue import BACKGROUND, Backoff, WorkQueue


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def queue(clock=None) -> WorkQueue:
    return WorkQueue(lambda key: key[0], clock=clock or Clock())


def take(q: WorkQueue, n: int) -> list:
    async def run():
        return [(await q.get())[0] for _ in range(n)]
    return asyncio.run(run())


def test_a_key_added_many_times_is_processed_once_and_never_by_two_workers():
    q = queue()
    for _ in range(5):
        q.add(("ns", "a"))
    [key] = take(q, 1)
    assert key == ("ns", "a") and len(q) == 0
    q.add(("ns", "a"))  # an event while the worker holds it
    assert len(q) == 0, "handed out twice"
    q.done(key)
    assert take(q, 1) == [("ns", "a")]


def test_critical_work_overtakes_a_backlog_and_namespaces_take_turns():
    q = queue()
    for i in range(100):
        q.add(("busy", f"low-{i}"), priority=4)
    q.add(("quiet", "low-x"), priority=4)
    q.add(("prod", "critical"), priority=0)
    first = take(q, 3)
    assert first[0] == ("prod", "critical")
    assert ("quiet", "low-x") in first[1:], "a busy namespace starved a quiet one"


def test_a_worker_chaining_passes_learns_when_more_urgent_work_waits():
    q = queue()
    q.add(("dev", "low"), priority=7)
    [key] = take(q, 1)
    q.add(("dev", "other-low"), priority=7)
    assert not q.waiting_before(7), "work as urgent as the chain's does not interrupt it"
    q.add(("prod", "critical"), priority=0)
    q.remove(("prod", "critical"))
    assert not q.waiting_before(7), "a removed key is not waiting"
    q.add(("prod", "critical"), priority=0)
    assert q.waiting_before(7) and not q.waiting_before(0)
    q.done(key)


def test_timers_fire_in_order_and_an_earlier_deadline_wins():
    clock = Clock()
    q = queue(clock)
    q.add_after(("ns", "late"), 60)
    q.add_after(("ns", "soon"), 10)
    q.add_after(("ns", "soon"), 30)  # later than the one set: ignored
    assert len(q) == 0 and q.waiting == 2
    clock.now += 11
    assert take(q, 1) == [("ns", "soon")]
    clock.now += 50
    assert take(q, 1) == [("ns", "late")]


def test_a_pass_replaces_the_pending_timer_of_its_key():
    clock = Clock()
    q = queue(clock)
    q.add_after(("ns", "a"), 30)
    q.add(("ns", "a"))
    [key] = take(q, 1)
    q.done(key)
    assert q.waiting == 0 and q.next_due(key) is None


def test_failures_back_off_exponentially_per_key_and_success_resets():
    q = WorkQueue(lambda key: key[0], clock=Clock(), backoff=Backoff(base=1, cap=8))
    delays = [q.add_rate_limited(("ns", "a")) for _ in range(5)]
    assert delays == [1, 2, 4, 8, 8]
    q.forget(("ns", "a"))
    assert q.add_rate_limited(("ns", "a")) == 1


def test_a_removed_key_is_never_handed_out():
    q = queue()
    q.add(("ns", "gone"))
    q.add_after(("ns", "gone-later"), 0.5, BACKGROUND)
    q.remove(("ns", "gone"))
    q.remove(("ns", "gone-later"))
    q.add(("ns", "kept"))
    assert take(q, 1) == [("ns", "kept")] and len(q) == 0 and q.waiting == 0


def test_a_waiting_worker_wakes_for_a_new_key_and_on_shutdown():
    async def run():
        q = WorkQueue(lambda key: key[0])
        waiter = asyncio.create_task(q.get())
        await asyncio.sleep(0.01)
        q.add(("ns", "a"))
        key, waited, priority = await asyncio.wait_for(waiter, 1)
        blocked = asyncio.create_task(q.get())
        await asyncio.sleep(0.01)
        q.shutdown()
        try:
            await asyncio.wait_for(blocked, 1)
        except asyncio.CancelledError:
            return key, "cancelled"
        return key, "not cancelled"
    assert asyncio.run(run()) == (("ns", "a"), "cancelled")


def test_a_restart_spreads_objects_it_reconciled_before_and_takes_new_ones_at_once():
    from opex_operator.api import INCIDENT
    from opex_operator.handlers.runtime import Runtime

    class Controller:
        resource, wake_annotations = INCIDENT, ()

        def priority(self, body):
            return 2

    runtime = Runtime({"incidents": Controller()}, kube=None, workers=1, resync_seconds=0, restart_spread=30)
    runtime._tasks = ["started"]  # no workers in this test
    known = {"metadata": {"name": "old", "namespace": "ns", "generation": 3}, "status": {"observedGeneration": 3}}
    changed = {"metadata": {"name": "edited", "namespace": "ns", "generation": 4}, "status": {"observedGeneration": 3}}
    new = {"metadata": {"name": "new", "namespace": "ns", "generation": 1}}
    for body in (known, changed, new):
        runtime.observe("incidents", None, body)  # the listing at start
    assert len(runtime.queue) == 2 and runtime.queue.waiting == 1
    assert 0 <= runtime.queue.next_due(("incidents", "ns", "old")) <= 30
