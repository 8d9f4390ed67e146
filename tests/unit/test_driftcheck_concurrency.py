"""concurrencyPolicy: what happens to a slot that comes while a run is going."""
from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from opex_operator.api.driftcheck import DriftCheckSpec, DriftCheckStatus
from opex_operator.controllers.base import Observed
from opex_operator.controllers.driftcheck import DriftCheckController
from opex_operator.kube import ObjectRef

T0 = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.timezone.utc)


class Recorder:
    def __init__(self):
        self.events = []

    async def save(self, status, events=()):
        self.events += list(events)


def controller(now: dt.datetime) -> DriftCheckController:
    return DriftCheckController(kube=None, terraform="terraform", work_dir=Path("/nonexistent"),
                                cache_dir=Path("/nonexistent"), clock=lambda: now)


def spec(policy: str) -> DriftCheckSpec:
    return DriftCheckSpec.model_validate({"schedule": ["*/5 * * * *"], "concurrencyPolicy": policy,
                                          "timeoutSeconds": 1800, "source": {"configMapRef": {"name": "tf"}}})


def observed(status: DriftCheckStatus) -> Observed:
    return Observed(ObjectRef("driftchecks", "ns", "net", "uid"), 1, {}, {}, {}, status, Recorder(),
                    created_at=T0 - dt.timedelta(days=1))


def test_forbid_skips_the_slot_that_came_during_the_run():
    st = DriftCheckStatus(last_schedule_time=T0)
    obj = observed(st)
    ctl = controller(T0 + dt.timedelta(minutes=7))  # the run took 7 minutes: slot 09:05 came meanwhile
    asyncio.run(ctl._after_run(obj, spec("Forbid")))
    assert st.last_schedule_time == T0 + dt.timedelta(minutes=5)
    assert st.next_schedule_time == T0 + dt.timedelta(minutes=10)
    assert [e[1] for e in obj.recorder.events] == ["SkippedWhileRunning"]


def test_replace_limits_a_run_to_the_next_slot_and_forbid_to_its_timeout():
    st = DriftCheckStatus(next_schedule_time=T0 + dt.timedelta(minutes=5))
    ctl = controller(T0 + dt.timedelta(minutes=1))
    assert ctl._budget(spec("Replace"), st) == (240.0, True)
    assert ctl._budget(spec("Forbid"), st) == (1800.0, False)
