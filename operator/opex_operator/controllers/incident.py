"""Reconcile an Incident: one move of the runbook engine per pass, carried out through the ports.

A pass parses the spec, asks ``runbooks.engine.decide`` for the next move (assess, page, run or
await a step, verify, notify, resolve, close), carries out that one move, checkpoints status and
returns when to look again: at once while there is more to do, at the next escalation deadline
or poll while it waits, never while it waits for a person (the spec change wakes it). Every
step is checkpointed in status before and after it acts; the engine decides, this module only
carries out and records.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Callable, Sequence

from pydantic import ValidationError

from .. import metrics
from ..api import INCIDENT
from ..aws.budget import counting
from ..api.common import ConditionStatus, LocalObjectReference, StateLock, now as utcnow
from ..api.conditions import get, set_condition
from ..environments import is_production
from ..api.incident import (ALERT_STATE_ANNOTATION, MAX_FINDINGS, AlertRecord, Classification, EscalationLevel,
                            EscalationStatus, IncidentPhase as Phase, IncidentSpec, IncidentStatus, IncidentType,
                            Notification, RemediationMode, RemediationStatus, RootCauseCategory, Step, StepState,
                            effective_severity)
from ..api.performance import MetricsQuery
from ..api.security import WafScope
from ..errors import AwsError, KubeError
from ..kube import child_name, label_value
from ..notify import escalation as matrix, message
from ..policy import Policy
from ..process import IDENTITY
from ..ports import AwsPorts, Objects, Webhook, Workspaces
from ..runbooks import engine, perf_assess, perf_plan, plan, postincident, probes, security
from ..runbooks.diagnose import bounded, findings
from ..runbooks.engine import Decision, Move, Situation, VerifyFacts, VerifyOutcome
from ..runbooks.facts import ReadProblem
from ..runbooks.performance import key as series_key, series_specs
from ..runbooks.steps import (AccessKeyParams, BlockIpsParams, LambdaConfigurationParams, LambdaRollbackParams,
                              LoginProfileParams, PerformanceInsightsParams, RetryStageParams, RevokeIngressParams,
                              RotateSecretParams, StageSettingsParams, StartPipelineParams, params_of)
from ..workqueue import jittered
from .base import Observed
from .common import Pass, reject_spec
from . import incident_security as security_actions
from .incident_assess import SharedReads, assess, investigate, measure, measured, probe
from .incident_steps import run_step
from .steps import StepContext

log = logging.getLogger(__name__)

ASSESSED, ROOT_CAUSE, REMEDIATED, ESCALATED, APPROVALS, CLOSED = (
    "Assessed", "RootCauseIdentified", "Remediated", "Escalated", "ApprovalsValid", "Closed")
VERIFY_POLL = 10.0
# A person's fix is looked for after 1 minute, then as long as it has been waiting, up to 15
# minutes: doubling, and restart-safe (counted from the verify step's start in status).
MANUAL_POLL, MANUAL_POLL_MAX = 60.0, 900.0
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
# Errors logged this soon after a step finished may predate it (log delivery lags).
ERROR_GRACE = dt.timedelta(seconds=10)
MAX_NOTIFIED = 30


class IncidentController:
    """The Incident reconciler (``controllers.base.Controller``)."""

    resource = INCIDENT
    wake_annotations: tuple[str, ...] = (ALERT_STATE_ANNOTATION,)

    def __init__(self, aws: AwsPorts, objects: Objects, workspaces: Workspaces, policy: Policy, webhook: Webhook,
                 clock: Callable[[], dt.datetime] = utcnow, sources: Sequence[str] = (),
                 shared_read_seconds: float = 10.0):
        """``sources``: the CIDRs and security group ids the operator connects from
        (``OPEX_SOURCE_CIDRS``), checked against a database's groups when its probe is refused;
        ``shared_read_seconds``: how long identical assessment reads are shared (SharedReads)."""
        self.aws, self.objects, self.workspaces, self.policy = aws, objects, workspaces, policy
        self.webhook, self.clock, self.sources = webhook, clock, tuple(sources)
        self.shared_reads = SharedReads(shared_read_seconds)

    async def finalize(self, ref) -> None:
        """Nothing outside Kubernetes: its reports and Rollbacks are owned objects."""

    def forget(self, ref) -> None:
        metrics.INCIDENT_PHASES.forget(ref.uid)
        metrics.INCIDENTS_UNASSESSED.forget(ref.uid)
        metrics.INCIDENTS_PAST_ESCALATION.forget(ref.uid)

    def priority(self, body: dict) -> int:
        """Severity first (critical 0 ... low 3), production before other environments."""
        spec = body.get("spec") or {}
        rank = SEVERITY_RANK.get(spec.get("severity"), 3)
        return 2 * rank + (0 if is_production(spec.get("environment")) else 1)

    async def reconcile(self, obj: Observed[IncidentStatus]) -> float | None:
        """One move of the runbook (see the module docstring); seconds until the next pass, or None."""
        try:
            spec = IncidentSpec.model_validate(obj.spec)
        except ValidationError as err:
            await reject_spec(obj, Phase.FAILED, err)
            return None
        region = spec.targets.region or self.aws.default_region
        levels = matrix.applicable(spec.escalation.levels if spec.escalation and spec.escalation.levels
                                   else self.policy.escalation.levels, effective_severity(spec, obj.status),
                                   spec.environment, spec.type)
        situation = Situation(now=self.clock(), levels=levels,
                              denied=self.policy.check(obj.ref.namespace, spec.targets.role_key, region))
        pass_ = _Pass(self, obj, spec, situation)
        if obj.status.phase is None:
            pass_.detect()
        pass_.note_interrupted()
        self.track(obj, spec, situation)  # before the move, so a pass that fails or hangs still counts
        obj.status.remediation = RemediationStatus(mode=spec.remediation.mode)
        decision = engine.decide(spec, obj.status, situation)
        log.debug("%s %s: %s", self.resource.kind, obj.ref.key, decision.move)
        requeue = await pass_.carry_out(decision)
        pass_.check_approvals()
        await pass_.record_alert()
        obj.status.observed_generation = obj.generation
        await pass_.save()
        st = obj.status
        metrics.INCIDENT_PHASES.set(obj.ref.uid, st.phase.value, effective_severity(spec, st).value, spec.type.value)
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


class _Pass(Pass):
    """One reconcile pass over one Incident: carries out one decision and records it."""

    def __init__(self, ctl: IncidentController, obj: Observed[IncidentStatus], spec: IncidentSpec,
                 situation: Situation):
        super().__init__(obj)
        self.ctl, self.spec, self.now, self.situation = ctl, spec, situation.now, situation

    def remediated(self, status: ConditionStatus, reason: str, message: str) -> None:
        self.condition(REMEDIATED, status, reason, message)

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
                return await self.remediate(d.step)
            case Move.AWAIT_APPROVAL:
                return self.await_approval(d.step)
            case Move.DRY_RUN:
                return self.dry_run(d.step)
            case Move.DRY_RUN_DONE:
                ids = [s.id for s in self.st.steps if s.state == StepState.DRY_RUN]
                text = (f"dry run: {', '.join(ids)} would run; set spec.remediation.mode to Manual (and approve) or "
                        f"Auto to run them")
                self.phase(Phase.AWAITING_APPROVAL, "DryRun", text)
                self.remediated(ConditionStatus.FALSE, "DryRun", text)
                return None
            case Move.VERIFY:
                return await self.verify(d.step)
            case Move.NOTIFY:
                await self.notify_resolved(d.step)
                return 0.0
            case Move.FAIL:
                await self.fail(d.step, d.escalate)
            case Move.RESOLVE:
                await self.resolve()
            case Move.CLOSE:
                await self.close()
        return None

    def note_interrupted(self) -> None:
        """A mutating step left Running by another operator process: it was interrupted. Say so; the
        executor then re-reads the real state before it acts again (every executor checks first)."""
        for step in self.st.steps:
            if step.state == StepState.RUNNING and step.mutating and step.runner not in (None, IDENTITY):
                self.event("Interrupted", f"step {step.id} was running in operator {step.runner or '(unknown)'}, which "
                                          f"stopped before recording its outcome; checking the real state before acting "
                                          f"again", warning=True)
                step.runner = None  # recorded; nothing of this process is in flight

    # -- detection and assessment (read-only) -----------------------------------------------------
    def detect(self) -> None:
        """A new incident: when it started (the alert's startsAt or the event's time, else the object's creation)."""
        started = self.spec.source.started_at if self.spec.source else None
        self.st.detected_at = started or self.obj.created_at or self.now
        self.phase(Phase.DETECTED, "Detected", f"{self.spec.type.value} incident ({self.spec.severity.value}) in "
                                               f"{self.spec.environment}: {self.spec.title}")

    async def assess_and_classify(self) -> None:
        st = self.st
        a = self.step(plan.ASSESS)
        if st.phase in (Phase.DETECTED, None):
            self.phase(Phase.ASSESSING, "Assessing", "initial assessment of every target")
        a.state, a.started_at, a.attempts = StepState.RUNNING, a.started_at or self.now, a.attempts + 1
        region, role = self.spec.targets.region, self.spec.targets.role_key
        reader = self.ctl.shared_reads.reader(self.ctl.aws.reader(region, role), (region, role))
        with counting() as calls:
            obs = await assess(self.spec, reader, self.ctl.clock(), self.drift_lock)
            security_incident = self.spec.type == IncidentType.SECURITY_INCIDENT and self.spec.targets.security
            facts = (await investigate(self.spec, reader, self.ctl.aws.ec2(region, role), self.ctl.clock(), obs)
                     if security_incident else None)
            guard = self.ctl.policy.probe_guard(self.obj.ref.namespace)
            perf = (await measure(self.spec, self.ctl.aws, self.ctl.objects, self.obj.ref.namespace, obs,
                                  self.ctl.clock(), self.ctl.sources, guard) if measured(self.spec) else None)
        metrics.ASSESSMENT_AWS_CALLS.labels(self.spec.type.value).observe(calls.calls)
        d = findings(obs)
        now = self.ctl.clock()
        inv = (security.investigate(self.spec.targets.security, self.spec.environment, self.spec.severity, facts,
                                    now, d) if facts is not None else None)
        if inv is not None:
            self.record_classification(inv.classification, now)
        analysis = (perf_assess.analyse(perf, (self.spec.targets.metrics or MetricsQuery()).thresholds, d,
                                        self.spec.remediation.performance,
                                        self.ctl.policy.limits(self.obj.ref.namespace).lambda_memory_mb)
                    if perf is not None else None)
        cause = (security.root_cause(inv, self.spec.targets.security, now) if inv is not None
                 else perf_assess.root_cause(obs, d, now, analysis))
        st.findings = bounded(d.findings, cause.evidence, MAX_FINDINGS)
        a.state, a.finished_at = StepState.SUCCEEDED, now
        a.outputs = f"{len(d.findings)} findings; {len(obs.problems)} sources unreadable" + (
            f" ({len(st.findings)} most telling findings kept)" if len(st.findings) < len(d.findings) else "")
        if st.assessed_at is None:
            st.assessed_at = now
            metrics.TIME_TO_ASSESS.labels(self.spec.type.value, effective_severity(self.spec, st).value).observe(
                max(0.0, (now - st.detected_at).total_seconds()))
        denied = [p for p in obs.problems if p.denied]
        missing = [p for p in obs.problems if p.not_found]
        if denied:
            reason, text = "AccessDenied", "; ".join(p.message for p in denied)
        elif missing:
            reason, text = "TargetNotFound", "; ".join(f"{p.resource} not found" for p in missing)
        elif obs.problems:
            reason, text = "PartiallyAssessed", "; ".join(p.message for p in obs.problems)
        else:
            reason, text = "Assessed", f"{len(d.findings)} findings"
        set_condition(st.conditions, ASSESSED, ConditionStatus.TRUE, reason, text, self.gen)
        self.phase(Phase.DIAGNOSING, "Diagnosing", f"assessed: {a.outputs}")
        self.event("Assessed", f"{a.outputs}" + (f"; {reason}: {text}" if obs.problems else ""),
                   warning=bool(obs.problems))
        await self.save()

        c = self.step(plan.CLASSIFY)
        st.root_cause = cause
        known = cause.category != RootCauseCategory.UNKNOWN
        set_condition(st.conditions, ROOT_CAUSE, ConditionStatus.TRUE if known else ConditionStatus.FALSE,
                      cause.category.value, cause.summary, self.gen)
        steps = plan.remediation_steps(self.spec, cause, obs, inv)
        if analysis is not None:
            steps += [change.step() for change in analysis.plan.changes]
            for note in analysis.plan.notes:
                self.event("NotPlanned", note)
        existing = {s.id for s in st.steps}
        st.steps += [s for s in steps if s.id not in existing]
        for fixed in (plan.VERIFY, plan.NOTIFY):
            if fixed not in existing:
                st.steps.append(plan.read_step(fixed))
        # verify and notify come last, after any remediation step a re-plan added
        st.steps.sort(key=lambda s: plan.ORDER.get(s.id, 2))
        c.state, c.started_at, c.finished_at, c.attempts = StepState.SUCCEEDED, now, now, c.attempts + 1
        c.outputs = f"{cause.category.value}; {len(steps)} remediation steps: {', '.join(s.id for s in steps) or 'none'}"
        self.event("RootCauseIdentified", f"{cause.category.value}: {cause.summary}", warning=not known)

    def record_classification(self, found: security.Classification, now: dt.datetime) -> None:
        """The investigation's severity in status; a raise (never a lowering) also in the timeline."""
        before = self.st.classification
        self.st.classification = Classification(
            declared_severity=found.declared, severity=found.severity, raised=found.raised, reason=found.reason,
            evidence=[f"{e.severity.value}: {e.reason}" for e in found.evidence][:10], classified_at=now)
        if found.raised and (before is None or before.severity != found.severity):
            self.event("SeverityRaised", found.reason, warning=True)

    def drift_lock(self, drift_check: str) -> StateLock | None:
        """The lock the named DriftCheck last saw (blocking; the assessment calls it in a thread)."""
        dc = self.ctl.objects.get("driftchecks", self.obj.ref.namespace, drift_check)
        lock = ((dc or {}).get("status") or {}).get("lock")
        return StateLock.model_validate(lock) if lock else None

    def step(self, step_id: str) -> Step:
        found = engine.find(self.st, step_id)
        if found is None:
            found = plan.read_step(step_id)
            self.st.steps.insert(plan.ORDER[step_id], found)
        return found

    # -- remediation (mutating, gated) -------------------------------------------------------------
    def await_approval(self, step: Step) -> None:
        if step.state != StepState.AWAITING_APPROVAL:
            step.state = StepState.AWAITING_APPROVAL
            why = (" (a recovery step: a person approves it even in Auto mode)"
                   if step.requires_approval and self.spec.remediation.mode != RemediationMode.MANUAL else "")
            self.event("AwaitingApproval", f"step {step.id} ({step.inputs}) waits for approval{why}")
        patch = '{"spec":{"remediation":{"approvedSteps":["%s"]}}}' % step.id
        how = (f"approve step {step.id} ({step.inputs}): kubectl patch incident {self.obj.ref.name} "
               f"-n {self.obj.ref.namespace} --type merge -p '{patch}' (a merge patch replaces the list: "
               f"keep any ids approved before)")
        self.phase(Phase.AWAITING_APPROVAL, "AwaitingApproval", how)
        self.remediated(ConditionStatus.FALSE, "AwaitingApproval", how)
        return None

    def dry_run(self, step: Step) -> float:
        step.state, step.outputs = StepState.DRY_RUN, f"dry run: would {step.inputs}"
        metrics.RUNBOOK_ACTIONS.labels(step.action, "dry_run").inc()
        self.event("DryRun", f"step {step.id} would {step.inputs}")
        return 0.0

    async def remediate(self, step: Step) -> float | None:
        policy = engine.step_policy(self.spec, step.id)
        region = params_of(step).target_region() or self.spec.targets.region or self.ctl.aws.default_region
        denied = self.ctl.policy.check(self.obj.ref.namespace, self.spec.targets.role_key, region, step.action)
        if denied:
            step.state, step.error, step.finished_at = StepState.FAILED, denied, self.now
            metrics.RUNBOOK_ACTIONS.labels(step.action, "denied").inc()
            self.event("PolicyDenied", f"step {step.id} refused: {denied}", warning=True)
            return 0.0
        resumed = step.state == StepState.RUNNING
        if not resumed:  # a Running step is resumed, not counted again
            step.state, step.attempts, step.started_at = StepState.RUNNING, step.attempts + 1, self.now
            step.error, step.runner = None, IDENTITY
            self.phase(Phase.REMEDIATING, "Remediating", f"running step {step.id}")
            self.remediated(ConditionStatus.FALSE, "Remediating", f"running step {step.id}: {step.inputs}")
            self.event("StepStarted", f"step {step.id} (attempt {step.attempts}/{policy.max_attempts}): {step.inputs}")
            await self.save()  # intent on record before the call
        elif (self.now - step.started_at).total_seconds() > policy.timeout_seconds:
            return self.step_failed(step, f"did not finish within {policy.timeout_seconds}s", retryable=False)
        step.runner = IDENTITY  # a call is in flight: on record with the intent (a first attempt) or before the next
        outcome = await run_step(StepContext(self.obj.ref, self.spec, step, self.now, self.ctl.aws, self.ctl.objects,
                                             self.ctl.workspaces, resumed, self.obj.labels,
                                             self.ctl.policy))
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
            self.phase(Phase.REMEDIATING, "Remediating", f"step {step.id} succeeded: {outcome.outputs}")
            self.remediated(ConditionStatus.FALSE, "Remediating", f"step {step.id} succeeded; not verified yet")
            return 0.0
        return self.step_failed(step, outcome.error or "failed", outcome.retryable, policy.max_attempts)

    def step_failed(self, step: Step, error: str, retryable: bool, max_attempts: int = 1) -> float:
        step.error, step.finished_at = error, self.ctl.clock()
        if retryable and step.attempts < max_attempts:
            step.state = StepState.PENDING
            delay = min(300.0, 5.0 * 2 ** (step.attempts - 1))
            text = f"step {step.id} attempt {step.attempts} failed ({error}); retrying in {delay:.0f}s"
            self.event("StepRetrying", text, warning=True)
            self.phase(Phase.REMEDIATING, "StepRetrying", text)
            self.remediated(ConditionStatus.FALSE, "StepRetrying", text)
            return delay
        step.state = StepState.FAILED
        metrics.RUNBOOK_ACTIONS.labels(step.action, "failed").inc()
        self.event("StepFailed", f"step {step.id} failed after {step.attempts} attempt(s): {error}", warning=True)
        return 0.0

    # -- verify and notify (read-only) -------------------------------------------------------------
    async def verify(self, step: Step) -> float | None:
        done = [s for s in self.st.steps if s.mutating and s.state == StepState.SUCCEEDED]
        if step.state != StepState.RUNNING:
            step.state, step.started_at, step.attempts = StepState.RUNNING, self.now, step.attempts + 1
            await self.save()
        pipeline = self.spec.targets.pipeline.name if self.spec.targets.pipeline else None
        try:
            facts = await asyncio.to_thread(self._observe, done, pipeline)
            facts.probes = await self._probe_again()
            outcome, text = engine.verify(self.st, facts, pipeline)
        except AwsError as err:  # cannot observe yet: say why and look again later
            outcome, text = VerifyOutcome.PENDING, f"cannot observe the targets: {err}"
        step.outputs = text
        if outcome == VerifyOutcome.VERIFIED:
            step.state, step.finished_at = StepState.SUCCEEDED, self.ctl.clock()
            self.remediated(ConditionStatus.TRUE, "Verified", text)
            self.event("Verified", text)
            return 0.0
        if outcome == VerifyOutcome.FAILED:
            step.state, step.error, step.finished_at = StepState.FAILED, text, self.ctl.clock()
            self.event("VerificationFailed", text, warning=True)
            return 0.0
        timeout = engine.step_policy(self.spec, plan.VERIFY).timeout_seconds
        if done and (self.now - self._verify_clock(step, done)).total_seconds() > timeout:
            step.state, step.error = StepState.FAILED, f"not verified within {timeout}s: {text}"
            self.event("VerificationFailed", step.error, warning=True)
            return 0.0
        if done:
            self.phase(Phase.REMEDIATING, "Verifying", text)
            self.remediated(ConditionStatus.FALSE, "Verifying", text)
            return VERIFY_POLL
        text = (f"no automated remediation for {self.st.root_cause.category.value}: {text}; fix it (see the "
                f"findings), or set spec.closed: true")
        self.phase(Phase.MANUAL_ACTION_REQUIRED, "ManualActionRequired", text)
        self.remediated(ConditionStatus.FALSE, "ManualActionRequired", text)
        waiting = (self.now - step.started_at).total_seconds()
        return jittered(min(MANUAL_POLL_MAX, max(MANUAL_POLL, waiting)))

    def _verify_clock(self, step: Step, done: list[Step]) -> dt.datetime:
        """When verification's timeout starts: at the verify step's start, or, after a memory raise,
        when the first whole metrics period after the change ends (no answer can come earlier)."""
        period = (self.spec.targets.metrics or MetricsQuery()).period_seconds
        raised = [p.changed_at for p in map(params_of, done) if isinstance(p, LambdaConfigurationParams)
                  and p.memory_size_mb is not None and p.changed_at is not None]
        ends = [perf_plan.first_period(at, period) + dt.timedelta(seconds=period) for at in raised]
        return max([step.started_at, *ends])

    async def _probe_again(self) -> list[tuple[bool, str]]:
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
        return probes.results(http, database) + [(False, p.message) for p in problems]

    def _observe(self, done: list[Step], pipeline: str | None) -> VerifyFacts:
        """What verification needs of AWS for the steps that ran (blocking). Raises AwsError."""
        region, role = self.spec.targets.region, self.spec.targets.role_key
        facts = VerifyFacts()
        for s in done:
            p = params_of(s)
            if isinstance(p, (LambdaRollbackParams, LambdaConfigurationParams)):
                since = (s.finished_at or self.now) + ERROR_GRACE
                state = self.ctl.aws.lambda_(region, role).current(p.function_name)
                errors = [] if not state.settled else self._errors_since(p.function_name, since)
                facts.functions[p.function_name] = (state, errors)
                if isinstance(p, LambdaConfigurationParams) and p.memory_size_mb and p.changed_at:
                    facts.performance.durations[s.id] = self._duration_check(p)
            elif isinstance(p, PerformanceInsightsParams):
                config, _ = self.ctl.aws.perf_reader(region, role).rds_config(p.db_instance_identifier)
                facts.performance.insights[p.db_instance_identifier] = config
            elif isinstance(p, StageSettingsParams):
                facts.performance.stages[f"{p.rest_api_id}/{p.stage_name}"] = self.ctl.aws.perf_reader(
                    region, role).stage_config(p.rest_api_id, p.stage_name)
            elif isinstance(p, (RetryStageParams, StartPipelineParams)):
                actions = self.ctl.aws.pipeline(region, role)
                execution = p.execution_id or (actions.newest_execution(p.pipeline) or (None,))[0]
                facts.executions[p.pipeline] = (execution, actions.execution_status(p.pipeline, execution)
                                                if execution else "missing")
            else:
                self._observe_contained(p, facts)
        if not done and pipeline is not None:
            facts.newest_execution = self.ctl.aws.pipeline(region, role).newest_execution(pipeline)
        return facts

    def _observe_contained(self, p: object, facts: VerifyFacts) -> None:
        """The current state of what a security step contained (blocking). Raises AwsError."""
        region, role = self.spec.targets.region, self.spec.targets.role_key
        seen = facts.security
        if isinstance(p, AccessKeyParams):
            key = self.ctl.aws.iam(region, role).access_key(p.user_name, p.access_key_id)
            seen.access_keys[p.access_key_id] = key["Status"] if key else None
        elif isinstance(p, LoginProfileParams):
            seen.login_profiles[p.user_name] = self.ctl.aws.iam(region, role).has_login_profile(p.user_name)
        elif isinstance(p, BlockIpsParams):
            seen.ip_sets[p.id] = self.ctl.aws.waf(p.region or region, role).addresses(p.name, p.id, WafScope(p.scope),
                                                                                     p.region)
        elif isinstance(p, RevokeIngressParams):
            seen.ingress[p.group_id] = [r for g in self.ctl.aws.ec2(region, role).security_groups([p.group_id])
                                        for r in g.ingress]
        elif type(p) in security_actions.OBSERVERS:
            security_actions.OBSERVERS[type(p)](self.ctl.aws.iam(region, role), p, seen)
        elif isinstance(p, RotateSecretParams) and p.version_id:
            try:
                seen.rotations[p.secret_id] = self.ctl.aws.secrets(region, role).rotation(p.secret_id,
                                                                                          p.version_id).state.value
            except LookupError:  # the rotation's version was removed: it failed
                seen.rotations[p.secret_id] = "missing"

    def _duration_check(self, p: LambdaConfigurationParams) -> perf_plan.DurationCheck:
        """A memory raise's Duration p99 over the whole periods since its change (blocking). Raises AwsError."""
        period = (self.spec.targets.metrics or MetricsQuery()).period_seconds
        check = perf_plan.DurationCheck(p.function_name, p.before_p99_ms, p.changed_at, period, self.now)
        window = perf_plan.periods_ended(p.changed_at, period, self.now)
        if window is not None:
            p99 = [s for s in series_specs([p.function_name])
                   if s.key == series_key(f"function/{p.function_name}", "Duration", "p99")]
            end, seconds = window
            [check.after] = self.ctl.aws.cloudwatch(self.spec.targets.region, self.spec.targets.role_key).read(
                p99, end, seconds, period)
        return check

    def _errors_since(self, fn: str, since: dt.datetime) -> list[str]:
        reader = self.ctl.aws.reader(self.spec.targets.region, self.spec.targets.role_key)
        try:
            return [line.message for line in reader.filtered_lines(f"/aws/lambda/{fn}", since) if line.time > since]
        except AwsError as err:
            if err.not_found:  # no log group: nothing logged
                return []
            raise

    async def notify_resolved(self, step: Step) -> None:
        topics, webhook = self.channels()
        if not topics and webhook is None:
            step.state, step.outputs = StepState.SKIPPED, "no notification channel configured"
            return
        subject, body, payload = message.resolution(self.obj.ref.namespace, self.obj.ref.name, self.spec, self.st)
        step.attempts += 1
        sent = await self.send(subject, body, payload, {"severity": effective_severity(self.spec, self.st).value,
                                                        "level": "resolved",
                                                        "type": self.spec.type.value}, level=1, contact="subscribers")
        step.state, step.finished_at = StepState.SUCCEEDED, self.ctl.clock()
        step.outputs = "; ".join(f"{n.channel} {n.target}: {n.error or 'sent'}" for n in sent)

    # -- escalation and notification -------------------------------------------------------------
    def channels(self) -> tuple[list[str], object | None]:
        topics = list(dict.fromkeys((self.spec.notify.sns_topic_arns if self.spec.notify else [])
                                    + self.ctl.policy.escalation.sns_topic_arns))
        webhook = self.spec.notify.webhook if self.spec.notify and self.spec.notify.webhook else None
        return topics, webhook

    async def escalate(self, due: list[EscalationLevel]) -> None:
        """Page the levels due; record where the matrix stands and when the next level is due."""
        st = self.st
        st.escalation = st.escalation or EscalationStatus()
        for level in due:
            subject, body, payload = message.escalation(self.obj.ref.namespace, self.obj.ref.name, self.spec, st, level)
            sent = await self.send(subject, body, payload, {"severity": effective_severity(self.spec, st).value,
                                                            "level": str(level.level), "type": self.spec.type.value},
                                   level.level, level.contact)
            st.escalation.notified = (st.escalation.notified + sent)[-MAX_NOTIFIED:]
            st.escalation.current_level = level.level
            metrics.ESCALATIONS.labels(str(level.level)).inc()
            delivered = [n for n in sent if not n.error]
            if delivered:
                where = ", ".join(f"{n.channel} {n.target}" for n in delivered)
                failed = [f"{n.channel} {n.target}: {n.error}" for n in sent if n.error]
                text = f"level {level.level}: {level.contact} notified via {where}" + (
                    f"; failed: {'; '.join(failed)}" if failed else "")
                set_condition(st.conditions, ESCALATED, ConditionStatus.TRUE, f"Level{level.level}", text, self.gen)
            elif sent:
                text = (f"level {level.level} ({level.contact}) is due but every page failed: "
                        + "; ".join(f"{n.channel} {n.target}: {n.error}" for n in sent))
                set_condition(st.conditions, ESCALATED, ConditionStatus.FALSE, "NotificationFailed", text, self.gen)
            else:
                text = (f"level {level.level} ({level.contact}) is due but nobody was paged: no notification channel "
                        f"is configured (spec.notify, or escalation.snsTopicArns in the operator's policy)")
                set_condition(st.conditions, ESCALATED, ConditionStatus.FALSE, "NoChannel", text, self.gen)
            self.event("Escalated", text, warning=True)
        _, next_at = engine.levels_due(st, self.situation)
        pending = [lv for lv in self.situation.levels if lv.level > st.escalation.current_level]
        st.escalation.next_escalation_at = next_at
        st.escalation.next_level = pending[0].level if pending and next_at else None
        if not self.situation.levels:
            set_condition(st.conditions, ESCALATED, ConditionStatus.FALSE, "NoLevels",
                          "no escalation level applies to this severity and environment", self.gen)

    async def send(self, subject: str, body: str, payload: dict, attributes: dict, level: int,
                   contact: str) -> list[Notification]:
        """Deliver to every channel; each outcome is returned (a failed page never stops the others)."""
        topics, webhook = self.channels()
        sent: list[Notification] = []
        for topic in topics:
            region = topic.split(":")[3]
            denied = self.ctl.policy.check(self.obj.ref.namespace, self.spec.targets.role_key, region)
            note = Notification(level=level, contact=contact, channel="SNS", target=topic, time=self.ctl.clock())
            try:
                if denied:
                    raise PermissionError(denied)
                sns = self.ctl.aws.sns(region, self.spec.targets.role_key)
                note.message_id = await asyncio.to_thread(sns.publish, topic, subject, body, attributes)
                metrics.NOTIFICATIONS.labels("sns", "sent").inc()
            except (AwsError, PermissionError) as err:
                note.error = str(err)
                metrics.NOTIFICATIONS.labels("sns", "failed").inc()
            sent.append(note)
        if webhook is not None:
            note = Notification(level=level, contact=contact, channel="Webhook", target="webhook", time=self.ctl.clock())
            ref = webhook.url_secret_ref
            try:
                url = await asyncio.to_thread(self.ctl.objects.secret_value, self.obj.ref.namespace, ref.name, ref.key)
                if url is None:
                    raise RuntimeError(f"Secret {ref.name} has no key {ref.key}")
                await asyncio.to_thread(self.ctl.webhook, url, payload)
                metrics.NOTIFICATIONS.labels("webhook", "sent").inc()
            except (RuntimeError, KubeError) as err:
                note.error = str(err)
                metrics.NOTIFICATIONS.labels("webhook", "failed").inc()
            sent.append(note)
        return sent

    # -- endings ----------------------------------------------------------------------------------
    def stop_escalating(self) -> None:
        if self.st.escalation:
            self.st.escalation.next_escalation_at, self.st.escalation.next_level = None, None

    async def resolve(self) -> None:
        st = self.st
        st.resolved_at = self.ctl.clock()
        self.stop_escalating()
        metrics.TIME_TO_RESOLVE.labels(self.spec.type.value, effective_severity(self.spec, st).value).observe(
            max(0.0, (st.resolved_at - st.detected_at).total_seconds()))
        ran = [s.id for s in st.steps if s.mutating and s.state == StepState.SUCCEEDED]
        self.phase(Phase.RESOLVED, "Resolved", f"resolved and verified after {', '.join(ran) or 'a manual fix'}; set "
                                               f"spec.closed: true after the post-incident review")
        await self.post_incident()

    async def fail(self, step: Step, escalate: bool) -> None:
        if escalate:
            due, _ = engine.levels_due(self.st, self.situation, force_next=True)
            await self.escalate(due)
        self.stop_escalating()
        text = (f"step {step.id} failed: {step.error}; the operator stopped (onFailure "
                f"{engine.step_policy(self.spec, step.id).on_failure.value}); a human must take over")
        self.remediated(ConditionStatus.FALSE, "StepFailed", text)
        self.phase(Phase.FAILED, "StepFailed", text, warning=True)
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
        set_condition(st.conditions, CLOSED, ConditionStatus.TRUE, "Closed", "closed (spec.closed: true)", self.gen)
        self.phase(Phase.CLOSED, "Closed", "closed (spec.closed: true)")
        if st.post_incident is None:
            await self.post_incident()

    async def post_incident(self) -> None:
        name = child_name(self.obj.ref.name, "postincident")
        rec = postincident.record(self.spec, self.st, self.ctl.clock(), name)
        self.st.post_incident = rec
        report = postincident.markdown(self.obj.ref.namespace, self.obj.ref.name, self.spec, self.st, rec)
        await asyncio.to_thread(self.ctl.objects.put_config_map, self.obj.ref.namespace, name, {"report.md": report},
                                self.obj.ref, {"opex.dev/incident": label_value(self.obj.ref.name)})
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

    def check_approvals(self) -> None:
        unknown = engine.unknown_approvals(self.spec, self.st)
        if unknown:
            known = ", ".join(s.id for s in self.st.steps if s.mutating) or "none"
            text = f"spec.remediation.approvedSteps names unknown step ids {unknown}; this incident's steps: {known}"
            if set_condition(self.st.conditions, APPROVALS, ConditionStatus.FALSE, "UnknownStepId", text, self.gen):
                self.event("UnknownStepId", text, warning=True)
        elif self.spec.remediation.approved_steps:
            set_condition(self.st.conditions, APPROVALS, ConditionStatus.TRUE, "Valid",
                          "every approved step id names a step of this incident", self.gen)
