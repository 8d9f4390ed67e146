"""Reconcile a DriftCheck: one move of ``runbooks.drift.decide`` per pass, through the Terraform port.

A run is one pass with two status writes. The first puts it on record as started; the source is
fetched, the variables written and ``init`` run meanwhile (they read only), and Terraform starts
only once that write is done. Then ``plan -detailed-exitcode -out`` with a lock timeout under a
hard run timeout, the saved plan's JSON read, a report ConfigMap the DriftCheck owns written, and
the result recorded (``runbooks.drift.judge`` says what the run's facts mean) in the second write,
with the next move when it calls nothing outside the operator (a wait: the request is answered in
the same write). Resolving drift (apply the approved plan, refresh-only, import), force-unlocking
an orphaned lock and verifying a resolution are moves of their own, decided afresh on the next pass.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import ValidationError

from .. import metrics, schedule
from ..api import DRIFTCHECK
from ..api.common import ConditionStatus, EventType, now as utcnow
from ..api.conditions import RECONCILING, STALLED, apply, get, mark, remove, set_condition
from ..api.driftcheck import (CHANGES_ANNOTATION, CHECKED, DRIFTED, MAX_CHANGES, OUT_OF_BAND_CHANGE, REMEDIATING,
                              SCHEDULED, MAX_DRIFTED, RUN_ANNOTATION, SPEC_STALLS, DriftCheckSpec, DriftCheckStatus,
                              DriftedResource, ForceUnlock, InterruptedApply, ObservedLock, Outcome, ReportRef,
                              Approval, ResolutionOutcome, ResolutionPolicy, ResolutionRecord, ResolutionStrategy, ResourceChange,
                              RunResult, UnfinishedReason, UnfinishedRun)
from ..api.common import StateLock
from ..errors import KubeError
from ..guardrails import gates
from ..api.gates import MAX_GATE_FAILURES, GateFailureRecord
from ..api.guardrails import BREAKER_RESET_ANNOTATION
from ..ports.breaker import Breaker
from ..ports.objects import ObjectRef, label_value
from ..ports import Objects, TerraformSession, Workspaces
from ..policy import Policy
from ..process import IDENTITY
from ..redaction import Scrubber
from ..runbooks import drift, trail_changes
from ..runbooks.drift import Decision, Move
from ..terraform.locks import LockProblem, parse_lock_error
from ..terraform.plan import (PlanFormatError, PlanSummary, checksum, configuration_file, diagnostics_text,
                              parse_show_json, parse_stream, provisioners)
from ..ports.terraform import TerraformError
from ..ports.terraform import SourceError
from . import drift_report, guard_rails
from .base import Event, Observed
from .common import Pass, spec_error

log = logging.getLogger(__name__)

SOURCE_RECHECK = 60.0   # seconds between checks of a source ConfigMap that does not exist
# The operator policy's action for each thing Terraform is run for (policy.Policy.check_terraform).
PLAN, APPLY, IMPORT, FORCE_UNLOCK = "terraform:Plan", "terraform:Apply", "terraform:Import", "terraform:ForceUnlock"
# Moves that only record (conditions, Events, a skipped slot): decided after a run, they go in its write.
QUIET_MOVES = (Move.WAIT, Move.AWAIT_APPROVAL, Move.BACK_OFF)
RESOLUTION_ACTIONS = {ResolutionStrategy.APPLY: APPLY, ResolutionStrategy.REFRESH_ONLY: APPLY,
                      ResolutionStrategy.IMPORT: IMPORT}


class DriftCheckController:
    """The DriftCheck reconciler (``controllers.base.Controller``)."""

    resource = DRIFTCHECK
    wake_annotations: tuple[str, ...] = (RUN_ANNOTATION, CHANGES_ANNOTATION, BREAKER_RESET_ANNOTATION)

    def __init__(self, objects: Objects, workspaces: Workspaces, policy: Policy,
                 clock: Callable[[], dt.datetime] = utcnow, breaker: Breaker | None = None):
        self.objects, self.workspaces, self.policy, self.clock = objects, workspaces, policy, clock
        self.breaker = breaker

    def priority(self, body: dict) -> int:
        """Drift checks are scheduled background work: after every Incident and Rollback."""
        return 9

    async def finalize(self, ref: ObjectRef) -> None:
        """Remove the DriftCheck's run directories (its saved plans and Terraform data)."""
        await asyncio.to_thread(self.workspaces.discard, ref.namespace, ref.name)

    def forget(self, ref: ObjectRef) -> None:
        for gauge in (metrics.DRIFTCHECKS, metrics.DRIFTED_RESOURCES, metrics.STATE_LOCKS_HELD,
                      metrics.DRIFTCHECKS_OVERDUE):
            gauge.forget(ref.uid)

    async def reconcile(self, obj: Observed[DriftCheckStatus]) -> float | None:
        """One move (see the module docstring); seconds until the next pass, or None."""
        st, gen = obj.status, obj.generation
        try:
            spec = DriftCheckSpec.model_validate(obj.spec)
        except ValidationError as err:
            await self._stalled(obj, "InvalidSpec", spec_error(err))
            return None
        now = self.clock()
        created = obj.created_at or now
        problem = schedule.invalid(spec.schedule, spec.time_zone)
        if problem:
            await self._stalled(obj, "InvalidSchedule", problem)
            return None
        pass_ = _Pass(self, obj, spec, created)
        pass_.note_interrupted()

        def decide(at: dt.datetime) -> Decision:
            """The move the status asks for now (the CloudTrail changes it has not answered yet)."""
            changes = trail_changes.pending(trail_changes.change_records(obj.annotations.get(CHANGES_ANNOTATION)),
                                            st.answered_change)
            return drift.decide(spec, st, at, created, obj.annotations.get(RUN_ANNOTATION), changes)

        d = decide(now)
        st.next_schedule_time = None if spec.suspend else schedule.next_slot(spec.schedule, spec.time_zone, now)
        st.resolution = ResolutionPolicy(strategy=spec.resolution.strategy, approval=spec.resolution.approval)
        if (stalled := get(st.conditions, STALLED)) is not None and stalled.reason in SPEC_STALLS:
            remove(st.conditions, STALLED)  # the spec is valid again; a configuration's stall ends with a run
        missing = await pass_.missing_source()
        if st.observed_generation is None:
            first = drift.progress_conditions(spec, st)[SCHEDULED]
            if first is not None:
                pass_.event("Scheduled", first[2])
        st.observed_generation = gen
        log.debug("DriftCheck %s: %s", obj.ref.key, d.move)
        requeue = await pass_.carry_out(d)
        if d.move == Move.RUN and requeue == 0:
            # What follows a run, decided on the status it leaves: a move that calls nothing outside
            # the operator is carried out now and goes in the run's own write (no pass, no write of
            # its own); the others are the next pass's.
            after = decide(self.clock())
            if after.move in QUIET_MOVES:
                d, requeue = after, await pass_.carry_out(after)
        if requeue is None:  # nothing more at once: the last request has its final answer
            st.answered_run_request = st.last_run_request
        await pass_.save()
        await pass_.pruned()
        metrics.DRIFTCHECKS_OVERDUE.track(obj.ref.uid, (spec.environment or "",), drift.overdue_at(spec, st, created))
        if requeue is not None:
            return requeue
        if missing:  # no event says when it is created: look again soon
            return SOURCE_RECHECK
        if d.until is not None:
            return max(1.0, (d.until - self.clock()).total_seconds())
        if st.next_schedule_time is None:
            return None
        return max(1.0, (st.next_schedule_time - self.clock()).total_seconds())

    async def _stalled(self, obj: Observed[DriftCheckStatus], reason: str, message: str) -> None:
        st = obj.status
        changed = set_condition(st.conditions, STALLED, ConditionStatus.TRUE, reason, message, obj.generation)
        st.observed_generation, st.next_schedule_time = obj.generation, None
        await obj.recorder.save(st, [Event(EventType.WARNING, reason, message)] if changed else [])


