"""Reconcile a DriftCheck: run ``terraform plan -detailed-exitcode`` on schedule, report, resolve.

Source: the seed's "Infrastructure Drift Detection" (production daily at 09:00 UTC, development
at 18:00 UTC; exit code 0 no changes, 1 error, 2 changes) and its resolutions (import,
configuration update, apply, refresh). A run: fetch the source, ``init``, ``plan -out`` with a
lock timeout under a hard run timeout, ``show -json`` of the saved plan, classify from the JSON,
write a report ConfigMap the DriftCheck owns, then resolve when the strategy and approval allow.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gzip
import json
import re
import time
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from .. import metrics, schedule
from ..api.common import ConditionStatus, EventType, now as utcnow
from ..api.conditions import READY, set_condition
from ..api.driftcheck import (Approval, ConcurrencyPolicy, DriftCheckSpec, DriftCheckStatus, DriftedResource, ForceUnlock, ObservedLock,
                              Outcome, ReportRef, ResolutionRecord, ResolutionStrategy, RunResult, MAX_DRIFTED)
from ..kube import Kube, ObjectRef
from ..terraform.locks import parse_lock_error
from ..terraform.plan import PlanFormatError, PlanSummary, checksum, parse_show_json, redact
from ..terraform.runner import TerraformError
from ..terraform.workspace import RunDir, SourceError
from .base import Event, Observed
from .common import spec_error
from .tfsession import Session, prepare

RUN_ANNOTATION = "opex.dev/run-requested"
DRIFTED, REMEDIATING = "Drifted", "Remediating"
# A ConfigMap holds at most 1 MiB; the summary and the base64 of the gzipped plan must fit.
MAX_PLAN_GZ = 700 * 1024


def parse_duration(text: str) -> float:
    """Seconds in a Go duration such as ``90s``, ``5m`` or ``1h30m`` (the CRD validates the form)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(ms|s|m|h)", text))


