"""Reconcile an Incident: run the runbook engine's decisions through the adapters, step by step.

One pass does as many moves as it can (assess, classify, run approved steps, verify, notify)
and stops at a wait (approval, a child Rollback, a pipeline still running, the next escalation).
Every step is checkpointed in status before and after it acts; the engine (``runbooks.engine``)
decides, this module only carries out and records.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from typing import Callable

from pydantic import ValidationError

from .. import metrics
from ..api.common import ConditionStatus, EventType, StateLock, now as utcnow
from ..api.conditions import set_condition
from ..api.incident import (EscalationStatus, IncidentPhase as Phase, IncidentSpec, IncidentStatus, Notification,
                            RootCauseCategory, Step, StepState)
from ..errors import AwsError
from ..aws.clients import AwsClients
from ..aws.lambda_ import LambdaActions
from ..aws.pipeline import PipelineActions
from ..aws.reader import AwsReader
from ..kube import Kube, ObjectRef
from ..notify import escalation as matrix, message, senders
from ..policy import Policy
from ..runbooks import engine, plan, postincident
from ..runbooks.assess import assess
from ..runbooks.diagnose import classify, findings
from ..runbooks.engine import Move
from .base import Event, Observed
from .common import reject_spec, transition
from .incident_steps import StepContext, TerraformSettings, run_step

ASSESSED, ROOT_CAUSE, REMEDIATED, ESCALATED, APPROVALS = (
    "Assessed", "RootCauseIdentified", "Remediated", "Escalated", "ApprovalsValid")
MAX_MOVES = 50
VERIFY_POLL = 10.0
MANUAL_POLL = 60.0
ERROR_GRACE = dt.timedelta(seconds=10)


class IncidentController:
    kind, plural, status_model = "Incident", "incidents", IncidentStatus
    wake_annotations: tuple[str, ...] = ()

    def __init__(self, aws: AwsClients, policy: Policy, kube: Kube, terraform: TerraformSettings,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.aws, self.policy, self.kube, self.terraform, self.clock = aws, policy, kube, terraform, clock

    def forget(self, ref: ObjectRef) -> None:
        metrics.INCIDENT_PHASES.forget(ref.uid)

    async def reconcile(self, obj: Observed[IncidentStatus]) -> float | None:
        st = obj.status
        try:
            spec = IncidentSpec.model_validate(obj.spec)
        except ValidationError as err:
            await reject_spec(obj, Phase.FAILED, err)
            return None
        pass_ = _Pass(self, obj, spec)
        requeue = await pass_.run()
        metrics.INCIDENT_PHASES.set(obj.ref.uid, st.phase.value, spec.severity.value, spec.type.value)
        return requeue


class _Pass:
    """One reconcile pass over one Incident."""

    def __init__(self, ctl: IncidentController, obj: Observed[IncidentStatus], spec: IncidentSpec):
        self.ctl, self.obj, self.spec, self.st = ctl, obj, spec, obj.status
        self.gen = obj.generation
        self.now = ctl.clock()
        self.region = spec.targets.region or ctl.aws.default_region
        self.events: list[Event] = []
        self.requeue: list[float] = []

    async def save(self) -> None:
        events, self.events = self.events, []
        await self.obj.recorder.save(self.st, events)

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append((EventType.WARNING if warning else EventType.NORMAL, reason, message[:1024]))

    def phase(self, phase: Phase, ready: ConditionStatus, reason: str, message: str, warning: bool = False) -> None:
        self.events += transition(self.st, phase, ready, reason, message, self.gen, warning)

    # -- the pass ---------------------------------------------------------------------------------
    async def run(self) -> float | None:
        st = self.st
        if st.phase is None:
            alert = self.spec.source.alert if self.spec.source and self.spec.source.alert else None
            st.detected_at = (alert.starts_at if alert and alert.starts_at else None) or self.obj.created_at or self.now
            self.phase(Phase.DETECTED, ConditionStatus.UNKNOWN, "Detected",
                       f"{self.spec.type.value} incident ({self.spec.severity.value}) in {self.spec.environment}: "
                       f"{self.spec.title}")
        denied = self.ctl.policy.check(self.obj.ref.namespace, self.spec.targets.role_key, self.region)
        if denied and st.phase not in engine.TERMINAL:
            self.phase(Phase.FAILED, ConditionStatus.FALSE, "PolicyDenied", f"{denied}; nothing was read or changed",
                       warning=True)
        paged = False
        for _ in range(MAX_MOVES):
            more = await self.move(engine.decide(self.spec, st))
            # Page as soon as the root cause is known (the page carries it), before any slow step.
            classified = engine.find(st, plan.CLASSIFY)
            if not paged and st.phase not in engine.TERMINAL and classified and classified.state == StepState.SUCCEEDED:
                await self.escalate(force_next=False)
                paged = True
            if not more:
                break
        self.check_approvals()
        if st.phase not in engine.TERMINAL:
            await self.escalate(force_next=False)
        st.observed_generation = self.gen
        await self.save()
        return min(self.requeue) if self.requeue else None

    async def move(self, d: engine.Decision) -> bool:
        """Carry out one decision; True to ask the engine again, False to stop this pass."""
        if d.move == Move.RUN:
            step_id = d.step.id
            if step_id in (plan.ASSESS, plan.CLASSIFY):
                await self.assess_and_classify()
                return True
            if step_id == plan.VERIFY:
                return await self.verify(d.step)
            if step_id == plan.NOTIFY:
                await self.notify_resolved(d.step)
                return True
            return await self.remediate(d.step)
        if d.move == Move.AWAIT_APPROVAL:
            step = d.step
            if step.state != StepState.AWAITING_APPROVAL:
                step.state = StepState.AWAITING_APPROVAL
                self.event("AwaitingApproval", f"step {step.id} ({step.inputs}) waits for approval")
            patch = '{"spec":{"remediation":{"approvedSteps":["%s"]}}}' % step.id
            how = (f"approve step {step.id} ({step.inputs}): kubectl patch incident {self.obj.ref.name} "
                   f"-n {self.obj.ref.namespace} --type merge -p '{patch}' (a merge patch replaces the list: "
                   f"keep any ids approved before)")
            self.phase(Phase.AWAITING_APPROVAL, ConditionStatus.FALSE, "AwaitingApproval", how)
            set_condition(self.st.conditions, REMEDIATED, ConditionStatus.FALSE, "AwaitingApproval", how, self.gen)
            return False
        if d.move == Move.DRY_RUN:
            step = d.step
            step.state, step.outputs = StepState.DRY_RUN, f"dry run: would {step.inputs}"
            metrics.RUNBOOK_ACTIONS.labels(step.action, "dry_run").inc()
            self.event("DryRun", f"step {step.id} would {step.inputs}")
            return True
        if d.move == Move.DRY_RUN_DONE:
            ids = [s.id for s in self.st.steps if s.state == StepState.DRY_RUN]
            text = (f"dry run: {', '.join(ids)} would run; set spec.remediation.mode to Manual (and approve) or Auto "
                    f"to run them")
            self.phase(Phase.AWAITING_APPROVAL, ConditionStatus.FALSE, "DryRun", text)
            set_condition(self.st.conditions, REMEDIATED, ConditionStatus.FALSE, "DryRun", text, self.gen)
            return False
        if d.move == Move.FAIL:
            await self.fail(d.step, d.escalate)
            return False
        if d.move == Move.RESOLVE:
            await self.resolve()
            return False
        if d.move == Move.CLOSE:
            await self.close()
            return False
        return False

    # -- assess and classify (read-only) ----------------------------------------------------------
    async def assess_and_classify(self) -> None:
        st = self.st
        a = self.step(plan.ASSESS)
        if st.phase in (Phase.DETECTED, None):
            self.phase(Phase.ASSESSING, ConditionStatus.UNKNOWN, "Assessing", "initial assessment of every target")
        a.state, a.started_at, a.attempts = StepState.RUNNING, a.started_at or self.now, a.attempts + 1
        await self.save()
        reader = AwsReader(self.ctl.aws, self.spec.targets.region, self.spec.targets.role_key)
        obs = await assess(self.spec, reader, self.ctl.clock(), self.drift_lock)
        d = findings(obs)
        now = self.ctl.clock()
        st.findings = d.findings
        a.state, a.finished_at = StepState.SUCCEEDED, now
        a.outputs = f"{len(d.findings)} findings; {len(obs.problems)} sources unreadable"
        if st.assessed_at is None:
            st.assessed_at = now
            metrics.TIME_TO_ASSESS.labels(self.spec.type.value, self.spec.severity.value).observe(
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
        set_condition(st.conditions, ASSESSED, ConditionStatus.TRUE, reason, text[:2000], self.gen)
        self.phase(Phase.DIAGNOSING, ConditionStatus.UNKNOWN, "Diagnosing", f"assessed: {a.outputs}")
        self.event("Assessed", f"{a.outputs}" + (f"; {reason}: {text}" if obs.problems else ""),
                   warning=bool(obs.problems))
        await self.save()

        c = self.step(plan.CLASSIFY)
        cause = classify(obs, d, now)
        st.root_cause = cause
        known = cause.category != RootCauseCategory.UNKNOWN
        set_condition(st.conditions, ROOT_CAUSE, ConditionStatus.TRUE if known else ConditionStatus.FALSE,
                      cause.category.value, cause.summary, self.gen)
        steps = plan.remediation_steps(self.spec, cause, obs)
        existing = {s.id for s in st.steps}
        st.steps += [s for s in steps if s.id not in existing]
        for fixed in (plan.VERIFY, plan.NOTIFY):
            if fixed not in existing:
                st.steps.append(plan.read_step(fixed))
        # verify and notify come last, after any remediation step a re-plan added
        st.steps.sort(key=lambda s: {plan.ASSESS: 0, plan.CLASSIFY: 1, plan.VERIFY: 3, plan.NOTIFY: 4}.get(s.id, 2))
        c.state, c.started_at, c.finished_at, c.attempts = StepState.SUCCEEDED, now, now, c.attempts + 1
        c.outputs = f"{cause.category.value}; {len(steps)} remediation steps: {', '.join(s.id for s in steps) or 'none'}"
        self.event("RootCauseIdentified", f"{cause.category.value}: {cause.summary}", warning=not known)
        await self.save()

    def drift_lock(self, drift_check: str) -> StateLock | None:
        dc = self.ctl.kube.get_named("driftchecks", self.obj.ref.namespace, drift_check)
        lock = ((dc or {}).get("status") or {}).get("lock")
        return StateLock.model_validate(lock) if lock else None

    def step(self, step_id: str) -> Step:
        found = engine.find(self.st, step_id)
        if found is None:
            found = plan.read_step(step_id)
            self.st.steps.insert(0 if step_id == plan.ASSESS else 1, found)
        return found

    # -- remediation (mutating, gated) -------------------------------------------------------------
    async def remediate(self, step: Step) -> bool:
        policy = engine.step_policy(self.spec, step.id)
        denied = self.ctl.policy.check(self.obj.ref.namespace, self.spec.targets.role_key, self.region, step.action)
        if denied:
            step.state, step.error, step.finished_at = StepState.FAILED, denied, self.now
            metrics.RUNBOOK_ACTIONS.labels(step.action, "denied").inc()
            self.event("PolicyDenied", f"step {step.id} refused: {denied}", warning=True)
            return True
        if step.state != StepState.RUNNING:  # a Running step is resumed, not counted again
            step.state, step.attempts, step.started_at = StepState.RUNNING, step.attempts + 1, self.now
            step.error = None
            self.phase(Phase.REMEDIATING, ConditionStatus.UNKNOWN, "Remediating", f"running step {step.id}")
            set_condition(self.st.conditions, REMEDIATED, ConditionStatus.FALSE, "Remediating",
                          f"running step {step.id}: {step.inputs}", self.gen)
            self.event("StepStarted", f"step {step.id} (attempt {step.attempts}/{policy.max_attempts}): {step.inputs}")
            await self.save()  # intent on record before the call
        elif (self.now - step.started_at).total_seconds() > policy.timeout_seconds:
            return self.step_failed(step, f"did not finish within {policy.timeout_seconds}s", retryable=False)
        outcome = await run_step(StepContext(self.obj.ref, self.spec, step, self.ctl.aws, self.ctl.kube, self.now,
                                             self.ctl.terraform))
        if outcome.rollback_ref:
            step.rollback_ref = {"name": outcome.rollback_ref}
        if not outcome.done:
            if outcome.outputs and outcome.outputs != step.outputs:
                step.outputs = outcome.outputs
                await self.save()
            self.requeue.append(outcome.requeue)
            return False
        if outcome.ok:
            step.state, step.outputs, step.finished_at = StepState.SUCCEEDED, outcome.outputs, self.ctl.clock()
            metrics.RUNBOOK_ACTIONS.labels(step.action, "succeeded").inc()
            self.event("StepSucceeded", f"step {step.id}: {outcome.outputs}")
            await self.save()
            return True
        return self.step_failed(step, outcome.error or "failed", outcome.retryable, policy.max_attempts)

    def step_failed(self, step: Step, error: str, retryable: bool, max_attempts: int = 1) -> bool:
        step.error, step.finished_at = error[:2048], self.ctl.clock()
        if retryable and step.attempts < max_attempts:
            step.state = StepState.PENDING
            delay = min(300.0, 5.0 * 2 ** (step.attempts - 1))
            self.event("StepRetrying", f"step {step.id} attempt {step.attempts} failed ({error}); retrying in "
                                       f"{delay:.0f}s", warning=True)
            self.requeue.append(delay)
            return False
        step.state = StepState.FAILED
        metrics.RUNBOOK_ACTIONS.labels(step.action, "failed").inc()
        self.event("StepFailed", f"step {step.id} failed after {step.attempts} attempt(s): {error}", warning=True)
        return True

    # -- verify and notify (read-only) -------------------------------------------------------------
    async def verify(self, step: Step) -> bool:
        done = [s for s in self.st.steps if s.mutating and s.state == StepState.SUCCEEDED]
        if step.state != StepState.RUNNING:
            step.state, step.started_at, step.attempts = StepState.RUNNING, self.now, step.attempts + 1
            await self.save()
        try:
            result, text = await asyncio.to_thread(self._check, done)
        except AwsError as err:  # cannot observe yet: say why and look again later
            result, text = "pending", f"cannot observe the targets: {err}"
        step.outputs = text[:2048]
        if result == "ok":
            step.state, step.finished_at = StepState.SUCCEEDED, self.ctl.clock()
            set_condition(self.st.conditions, REMEDIATED, ConditionStatus.TRUE, "Verified", text, self.gen)
            self.event("Verified", text)
            await self.save()
            return True
        if result == "failed":
            step.state, step.error, step.finished_at = StepState.FAILED, text, self.ctl.clock()
            self.event("VerificationFailed", text, warning=True)
            return True
        manual = not done
        timeout = engine.step_policy(self.spec, plan.VERIFY).timeout_seconds
        if not manual and (self.now - step.started_at).total_seconds() > timeout:
            step.state, step.error = StepState.FAILED, f"not verified within {timeout}s: {text}"
            self.event("VerificationFailed", step.error, warning=True)
            return True
        reason = "ManualActionRequired" if manual else "Verifying"
        if manual:
            text = (f"no automated remediation for {self.st.root_cause.category.value}: {text}; fix it (see the "
                    f"findings), or set spec.closed: true")
        self.phase(Phase.REMEDIATING, ConditionStatus.FALSE if manual else ConditionStatus.UNKNOWN, reason, text)
        set_condition(self.st.conditions, REMEDIATED, ConditionStatus.FALSE, reason, text, self.gen)
        self.requeue.append(MANUAL_POLL if manual else VERIFY_POLL)
        return False

    def _check(self, done: list[Step]) -> tuple[str, str]:
        """("ok" | "pending" | "failed", what was seen) for the remediation that ran (blocking)."""
        t = self.spec.targets
        functions = {s.params["functionName"]: s for s in done if "functionName" in s.params}
        executions = {s.params["pipeline"]: s.params.get("executionId") for s in done if "pipeline" in s.params}
        seen: list[str] = []
        pending = False
        if functions:
            lam = LambdaActions(self.ctl.aws, t.region, t.role_key)
            reader = AwsReader(self.ctl.aws, t.region, t.role_key)
            for fn, s in functions.items():
                state = lam.current(fn)
                if state.update_failed:
                    return "failed", f"{fn}: last update failed: {state.last_update_reason}"
                if not state.settled:
                    pending = True
                    seen.append(f"{fn} is {state.state}/{state.last_update_status}")
                    continue
                errors_after = _errors_since(reader, fn, (s.finished_at or self.now) + ERROR_GRACE)
                if errors_after:
                    return "failed", f"{fn} logged {len(errors_after)} ERROR events after {s.id}: {errors_after[-1]}"
                seen.append(f"{fn} Active/Successful, no ERROR events since {s.id}")
        if executions:
            actions = PipelineActions(self.ctl.aws, t.region, t.role_key)
            for pipeline, execution in executions.items():
                execution = execution or (actions.newest_execution(pipeline) or (None,))[0]
                status = actions.execution_status(pipeline, execution) if execution else "missing"
                if status in ("Failed", "Stopped", "Cancelled", "missing"):
                    return "failed", f"execution {execution} of {pipeline} is {status}"
                if status != "Succeeded":
                    pending = True
                seen.append(f"execution {execution} of {pipeline} is {status}")
        if not done:
            if t.pipeline is not None:
                newest = PipelineActions(self.ctl.aws, t.region, t.role_key).newest_execution(t.pipeline.name)
                started = _aware(newest[2]) if newest else None
                if newest and newest[1] == "Succeeded" and started and started > self.st.detected_at:
                    return "ok", f"a new execution {newest[0]} of {t.pipeline.name} succeeded"
                return "pending", f"waiting for a new successful execution of {t.pipeline.name}"
            return "pending", "nothing to observe automatically"
        return ("pending" if pending else "ok"), "; ".join(seen)

    async def notify_resolved(self, step: Step) -> None:
        topics, webhook = self.channels()
        if not topics and webhook is None:
            step.state, step.outputs = StepState.SKIPPED, "no notification channel configured"
            return
        subject, body, payload = message.resolution(self.obj.ref.namespace, self.obj.ref.name, self.spec, self.st)
        step.attempts += 1
        sent = await self.send(subject, body, payload, topics, webhook, {"severity": self.spec.severity.value,
                                                                          "level": "resolved",
                                                                          "type": self.spec.type.value},
                               record=False)
        step.state, step.finished_at = StepState.SUCCEEDED, self.ctl.clock()
        step.outputs = "; ".join(f"{n.channel} {n.target}: {n.error or 'sent'}" for n in sent)

    # -- escalation and notification -------------------------------------------------------------
    def channels(self) -> tuple[list[str], object | None]:
        topics = list(dict.fromkeys((self.spec.notify.sns_topic_arns if self.spec.notify else [])
                                    + self.ctl.policy.escalation.sns_topic_arns))
        webhook = self.spec.notify.webhook if self.spec.notify and self.spec.notify.webhook else None
        return topics, webhook

    async def escalate(self, force_next: bool) -> None:
        st = self.st
        st.escalation = st.escalation or EscalationStatus()
        levels = matrix.applicable(self.spec.escalation.levels if self.spec.escalation and self.spec.escalation.levels
                                   else self.ctl.policy.escalation.levels, self.spec.severity, self.spec.environment)
        due, next_at = matrix.due(levels, st.detected_at, self.ctl.clock(), st.escalation.current_level, force_next)
        topics, webhook = self.channels()
        for level in due:
            subject, body, payload = message.escalation(self.obj.ref.namespace, self.obj.ref.name, self.spec, st, level)
            sent = await self.send(subject, body, payload, topics, webhook,
                                   {"severity": self.spec.severity.value, "level": str(level.level),
                                    "type": self.spec.type.value}, level.level, level.contact)
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
        pending = [lv for lv in levels if lv.level > st.escalation.current_level]
        st.escalation.next_escalation_at = next_at
        st.escalation.next_level = pending[0].level if pending and next_at else None
        if next_at is not None:
            self.requeue.append(max(1.0, (next_at - self.ctl.clock()).total_seconds()))
        if not levels:
            set_condition(st.conditions, ESCALATED, ConditionStatus.FALSE, "NoLevels",
                          "no escalation level applies to this severity and environment", self.gen)

    async def send(self, subject: str, body: str, payload: dict, topics: list[str], webhook, attributes: dict,
                   level: int = 1, contact: str = "subscribers", record: bool = True) -> list[Notification]:
        """Deliver to every channel; each outcome is returned (and, for pages, kept in status.escalation)."""
        sent: list[Notification] = []
        for topic in topics:
            region = topic.split(":")[3]
            denied = self.ctl.policy.check(self.obj.ref.namespace, self.spec.targets.role_key, region)
            note = Notification(level=level, contact=contact, channel="SNS", target=topic, time=self.ctl.clock())
            try:
                if denied:
                    raise PermissionError(denied)
                sns = self.ctl.aws.client("sns", region, self.spec.targets.role_key)
                note.message_id = await asyncio.to_thread(senders.publish_sns, sns, topic, subject, body, attributes)
                metrics.NOTIFICATIONS.labels("sns", "sent").inc()
            except (AwsError, PermissionError) as err:  # a failed page is recorded, the others still go out
                note.error = str(err)
                metrics.NOTIFICATIONS.labels("sns", "failed").inc()
            sent.append(note)
        if webhook is not None:
            note = Notification(level=level, contact=contact, channel="Webhook", target="webhook", time=self.ctl.clock())
            ref = webhook.url_secret_ref
            try:
                url = await asyncio.to_thread(self.ctl.kube.secret_value, self.obj.ref.namespace, ref.name, ref.key)
                if url is None:
                    raise RuntimeError(f"Secret {ref.name} has no key {ref.key}")
                await asyncio.to_thread(senders.post_webhook, url, payload)
                metrics.NOTIFICATIONS.labels("webhook", "sent").inc()
            except Exception as err:  # noqa: BLE001
                note.error = str(err)[:1024]
                metrics.NOTIFICATIONS.labels("webhook", "failed").inc()
            sent.append(note)
        if record:
            self.st.escalation = self.st.escalation or EscalationStatus()
            self.st.escalation.notified = (self.st.escalation.notified + sent)[-30:]
        return sent

    # -- endings ----------------------------------------------------------------------------------
    async def resolve(self) -> None:
        st = self.st
        st.resolved_at = self.ctl.clock()
        if st.escalation:
            st.escalation.next_escalation_at, st.escalation.next_level = None, None
        metrics.TIME_TO_RESOLVE.labels(self.spec.type.value, self.spec.severity.value).observe(
            max(0.0, (st.resolved_at - st.detected_at).total_seconds()))
        ran = [s.id for s in st.steps if s.mutating and s.state == StepState.SUCCEEDED]
        self.phase(Phase.RESOLVED, ConditionStatus.TRUE, "Resolved",
                   f"resolved and verified after {', '.join(ran) or 'a manual fix'}; set spec.closed: true after the "
                   f"post-incident review")
        await self.post_incident()

    async def fail(self, step: Step, escalate: bool) -> None:
        st = self.st
        if escalate:
            await self.escalate(force_next=True)
        if st.escalation:
            st.escalation.next_escalation_at, st.escalation.next_level = None, None
        text = (f"step {step.id} failed: {step.error}; the operator stopped (onFailure "
                f"{engine.step_policy(self.spec, step.id).on_failure.value}); a human must take over")
        set_condition(st.conditions, REMEDIATED, ConditionStatus.FALSE, "StepFailed", text, self.gen)
        self.phase(Phase.FAILED, ConditionStatus.FALSE, "StepFailed", text, warning=True)
        await self.post_incident()

    async def close(self) -> None:
        st = self.st
        for s in st.steps:
            # A mutating step in flight stays as it is (its call may have happened); the rest is over.
            if s.state in (StepState.PENDING, StepState.AWAITING_APPROVAL, StepState.DRY_RUN) or (
                    s.state == StepState.RUNNING and not s.mutating):
                s.state = StepState.SKIPPED
        st.closed_at = self.ctl.clock()
        if st.escalation:
            st.escalation.next_escalation_at, st.escalation.next_level = None, None
        self.phase(Phase.CLOSED, ConditionStatus.TRUE, "Closed", "closed (spec.closed: true)")
        if st.post_incident is None:
            await self.post_incident()

    async def post_incident(self) -> None:
        name = f"{self.obj.ref.name}-postincident"[:253]
        rec = postincident.record(self.spec, self.st, self.ctl.clock(), name)
        self.st.post_incident = rec
        report = postincident.markdown(self.obj.ref.namespace, self.obj.ref.name, self.spec, self.st, rec)
        await asyncio.to_thread(self.ctl.kube.put_config_map, self.obj.ref.namespace, name, {"report.md": report},
                                self.obj.ref, {"opex.dev/incident": self.obj.ref.name[:63]})
        self.event("PostIncidentRecorded", f"post-incident report in ConfigMap {name}; "
                                           f"{len(rec.action_items)} action items")

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


def _aware(value) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return None


def _errors_since(reader: AwsReader, fn: str, since: dt.datetime) -> list[str]:
    try:
        return [line.message for line in reader.filtered_lines(f"/aws/lambda/{fn}", since) if line.time > since]
    except AwsError as err:
        if err.not_found:  # no log group: nothing logged
            return []
        raise


