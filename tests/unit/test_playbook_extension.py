"""A new incident type and a new step action plug in without touching any module of the operator:
a playbook of its own (what it gathers through the ports, how it assesses and plans) and an
action of its own (params, execute, observe, holds), each registered, driven through the real
Incident controller on fakes from detection to a verified resolution."""
from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from opex_operator import playbooks, steps
from opex_operator.api.incident import (FindingSeverity, IncidentSpec, IncidentStatus, RootCause,
                                        RootCauseCategory as Cat, Step, accept_incident_type)
from opex_operator.controllers.incident import IncidentController
from opex_operator.playbooks import Assessment, Context, Gathered, Playbook
from opex_operator.playbooks.diagnose import Diagnosis
from opex_operator.ports.facts import FunctionState, Observations
from opex_operator.policy import Policy
from opex_operator.steps import Held, Outcome, Params, StepAction, StepContext
from support.builders import SHA1
from support.fakes import Clock, FakeAws, FakeObjects, FakeReader, FakeWorkspaces, IncidentWorld, condition, observed

TOY = "ToyIncident"
RECYCLE = "toy:RecycleWorkers"
MARK = "OPEX_RECYCLED"


class RecycleParams(Params):
    """recycle-<fn>: the function's workers recycled by touching its environment."""

    function_name: str


class RecycleWorkers(StepAction[RecycleParams]):
    """Sets a marker variable (Lambda starts new execution environments on a configuration change);
    a no-op when it is set. Holds while the marker is there."""

    names = (RECYCLE,)
    params = RecycleParams
    calls = 0

    async def execute(self, ctx: StepContext, p: RecycleParams) -> Outcome:
        lam = ctx.aws.lambda_(*ctx.region_role())
        current = await asyncio.to_thread(lam.current, p.function_name)
        if current.environment.get(MARK):
            return Outcome(done=True, outputs=f"{p.function_name} was recycled already")
        type(self).calls += 1
        await asyncio.to_thread(lam.set_environment, p.function_name, {MARK: "1"}, current.environment)
        return Outcome(done=True, outputs=f"recycled {p.function_name}", undo=f"remove {MARK} from {p.function_name}")

    def observe(self, ctx: StepContext, p: RecycleParams) -> FunctionState:
        return ctx.aws.lambda_(*ctx.region_role()).current(p.function_name)

    def holds(self, step: Step, p: RecycleParams, seen: FunctionState) -> list[Held]:
        if seen.environment.get(MARK):
            return [Held(True, f"{p.function_name} runs on recycled workers")]
        return [Held(False, f"{p.function_name} lost its {MARK} marker")]


class ToyPlaybook(Playbook):
    """Stuck workers: reads each named function's state through the Lambda port, finds the ones
    whose last update failed, and plans a recycle of each."""

    types = (TOY,)

    async def gather_more(self, ctx: Context, obs: Observations) -> Any:
        t = ctx.spec.targets
        lam = ctx.aws.lambda_(t.region, t.role_key)
        names = t.lambda_.function_names if t.lambda_ else []
        return [await asyncio.to_thread(lam.current, n) for n in names]

    def assess_more(self, spec: IncidentSpec, g: Gathered, d: Diagnosis, now: dt.datetime) -> Assessment | None:
        stuck = [f for f in g.own if f.environment.get("STUCK")]
        refs = [d.add(f"stuck:{f.name}", "Lambda", f"function/{f.name}", FindingSeverity.ERROR,
                      f"{f.name} has stuck workers") for f in stuck]
        cause = RootCause(category=Cat.LAMBDA_FUNCTION_ERROR if stuck else Cat.UNKNOWN, identified_at=now,
                          summary=f"stuck workers in {', '.join(f.name for f in stuck) or 'no function'}",
                          evidence=refs)
        return Assessment(d, cause, steps=[steps.step(f"recycle-{steps.slug(f.name)}", RECYCLE,
                                                      RecycleParams(function_name=f.name), f"recycle {f.name}")
                                           for f in stuck])


@pytest.fixture
def toy():
    accept_incident_type(TOY)
    action, playbook = steps.register(RecycleWorkers()), playbooks.register(ToyPlaybook())
    RecycleWorkers.calls = 0
    yield
    steps.unregister(action)
    playbooks.unregister(playbook)


class World(IncidentWorld):
    def __init__(self, mode: str = "Auto"):
        self.aws = FakeAws(FakeReader())
        self.aws.the_lambda.add("worker", [SHA1], environment={"STUCK": "yes"})
        self.clock = Clock()
        policy = Policy.model_validate({"rules": [{"namespaces": ["*"], "actions": ["toy:*"]}]})
        self.ctl = IncidentController(self.aws, FakeObjects(), FakeWorkspaces(), policy, webhook=None, clock=self.clock)
        self.status = IncidentStatus()
        self.obj = observed(self.status, {"type": TOY, "severity": "medium", "title": "workers stuck",
                                          "environment": "staging", "remediation": {"mode": mode},
                                          "targets": {"lambda": {"functionNames": ["worker"]}}}, "incidents",
                            name="toy")


def test_a_new_type_and_action_are_assessed_planned_run_once_and_verified_through_the_lifecycle(toy):
    w = World()
    w.drive()
    st = w.status
    assert st.root_cause.category == Cat.LAMBDA_FUNCTION_ERROR and "worker" in st.root_cause.summary
    assert [s.id for s in st.steps] == ["assess", "classify", "recycle-worker", "verify", "notify-resolved"]
    recycle = w.step("recycle-worker")
    assert recycle.state == "Succeeded" and recycle.mutating and recycle.undo == f"remove {MARK} from worker"
    assert st.phase == "Resolved" and condition(st, "Remediated").reason == "Verified"
    assert "worker runs on recycled workers" in condition(st, "Remediated").message
    assert RecycleWorkers.calls == 1 and w.aws.the_lambda.functions["worker"].environment[MARK] == "1"


def test_a_new_action_waits_for_approval_in_manual_mode_like_any_other(toy):
    w = World(mode="Manual")
    w.drive()
    assert w.status.phase == "AwaitingApproval" and w.step("recycle-worker").state == "AwaitingApproval"
    assert RecycleWorkers.calls == 0


def test_a_type_without_a_playbook_is_refused_by_name():
    with pytest.raises(LookupError, match="no playbook for incident type Nope"):
        playbooks.playbook_for("Nope")