class DriftCheckController:
    kind, plural, status_model = "DriftCheck", "driftchecks", DriftCheckStatus
    wake_annotations = (RUN_ANNOTATION,)

    def __init__(self, kube: Kube, terraform: str, work_dir: Path, cache_dir: Path,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.kube, self.terraform, self.work_dir, self.cache_dir, self.clock = kube, terraform, work_dir, cache_dir, clock

    def forget(self, ref: ObjectRef) -> None:
        labels = {"namespace": ref.namespace, "driftcheck": ref.name}
        for gauge in (metrics.DRIFTED, metrics.DRIFT_LAST_RUN, metrics.DRIFT_LAST_SUCCESS, metrics.STATE_LOCK_HELD):
            try:
                gauge.remove(*labels.values())
            except KeyError:
                pass
        for action in _ACTIONS:
            try:
                metrics.DRIFTED_RESOURCES.remove(ref.namespace, ref.name, action)
            except KeyError:
                pass

    async def reconcile(self, obj: Observed[DriftCheckStatus]) -> float | None:
        st, gen = obj.status, obj.generation
        try:
            spec = DriftCheckSpec.model_validate(obj.spec)
        except ValidationError as err:
            return await self._invalid(obj, "InvalidSpec", spec_error(err))
        problem = schedule.invalid(spec.schedule, spec.time_zone)
        if problem:
            return await self._invalid(obj, "InvalidSchedule", problem)
        now = self.clock()
        events: list[Event] = []
        due = schedule.due(spec.schedule, spec.time_zone, st.last_schedule_time, obj.created_at or now, now,
                           spec.starting_deadline_seconds)
        st.next_schedule_time = None if spec.suspend else due.next_time
        requested = obj.annotations.get(RUN_ANNOTATION)
        trigger = None
        if requested and requested != st.last_run_request:
            st.last_run_request, trigger = requested, f"on demand ({RUN_ANNOTATION}={requested})"[:128]
        elif due.skipped is not None:
            st.last_schedule_time = due.skipped
            events.append((EventType.WARNING, "MissedSchedule",
                           f"slot {due.skipped:%Y-%m-%d %H:%M} UTC missed by more than startingDeadlineSeconds "
                           f"({spec.starting_deadline_seconds}s); next run {due.next_time:%Y-%m-%d %H:%M} UTC"))
        elif due.slot is not None:
            st.last_schedule_time = due.slot  # recorded before the run: a restart never runs this slot again
            if not spec.suspend:
                trigger = f"schedule {due.slot:%Y-%m-%dT%H:%M}Z"
        if st.observed_generation is None:
            text = (f"first check at {due.next_time:%Y-%m-%d %H:%M} UTC (or annotate {RUN_ANNOTATION}=<any value> "
                    f"to run now)")
            set_condition(st.conditions, READY, ConditionStatus.UNKNOWN, "Scheduled", text, gen)
            events.append((EventType.NORMAL, "Scheduled", text))
        st.observed_generation = gen
        await obj.recorder.save(st, events)
        if trigger is not None:
            await self.run(obj, spec, trigger)
            await self._after_run(obj, spec)
        elif self._approved_pending(spec, st):
            await self.resolve(obj, spec)
        if spec.suspend:
            return None
        return max(1.0, (st.next_schedule_time - self.clock()).total_seconds())

    async def _after_run(self, obj: Observed[DriftCheckStatus], spec: DriftCheckSpec) -> None:
        """concurrencyPolicy Forbid: a slot that came due while the run was going is skipped, not run late."""
        st = obj.status
        d = schedule.due(spec.schedule, spec.time_zone, st.last_schedule_time, obj.created_at or self.clock(),
                         self.clock(), None)
        st.next_schedule_time = None if spec.suspend else d.next_time
        if d.slot is not None and spec.concurrency_policy == ConcurrencyPolicy.FORBID:
            st.last_schedule_time = d.slot
            await obj.recorder.save(st, [(EventType.WARNING, "SkippedWhileRunning",
                                          f"slot {d.slot:%Y-%m-%d %H:%M} UTC came while the previous run was still "
                                          f"going (concurrencyPolicy: Forbid); it is skipped")])
        else:
            await obj.recorder.save(st)

    def _budget(self, spec: DriftCheckSpec, st: DriftCheckStatus) -> tuple[float, bool]:
        """Seconds a run may take, and whether the limit is the next slot (concurrencyPolicy Replace)."""
        budget = float(spec.timeout_seconds)
        if spec.concurrency_policy == ConcurrencyPolicy.REPLACE and st.next_schedule_time is not None:
            until_next = (st.next_schedule_time - self.clock()).total_seconds()
            if until_next < budget:
                return max(1.0, until_next), True
        return budget, False

    async def _invalid(self, obj: Observed[DriftCheckStatus], reason: str, message: str) -> None:
        st = obj.status
        changed = set_condition(st.conditions, READY, ConditionStatus.FALSE, reason, message, obj.generation)
        st.observed_generation, st.next_schedule_time = obj.generation, None
        await obj.recorder.save(st, [(EventType.WARNING, reason, message)] if changed else [])
        return None

    # -- a run ------------------------------------------------------------------------------------
    async def run(self, obj: Observed[DriftCheckStatus], spec: DriftCheckSpec, trigger: str,
                  allow_unlock: bool = True) -> None:
        """One check; never raises for Terraform or source failures (they end the run as PlanFailed)."""
        st, ref = obj.status, obj.ref
        started, t0 = self.clock(), time.monotonic()
        st.running_since = started
        await obj.recorder.save(st, [(EventType.NORMAL, "RunStarted", f"terraform plan ({trigger})")])
        run_dir = RunDir(self.work_dir / ref.namespace / ref.name)
        result = RunResult(outcome=Outcome.PLAN_FAILED, started_at=started, trigger=trigger)
        summary: PlanSummary | None = None
        doc: dict[str, Any] | None = None
        reason, message = "PlanFailed", ""
        session: Session | None = None
        budget, replaced_at_next_slot = self._budget(spec, st)
        timed_out = ("the next scheduled slot came first and replaces it (concurrencyPolicy: Replace)"
                     if replaced_at_next_slot else f"the run exceeded timeoutSeconds ({spec.timeout_seconds}s)")
        try:
            session = await prepare(self.kube, ref.namespace, spec, run_dir, self.terraform, self.cache_dir, budget)
            result.terraform_version, result.source_revision = session.version, session.revision
            plan = await session.tf.plan(str(run_dir.plan), spec.lock.timeout, session.var_path,
                                         timeout=session.remaining())
            result.exit_code = plan.exit_code
            if plan.timed_out:
                reason, message = "TimedOut", f"{timed_out}; the plan was interrupted: {plan.diagnostic(6)}"
            elif plan.exit_code == 1:
                locked = parse_lock_error(plan.stderr + plan.stdout)
                if locked is not None and locked.lock is not None:
                    await self._lock_held(obj, spec, result, locked.lock, run_dir, session, trigger, allow_unlock, t0)
                    return
                reason, message = ("LockHeld", locked.describe()) if locked else (reason, plan.diagnostic())
            else:
                doc = await session.tf.show_json(str(run_dir.plan), timeout=session.remaining())
                summary = parse_show_json(doc, spec.ignore)
                reason = ""
                if summary.outcome == Outcome.PLAN_FAILED:
                    reason, message, summary = "PlanFailed", "; ".join(summary.errors), None
        except SourceError as err:
            reason, message = err.reason, str(err)
        except TerraformError as err:
            reason = "TimedOut" if err.result.timed_out else (
                "InitFailed" if err.result.command in ("init", "workspace") else "PlanFailed")
            message = f"{timed_out}: {err}" if err.result.timed_out else f"{err}: {err.result.diagnostic()}"
        except PlanFormatError as err:
            reason, message = "InvalidPlan", f"terraform show -json gave an unreadable plan: {err}"
        finally:
            st.running_since = None
        result.finished_at = self.clock()
        result.duration_seconds = round(time.monotonic() - t0, 3)
        if summary is None:
            await self._failed(obj, result, reason, message,
                               Outcome.LOCK_HELD if reason == "LockHeld" else Outcome.PLAN_FAILED)
            return
        await self._succeeded(obj, spec, result, summary, doc)
        if summary.drifted and spec.resolution.strategy != ResolutionStrategy.REPORT_ONLY:
            await self.resolve(obj, spec, session)

    async def _succeeded(self, obj: Observed[DriftCheckStatus], spec: DriftCheckSpec, result: RunResult,
                         summary: PlanSummary, doc: dict[str, Any]) -> None:
        st, ref, gen = obj.status, obj.ref, obj.generation
        result.outcome = summary.outcome
        result.plan_checksum = checksum(doc)
        result.add, result.change, result.import_, result.remove = (summary.add, summary.change, summary.import_,
                                                                    summary.remove)
        entries = summary.drift + summary.changes
        st.drifted_resources = [DriftedResource(address=e.address[:512], actions=e.actions, reason=e.reason,
                                                action_reason=e.action_reason) for e in entries[:MAX_DRIFTED]]
        st.drifted_count = len({e.address for e in entries})
        st.last_result, st.lock, st.consecutive_failures = result, None, 0
        st.last_successful_check_time = result.finished_at
        if summary.drifted:
            st.last_drift_detected_time = result.finished_at
        st.report_ref = await asyncio.to_thread(self._write_report, ref, spec, result, summary, doc)
        counts = f"{summary.add} to add, {summary.change} to change, {summary.remove} to destroy"
        if summary.drifted:
            what = f"{st.drifted_count} resources differ ({counts}): " + ", ".join(
                sorted({e.address for e in entries})[:5]) + ("…" if st.drifted_count > 5 else "") + (
                f"; outputs change: {', '.join(summary.output_changes)}" if summary.output_changes else "")
            set_condition(st.conditions, DRIFTED, ConditionStatus.TRUE, "DriftDetected",
                          f"{what}; report in ConfigMap {st.report_ref.name}; plan checksum {result.plan_checksum}", gen)
            event = (EventType.WARNING, "DriftDetected", f"{what} (plan {result.plan_checksum})")
        else:
            noise = [e.address for e in summary.irrelevant_drift]
            extra = f"; changed outside Terraform, nothing depends on it: {', '.join(noise[:5])}" if noise else ""
            set_condition(st.conditions, DRIFTED, ConditionStatus.FALSE, "NoDrift",
                          f"infrastructure matches the configuration{extra}", gen)
            event = (EventType.NORMAL, "NoDrift", f"no drift (revision {result.source_revision}){extra}")
        set_condition(st.conditions, READY, ConditionStatus.TRUE, "Checked",
                      f"last check {result.finished_at:%Y-%m-%d %H:%M:%S} UTC; next "
                      f"{st.next_schedule_time:%Y-%m-%d %H:%M} UTC" if st.next_schedule_time else "last check done", gen)
        self._observe(ref, result, summary)
        await obj.recorder.save(st, [event])

    async def _failed(self, obj: Observed[DriftCheckStatus], result: RunResult, reason: str, message: str,
                      outcome: Outcome = Outcome.PLAN_FAILED) -> None:
        st, gen = obj.status, obj.generation
        result.outcome = outcome
        result.message = message[:2048]
        st.last_result = result
        st.consecutive_failures += 1
        st.lock = None
        text = f"{reason}: {message}"[:2000] + (f" (failed {st.consecutive_failures} runs in a row; the next "
                                                 f"scheduled run still happens)" if st.next_schedule_time else "")
        set_condition(st.conditions, READY, ConditionStatus.FALSE, reason, text, gen)
        set_condition(st.conditions, DRIFTED, ConditionStatus.UNKNOWN, outcome.value, f"the check failed: {reason}", gen)
        self._observe(obj.ref, result, None)
        await obj.recorder.save(st, [(EventType.WARNING, reason, message[:1000])])

    async def _lock_held(self, obj: Observed[DriftCheckStatus], spec: DriftCheckSpec, result: RunResult, lock,
                         run_dir: RunDir, session: Session, trigger: str, allow_unlock: bool, t0: float) -> None:
        st, gen, now = obj.status, obj.generation, self.clock()
        same = st.lock is not None and st.lock.id == lock.id
        st.lock = ObservedLock(**lock.model_dump(), first_seen_at=st.lock.first_seen_at if same else now,
                               seen_count=st.lock.seen_count + 1 if same else 1)
        result.outcome, result.finished_at = Outcome.LOCK_HELD, now
        result.duration_seconds = round(time.monotonic() - t0, 3)
        held = (f"state lock {lock.id} on {lock.path} is held by {lock.who} ({lock.operation}, since "
                f"{lock.created:%Y-%m-%d %H:%M:%S} UTC)" if lock.created else f"state lock {lock.id} is held")
        result.message = held
        st.last_result = result
        st.consecutive_failures += 1
        set_condition(st.conditions, DRIFTED, ConditionStatus.UNKNOWN, "LockHeld", held, gen)
        age = (now - lock.created).total_seconds() if lock.created else 0.0
        orphan_after = parse_duration(spec.lock.orphaned_after)
        orphaned = st.lock.seen_count >= 2 and age > orphan_after
        hint = (" (forceUnlock IfOrphaned: unlocked once it is seen on two runs and older than "
                f"{spec.lock.orphaned_after})" if spec.lock.force_unlock == ForceUnlock.IF_ORPHANED else
                f"; if its holder is dead: terraform force-unlock {lock.id}, or set spec.lock.forceUnlock: IfOrphaned")
        set_condition(st.conditions, READY, ConditionStatus.FALSE, "LockHeld", held + hint, gen)
        self._observe(obj.ref, result, None, lock_held=True)
        await obj.recorder.save(st, [(EventType.WARNING, "LockHeld", held)])
        if spec.lock.force_unlock == ForceUnlock.IF_ORPHANED and orphaned and allow_unlock:
            unlocked = await session.tf.force_unlock(lock.id, timeout=session.remaining())
            if unlocked.ok:
                await obj.recorder.save(st, [(EventType.WARNING, "ForceUnlocked",
                                              f"force-unlocked orphaned lock {lock.id} held by {lock.who} for "
                                              f"{age:.0f}s and seen on {st.lock.seen_count} runs")])
                metrics.DRIFT_REMEDIATIONS.labels("ForceUnlock", "succeeded").inc()
                await self.run(obj, spec, f"{trigger}, after force-unlock", allow_unlock=False)
            else:
                metrics.DRIFT_REMEDIATIONS.labels("ForceUnlock", "failed").inc()
                await obj.recorder.save(st, [(EventType.WARNING, "ForceUnlockFailed", unlocked.diagnostic())])

    # -- resolution -------------------------------------------------------------------------------
    @staticmethod
    def _approved_pending(spec: DriftCheckSpec, st: DriftCheckStatus) -> bool:
        r, last = spec.resolution, st.last_result
        if r.strategy == ResolutionStrategy.REPORT_ONLY or last is None or last.outcome != Outcome.DRIFT_DETECTED:
            return False
        done = st.last_resolution is not None and st.last_resolution.plan_checksum == last.plan_checksum
        return not done and r.approval == Approval.MANUAL and r.approved_plan_checksum == last.plan_checksum

    async def resolve(self, obj: Observed[DriftCheckStatus], spec: DriftCheckSpec, session: Session | None = None) -> None:
        """Resolve the drift of the last run when the strategy and the approval allow it."""
        st, gen, r = obj.status, obj.generation, spec.resolution
        planned = st.last_result.plan_checksum
        if st.last_resolution is not None and st.last_resolution.plan_checksum == planned \
                and st.last_resolution.outcome in ("Succeeded", "Running"):
            return  # this plan was resolved (or is being): never twice
        if r.approval == Approval.MANUAL and r.approved_plan_checksum != planned:
            text = (f"{r.strategy.value} waits for approval: set spec.resolution.approvedPlanChecksum to {planned} "
                    f"(status.lastResult.planChecksum) after reading report {st.report_ref.name}")
            if set_condition(st.conditions, REMEDIATING, ConditionStatus.FALSE, "AwaitingApproval", text, gen):
                await obj.recorder.save(st, [(EventType.NORMAL, "AwaitingApproval", text)])
            return
        run_dir = RunDir(self.work_dir / obj.ref.namespace / obj.ref.name)
        ok, message = False, ""
        try:
            if session is None:
                session = await prepare(self.kube, obj.ref.namespace, spec, run_dir, self.terraform, self.cache_dir,
                                        spec.timeout_seconds)
            if r.strategy == ResolutionStrategy.IMPORT and not await self._missing_imports(spec, session):
                # Everything is imported: what still differs is for a person to change in the configuration.
                set_condition(st.conditions, REMEDIATING, ConditionStatus.FALSE, "NothingToDo",
                              "every address to import is already in the state; the remaining difference needs a "
                              "configuration change", gen)
                await obj.recorder.save(st)
                return
            st.last_resolution = ResolutionRecord(strategy=r.strategy, plan_checksum=planned, outcome="Running",
                                                  time=self.clock())
            set_condition(st.conditions, REMEDIATING, ConditionStatus.TRUE, r.strategy.value,
                          f"{r.strategy.value} of plan {planned} in progress", gen)
            await obj.recorder.save(st, [(EventType.NORMAL, "ResolutionStarted",
                                          f"{r.strategy.value} of plan {planned}")])
            ok, message = await self._carry_out(spec, session, run_dir, planned)
        except (SourceError, TerraformError, PlanFormatError) as err:
            message = str(err) + (f": {err.result.diagnostic()}" if isinstance(err, TerraformError) else "")
        outcome = "Succeeded" if ok else "Failed"
        st.last_resolution = ResolutionRecord(strategy=r.strategy, plan_checksum=planned, outcome=outcome,
                                              time=self.clock(), message=message[:1024])
        metrics.DRIFT_REMEDIATIONS.labels(r.strategy.value, outcome.lower()).inc()
        set_condition(st.conditions, REMEDIATING, ConditionStatus.FALSE, outcome, f"{r.strategy.value}: {message}"[:2000],
                      gen)
        await obj.recorder.save(st, [(EventType.NORMAL if ok else EventType.WARNING, f"Resolution{outcome}",
                                      f"{r.strategy.value} of plan {planned}: {message}"[:1000])])
        if ok:  # verify: check again at once
            await self.run(obj, spec, f"verification after {r.strategy.value}")

    @staticmethod
    async def _missing_imports(spec: DriftCheckSpec, session: Session) -> list[str]:
        present = set(await session.tf.state_list(timeout=session.remaining()))
        return [e.address for e in spec.resolution.imports if e.address not in present]

    async def _carry_out(self, spec: DriftCheckSpec, session: Session, run_dir: RunDir, planned: str) -> tuple[bool, str]:
        """(succeeded, what happened)."""
        tf, lock_timeout, strategy = session.tf, spec.lock.timeout, spec.resolution.strategy
        if strategy == ResolutionStrategy.APPLY:
            if not run_dir.plan.exists():
                return False, "the saved plan is gone (operator work directory lost); the next run makes a new one"
            saved = checksum(await tf.show_json(str(run_dir.plan), timeout=session.remaining()))
            if saved != planned:
                return False, f"the saved plan is {saved}, not the approved {planned}; nothing was applied"
            applied = await tf.apply_plan(str(run_dir.plan), lock_timeout, timeout=session.remaining())
            return applied.ok, "applied the approved plan" if applied.ok else applied.diagnostic()
        if strategy == ResolutionStrategy.REFRESH_ONLY:
            args = ["apply", "-refresh-only", "-auto-approve", "-input=false", "-no-color", f"-lock-timeout={lock_timeout}"]
            if session.var_file:
                args.append(f"-var-file={session.var_file}")
            refreshed = await tf.run(*args, timeout=session.remaining())
            return refreshed.ok, "state refreshed from the real infrastructure" if refreshed.ok else refreshed.diagnostic()
        # Import: only what the state does not have yet (so a retry imports nothing twice).
        missing = set(await self._missing_imports(spec, session))
        done = []
        for entry in spec.resolution.imports:
            if entry.address not in missing:
                continue
            imported = await tf.import_(entry.address, entry.id, lock_timeout, session.var_path,
                                        timeout=session.remaining())
            if not imported.ok:
                return False, f"import of {entry.address} failed: {imported.diagnostic()}" + (
                    f" (imported before it: {', '.join(done)})" if done else "")
            done.append(entry.address)
        return True, f"imported {', '.join(done)}"

    # -- report and metrics -----------------------------------------------------------------------
    def _write_report(self, ref: ObjectRef, spec: DriftCheckSpec, result: RunResult, summary: PlanSummary,
                      doc: dict[str, Any]) -> ReportRef:
        stamp = result.finished_at.strftime("%Y%m%d%H%M%S")
        name = f"{ref.name[:230]}-drift-{stamp}"
        plan_gz = gzip.compress(json.dumps(redact(doc), separators=(",", ":")).encode())
        truncated = len(plan_gz) > MAX_PLAN_GZ
        report = {"driftCheck": ref.name, "namespace": ref.namespace,
                  **result.model_dump(mode="json", by_alias=True, exclude_none=True),
                  "summary": summary.to_dict(), "planIncluded": not truncated,
                  "note": "plan.json.gz is the redacted `terraform show -json` of the saved plan" if not truncated else
                  f"the gzipped plan ({len(plan_gz)} bytes) exceeds {MAX_PLAN_GZ} bytes and was left out"}
        binary = {} if truncated else {"plan.json.gz": base64.b64encode(plan_gz).decode()}
        label = f"opex.dev/driftcheck={ref.name[:63]}"
        self.kube.put_config_map(ref.namespace, name, {"summary.json": json.dumps(report, indent=2)}, ref,
                                 {"opex.dev/driftcheck": ref.name[:63], "app.kubernetes.io/managed-by": "opex-operator"},
                                 binary=binary)
        for old in sorted(self.kube.config_map_names(ref.namespace, label), reverse=True)[spec.report.keep:]:
            self.kube.delete_config_map(ref.namespace, old)
        return ReportRef(name=name, truncated=truncated)

    @staticmethod
    def _observe(ref: ObjectRef, result: RunResult, summary: PlanSummary | None, lock_held: bool = False) -> None:
        labels = (ref.namespace, ref.name)
        metrics.DRIFT_RUNS.labels(result.outcome.value).inc()
        metrics.DRIFT_RUN_DURATION.labels(result.outcome.value).observe(result.duration_seconds or 0.0)
        metrics.DRIFT_LAST_RUN.labels(*labels).set(result.finished_at.timestamp())
        metrics.STATE_LOCK_HELD.labels(*labels).set(1 if lock_held else 0)
        if summary is None:
            return
        metrics.DRIFT_LAST_SUCCESS.labels(*labels).set(result.finished_at.timestamp())
        metrics.DRIFTED.labels(*labels).set(1 if summary.drifted else 0)
        counts = {a: 0 for a in _ACTIONS}
        for entry in summary.drift + summary.changes:
            counts[_action(entry.actions, entry.importing)] += 1
        for action, n in counts.items():
            metrics.DRIFTED_RESOURCES.labels(*labels, action).set(n)


_ACTIONS = ("create", "update", "delete", "replace", "import", "read", "forget")


def _action(actions: list[str], importing: bool) -> str:
    if importing and actions in (["no-op"], []):
        return "import"
    if len(actions) == 2:
        return "replace"
    return actions[0] if actions and actions[0] in _ACTIONS else "update"

