"""Reconcile an Incident: its lifecycle, one move of the runbook engine per pass.

The lifecycle is the same for every incident type: detect → assess (and classify) → approve →
remediate → verify → escalate and notify along the way → resolve (or fail, or close). What
differs by type is asked of the type's playbook (``playbooks.playbook_for(spec.type)``): what
to gather and how to assess, classify and plan; how a fix made by hand is seen; whether every
level is paged at once. What differs by step is asked of the step's action
(``steps.action_of(step.action)``): how it runs, what it observes and whether that holds. This
module decides nothing by type or by action; ``runbooks.engine.decide`` picks the move.

A pass parses the spec, asks the engine for the next move, carries out that one move, checkpoints
status and returns when to look again: at once while there is more to do, at the next escalation
deadline or poll while it waits, never while it waits for a person (the spec change wakes it).
Every mutating step is checkpointed in status before and after it acts (:meth:`_Pass.remediate`).

Extension points for the lifecycle: a gate that holds an Auto step belongs in ``engine.decide``
(before ``Move.RUN``, as approval is); a verification that undoes a step calls its action's
``undo`` from :meth:`_Pass.verify` on ``VerifyOutcome.FAILED``. An acknowledgement holds
escalation (``notify.acknowledgement.hold``, read into the :class:`Situation`; recorded by
``paging.Paging.acknowledge``); each pass records who approved which step
(``status.approvals``, :meth:`_Pass.record_approvals`).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from enum import StrEnum
from typing import Callable, Sequence

from pydantic import ValidationError

from .. import metrics
from ..api import INCIDENT
from ..api.common import ConditionStatus, LocalObjectReference, StateLock, duration_seconds, now as utcnow
from ..api.conditions import get
from ..api.approvals import creator, step_approvals
from ..api.guardrails import BREAKER_RESET_ANNOTATION, BakeOutcome
from ..api.incident import (ALERT_RESOLVED, ALERT_STATE_ANNOTATION, APPROVALS_VALID, ASSESSED, CLOSED, MAX_FINDINGS,
                            REMEDIATED, ROOT_CAUSE_IDENTIFIED, AlertRecord, Classification, IncidentPhase as Phase,
                            IncidentSpec, IncidentStatus, IncidentType, RemediationMode, RemediationStatus,
                            RootCauseCategory, Step, StepState, effective_severity)
from ..aws.budget import counting
from ..guardrails import bake, gates
from ..guardrails.verify import observe as observe_bake
from ..environments import is_production
from ..errors import AwsError
from ..ports.objects import ObjectRef, child_name, label_value
from ..notify import acknowledgement as ack, escalation as matrix
from ..playbooks import Classification as Found, Context, Limits, Playbook, playbook_for
from ..playbooks.assessment import SharedReads, probe
from ..playbooks.diagnose import bounded
from ..playbooks.probes import failed_at_assessment, results as probe_results
from ..policy import Policy
from ..ports import AwsPorts, Objects, Webhook, Workspaces
from ..ports.notify import PagerDutyPort, SlackPort
from ..ports.breaker import Breaker
from ..ports.facts import ReadProblem
from ..ports.verification import QueryPort
from ..process import IDENTITY
from ..runbooks import engine, postincident
from ..runbooks.engine import ASSESS, CLASSIFY, NOTIFY, ORDER, VERIFY, Decision, Move, Situation, VerifyOutcome
from ..steps import Held, Outcome, StepContext, action_of, params_of
from ..steps.terraform import ImportParams
from ..workqueue import jittered
from . import guard_rails
from .base import Observed
from .common import reject_spec
from .paging import Paging

log = logging.getLogger(__name__)

VERIFY_POLL = 10.0
# A person's fix is looked for after 1 minute, then as long as it has been waiting, up to 15
# minutes: doubling, and restart-safe (counted from the verify step's start in status).
MANUAL_POLL, MANUAL_POLL_MAX = 60.0, 900.0
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}


class IncidentController:
    """The Incident reconciler (``controllers.base.Controller``)."""

    resource = INCIDENT
    wake_annotations: tuple[str, ...] = (ALERT_STATE_ANNOTATION, BREAKER_RESET_ANNOTATION)

    def __init__(self, aws: AwsPorts, objects: Objects, workspaces: Workspaces, policy: Policy, webhook: Webhook | None,
                 clock: Callable[[], dt.datetime] = utcnow, sources: Sequence[str] = (),
                 shared_read_seconds: float = 10.0, pagerduty: PagerDutyPort | None = None,
                 slack: SlackPort | None = None, breaker: Breaker | None = None,
                 prometheus: QueryPort | None = None):
        """``sources``: the CIDRs and security group ids the operator connects from
        (``OPEX_SOURCE_CIDRS``), checked against a database's groups when its probe is refused;
        ``shared_read_seconds``: how long identical assessment reads are shared (SharedReads);
        ``pagerduty``, ``slack``: the senders of the levels that name them (None: such a page fails
        with why)."""
        self.aws, self.objects, self.workspaces, self.policy = aws, objects, workspaces, policy
        self.pagerduty, self.slack = pagerduty, slack
        self.webhook, self.clock, self.sources = webhook, clock, tuple(sources)
        self.breaker, self.prometheus = breaker, prometheus
        self.shared_reads = SharedReads(shared_read_seconds, clock=lambda: clock().timestamp())  # one clock for all
        # (incident uid, step id) whose intent this process recorded and whose call it has not made
        self.intents: set[tuple[str, str]] = set()

    async def finalize(self, ref: ObjectRef) -> None:
        """Nothing outside Kubernetes: its reports and Rollbacks are owned objects."""

    def forget(self, ref: ObjectRef) -> None:
        metrics.INCIDENT_PHASES.forget(ref.uid)
        metrics.INCIDENTS_UNASSESSED.forget(ref.uid)
        metrics.INCIDENTS_PAST_ESCALATION.forget(ref.uid)
        metrics.INCIDENTS_UNACKNOWLEDGED.forget(ref.uid)

    def priority(self, body: dict) -> int:
        """Severity first (critical 0 ... low 3), production before other environments."""
        spec = body.get("spec") or {}
        rank = SEVERITY_RANK.get(str(spec.get("severity")), 3)
        return 2 * rank + (0 if is_production(spec.get("environment")) else 1)

    async def reconcile(self, obj: Observed[IncidentStatus]) -> float | None:
        """One move of the runbook (see the module docstring); seconds until the next pass, or None."""
        try:
            spec = IncidentSpec.model_validate(obj.spec)
        except ValidationError as err:
            await reject_spec(obj, Phase.FAILED, err)
            return None
        playbook = playbook_for(spec.type)
        region = spec.targets.region or self.aws.default_region
        severity = effective_severity(spec, obj.status)
        levels = matrix.applicable(spec.escalation.levels if spec.escalation and spec.escalation.levels
                                   else self.policy.escalation.levels, severity, spec.environment,
                                   immediate=playbook.pages_every_level_at_once(severity, spec.environment))
        now = self.clock()
        hold = ack.hold(spec, obj.status, now)
        current = obj.status.escalation.current_level if obj.status.escalation else 0
        situation = Situation(now=now, levels=levels,
                              denied=self.policy.check(obj.ref.namespace, spec.targets.role_key, region),
                              holding=not hold.escalates,
                              re_escalate=ack.re_escalation_level(levels, current)
                              if hold.state == ack.HoldState.RE_ESCALATE else None)
        pass_ = _Pass(self, obj, spec, playbook, situation)
        if obj.status.phase is None:
            pass_.detect()
        pass_.note_interrupted()
        pass_.record_approvals()
        if obj.status.phase not in engine.TERMINAL:
            await pass_.acknowledge(hold)
        self.track(obj, spec, situation)  # before the move, so a pass that fails or hangs still counts
        obj.status.remediation = RemediationStatus(mode=spec.remediation.mode)
        decision = engine.decide(spec, obj.status, situation)
        log.debug("%s %s: %s", self.resource.kind, obj.ref.key, decision.move)
        requeue = await pass_.carry_out(decision)
        pass_.hold_escalation()
        pass_.check_approvals()
        await pass_.record_alert()
        obj.status.observed_generation = obj.generation
        await pass_.save(checkpoint=not pass_.only_read(decision))
        st = obj.status
        if st.phase is not None:
            metrics.INCIDENT_PHASES.set(obj.ref.uid, st.phase.value, effective_severity(spec, st).value,
                                        spec.type.value)
        self.track(obj, spec, situation)
        if st.phase not in engine.TERMINAL and st.escalation and st.escalation.next_escalation_at:
            until = max(1.0, (st.escalation.next_escalation_at - self.clock()).total_seconds())
            requeue = until if requeue is None else min(requeue, until)
        return requeue

    @staticmethod
    def track(obj: Observed[IncidentStatus], spec: IncidentSpec, situation: Situation) -> None:
        """The times the alert rules watch (``metrics.INCIDENTS_UNASSESSED``/``INCIDENTS_PAST_ESCALATION``)."""
        st, severity = obj.status, (effective_severity(spec, obj.status).value,)
        open_ = st.phase not in engine.TERMINAL
        waiting = open_ and st.assessed_at is None
        metrics.INCIDENTS_UNASSESSED.track(obj.ref.uid, severity, (st.detected_at or obj.created_at or situation.now)
                                           if waiting else None)
        metrics.INCIDENTS_PAST_ESCALATION.track(obj.ref.uid, severity, engine.escalation_deadline(st, situation))
        metrics.INCIDENTS_UNACKNOWLEDGED.track(obj.ref.uid, severity, ack.unacknowledged_since(spec, st))


class _Pass(Paging):
    """One reconcile pass over one Incident: carries out one decision and records it."""

    def __init__(self, ctl: IncidentController, obj: Observed[IncidentStatus], spec: IncidentSpec,
                 playbook: Playbook, situation: Situation):
        super().__init__(obj)
        self.ctl, self.spec, self.playbook = ctl, spec, playbook
        self.now, self.situation = situation.now, situation
        self.st: IncidentStatus = obj.status
        self.paged = False  # a notification went out (or was tried) in this pass

    def only_read(self, d: Decision) -> bool:
        """Whether this pass changed nothing outside the operator (an assessment, a dry run, a level
        with nobody to page): its write may wait for the next pass's (``controllers.status``); a
        restart in between makes its reads again, and pages nobody twice."""
        return d.move in (Move.ASSESS, Move.DRY_RUN) or (d.move == Move.ESCALATE and not self.paged)

    def phase(self, phase: StrEnum, reason: str, message: str, warning: bool = False) -> None:
        """The phase, its Reconciling/Stalled marker and the Remediated it makes (``engine.remediated``)."""
        super().phase(phase, reason, message, warning)
        if (wanted := engine.remediated(Phase(phase), reason, message)) is not None:
            self.condition(REMEDIATED, *wanted)

    def remediated(self, status: ConditionStatus, reason: str, message: str) -> bool:
        return self.condition(REMEDIATED, status, reason, message)

    async def carry_out(self, d: Decision) -> float | None:
        """Carry out one decision; seconds until the next pass (0: at once), or None to wait for a change."""
        match d.move:
            case Move.DENY:
                self.phase(Phase.FAILED, "PolicyDenied", f"{self.situation.denied}; nothing was read or changed",
                           warning=True)
                return None
            case Move.ESCALATE:
                await self.escalate(list(d.levels))
                return 0.0
            case Move.ASSESS:
                await self.assess_and_classify()
                return 0.0
            case Move.RUN:
                assert d.step is not None
                return await self.remediate(d.step)
            case Move.AWAIT_APPROVAL:
                assert d.step is not None
                await self.await_approval(d.step)
                return None
            case Move.DRY_RUN:
                assert d.step is not None
                return self.dry_run(d.step)
            case Move.BAKE:
                assert d.step is not None
                return await self.bake(d.step)
            case Move.DRY_RUN_DONE:
                ids = [s.id for s in self.st.steps if s.state == StepState.DRY_RUN]
                text = (f"dry run: {', '.join(ids)} would run; set spec.remediation.mode to Manual (and approve) or "
                        f"Auto to run them")
                self.phase(Phase.AWAITING_APPROVAL, "DryRun", text)
                return None
            case Move.VERIFY:
                assert d.step is not None
                return await self.verify(d.step)
            case Move.NOTIFY:
                assert d.step is not None
                await self.notify_resolved(d.step)
                return 0.0
            case Move.FAIL:
                assert d.step is not None
                await self.fail(d.step, d.escalate)
            case Move.RESOLVE:
                await self.resolve()
            case Move.CLOSE:
                await self.close()
        return None

    def note_interrupted(self) -> None:
        """A mutating step left Running by another operator process: it was interrupted. Say so; the
        action then re-reads the real state before it acts again (every action checks first)."""
        for step in self.st.steps:
            if step.state == StepState.RUNNING and step.mutating and step.runner not in (None, IDENTITY):
                self.event("Interrupted", f"step {step.id} was running in operator {step.runner or '(unknown)'}, which "
                                          f"stopped before recording its outcome; checking the real state before acting "
                                          f"again", warning=True)
                step.runner = None  # recorded; nothing of this process is in flight

    def step_context(self, step: Step, resumed: bool = False) -> StepContext:
        return StepContext(self.obj.ref, self.spec, step, self.now, self.ctl.aws, self.ctl.objects,
                           self.ctl.workspaces, resumed, self.obj.labels, self.ctl.policy)

    def playbook_context(self) -> Context:
        t, ns = self.spec.targets, self.obj.ref.namespace
        reader = self.ctl.shared_reads.reader(self.ctl.aws.reader(t.region, t.role_key), (t.region, t.role_key))
        return Context(self.spec, ns, self.ctl.aws, reader, self.ctl.objects, self.ctl.clock, self.drift_lock,
                       self.ctl.sources, self.ctl.policy.probe_guard(ns))

    # -- detection and assessment (read-only) -----------------------------------------------------
    def detect(self) -> None:
        """A new incident: when it started (the alert's startsAt or the event's time, else the object's creation)."""
        started = self.spec.source.started_at if self.spec.source else None
        self.st.detected_at = started or self.obj.created_at or self.now
        self.st.created_by = creator({"annotations": self.obj.annotations})
        self.phase(Phase.DETECTED, "Detected", f"{self.spec.type.value} incident ({self.spec.severity.value}) in "
                                               f"{self.spec.environment}: {self.spec.title}")

    async def assess_and_classify(self) -> None:
        """The playbook gathers and assesses; the assess and classify steps record what it found."""
        st, spec = self.st, self.spec
        a = self.step(ASSESS)
        if st.phase in (Phase.DETECTED, None):
            self.phase(Phase.ASSESSING, "Assessing", "initial assessment of every target")
        a.state, a.started_at, a.attempts = StepState.RUNNING, a.started_at or self.now, a.attempts + 1
        with counting() as calls:
            gathered = await self.playbook.gather(self.playbook_context())
        metrics.ASSESSMENT_AWS_CALLS.labels(spec.type.value).observe(calls.calls)
        now = self.ctl.clock()
        limits = Limits(self.ctl.policy.limits(self.obj.ref.namespace).lambda_memory_mb)
        found = self.playbook.assess(spec, gathered, now, limits)
        problems = gathered.obs.problems
        if found.classification is not None:
            self.record_classification(found.classification, now)
        cause, d = found.root_cause, found.diagnosis
        st.findings = bounded(d.findings, cause.evidence, MAX_FINDINGS)
        a.state, a.finished_at = StepState.SUCCEEDED, now
        a.outputs = f"{len(d.findings)} findings; {len(problems)} sources unreadable" + (
            f" ({len(st.findings)} most telling findings kept)" if len(st.findings) < len(d.findings) else "")
        if st.assessed_at is None:
            st.assessed_at = now
            if st.detected_at is not None:
                metrics.TIME_TO_ASSESS.labels(spec.type.value, effective_severity(spec, st).value).observe(
                    max(0.0, (now - st.detected_at).total_seconds()))
        reason, text = assessed(problems, len(d.findings))
        self.condition(ASSESSED, ConditionStatus.TRUE, reason, text)
        self.phase(Phase.DIAGNOSING, "Diagnosing", f"assessed: {a.outputs}")
        if problems:  # a source unread is worth a person's look; a complete assessment is told by its diagnosis
            self.event("Assessed", f"{a.outputs}; {reason}: {text}", warning=True)
        else:
            self.note("Assessed", a.outputs)

        c = self.step(CLASSIFY)
        st.root_cause = cause
        known = cause.category != RootCauseCategory.UNKNOWN
        self.condition(ROOT_CAUSE_IDENTIFIED, ConditionStatus.TRUE if known else ConditionStatus.FALSE,
                       cause.category.value, cause.summary)
        for note in found.notes:
            self.event("NotPlanned", note)
        existing = {s.id for s in st.steps}
        st.steps += [s for s in found.steps if s.id not in existing]
        for fixed in (VERIFY, NOTIFY):
            if fixed not in existing:
                st.steps.append(engine.read_step(fixed))
        # verify and notify come last, after any remediation step a re-plan added
        st.steps.sort(key=lambda s: ORDER.get(s.id, 2))
        c.state, c.started_at, c.finished_at, c.attempts = StepState.SUCCEEDED, now, now, c.attempts + 1
        c.outputs = (f"{cause.category.value}; {len(found.steps)} remediation steps: "
                     f"{', '.join(s.id for s in found.steps) or 'none'}")
        self.event("RootCauseIdentified", f"{cause.category.value}: {cause.summary} (assessed: {a.outputs})",
                   warning=not known)

    def record_classification(self, c: Found, now: dt.datetime) -> None:
        """The playbook's severity in status; a raise (never a lowering) also in the timeline."""
        before = self.st.classification
        self.st.classification = Classification(
            declared_severity=c.declared, severity=c.severity, raised=c.raised, reason=c.reason,
            evidence=c.evidence[:10], classified_at=now)
        if c.raised and (before is None or before.severity != c.severity):
            self.event("SeverityRaised", c.reason, warning=True)

    def drift_lock(self, drift_check: str) -> StateLock | None:
        """The lock the named DriftCheck last saw (blocking; the assessment calls it in a thread)."""
        dc = self.ctl.objects.get("driftchecks", self.obj.ref.namespace, drift_check)
        lock = ((dc or {}).get("status") or {}).get("lock")
        return StateLock.model_validate(lock) if lock else None

    def step(self, step_id: str) -> Step:
        found = engine.find(self.st, step_id)
        if found is None:
            found = engine.read_step(step_id)
            self.st.steps.insert(ORDER[step_id], found)
        return found

    # -- remediation (mutating, gated) -------------------------------------------------------------
    async def await_approval(self, step: Step, reason: str = "AwaitingApproval", held: str | None = None) -> None:
        """``step`` waits for a named approval (spec.remediation.approvals) or its id in approvedSteps;
        ``held`` says why an Auto step waits (``reason`` GateFailed or CircuitOpen: a guard rail held it)."""
        first = step.state != StepState.AWAITING_APPROVAL
        if first and not held:
            why = (" (a recovery step: a person approves it even in Auto mode)"
                   if step.requires_approval and self.spec.remediation.mode != RemediationMode.MANUAL else "")
            self.event("AwaitingApproval", f"step {step.id} ({step.inputs}) waits for approval{why}")
        step.state = StepState.AWAITING_APPROVAL
        if first:
            await self.update_slack()  # its Approve button
        how = (f"approve step {step.id} ({step.inputs}) in your own name: opex approve incident "
               f"{self.obj.ref.name} -n {self.obj.ref.namespace} {step.id} (adds {{step: {step.id}, by: <you>}} to "
               f"spec.remediation.approvals), or from the Incident's Slack message (an id in "
               f"spec.remediation.approvedSteps also approves it, without a name)")
        if held:
            how = f"Auto is held: {held}; {how}"
        self.phase(Phase.AWAITING_APPROVAL, "AwaitingApproval", how)
        if self.remediated(ConditionStatus.FALSE, reason, how) and reason == "GateFailed":
            self.event(reason, f"step {step.id}: {how}", warning=True)  # CircuitOpen has its own (guard_rails.record)

    async def held_by_guard_rails(self, step: Step) -> tuple[bool, float | None]:
        """Before an Auto step no person approved starts: its plan gates (a Terraform import: the
        policy's, then spec.remediation.gates), then the circuit breaker (which counts it once admitted).
        (False, _): it may start; (True, seconds or None): it waits for approval like Manual until then."""
        ref, env = self.obj.ref, self.spec.environment
        p = params_of(step)
        if isinstance(p, ImportParams):
            layers = [*self.ctl.policy.gate_layers(ref.namespace, env),
                      gates.Layer("spec.remediation.gates", self.spec.remediation.gates)]
            result = gates.evaluate([gates.import_change(p.address)], gates.merge(*layers))
            if not result.passed:
                await self.await_approval(step, "GateFailed", f"it fails {result.message()}")
                return True, None
        if self.ctl.breaker is None:
            return False, None
        admission = await guard_rails.ask(self.ctl.breaker, self.ctl.policy, ref.namespace, env,
                                          f"Incident/{ref.name}/{ref.uid}/{step.id}", self.now)
        wait = guard_rails.record(self, admission, self.now)
        if wait is not None:
            await self.await_approval(step, "CircuitOpen", admission.message)
            return True, wait or None
        return False, None

    def dry_run(self, step: Step) -> float:
        step.state, step.outputs = StepState.DRY_RUN, f"dry run: would {step.inputs}"
        metrics.RUNBOOK_ACTIONS.labels(step.action, "dry_run").inc()
        self.event("DryRun", f"step {step.id} would {step.inputs}")
        return 0.0

    async def remediate(self, step: Step) -> float | None:
        """Run (or resume) a mutating step through its action, in two passes of one write each.

        The safety rule (DESIGN.md §3): the step's intent (Running, its attempt, this process as
        ``runner``) is on record before the action's call. The pass that starts a step makes no
        call: its single write (the end of the pass) records the intent, and the pass after it (at
        once, the runtime chains it) makes the call and records the outcome in its own single
        write. A restart in between finds the step Running under another runner, says so
        (:meth:`note_interrupted`), and the action checks the real state before it acts: no
        destructive call is repeated blind. ``IncidentController.intents`` tells the pass after
        the intent (first call of the attempt) from a resumed one (a call may have gone through)."""
        policy = engine.step_policy(self.spec, step.id)
        region = params_of(step).target_region() or self.spec.targets.region or self.ctl.aws.default_region
        denied = self.ctl.policy.check(self.obj.ref.namespace, self.spec.targets.role_key, region, step.action)
        if denied:
            step.state, step.error, step.finished_at = StepState.FAILED, denied, self.now
            metrics.RUNBOOK_ACTIONS.labels(step.action, "denied").inc()
            self.event("PolicyDenied", f"step {step.id} refused: {denied}", warning=True)
            return 0.0
        key = (self.obj.ref.uid, step.id)
        if step.state != StepState.RUNNING and step.mutating and step.id not in self.spec.remediation.approved_steps:
            held, wait = await self.held_by_guard_rails(step)  # Auto, and no person approved it
            if held:
                return wait
        elif step.state != StepState.RUNNING:
            guard_rails.approved(self, f"step {step.id}")
        if step.state != StepState.RUNNING:  # a Running step is resumed, not counted again
            step.state, step.attempts, step.started_at = StepState.RUNNING, step.attempts + 1, self.now
            step.error, step.runner = None, IDENTITY
            self.phase(Phase.REMEDIATING, "Remediating", f"running step {step.id}")
            self.event("StepStarted", f"step {step.id} (attempt {step.attempts}/{policy.max_attempts}): {step.inputs}")
            self.ctl.intents.add(key)
            return 0.0  # this pass's one write puts the intent on record; the next pass makes the call
        # Recorded by this process in the pass before and not called yet: the first call of this attempt.
        resumed = key not in self.ctl.intents
        self.ctl.intents.discard(key)
        if resumed and step.started_at and (self.now - step.started_at).total_seconds() > policy.timeout_seconds:
            return self.step_failed(step, f"did not finish within {policy.timeout_seconds}s", retryable=False)
        step.runner = IDENTITY  # a call is in flight: on record with the intent (a first attempt) or before the next
        outcome = await run_step(self.step_context(step, resumed))
        step.runner = None
        if outcome.rollback_ref:
            step.rollback_ref = LocalObjectReference(name=outcome.rollback_ref)
        if outcome.params is not None:
            step.params = outcome.params.wire()
        if outcome.undo is not None:
            step.undo = outcome.undo
        if not outcome.done:
            step.outputs = outcome.outputs or step.outputs
            return outcome.requeue
        if outcome.ok:
            step.state, step.outputs, step.finished_at = StepState.SUCCEEDED, outcome.outputs, self.ctl.clock()
            metrics.RUNBOOK_ACTIONS.labels(step.action, "succeeded").inc()
            self.event("StepSucceeded", f"step {step.id}: {outcome.outputs}")
            self.start_bake(step)
            self.phase(Phase.REMEDIATING, "Remediating", f"step {step.id} succeeded: {outcome.outputs}")
            return 0.0
        return self.step_failed(step, outcome.error or "failed", outcome.retryable, policy.max_attempts)

    # -- the bake window (spec.remediation.verify): undo a change that made things worse -----------
    def start_bake(self, step: Step) -> None:
        """Open the bake window of a step that changed something, cut to what is left of the
        incident's escalation window (``guardrails.bake.effective_window``)."""
        verify = self.spec.remediation.verify
        if verify is None or not step.mutating:
            return
        now = self.ctl.clock()
        window, note = bake.effective_window(duration_seconds(verify.window),
                                             engine.escalation_deadline(self.st, self.situation), now)
        if window <= 0:
            self.event("BakeSkipped", f"step {step.id}: {note}", warning=True)
            return
        step.verification = bake.start(window, now)
        self.event("BakeStarted", f"step {step.id}: watching {', '.join(verify.alarms) or 'no alarm'}"
                                  f"{' and ' + verify.promql if verify.promql else ''} for {window:g}s"
                                  f"{'; ' + note if note else ''}")

    def reversibility(self, step: Step) -> bake.Reversibility:
        if self.spec.type == IncidentType.SECURITY_INCIDENT:
            return bake.Reversibility.CONTAINMENT  # undoing a containment is a person's decision
        action = action_of(step.action)
        undoable = action is not None and action.undoable(params_of(step))
        return bake.Reversibility.UNDOABLE if undoable else bake.Reversibility.NONE

    async def bake(self, step: Step) -> float | None:
        """One look at ``step``'s bake window, and what :func:`guardrails.bake.decide` says to do.

        A breach of an undoable step records ``undoStartedAt`` in this pass's write and runs the undo
        in the next (the intent is on record before the call, as for any step); the action checks
        the current state first, so an undo resumed after a restart never acts twice. Once the undo
        is confirmed the step is ``RolledBack`` and the incident fails with a page (never tried again)."""
        v, verify = step.verification, self.spec.remediation.verify
        assert v is not None
        observation = None
        if verify is not None and not (v.undo_started_at is not None and v.undone_at is None):
            region = self.spec.targets.region or self.ctl.aws.default_region
            alarms = self.ctl.aws.alarms(region, self.spec.targets.role_key) if verify.alarms else None
            observation = await asyncio.to_thread(observe_bake, verify, v.started_at, alarms, self.ctl.prometheus,
                                                  self.now)
        elif verify is None and v.undo_started_at is None:  # the spec dropped its verify: the window ends here
            step.verification = v.model_copy(update={"outcome": BakeOutcome.PASSED,
                                                     "message": "spec.remediation.verify was removed"})
            return 0.0
        d = bake.decide(v, self.reversibility(step), observation, self.now)
        step.verification = bake.record(v, d, observation)
        match d.verdict:
            case bake.Verdict.WAIT:
                assert d.next_check_at is not None
                return max(1.0, (d.next_check_at - self.now).total_seconds())
            case bake.Verdict.PASSED:
                self.event("BakePassed", f"step {step.id}: {d.message}")
            case bake.Verdict.PAGE:
                reason = "BakeBreached" if d.outcome == BakeOutcome.BREACHED else "BakeUnverified"
                self.event(reason, f"step {step.id}: {d.message}", warning=True)
                due, _ = engine.levels_due(self.st, self.situation, force_next=True)
                await self.escalate(due)
            case bake.Verdict.UNDO:
                step.verification = bake.undo_started(step.verification, self.now)
                self.event("BakeBreached", f"step {step.id}: {d.message}", warning=True)
                self.remediated(ConditionStatus.FALSE, "BakeBreached", f"step {step.id}: {d.message}")
            case bake.Verdict.CONFIRM_UNDO:
                return await self.undo(step)
        return 0.0

    async def undo(self, step: Step) -> float | None:
        """Run (or check) the recorded undo of a step whose bake window breached."""
        action = action_of(step.action)
        outcome = await action.undo(self.step_context(step, resumed=True), params_of(step)) if action else None
        if outcome is None:
            outcome = Outcome(done=True, ok=False, error="the action has no automated undo")
        if not outcome.done:
            if outcome.outputs:
                step.outputs = outcome.outputs
            return outcome.requeue
        if not outcome.ok:
            step.state, step.error = StepState.FAILED, f"its bake window breached and its undo failed: {outcome.error}"
            self.event("UndoFailed", f"step {step.id}: {step.error}", warning=True)
            return 0.0
        rolled = bake.rolled_back(step, self.ctl.clock())
        rolled.outputs = outcome.outputs
        self.st.steps[next(i for i, s in enumerate(self.st.steps) if s.id == step.id)] = rolled
        metrics.RUNBOOK_ACTIONS.labels(step.action, "rolled_back").inc()
        self.event("RolledBack", f"step {step.id} {rolled.error}; {outcome.outputs}", warning=True)
        return 0.0

    def step_failed(self, step: Step, error: str, retryable: bool, max_attempts: int = 1) -> float:
        step.error, step.finished_at = error, self.ctl.clock()
        if retryable and step.attempts < max_attempts:
            step.state = StepState.PENDING
            delay = min(300.0, 5.0 * 2 ** (step.attempts - 1))
            text = f"step {step.id} attempt {step.attempts} failed ({error}); retrying in {delay:.0f}s"
            self.event("StepRetrying", text, warning=True)
            self.phase(Phase.REMEDIATING, "StepRetrying", text)
            return delay
        step.state = StepState.FAILED
        metrics.RUNBOOK_ACTIONS.labels(step.action, "failed").inc()
        self.event("StepFailed", f"step {step.id} failed after {step.attempts} attempt(s): {error}", warning=True)
        return 0.0

    # -- verify (read-only) ------------------------------------------------------------------------
    async def verify(self, step: Step) -> float | None:
        """Does the fix hold? Each step that ran is asked through its action (observe, then holds),
        the spec's probes run again, and with no step run the playbook judges a fix made by hand."""
        done = [s for s in self.st.steps if s.mutating and s.state == StepState.SUCCEEDED]
        if step.state != StepState.RUNNING:  # read-only: recorded with the outcome, in the pass's one write
            step.state, step.started_at, step.attempts = StepState.RUNNING, self.now, step.attempts + 1
        try:
            held = await asyncio.to_thread(self.observe, done)
            probes = await self.probe_again()
            fix = self.playbook.judge_fix(self.spec, self.st,
                                          None if done else await self.playbook.observe_fix(self.playbook_context()))
            outcome, text = engine.verify(self.st, held, probes, failed_at_assessment(self.st.findings), fix)
        except AwsError as err:  # cannot observe yet: say why and look again later
            outcome, text = VerifyOutcome.PENDING, f"cannot observe the targets: {err}"
        step.outputs = text
        if outcome == VerifyOutcome.VERIFIED:
            step.state, step.finished_at = StepState.SUCCEEDED, self.ctl.clock()
            self.condition(REMEDIATED, ConditionStatus.TRUE, "Verified", text)
            self.event("Verified", text)
            return 0.0
        if outcome == VerifyOutcome.FAILED:
            step.state, step.error, step.finished_at = StepState.FAILED, text, self.ctl.clock()
            self.event("VerificationFailed", text, warning=True)
            return 0.0
        timeout = engine.step_policy(self.spec, VERIFY).timeout_seconds
        if done and (self.now - self.verify_clock(step, done)).total_seconds() > timeout:
            step.state, step.error = StepState.FAILED, f"not verified within {timeout}s: {text}"
            self.event("VerificationFailed", step.error, warning=True)
            return 0.0
        if done:
            self.phase(Phase.REMEDIATING, "Verifying", text)
            return VERIFY_POLL
        category = self.st.root_cause.category.value if self.st.root_cause else "Unknown"
        text = f"no automated remediation for {category}: {text}; fix it (see the findings), or set spec.closed: true"
        self.phase(Phase.MANUAL_ACTION_REQUIRED, "ManualActionRequired", text)
        waiting = (self.now - (step.started_at or self.now)).total_seconds()
        return jittered(min(MANUAL_POLL_MAX, max(MANUAL_POLL, waiting)))

    def verify_clock(self, step: Step, done: list[Step]) -> dt.datetime:
        """When verification's timeout starts: at the verify step's start, or when the last step that
        ran can first be judged (its action's ``settles_at``: e.g. a metrics period after a change)."""
        starts = [step.started_at or self.now]
        for s in done:
            action = action_of(s.action)
            at = action.settles_at(self.step_context(s), params_of(s)) if action else None
            if at is not None:
                starts.append(at)
        return max(starts)

    def observe(self, done: list[Step]) -> list[Held]:
        """What each step that ran saw of its change, through its action (blocking). Raises AwsError."""
        held: list[Held] = []
        for s in done:
            action = action_of(s.action)
            if action is None:
                continue
            p = params_of(s)
            held += action.holds(s, p, action.observe(self.step_context(s), p))
        return held

    async def probe_again(self) -> list[tuple[bool, str]]:
        """The spec's probes run again (a fix is verified by them passing); a probe whose input cannot
        be read counts as failing, with why. Raises AwsError when the RDS endpoint cannot be read."""
        t = self.spec.targets
        if t.probes is None:
            return []
        endpoint = None
        if t.rds and t.probes.database and not t.probes.database.host:
            config, _ = await asyncio.to_thread(self.ctl.aws.perf_reader(t.region, t.role_key).rds_config,
                                                t.rds.instance_id)
            endpoint = (config.endpoint, config.port)
        problems: list[ReadProblem] = []
        http, database = await probe(self.spec, self.ctl.aws, self.ctl.objects, self.obj.ref.namespace, endpoint,
                                     problems, self.ctl.policy.probe_guard(self.obj.ref.namespace))
        return probe_results(http, database) + [(False, p.message) for p in problems]

    # -- endings ----------------------------------------------------------------------------------
    async def resolve(self) -> None:
        st = self.st
        st.resolved_at = self.ctl.clock()
        self.stop_escalating()
        if st.detected_at is not None:
            metrics.TIME_TO_RESOLVE.labels(self.spec.type.value, effective_severity(self.spec, st).value).observe(
                max(0.0, (st.resolved_at - st.detected_at).total_seconds()))
        ran = [s.id for s in st.steps if s.mutating and s.state == StepState.SUCCEEDED]
        self.phase(Phase.RESOLVED, "Resolved", f"resolved and verified after {', '.join(ran) or 'a manual fix'}; set "
                                               f"spec.closed: true after the post-incident review")
        await self.update_slack()
        await self.post_incident()

    async def fail(self, step: Step, escalate: bool) -> None:
        if escalate:
            due, _ = engine.levels_due(self.st, self.situation, force_next=True)
            await self.escalate(due)
        self.stop_escalating()
        text = (f"step {step.id} failed: {step.error}; the operator stopped (onFailure "
                f"{engine.step_policy(self.spec, step.id).on_failure.value}); a human must take over")
        self.phase(Phase.FAILED, engine.STEP_FAILED, text, warning=True)
        await self.post_incident()

    async def close(self) -> None:
        st = self.st
        for s in st.steps:
            # A mutating step in flight stays as it is (its call may have happened); the rest is over.
            if s.state in (StepState.PENDING, StepState.AWAITING_APPROVAL, StepState.DRY_RUN) or (
                    s.state == StepState.RUNNING and not s.mutating):
                s.state = StepState.SKIPPED
        st.closed_at = self.ctl.clock()
        self.stop_escalating()
        self.condition(CLOSED, ConditionStatus.TRUE, "Closed", "closed (spec.closed: true)")
        if not any(n.contact == "resolve" for n in (st.escalation.notified if st.escalation else [])):
            await self.follow_up("resolve")  # closed before it resolved: PagerDuty's alert ends too
        self.phase(Phase.CLOSED, "Closed", "closed (spec.closed: true)")
        await self.update_slack()
        if st.post_incident is None:
            await self.post_incident()

    async def post_incident(self) -> None:
        ref = self.obj.ref
        name = child_name(ref.name, "postincident")
        rec = postincident.record(self.spec, self.st, self.ctl.clock(), name)
        self.st.post_incident = rec
        report = postincident.markdown(ref.namespace, ref.name, self.spec, self.st, rec)
        await asyncio.to_thread(self.ctl.objects.put_config_map, ref.namespace, name, {"report.md": report}, ref,
                                {"opex.dev/incident": label_value(ref.name)})
        self.event("PostIncidentRecorded", f"post-incident report in ConfigMap {name}; "
                                           f"{len(rec.action_items)} action items")

    async def record_alert(self) -> None:
        """AlertResolved (AlarmResolved) from the intake's record; a timeline entry and an Event when its state flips.

        The intake writes ``status.alert`` and then the annotation, so the annotation (fresh in
        every pass) is never ahead of the record in the API server. When it is ahead of the status
        this pass holds (a reconcile loop that keeps status in memory), the record is read.
        """
        record = self.st.alert
        announced = self.obj.annotations.get(ALERT_STATE_ANNOTATION)
        if announced and (record is None or record.state != announced):
            body = await asyncio.to_thread(self.ctl.objects.get, "incidents", self.obj.ref.namespace,
                                           self.obj.ref.name)
            live = ((body or {}).get("status") or {}).get("alert")
            record = AlertRecord.model_validate(live) if live else None
        wanted = engine.alert_condition(self.spec, record)
        if wanted is None:
            return
        before = get(self.st.conditions, wanted.type)
        flipped = before is None or before.status != wanted.status
        self.condition(wanted.type, wanted.status, wanted.reason, wanted.message)
        if flipped:
            self.event(f"{wanted.type.removesuffix('Resolved')}{wanted.reason}", wanted.message)

    def record_approvals(self) -> None:
        """Who approved each step (``status.approvals``: the named entries of
        spec.remediation.approvals, admitted by the API server only in the requester's own name, and
        ids of approvedSteps without a name), each new one an Event."""
        rem = self.spec.remediation
        before = {(a.step, a.by) for a in self.st.approvals}
        self.st.approvals = step_approvals([i for i in rem.approved_steps if i not in {a.step for a in rem.approvals}],
                                           rem.approvals, self.st.approvals, self.now)
        for a in self.st.approvals:
            if (a.step, a.by) not in before:
                self.event("StepApproved", f"step {a.step} approved by {a.by}" if a.by else
                           f"step {a.step} approved without a name (spec.remediation.approvedSteps)")

    def check_approvals(self) -> None:
        unknown = engine.unknown_approvals(self.spec, self.st)
        if unknown:
            known = ", ".join(s.id for s in self.st.steps if s.mutating) or "none"
            text = f"spec.remediation.approvedSteps names unknown step ids {unknown}; this incident's steps: {known}"
            if self.condition(APPROVALS_VALID, ConditionStatus.FALSE, "UnknownStepId", text):
                self.event("UnknownStepId", text, warning=True)
        elif self.spec.remediation.approved_steps:
            self.condition(APPROVALS_VALID, ConditionStatus.TRUE, "Valid",
                           "every approved step id names a step of this incident")


def assessed(problems: list[ReadProblem], found: int) -> tuple[str, str]:
    """The Assessed condition's reason and message: the worst kind of unreadable source, or how many
    findings there are."""
    denied = [p for p in problems if p.denied]
    missing = [p for p in problems if p.not_found]
    if denied:
        return "AccessDenied", "; ".join(p.message for p in denied)
    if missing:
        return "TargetNotFound", "; ".join(f"{p.resource} not found" for p in missing)
    if problems:
        return "PartiallyAssessed", "; ".join(p.message for p in problems)
    return "Assessed", f"{found} findings"


async def run_step(ctx: StepContext) -> Outcome:
    """Carry out ``ctx.step`` with its registered action. An AwsError becomes a failed Outcome
    (retryable when transient: throttling, 5xx, no answer), as does a LookupError (an adapter naming
    a target that does not exist); other errors reach the runtime."""
    action = action_of(ctx.step.action)
    if action is None:
        return Outcome(done=True, ok=False, error=f"no step action is registered for {ctx.step.action}")
    try:
        return await action.execute(ctx, params_of(ctx.step))
    except AwsError as err:
        log.info("step %s of %s: %s", ctx.step.id, ctx.ref.key, err)
        return Outcome(done=True, ok=False, error=str(err), retryable=err.transient)
    except LookupError as err:
        if type(err) is not LookupError:  # KeyError, IndexError: a bug, not a missing target
            raise
        log.info("step %s of %s: %s", ctx.step.id, ctx.ref.key, err)
        return Outcome(done=True, ok=False, error=str(err))