@dataclass
class _Ran:
    """What a plan left for the report and the checksum: the saved plan's JSON (only when there are
    changes), its file, and the digests its checksum covers besides (``TerraformSession.plan_inputs``)."""

    doc: dict[str, Any] | None = None
    plan_file: str = ""
    inputs: dict[str, str] = field(default_factory=dict)
    # the prior state's ids when the plan found no change (spec.triggers.cloudTrail), for the intake to match calls to
    managed: list[trail_changes.ManagedResource] | None = None
    held: float = 0.0   # seconds the workspace, ready, waited for the started checkpoint (not the run's own)


class _Pass(Pass):
    """One reconcile pass over one DriftCheck: carries out one decision and records it."""

    def __init__(self, ctl: DriftCheckController, obj: Observed[DriftCheckStatus], spec: DriftCheckSpec,
                 created: dt.datetime):
        super().__init__(obj)
        self.ctl, self.spec, self.created = ctl, spec, created
        self.scrub = Scrubber(())   # the values of the Secrets the run read, once a workspace is open
        self.session: TerraformSession | None = None
        self.seen_change: str | None = None  # the newest CloudTrail change recorded when this pass's run started
        self.pruning: asyncio.Future | None = None  # the old reports' removal, alongside the result's write

    async def save(self, checkpoint: bool = True) -> None:
        """The checkpoint: Scheduled and Checked derived, then every value read from a Secret masked
        in status and Events."""
        self.derive()
        if self.scrub:
            clean = type(self.st).model_validate(self.scrub(self.st.model_dump(mode="json", by_alias=True,
                                                                               exclude_none=True)))
            for name in type(self.st).model_fields:
                setattr(self.st, name, getattr(clean, name))
            self.events = [e._replace(message=self.scrub.text(e.message)) for e in self.events]
        await super().save(checkpoint)

    async def pruned(self) -> None:
        """Wait for the old reports' removal started by :meth:`succeeded` (if any)."""
        if self.pruning is not None:
            pruning, self.pruning = self.pruning, None
            await pruning

    async def missing_source(self) -> bool:
        """A ``configMapRef`` source that does not exist is Stalled at once (not Ready), from the
        first pass, rather than only when the first run fails hours later. True when missing."""
        ref = self.spec.source.config_map_ref
        if ref is None:
            return False
        ns = self.obj.ref.namespace
        if await asyncio.to_thread(self.ctl.objects.config_map_data, ns, ref.name) is not None:
            if (stalled := get(self.st.conditions, STALLED)) is not None and stalled.reason == "SourceUnavailable":
                remove(self.st.conditions, STALLED)
            return False
        text = (f"ConfigMap {ref.name} (spec.source.configMapRef) does not exist in namespace {ns}: create it (it "
                f"is looked for again every {SOURCE_RECHECK:.0f}s)")
        if self.condition(STALLED, ConditionStatus.TRUE, "SourceUnavailable", text):
            self.event("SourceUnavailable", text, warning=True)
        return True

    def note_interrupted(self) -> None:
        """Work another operator process recorded as started and never finished was interrupted:
        record it so (never as running, never as done) and owe a run that re-reads the real state.

        A plan changes nothing, so it simply runs again. A resolution is Interrupted and the new
        plan shows what is left: a refresh-only or an import is safe to repeat; an apply's outcome
        is unknown (a provisioner may have run), so ``status.interruptedApply`` is recorded and
        nothing is applied again without a new approval (``runbooks.drift.decide``)."""
        st = self.st
        if st.running_since is not None and st.runner != IDENTITY:
            text = (f"the run started at {st.running_since:%Y-%m-%d %H:%M:%S} UTC ({st.running_trigger}) by operator "
                    f"{st.runner or '(unknown)'} never finished (that process stopped); a plan changes nothing, "
                    f"so it runs again")
            st.unfinished_run = UnfinishedRun(reason=UnfinishedReason.INTERRUPTED, message=text, time=self.ctl.clock())
            self.event("Interrupted", text, warning=True)
            st.pending_run = f"{st.running_trigger or 'a run'}, again after an interruption"
            st.running_since = st.running_trigger = st.runner = None
        done = st.last_resolution
        if done is not None and done.outcome == ResolutionOutcome.RUNNING and done.runner != IDENTITY:
            self.resolution_interrupted(f"operator {done.runner or '(unknown)'} stopped during it")

    def resolution_interrupted(self, why: str) -> None:
        st, done = self.st, self.st.last_resolution
        if done.strategy == ResolutionStrategy.APPLY:
            text = (f"Apply of plan {done.plan_checksum} was interrupted ({why}); its outcome is unknown: changes may "
                    f"be partly made and provisioners may have run. Nothing is applied again without a new "
                    f"approval: the next plan shows what is left")
            st.interrupted_apply = InterruptedApply(plan_checksum=done.plan_checksum or "", time=self.ctl.clock(),
                                                    message=text)
        else:
            text = (f"{done.strategy.value} of plan {done.plan_checksum} was interrupted ({why}); it is safe to "
                    f"repeat: a new plan shows what is left")
        st.last_resolution = done.model_copy(update={"outcome": ResolutionOutcome.INTERRUPTED, "message": text,
                                                     "time": self.ctl.clock(), "runner": None})
        self.condition(REMEDIATING, ConditionStatus.FALSE, "Interrupted", text)
        self.event("ResolutionInterrupted", text, warning=True)
        metrics.DRIFT_RESOLUTIONS.labels(done.strategy.value, "interrupted").inc()
        st.pending_run = f"after an interrupted {done.strategy.value}"
        st.resolution_attempts = max(0, st.resolution_attempts - 1)  # not an attempt that failed to converge

    def derive(self) -> None:
        """Set Scheduled and Checked as the typed status makes them (``runbooks.drift.progress_conditions``):
        before every status write, so no move writes them and none can leave them stale."""
        apply(self.st.conditions, drift.progress_conditions(self.spec, self.st), self.gen)

    async def carry_out(self, d: Decision) -> float | None:
        """Carry out one decision; seconds until the next pass (0: at once), or None for the schedule's."""
        match d.move:
            case Move.RUN:
                if not d.started:  # else the checkpoint is written already (a pass before, whose chain broke)
                    self.start_run(d)
                await self.run(d, checkpoint=not d.started)
                return 0.0
            case Move.FORCE_UNLOCK:
                await self.force_unlock()
                return 0.0
            case Move.RESOLVE:
                held = await self.circuit_held()
                if held is not None:
                    return held or None
                await self.resolve()
                return 0.0
            case Move.AWAIT_APPROVAL:
                if self.condition(REMEDIATING, ConditionStatus.FALSE, d.reason, d.message):
                    self.event(d.reason, d.message, warning=d.reason != "AwaitingApproval")
            case Move.BACK_OFF:
                if self.condition(REMEDIATING, ConditionStatus.FALSE, "ResolutionBackoff", d.message):
                    self.event("ResolutionBackoff", d.message, warning=True)
            case Move.WAIT:
                waiting = get(self.st.conditions, REMEDIATING)
                if waiting is not None and waiting.reason in ("AwaitingApproval", "CircuitOpen", "GateFailed",
                                                              "ResolutionBackoff"):
                    remove(self.st.conditions, REMEDIATING)  # the plan it waited for is no longer the last run's
                if d.skipped is not None:
                    self.st.last_schedule_time = d.skipped
                    self.event("MissedSchedule", f"slot {d.skipped:%Y-%m-%d %H:%M} UTC missed by more than "
                                                 f"startingDeadlineSeconds ({self.spec.starting_deadline_seconds}s); "
                                                 f"next run {self.st.next_schedule_time:%Y-%m-%d %H:%M} UTC"
                                                 if self.st.next_schedule_time else "", warning=True)
                elif d.slot is not None:  # suspended: the slot passes without a run
                    self.st.last_schedule_time = d.slot
        return None

    async def circuit_held(self) -> float | None:
        """Ask the circuit breaker before a resolution no person approved (approval Auto): None when it
        may run (counted before it runs), else seconds until the hour frees a place (0: only a person, by
        approving the plan or ``opex breaker reset``). A resolution a person approved is never counted
        nor held. A breaker that cannot be read holds (fail closed) and asks again in a minute."""
        r, ref, planned = self.spec.resolution, self.obj.ref, self.st.last_result.plan_checksum
        if self.ctl.breaker is None or r.approval != Approval.AUTO or r.approved_plan_checksum == planned:
            guard_rails.approved(self, f"plan {planned}")
            return None
        now = self.ctl.clock()
        admission = await guard_rails.ask(self.ctl.breaker, self.ctl.policy, ref.namespace, self.spec.environment,
                                          f"DriftCheck/{ref.name}/{planned}", now)
        wait = guard_rails.record(self, admission, now)
        if wait is None:
            return None
        message = admission.message
        self.condition(REMEDIATING, ConditionStatus.FALSE, "CircuitOpen",
                       f"{message}; or set spec.resolution.approvedPlanChecksum to {planned} to apply it now")
        return wait

    async def open(self, timeout: float, action: str, check_source_later: bool = False) -> TerraformSession:
        """The workspace, ready for ``action`` under the operator policy (checked before any
        Terraform runs; ``check_source_later``: ``ports.Workspaces.open``, a plan's only); raises
        SourceError (PolicyRefused among them) or TerraformError."""
        ref = self.obj.ref
        grant = self.ctl.policy.terraform_grant(ref.namespace, action, self.spec.workspace)
        session = await self.ctl.workspaces.open(ref.namespace, ref.name, self.spec, timeout, grant,
                                                 check_source_later=check_source_later)
        self.scrub, self.session = Scrubber(session.secret_values), session
        return session

    def plan_inputs(self, session: TerraformSession) -> dict[str, str]:
        """What a plan's checksum covers besides its JSON: the session's digests and, after an
        interrupted apply, that apply (so no approval given before it matches a plan made after)."""
        inputs = session.plan_inputs()
        if self.st.interrupted_apply is not None:
            done = self.st.interrupted_apply
            inputs["interruptedApply"] = f"{done.plan_checksum}@{done.time.isoformat()}"
        return inputs

    def gate_result(self, doc: dict[str, Any] | None) -> gates.GateResult:
        """What the resolution would do against the gates in force (the operator policy's for this
        namespace and environment, then spec.resolution.gates, which can only add to them): the saved
        plan ``doc`` for an Apply, the imports of spec.resolution.imports for an Import."""
        ref, spec = self.obj.ref, self.spec
        in_force = gates.merge(*self.ctl.policy.gate_layers(ref.namespace, spec.environment),
                               gates.Layer("spec.resolution.gates", spec.resolution.gates))
        if spec.resolution.strategy == ResolutionStrategy.IMPORT:
            return gates.evaluate([gates.import_change(e.address) for e in spec.resolution.imports], in_force)
        return gates.evaluate_plan(parse_show_json(doc or {}), in_force, spec.ignore)

    def gates_refuse(self, planned: str, doc: dict[str, Any] | None) -> str | None:
        """Why a resolution no person approved may not run now (the gates or the policy changed since
        the plan was checked); None when a person approved it or it passes."""
        if self.spec.resolution.approved_plan_checksum == planned or (held := self.gate_result(doc)).passed:
            return None
        return f"approval Auto does not run it: it fails {held.message()}; nothing was changed"

    def refused_provisioners(self, doc: dict[str, Any]) -> str | None:
        """Why the plan ``doc`` may not be applied here: its configuration has provisioners and the
        operator policy's ``terraform.allowProvisioners`` is false (None otherwise)."""
        found = provisioners(doc)
        rule = self.ctl.policy.terraform(self.obj.ref.namespace)
        if not found or rule.allow_provisioners:
            return None
        return (f"the configuration has provisioners ({', '.join(found[:5])}), which run commands inside the "
                f"operator's pod, and the operator policy (terraform.allowProvisioners: false) forbids them in "
                f"namespace {self.obj.ref.namespace}")

    # -- a run ------------------------------------------------------------------------------------
    def start_run(self, d: Decision) -> None:
        """Put the run on record as started (:meth:`run` writes it before any Terraform runs), so a
        restart never runs its slot or request again (and the run left unfinished is run again)."""
        st = self.st
        if d.request is not None:
            st.last_run_request = d.request
        if d.slot is not None:
            st.last_schedule_time = d.slot
        if d.answers is not None:  # likewise: these changes are answered by this run, interrupted or not
            st.answered_change, st.last_change_run_time = d.answers, self.ctl.clock()
        st.running_since, st.running_trigger, st.runner, st.pending_run = self.ctl.clock(), d.trigger, IDENTITY, None
        mark(st.conditions, RECONCILING, "Running", f"terraform plan ({d.trigger})", self.gen)
        self.event("RunStarted", f"terraform plan ({d.trigger})")

    async def run(self, d: Decision, checkpoint: bool = False) -> None:
        """One check; with ``checkpoint`` its started record (:meth:`start_run`) is written first,
        alongside opening the workspace (see :meth:`opened`), else a pass before wrote it.
        Terraform and source failures end it as a failed run (never raised); a refused status
        write raises KubeError before Terraform starts. What the run's facts mean is
        :func:`runbooks.drift.judge`'s to decide."""
        st, spec = self.st, self.spec
        started = st.running_since or self.ctl.clock()
        t0 = time.monotonic()  # the run's own duration: source, init, plan (status writes are not in it)
        result = RunResult(outcome=Outcome.PLAN_FAILED, started_at=started, trigger=d.trigger)
        budget, replaced_at_next_slot = drift.run_budget(spec, st, started)
        cut = ("the next scheduled slot came first and replaces it (concurrencyPolicy: Replace)"
               if replaced_at_next_slot else f"the run exceeded timeoutSeconds ({spec.timeout_seconds}s)")
        # the newest change recorded before this run looked: if it finds no drift, calls up to it caused none
        self.seen_change = next(iter(trail_changes.change_records(
            self.obj.annotations.get(CHANGES_ANNOTATION))[-1:]), {}).get("eventId")
        ran = _Ran()
        try:
            facts = await self.plan(budget, cut, result, ran, checkpoint)
        except SourceError as err:
            facts = drift.PlanRun(source=(err.reason, str(err)))
        except TerraformError as err:
            facts = drift.PlanRun(cut=cut, command=err.result.command, timed_out=err.result.timed_out,
                                  diagnostic=str(err) if err.result.timed_out else f"{err}: {err.result.diagnostic()}",
                                  config_file=None if err.result.timed_out else
                                  configuration_file(err.result.stdout + err.result.stderr))
        except PlanFormatError as err:
            facts = drift.PlanRun(unreadable=str(err))
        except asyncio.CancelledError:  # the operator is stopping: Terraform got SIGINT (see lock_after)
            self.run_cut_short(d.trigger, lock_after(self.session))
            await self.save()
            raise
        verdict = drift.judge(facts)
        st.running_since = st.running_trigger = st.runner = None
        mark(st.conditions, None, "", "", self.gen)
        result.finished_at = self.ctl.clock()
        if st.next_schedule_time is not None:  # a long run may outlast the slot named at its start
            st.next_schedule_time = schedule.next_slot(spec.schedule, spec.time_zone, result.finished_at)
        result.duration_seconds = round(time.monotonic() - t0 - ran.held, 3)
        if verdict.lock is not None:
            self.lock_held(result, verdict)
        elif verdict.summary is None:
            self.failed(result, verdict)
        else:
            managed = ran.managed
            if managed is None and ran.doc is not None and spec.triggers.cloud_trail:
                managed = trail_changes.managed_resources(ran.doc)
            await self.succeeded(result, verdict.summary, ran.doc, ran.plan_file, ran.inputs, managed)
        self.skip_slot_missed_by_the_run(started)

    async def opened(self, budget: float, checkpoint: bool, ran: _Ran) -> TerraformSession:
        """The workspace for a plan. With ``checkpoint`` this pass's status (the run on record as
        started) is written while the workspace opens: opening fetches the source, reads variables,
        runs ``init`` and selects the workspace (at most creating it, empty), none of which changes
        infrastructure or an existing state, and it returns only once
        the write is done, so Terraform never plans a run that is not on record. A run cut short
        before the write landed is simply run again (its request or slot is not answered yet).
        Where opening runs the plan itself (a Job, named after the started record) the write
        comes first. The source is checked while Terraform plans (see :meth:`plan`).
        Raises KubeError (the write), SourceError or TerraformError."""
        if not checkpoint:
            return await self.open(budget, PLAN, check_source_later=True)
        grant = self.ctl.policy.terraform_grant(self.obj.ref.namespace, PLAN, self.spec.workspace)
        if not self.ctl.workspaces.opens_by_reading(self.spec, grant):
            started = time.monotonic()
            await self.save()
            ran.held = time.monotonic() - started
            return await self.open(budget, PLAN, check_source_later=True)
        saving = asyncio.ensure_future(self.save())
        try:
            session = await self.open(budget, PLAN, check_source_later=True)
        except BaseException:
            await saving  # on record either way: what opening found is this run's result
            raise
        ready = time.monotonic()
        try:
            await saving
        except BaseException:
            await session.cancel_source_check()
            raise
        ran.held = time.monotonic() - ready
        return session

    async def plan(self, budget: float, cut: str, result: RunResult, ran: _Ran, checkpoint: bool = False) -> drift.PlanRun:
        """Source, init and ``terraform plan``: its typed facts (the saved plan's JSON, file and
        checksum inputs in ``ran``); with ``checkpoint`` see :meth:`opened`. Raises SourceError,
        TerraformError, PlanFormatError or KubeError.

        A git revision an earlier run exported is planned while git asks the remote whether the ref
        still names it (``git ls-remote`` is then off the run's critical path: the common case is a
        source that did not move). When it does not, or git cannot tell, that plan is thrown away and
        the workspace opens again, the source checked (fetched) first, and plans again: a plan of one
        revision is never reported as another's."""
        started = time.monotonic()
        session = await self.opened(budget, checkpoint, ran)
        moving = asyncio.ensure_future(session.source_moved())
        planning = asyncio.ensure_future(self.planned(session, cut, result, ran))
        try:
            # A moved source stops the old revision's plan at once (Terraform gets SIGINT): a plan
            # of a revision the remote no longer names may be slow, or never end (the e2e test of
            # a plan cut off: its configuration reads a remote state that never answers).
            done, _ = await asyncio.wait([moving, planning], return_when=asyncio.FIRST_COMPLETED)
            if moving not in done or not moving.result():
                facts = await planning
                if facts.timed_out or not await moving:   # timed out: no time left to plan again
                    return facts
        finally:
            for task in (planning, moving):
                if not task.done():
                    task.cancel()
                    await asyncio.wait([task])
                elif not task.cancelled():
                    task.exception()  # retrieved: raised above when it mattered
            await session.cancel_source_check()
        log.info("DriftCheck %s: the source moved past %s while it was planned; planning the new revision",
                 self.obj.ref.key, session.revision)
        ran.doc, ran.inputs, ran.managed = None, {}, None
        session = await self.open(max(1.0, budget - (time.monotonic() - started)), PLAN)
        return await self.planned(session, cut, result, ran)

    async def planned(self, session: TerraformSession, cut: str, result: RunResult, ran: _Ran) -> drift.PlanRun:
        """One ``terraform plan`` in the open ``session`` (see :meth:`plan`)."""
        spec = self.spec
        result.terraform_version, result.source_revision = session.version, session.revision
        ran.plan_file = session.plan_file
        # One invocation: its -json stream has the drift, the changes and the diagnostics; the
        # saved plan's JSON (values, for the report and the approvable checksum) is read only
        # when there are changes.
        plan = await session.plan(spec.lock.timeout, json_stream=True)
        result.exit_code = plan.exit_code
        output = plan.stdout + plan.stderr
        # diagnostics only when the plan failed: reading a large stream twice costs tens of ms
        errors = (diagnostics_text(plan.stdout) or plan.stderr.strip()) if plan.exit_code not in (0, 2) else ""
        if plan.timed_out:
            return drift.PlanRun(cut=cut, timed_out=True, diagnostic=_first_lines(errors, 6))
        if plan.exit_code == 1:
            locked = parse_lock_error(errors)
            return drift.PlanRun(exit_code=1, lock=locked, diagnostic=_first_lines(errors),
                                 config_file=None if locked else configuration_file(output))
        refused = None
        if plan.exit_code == 2:
            ran.doc = await session.show_plan()
            summary = parse_show_json(ran.doc, spec.ignore)
            refused = self.refused_provisioners(ran.doc)
            if refused is None:
                ran.inputs = self.plan_inputs(session)
        else:
            summary = parse_stream(plan.stdout, spec.ignore)
            if spec.triggers.cloud_trail:  # the prior state's ids, for the intake to match calls to
                try:
                    ran.managed = trail_changes.managed_resources(await session.show_plan())
                except TerraformError as err:  # the check stands; only CloudTrail matching misses this run's ids
                    self.event("ManagedResourcesUnread", f"the plan's prior state could not be read, so CloudTrail "
                                                         f"calls are matched to the last ids known: {err}", warning=True)
        broken = configuration_file(output + "; ".join(summary.errors)) if summary.outcome == Outcome.PLAN_FAILED else None
        return drift.PlanRun(exit_code=plan.exit_code, summary=summary, refused=refused, config_file=broken)

    def run_cut_short(self, trigger: str | None, lock: str) -> None:
        st = self.st
        text = (f"the operator is stopping: the plan was interrupted (it changes nothing; {lock}); it runs again "
                f"after the restart")
        st.running_since = st.running_trigger = st.runner = None
        st.pending_run = f"{trigger or 'a run'}, again after an interruption"
        mark(st.conditions, None, "", "", self.gen)
        st.unfinished_run = UnfinishedRun(reason=UnfinishedReason.INTERRUPTED, message=text, time=self.ctl.clock())
        self.event("Interrupted", text, warning=True)

    def skip_slot_missed_by_the_run(self, started: dt.datetime) -> None:
        """concurrencyPolicy Forbid: a slot that came due while the run was going is skipped, not run late."""
        slot = drift.slot_missed_by_run(self.spec, started, self.ctl.clock())
        if slot is not None and (self.st.last_schedule_time is None or slot > self.st.last_schedule_time):
            self.st.last_schedule_time = slot
            self.event("SkippedWhileRunning", f"slot {slot:%Y-%m-%d %H:%M} UTC came while the previous run was "
                                              f"still going (concurrencyPolicy: Forbid); it is skipped", warning=True)

    async def succeeded(self, result: RunResult, summary: PlanSummary, doc: dict[str, Any] | None,
                        plan_file: str, inputs: dict[str, str],
                        managed: list[trail_changes.ManagedResource] | None = None) -> None:
        """Record a plan that worked; ``doc`` is the saved plan's JSON when there were changes,
        ``inputs`` the digests its checksum covers besides (``TerraformSession.plan_inputs``),
        ``managed`` the prior state's resources when CloudTrail triggers the check (for its report).

        The report is written first: status takes nothing of this run until its report exists, so
        it never pairs a new result with an old report or checksum. A refused write raises
        KubeError (see :meth:`report_failed`)."""
        st = self.st
        result.outcome = summary.outcome
        result.plan_checksum = checksum(doc or {}, inputs)
        result.add, result.change, result.import_, result.remove = (summary.add, summary.change, summary.import_,
                                                                    summary.remove)
        if summary.drifted and (doc is not None or self.spec.resolution.strategy == ResolutionStrategy.IMPORT):
            result.gate_failures = [GateFailureRecord(gate=f.gate.value, source=f.source, detail=f.detail,
                                                      resources=list(f.resources[:10]))
                                    for f in self.gate_result(doc).failures[:MAX_GATE_FAILURES]]
        entries = summary.drift + summary.changes
        changes = self.attribute({e.address for e in entries} if summary.drifted else set())
        try:
            report_ref = await asyncio.to_thread(self.write_report, result, summary, doc, plan_file, managed, changes)
        except KubeError as err:
            await self.report_failed(result, err)
            raise
        # The old reports go while status is written: the new one exists already, and only older ones go.
        self.pruning = asyncio.ensure_future(asyncio.to_thread(self.prune_reports, report_ref.name))
        st.drifted_resources = [DriftedResource(address=e.address, actions=e.actions, reason=e.reason,
                                                action_reason=e.action_reason) for e in entries[:MAX_DRIFTED]]
        st.drifted_count = len({e.address for e in entries})
        st.last_result, st.lock, st.consecutive_failures, st.unfinished_run = result, None, 0, None
        st.last_successful_check_time = result.finished_at
        if summary.drifted:
            st.last_drift_detected_time = result.finished_at
        else:
            st.resolution_attempts = 0
            st.interrupted_apply = None  # nothing differs: whatever that apply did, nothing is left to approve
        st.report_ref = report_ref
        counts = f"{summary.add} to add, {summary.change} to change, {summary.remove} to destroy"
        who = self.changed_by(changes)
        if summary.drifted:
            what = f"{st.drifted_count} resources differ ({counts}): " + ", ".join(
                sorted({e.address for e in entries})[:5]) + ("…" if st.drifted_count > 5 else "") + (
                f"; outputs change: {', '.join(summary.output_changes[:5])}" if summary.output_changes else "") + who
            where = f"report in ConfigMap {report_ref.name}" + (
                f" (the full plan did not fit: it is {report_ref.plan_file} in the operator's work directory)"
                if report_ref.plan_file else "")
            self.condition(DRIFTED, ConditionStatus.TRUE, "DriftDetected",
                           f"{what}; {where}; plan checksum {result.plan_checksum}")
            self.event("DriftDetected", f"{what} (plan {result.plan_checksum})", warning=True)
        else:
            noise = [e.address for e in summary.irrelevant_drift]
            extra = f"; changed outside Terraform, nothing depends on it: {', '.join(noise[:5])}" if noise else ""
            self.condition(DRIFTED, ConditionStatus.FALSE, "NoDrift", f"infrastructure matches the configuration{extra}")
            self.event("NoDrift", f"no drift (revision {result.source_revision}){extra}")
        result.reason = "Checked"
        self.observe(result, summary)

    async def report_failed(self, result: RunResult, err: KubeError) -> None:
        """The plan worked but its report was refused: status keeps the previous run whole (result,
        report, checksum, Drifted), says so in Checked, and owes a new run, which the runtime
        retries with backoff once the caller re-raises ``err``."""
        st = self.st
        text = (f"terraform plan worked ({result.outcome.value}: {result.add} to add, {result.change} to change, "
                f"{result.remove} to destroy) but its report could not be written: {err.describe()}; the run is "
                f"repeated with backoff, and status shows the previous run until a report is written")
        st.unfinished_run = UnfinishedRun(reason=UnfinishedReason.REPORT_WRITE_FAILED, message=text,
                                          time=self.ctl.clock())
        st.pending_run = f"{result.trigger}, again: its report could not be written"
        self.event("ReportWriteFailed", text, warning=True)
        await self.save()

    def failed(self, result: RunResult, verdict: drift.RunVerdict) -> None:
        """A run that found nothing (the verdict's reason: PlanFailed, InitFailed, TimedOut, LockHeld,
        a source reason). A verdict that says Stalled (a broken configuration, a plan the policy
        refuses: only a change by a person helps) marks it, as Flux marks a build that cannot succeed
        (kstatus Failed, Argo CD Degraded). Runs go on; the next one clears it."""
        st = self.st
        result.outcome, result.message, result.reason = verdict.outcome, verdict.message, verdict.reason
        st.last_result, st.lock, st.unfinished_run = result, None, None
        st.consecutive_failures += 1
        if verdict.stalled is not None:
            mark(st.conditions, STALLED, verdict.reason, verdict.stalled, self.gen)
        self.condition(DRIFTED, ConditionStatus.UNKNOWN, verdict.outcome.value, f"the check failed: {verdict.reason}")
        self.observe(result, None)
        self.event(verdict.reason, verdict.message, warning=True)

    def lock_held(self, result: RunResult, verdict: drift.RunVerdict) -> None:
        """A run that found the state lock held by another holder (the verdict names it): watched
        across runs (``status.lock``) so that an orphaned one can be force-unlocked."""
        st, now, lock = self.st, self.ctl.clock(), verdict.lock
        assert lock is not None  # a LockHeld verdict names its lock
        same = st.lock is not None and st.lock.id == lock.id
        st.lock = ObservedLock(**lock.model_dump(), first_seen_at=st.lock.first_seen_at if same and st.lock else now,
                               last_seen_at=now, seen_count=st.lock.seen_count + 1 if same and st.lock else 1,
                               unlock_attempted_at=st.lock.unlock_attempted_at if same and st.lock else None)
        held = (f"state lock {lock.id} on {lock.path} is held by {lock.who} ({lock.operation}, since "
                f"{lock.created:%Y-%m-%d %H:%M:%S} UTC)" if lock.created else f"state lock {lock.id} is held")
        result.outcome, result.reason, result.message = verdict.outcome, verdict.reason, held
        st.last_result, st.unfinished_run = result, None
        st.consecutive_failures += 1
        self.condition(DRIFTED, ConditionStatus.UNKNOWN, "LockHeld", held)
        self.observe(result, None, lock_held=True)
        self.event("LockHeld", held, warning=True)

    async def force_unlock(self) -> None:
        """``terraform force-unlock`` of the orphaned lock the decider named; tried once per lock."""
        lock = self.st.lock
        age = (self.ctl.clock() - lock.created).total_seconds() if lock.created else 0.0
        lock.unlock_attempted_at = self.ctl.clock()
        try:
            session = await self.open(float(self.spec.timeout_seconds), FORCE_UNLOCK)
            unlocked = await session.force_unlock(lock.id)
            ok, detail = unlocked.ok, unlocked.diagnostic()
        except (SourceError, TerraformError) as err:
            ok, detail = False, str(err)
        if ok:
            metrics.DRIFT_RESOLUTIONS.labels("ForceUnlock", "succeeded").inc()
            self.event("ForceUnlocked", f"force-unlocked orphaned lock {lock.id} held by {lock.who} for {age:.0f}s "
                                        f"and seen on {lock.seen_count} runs over {drift.watched(lock):.0f}s",
                       warning=True)
            self.st.pending_run = f"{self.st.last_result.trigger}, after force-unlock"
        else:
            metrics.DRIFT_RESOLUTIONS.labels("ForceUnlock", "failed").inc()
            self.event("ForceUnlockFailed", detail, warning=True)

    # -- resolution -------------------------------------------------------------------------------
    async def resolve(self) -> None:
        """Resolve the drift of the last run (the decider checked strategy and approval)."""
        st, r = self.st, self.spec.resolution
        planned = st.last_result.plan_checksum
        ok, message, outcome = False, "", ResolutionOutcome.FAILED
        try:
            session = await self.open(float(self.spec.timeout_seconds), RESOLUTION_ACTIONS[r.strategy])
            missing = await self.missing_imports(session) if r.strategy == ResolutionStrategy.IMPORT else None
            if missing == []:
                # Everything is imported: what still differs is for a person to change in the configuration.
                text = ("every address to import is already in the state; the remaining difference needs a "
                        "configuration change")
                st.last_resolution = ResolutionRecord(strategy=r.strategy, plan_checksum=planned,
                                                      outcome=ResolutionOutcome.SKIPPED, time=self.ctl.clock(),
                                                      message=text)
                self.condition(REMEDIATING, ConditionStatus.FALSE, "NothingToDo", text)
                return
            st.last_resolution = ResolutionRecord(strategy=r.strategy, plan_checksum=planned,
                                                  outcome=ResolutionOutcome.RUNNING, time=self.ctl.clock(),
                                                  runner=IDENTITY)
            st.resolution_attempts += 1
            self.condition(REMEDIATING, ConditionStatus.TRUE, r.strategy.value,
                           f"{r.strategy.value} of plan {planned} in progress")
            mark(st.conditions, RECONCILING, r.strategy.value, f"{r.strategy.value} of plan {planned} in progress",
                 self.gen)
            self.event("ResolutionStarted", f"{r.strategy.value} of plan {planned}")
            await self.save()
            ok, message = await self.carry_out_resolution(session, planned, missing or [])
        except (SourceError, TerraformError, PlanFormatError) as err:
            message = str(err) + (f": {err.result.diagnostic()}" if isinstance(err, TerraformError) else "")
        except asyncio.CancelledError:  # the operator is stopping: Terraform got SIGINT (see lock_after)
            if st.last_resolution.outcome == ResolutionOutcome.RUNNING:
                mark(st.conditions, None, "", "", self.gen)
                self.resolution_interrupted(
                    f"the operator was stopping; Terraform got SIGINT; {lock_after(self.session)}")
                await self.save()
            raise
        mark(st.conditions, None, "", "", self.gen)
        outcome = ResolutionOutcome.SUCCEEDED if ok else ResolutionOutcome.FAILED
        if ok and r.strategy == ResolutionStrategy.APPLY:
            st.interrupted_apply = None
        st.last_resolution = ResolutionRecord(strategy=r.strategy, plan_checksum=planned, outcome=outcome,
                                              time=self.ctl.clock(), message=message)
        metrics.DRIFT_RESOLUTIONS.labels(r.strategy.value, outcome.lower()).inc()
        self.condition(REMEDIATING, ConditionStatus.FALSE, outcome.value, f"{r.strategy.value}: {message}")
        if ok:
            st.pending_run = f"verification after {r.strategy.value}"
        self.event(f"Resolution{outcome.value}", f"{r.strategy.value} of plan {planned}: {message}", warning=not ok)

    async def missing_imports(self, session: TerraformSession) -> list[str]:
        present = set(await session.state_list())
        return [e.address for e in self.spec.resolution.imports if e.address not in present]

    async def carry_out_resolution(self, session: TerraformSession, planned: str,
                                   missing: list[str]) -> tuple[bool, str]:
        """(succeeded, what happened)."""
        lock_timeout, strategy = self.spec.lock.timeout, self.spec.resolution.strategy
        if strategy == ResolutionStrategy.APPLY:
            if not session.has_saved_plan():
                return False, "the saved plan is gone (operator work directory lost); the next run makes a new one"
            doc = await session.show_plan()
            if refused := self.refused_provisioners(doc):
                return False, f"{refused}; nothing was applied"
            saved = checksum(doc, self.plan_inputs(session))
            if saved != planned:
                return False, f"the saved plan is {saved}, not the approved {planned}; nothing was applied"
            if refused := self.gates_refuse(planned, doc):
                return False, refused
            applied = await session.apply_saved_plan(lock_timeout)
            return applied.ok, "applied the approved plan" if applied.ok else applied.diagnostic()
        if strategy == ResolutionStrategy.REFRESH_ONLY:
            refreshed = await session.apply_refresh_only(lock_timeout)
            return refreshed.ok, "state refreshed from the real infrastructure" if refreshed.ok else refreshed.diagnostic()
        if refused := self.gates_refuse(planned, None):
            return False, refused
        # Import: only what the state does not have yet (so a retry imports nothing twice).
        done: list[str] = []
        for entry in self.spec.resolution.imports:
            if entry.address not in missing:
                continue
            imported = await session.import_(entry.address, entry.id, lock_timeout)
            if not imported.ok:
                return False, f"import of {entry.address} failed: {imported.diagnostic()}" + (
                    f" (imported before it: {', '.join(done)})" if done else "")
            done.append(entry.address)
        return True, f"imported {', '.join(done)}"

    # -- report and metrics -----------------------------------------------------------------------
    def attribute(self, drifted: set[str]) -> list[ResourceChange] | None:
        """Who changed the ``drifted`` resources, as the intake's CloudTrail records say (None when
        CloudTrail does not trigger this check)."""
        if not self.spec.triggers.cloud_trail:
            return None
        records = trail_changes.change_records(self.obj.annotations.get(CHANGES_ANNOTATION))
        if not drifted:
            self.st.settled_change = self.seen_change or self.st.settled_change
        found = trail_changes.attributed(records, drifted, self.ctl.policy.deployers(self.obj.ref.namespace),
                                         MAX_CHANGES, self.st.settled_change)
        return [ResourceChange(
            address=f["address"], event_name=f["entry"].get("eventName") or "", event_id=f["entry"]["eventId"],
            principal=f["entry"].get("principal") or "unknown", session_issuer=f["entry"].get("issuer"),
            time=f["entry"].get("time"), source_address=f["entry"].get("sourceAddress"),
            user_agent=f["entry"].get("userAgent"), deployer=f["deployer"]) for f in found]

    def changed_by(self, changes: list[ResourceChange] | None) -> str:
        """Record ``changes`` (:meth:`attribute`): ``status.changes`` and OutOfBandChange; an Event and
        the metric for each call by a non-deployer not recorded by an earlier run (a drift that stays
        is not counted again at every run); returns what the Drifted message gains."""
        if changes is None:
            return ""
        st, ns = self.st, self.obj.ref.namespace
        known = {(c.event_id, c.address) for c in st.changes}
        st.changes = changes
        outside = [c for c in changes if not c.deployer]
        if outside:
            text = "; ".join(f"{c.address} changed by {c.principal} ({c.event_name}"
                             + (f" at {c.time:%Y-%m-%d %H:%M:%S} UTC" if c.time else "")
                             + (f" from {c.source_address}" if c.source_address else "")
                             + f", event {c.event_id})" for c in outside[:3])
            self.condition(OUT_OF_BAND_CHANGE, ConditionStatus.TRUE, "ChangedOutsideDeployers",
                           f"{text}: not a deployer of namespace {ns} (operator policy terraform.deployers)")
            new = [c for c in outside if (c.event_id, c.address) not in known]
            if new:
                self.event(OUT_OF_BAND_CHANGE, text, warning=True)
                metrics.OUT_OF_BAND_CHANGES.labels(self.spec.environment or "").inc(len(new))
        elif changes:
            self.condition(OUT_OF_BAND_CHANGE, ConditionStatus.FALSE, "DeployersOnly",
                           f"the drifted resources were changed by deployers only: "
                           f"{', '.join(sorted({c.principal for c in changes}))}")
        elif get(st.conditions, OUT_OF_BAND_CHANGE) is not None:
            self.condition(OUT_OF_BAND_CHANGE, ConditionStatus.FALSE, "NoneDrifted",
                           "no drifted resource was changed outside Terraform's deployers as of the last run")
        if not changes:
            return ""
        return "; changed by " + ", ".join(f"{c.principal} ({c.event_name} on {c.address})" for c in changes[:3])

    def write_report(self, result: RunResult, summary: PlanSummary, doc: dict[str, Any] | None,
                     plan_file: str, managed: list[trail_changes.ManagedResource] | None = None,
                     changes: list[ResourceChange] | None = None) -> ReportRef:
        """The report ConfigMap of a run (bounded: see ``drift_report``). Blocking; raises KubeError."""
        ref = self.obj.ref
        stamp = (result.finished_at or self.ctl.clock()).strftime("%Y%m%d%H%M%S")
        name = f"{ref.name[:230]}-drift-{stamp}"
        header = {"driftCheck": ref.name, "namespace": ref.namespace,
                  **result.model_dump(mode="json", by_alias=True, exclude_none=True)}
        if self.st.interrupted_apply is not None:  # what this plan means: what is left after an unknown outcome
            header["afterInterruptedApply"] = {
                **self.st.interrupted_apply.model_dump(mode="json", by_alias=True, exclude_none=True),
                "note": "the apply's outcome is unknown; this plan shows what applying now would still do, and "
                        "only an approval of this plan's checksum applies it"}
        if changes:  # who changed the drifted resources (CloudTrail)
            header["changes"] = [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in changes]
        extra = {trail_changes.MANAGED_KEY: trail_changes.managed_json(managed)} if managed is not None else {}
        report = drift_report.build(header, summary, doc, plan_file, self.scrub, extra)
        label = label_value(ref.name)
        objects = self.ctl.objects
        objects.put_config_map(ref.namespace, name, report.data, ref,
                               {"opex.dev/driftcheck": label, "app.kubernetes.io/managed-by": "opex-operator"},
                               binary=report.binary)
        return ReportRef(name=name, truncated=bool(doc) and not report.plan_included,
                         summary_truncated=report.summary_truncated, plan_file=report.plan_file)

    def prune_reports(self, newest: str) -> None:
        """Delete the reports beyond ``spec.report.keep`` counting ``newest`` (the one just written),
        oldest first (their names end in the run's time). Blocking; a refused call is logged and
        the next run prunes again (the reports are bounded in size and owned by the DriftCheck)."""
        ref = self.obj.ref
        try:
            names = set(self.ctl.objects.config_map_names(ref.namespace, f"opex.dev/driftcheck={label_value(ref.name)}"))
            for old in sorted(names - {newest}, reverse=True)[self.spec.report.keep - 1:]:
                self.ctl.objects.delete_config_map(ref.namespace, old)
        except KubeError as err:
            log.warning("DriftCheck %s: old reports not pruned (the next run tries again): %s", ref.key, err)

    def observe(self, result: RunResult, summary: PlanSummary | None, lock_held: bool = False) -> None:
        uid = self.obj.ref.uid
        metrics.DRIFT_RUNS.labels(result.outcome.value).inc()
        metrics.DRIFT_RUN_DURATION.labels(result.outcome.value).observe(result.duration_seconds or 0.0)
        environment = self.spec.environment or ""
        metrics.DRIFTCHECKS.set(uid, result.outcome.value, environment)
        metrics.STATE_LOCKS_HELD.contribute(uid, {(): 1 if lock_held else 0})
        if summary is not None:
            counts: dict[tuple[str, ...], float] = {}
            for entry in summary.drift + summary.changes:
                labels = (_action(entry.actions, entry.importing), environment)
                counts[labels] = counts.get(labels, 0) + 1
            metrics.DRIFTED_RESOURCES.contribute(uid, counts)


def lock_after(session: TerraformSession | None) -> str:
    """What a Terraform cut short by the operator stopping left of its state lock, said only as
    far as known: released when it stopped by itself after SIGINT (it releases its lock on the way
    out) and said no release failed; otherwise the lock may be left, and the next run names it."""
    last = session.last_result if session is not None else None
    if last is None or last.stopped is None:
        return "no plan or apply had started"
    if last.lock_released:
        return "Terraform stopped cleanly and released its state lock"
    return ("Terraform was killed before it could release its state lock: it may be held, and the next run "
            "reports it (LockHeld, with its ID)" if last.stopped == "killed" else
            "Terraform could not release its state lock: " + _first_lines(last.stderr, 6))


def _action(actions: list[str], importing: bool) -> str:
    if importing and actions in (["no-op"], []):
        return "import"
    if len(actions) == 2:
        return "replace"
    return actions[0] if actions and actions[0] in metrics.DRIFT_ACTIONS else "update"


def _first_lines(text: str, lines: int = 12) -> str:
    """The first non-empty lines of Terraform's diagnostics, for a condition message."""
    return "\n".join([line.rstrip() for line in text.splitlines() if line.strip()][:lines])
