"""Reconcile a Rollback: one move of ``runbooks.rollback.decide`` per pass, through the AWS ports.

Phases: Pending → AwaitingApproval (approval Manual until spec.approved) → InProgress →
Verifying → Succeeded, or Failed / Aborted with a message that says what was and was not
changed. ``status.from`` holds what ran before, so the rollback itself can be undone. Every
change is checked first (the decider sees the target before it moves), recorded in
``status.steps`` before the call, and verified after: a restart resumes without repeating it.
"""
from __future__ import annotations

import asyncio
import base64
import contextvars
import datetime as dt
import gzip
import json
import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Iterable, TypeVar

from pydantic import ValidationError

from .. import metrics
from ..api import ROLLBACK
from ..api.common import LocalObjectReference, now as utcnow
from ..api.conditions import apply
from ..api.rollback import (Invalidation, Progress, Revision, RollbackPhase as Phase, RollbackSpec, RollbackStatus,
                            RollbackStep, RollbackStepId as Id, RollbackStepState as State)
from ..errors import AwsError
from ..ports.objects import ObjectRef, child_name, label_value
from ..policy import Policy
from ..process import IDENTITY
from ..ports import AwsPorts, Objects
from ..runbooks import rollback as rb
from ..runbooks.rollback import Decision, Facts, Move, RollbackFailed
from .base import Event, Observed
from .common import Pass, reject_spec, transition

log = logging.getLogger(__name__)
T = TypeVar("T")

COPY_BATCH_SECONDS = 5.0            # a copy batch stops early after this: an abort is seen between batches
# Copies in flight at once in a batch. A copy waits on the network, not on a CPU: with 20 ms added to
# each request (bench/rollback_copy.py, moto, 2 cores, no budget) 1, 4, 8, 16 in flight restored 19, 79,
# 140, 147 small objects a second; 8 reaches the ceiling, and is above what the default AWS budget
# allows (s3 100 calls/s: 50 objects a second). An S3 client keeps aws.clients.POOL_CONNECTIONS (32)
# connections: more copies in flight would open and discard connections.
COPY_CONCURRENCY = 8
MAX_MANIFEST_GZ = 700 * 1024        # a ConfigMap holds at most 1 MiB
TRANSIENT_RETRY_SECONDS = 5.0


class RollbackController:
    """The Rollback reconciler (``controllers.base.Controller``)."""

    resource = ROLLBACK
    wake_annotations: tuple[str, ...] = ()

    def __init__(self, aws: AwsPorts, objects: Objects, policy: Policy, clock: Callable[[], dt.datetime] = utcnow):
        self.aws, self.objects, self.policy, self.clock = aws, objects, policy, clock

    async def finalize(self, ref: ObjectRef) -> None:
        """Nothing outside Kubernetes: its manifest ConfigMap is an owned object."""

    def forget(self, ref: ObjectRef) -> None:
        """Nothing is kept per Rollback."""

    def priority(self, body: dict) -> int:
        """A rollback restores production: right after critical Incidents."""
        return 1

    async def reconcile(self, obj: Observed[RollbackStatus]) -> float | None:
        """One move (see the module docstring); seconds until the next pass, or None."""
        st = obj.status
        try:
            spec = RollbackSpec.model_validate(obj.spec)
        except ValidationError as err:
            await reject_spec(obj, Phase.FAILED, err)
            return None
        events: list[Event] = []
        if st.phase is None:
            st.target = rb.target(spec)
            events += transition(st, Phase.PENDING, "Pending", f"rollback of {st.target} accepted", obj.generation)
        st.observed_generation = obj.generation
        st.approval, st.dry_run = spec.approval, spec.dry_run
        pass_ = _Pass(self, obj, spec, events)
        pass_.note_interrupted()
        try:
            decision = rb.decide(spec, st, self.clock())
            if decision.move not in (Move.IDLE, Move.ABORT, Move.AWAIT_APPROVAL, Move.START, Move.FAIL):
                pass_.check_policy()
            if decision.move == Move.OBSERVE:
                decision = rb.decide(spec, st, self.clock(), await pass_.observe(decision.at))
            log.debug("Rollback %s: %s %s", obj.ref.key, decision.move, decision.step or "")
            requeue = await pass_.carry_out(decision)
        except RollbackFailed as err:
            await pass_.finish(Phase.FAILED, err.reason, str(err))
            requeue = None
        except AwsError as err:
            requeue = await pass_.aws_failed(err)
        await pass_.save()
        return requeue


class _Pass(Pass):
    """One reconcile pass over one Rollback: carries out one decision and records it."""

    def __init__(self, ctl: RollbackController, obj: Observed[RollbackStatus], spec: RollbackSpec,
                 events: list[Event]):
        super().__init__(obj)
        self.ctl, self.spec, self.events = ctl, spec, events
        self.region, self.role = spec.region, spec.role_key

    async def save(self, checkpoint: bool = True) -> None:
        """The checkpoint, with RolledBack and Planned derived from the typed status first
        (``runbooks.rollback.conditions``): no move writes them."""
        apply(self.st.conditions, rb.conditions(self.st), self.gen)
        await super().save(checkpoint)

    def step(self, step_id: Id) -> RollbackStep:
        step = next((s for s in self.st.steps if s.id == step_id), None)
        if step is None:
            step = RollbackStep(id=step_id, state=State.PENDING)
            self.st.steps.append(step)
        return step

    def note_interrupted(self) -> None:
        """A step left Running by another operator process was interrupted: say so; the next move
        looks at the target first (a restore re-lists and copies only what still differs)."""
        for step in self.st.steps:
            if step.state == State.RUNNING and step.runner not in (None, IDENTITY):
                self.event("Interrupted", f"step {step.id} was running in operator {step.runner or '(unknown)'}, which "
                                          f"stopped; resuming from the target's real state ({step.message})",
                           warning=True)
                step.runner = None  # recorded; nothing of this process is in flight

    def start_step(self, step_id: Id, message: str, call: bool = False) -> RollbackStep:
        """The step is Running; ``call``: a mutating AWS call of this process is about to be in flight."""
        step = self.step(step_id)
        step.state, step.message, step.runner = State.RUNNING, message, IDENTITY if call else None
        step.started_at = step.started_at or self.ctl.clock()
        return step

    def intended(self, step_id: Id, message: str) -> bool:
        """Whether this process put a call of ``step_id`` on record in a pass before (make it now).
        Otherwise the intent is recorded now (the step Running, this process its runner) as this
        pass's one write, and a later pass makes the call after it has looked at the target again.
        The intent is always on record before a mutating call, so a restart never calls blind."""
        step = self.step(step_id)
        if step.state == State.RUNNING and step.runner == IDENTITY:
            return True
        self.start_step(step_id, message, call=True)
        return False

    def end_step(self, step_id: Id, message: str, state: State = State.SUCCEEDED) -> RollbackStep:
        step = self.step(step_id)
        now = self.ctl.clock()
        step.state, step.message, step.finished_at, step.runner = state, message, now, None
        step.started_at = step.started_at or now
        return step

    def check_policy(self) -> None:
        """Raises RollbackFailed (PolicyDenied) when the operator policy refuses an action this rollback needs."""
        region = self.region or self.ctl.aws.default_region
        for action in needed_actions(self.spec):
            denied = self.ctl.policy.check(self.obj.ref.namespace, self.role, region, action)
            if denied:
                raise RollbackFailed("PolicyDenied", f"{denied}; nothing was changed")

    async def carry_out(self, d: Decision) -> float | None:
        """Carry out one decision; seconds until the next pass (0: at once), or None to wait for a change."""
        target = self.st.target
        match d.move:
            case Move.ABORT:
                await self.finish(Phase.ABORTED, d.reason, d.message)
            case Move.AWAIT_APPROVAL:
                self.phase(Phase.AWAITING_APPROVAL, "AwaitingApproval", rb.approval_text(target))
            case Move.START:
                self.st.started_at = self.ctl.clock()
                self.phase(Phase.IN_PROGRESS, "InProgress", f"dry run: planning the rollback of {target}"
                           if self.spec.dry_run else f"rolling back {target}")
                return 0.0
            case Move.FAIL:
                await self.finish(Phase.FAILED, d.reason, d.message)
            case Move.CAPTURE:
                await (self.capture_lambda() if self.spec.lambda_ is not None else self.capture_site())
                return 0.0
            case Move.DRY_RUN_DONE:
                self.end_step(Id.APPLY, d.message, State.DRY_RUN)
                await self.finish(Phase.SUCCEEDED, rb.DRY_RUN, f"dry run: {d.message}; nothing was changed")
            case Move.APPLY:
                await self.apply_lambda()
                return 0.0
            case Move.SET_ENVIRONMENT:
                return rb.POLL_SECONDS if await self.set_environment(dict(d.variables)) else 0.0
            case Move.COPY:
                await self.copy(d.copies)
                return 0.0
            case Move.DELETE:
                await self.delete(list(d.keys))
                return 0.0
            case Move.INVALIDATE:
                await self.invalidate()
                return 0.0
            case Move.WAIT:
                self.start_step(d.at, d.message)
                if d.step == Id.INVALIDATE:
                    self.phase(Phase.VERIFYING, "Verifying", d.message)
                return d.wait
            case Move.STEP_DONE:
                self.step_done(d)
                return 0.0
            case Move.FINISH:
                await self.finish(Phase.SUCCEEDED, "RolledBack", self.success_message())
        return None

    async def observe(self, step: Id) -> Facts:
        """What the target shows now, as far as ``step`` needs (static site: progress is recounted)."""
        if self.spec.lambda_ is not None:
            lam = self.ctl.aws.lambda_(self.region, self.role)
            alias = None if step == Id.ENVIRONMENT else self.spec.function.alias
            return Facts(function=await asyncio.to_thread(lam.current, self.spec.function.function_name, alias))
        site = self.spec.site
        facts = Facts()
        facts.backup, facts.live = await self.listings()
        cf = site.cloud_front
        if step == Id.INVALIDATE and self.st.invalidation is not None and cf and cf.wait_for_completion:
            facts.invalidation_status = await asyncio.to_thread(
                self.ctl.aws.site(self.region, self.role).invalidation_status, cf.distribution_id,
                self.st.invalidation.id)
            self.st.invalidation.status = facts.invalidation_status
        if step == Id.APPLY and self.st.progress is not None:
            to_copy, _, _ = rb.restore_plan(facts.backup, site.backup_prefix, facts.live, site.target_prefix)
            self.st.progress.copied = rb.copied_so_far(self.st, len(to_copy))
        return facts

    async def listings(self) -> tuple[dict, dict]:
        site = self.spec.site
        sa = self.ctl.aws.site(self.region, self.role)
        source, exclude = rb.site_source(self.spec)
        backup = await asyncio.to_thread(sa.listing, source, site.backup_prefix)
        live = await asyncio.to_thread(sa.listing, site.bucket, site.target_prefix, exclude)
        return backup, live

    # -- Lambda -----------------------------------------------------------------------------------
    async def capture_lambda(self) -> None:
        target = self.spec.function
        name, alias = target.function_name, target.alias
        lam = self.ctl.aws.lambda_(self.region, self.role)
        current = await _or_missing(lam.current, f"function {name}" + (f" or its alias {alias}" if alias else ""),
                                    name, alias)
        versions = await asyncio.to_thread(lam.versions, name)
        to = target.to
        named_sha = None
        if to.version:
            named_sha = await _or_missing(lam.version_sha, f"version {to.version} of function {name}", name, to.version)
        elif to.s3 is not None:
            named_sha = await _or_missing(lam.package_sha, f"package s3://{to.s3.bucket}/{to.s3.key}", to.s3.bucket,
                                          to.s3.key, to.s3.object_version)
        to_version, to_sha = rb.lambda_target(self.spec, current, versions, named_sha)
        running = current.version
        if running == "$LATEST":  # name the published version $LATEST's code is, when there is one
            same = [v.version for v in versions if v.code_sha256 == current.code_sha256]
            running = f"v{same[-1]} = $LATEST" if same else running
        self.st.from_ = Revision(version=current.version, code_sha256=current.code_sha256,
                                 description=rb.describe_revision(running, current.code_sha256))
        self.st.to = Revision(version=to_version, code_sha256=to_sha, s3=to.s3,
                              description=rb.describe_revision(to_version or (f"s3://{to.s3.bucket}/{to.s3.key}" if to.s3 else None),
                                                               to_sha))
        self.end_step(Id.CAPTURE, f"{name}{':' + alias if alias else ''} runs {self.st.from_.description}; "
                                  f"target {self.st.to.description}")
        verb = "a rollback would go to" if self.spec.dry_run else "rolling back to"
        self.event("Captured", f"{self.st.target} runs {self.st.from_.description}; {verb} {self.st.to.description}")

    async def apply_lambda(self) -> None:
        target, to = self.spec.function, self.st.to
        lam = self.ctl.aws.lambda_(self.region, self.role)
        action = "lambda:UpdateAlias" if target.alias else "lambda:UpdateFunctionCode"
        if not self.intended(Id.APPLY, f"{action} issued"):
            return
        if target.alias:
            await asyncio.to_thread(lam.point_alias, target.function_name, target.alias, to.version)
        elif to.s3 is not None:
            await asyncio.to_thread(lam.restore_code_from_s3, target.function_name, to.s3.bucket, to.s3.key,
                                    to.s3.object_version)
        else:
            await asyncio.to_thread(lam.restore_code_from_version, target.function_name, to.version)
        self.end_step(Id.APPLY, f"{action} to {to.description}")
        self.verifying()

    def verifying(self) -> None:
        self.phase(Phase.VERIFYING, "Verifying", f"waiting until {self.st.target} is Active with LastUpdateStatus "
                                                 f"Successful and runs {self.st.to.description}")

    async def set_environment(self, wanted: dict[str, str]) -> bool:
        """Merge ``wanted`` into the function's environment; False when this pass only put the call on record."""
        lam = self.ctl.aws.lambda_(self.region, self.role)
        name = self.spec.function.function_name
        if not self.intended(Id.ENVIRONMENT, f"setting {', '.join(sorted(wanted))}"):
            return False
        current = await asyncio.to_thread(lam.current, name)
        await asyncio.to_thread(lam.set_environment, name, wanted, current.environment)
        self.step(Id.ENVIRONMENT).runner = None
        return True

    def step_done(self, d: Decision) -> None:
        self.end_step(d.at, d.message, d.state)
        if d.step == Id.APPLY and self.spec.lambda_ is not None:
            self.verifying()
        elif d.step == Id.VERIFY and self.spec.lambda_ is not None:
            self.event("Verified", f"{self.st.target} runs {self.st.to.description}")
        elif d.step == Id.APPLY:
            self.event("Copied", d.message)
        elif d.step == Id.DELETE:
            self.event("Deleted", d.message)

    # -- static site ------------------------------------------------------------------------------
    async def capture_site(self) -> None:
        site, sa = self.spec.site, self.ctl.aws.site(self.region, self.role)
        source, exclude = rb.site_source(self.spec)
        if exclude is not None and site.target_prefix.startswith(site.backup_prefix):
            raise RollbackFailed("InvalidTarget", f"targetPrefix {site.target_prefix!r} is inside backupPrefix "
                                                  f"{site.backup_prefix!r}; nothing was changed")
        for bucket in dict.fromkeys((site.bucket, source)):
            if not await asyncio.to_thread(sa.bucket_exists, bucket):
                raise RollbackFailed("NotFound", f"bucket {bucket} does not exist; nothing was changed")
        if site.cloud_front and not await asyncio.to_thread(sa.distribution_exists, site.cloud_front.distribution_id):
            raise RollbackFailed("NotFound", f"CloudFront distribution {site.cloud_front.distribution_id} does "
                                             f"not exist; nothing was changed")
        backup, live = await self.listings()
        if not backup:
            raise RollbackFailed("EmptyBackup", f"backup s3://{source}/{site.backup_prefix} has no objects; "
                                                f"nothing was restored and nothing deleted")
        manifest = await asyncio.to_thread(self.write_manifest, site.bucket, site.target_prefix, live)
        to_copy, unchanged, extra = rb.restore_plan(backup, site.backup_prefix, live, site.target_prefix)
        self.st.from_ = Revision(objects=len(live), manifest_ref=LocalObjectReference(name=manifest),
                                 description=f"s3://{site.bucket}/{site.target_prefix} ({len(live)} objects)")
        self.st.to = Revision(objects=len(backup), description=f"s3://{source}/{site.backup_prefix} "
                                                               f"({len(backup)} objects)")
        self.st.progress = Progress(total=len(backup), unchanged=len(unchanged),
                                    extraneous=len(extra) if site.delete_extraneous else 0)
        captured = (f"{len(to_copy)} to copy, {len(unchanged)} unchanged, {len(extra)} live objects not in the "
                    f"backup; live listing saved in ConfigMap {manifest}")
        self.end_step(Id.CAPTURE, captured)
        self.event("Captured", captured)

    async def copy(self, copies: tuple[tuple[str, str], ...]) -> None:
        """One batch of copies, COPY_CONCURRENCY at once (``run_batch``), none started after
        COPY_BATCH_SECONDS; ``progress.copied`` counts those completed; the next pass re-lists."""
        site, sa = self.spec.site, self.ctl.aws.site(self.region, self.role)
        source, _ = rb.site_source(self.spec)
        p = self.st.progress
        # The intent and the batch share a pass (two writes): a batch is idempotent (a restart re-lists and
        # copies only what differs), and an intent pass per batch would list the whole site twice as often.
        self.start_step(Id.APPLY, f"copying: {p.copied} of {p.total - p.unchanged} done", call=True)
        await self.save()
        done, error = await asyncio.to_thread(
            run_batch, lambda keys: sa.copy(source, keys[1], site.bucket, keys[0]), copies, COPY_BATCH_SECONDS)
        p.copied += done
        step = self.step(Id.APPLY)
        step.message, step.runner = f"copying: {p.copied} of {p.total - p.unchanged} done", None  # the batch is done
        if error is not None:
            raise error  # as a copy's error always was: AwsError (aws_failed) or a bug

    async def delete(self, keys: list[str]) -> None:
        site, sa = self.spec.site, self.ctl.aws.site(self.region, self.role)
        if not self.intended(Id.DELETE, f"deleting {len(keys)} objects not in the backup"):
            return
        failed = await asyncio.to_thread(sa.delete, site.bucket, keys)
        self.step(Id.DELETE).runner = None
        if failed:
            raise RollbackFailed("DeleteFailed", f"could not delete {len(failed)} objects (e.g. {failed[0]}); "
                                                 f"{rb.progress_note(self.st)}")
        self.st.progress.deleted += len(keys)

    async def invalidate(self) -> None:
        """CreateInvalidation with the Rollback's uid as CallerReference: AWS returns the same
        invalidation for a repeated reference, so a restart never creates two."""
        cf = self.spec.site.cloud_front
        if cf is None:
            raise RuntimeError("the invalidate step runs only for a staticSite with cloudFront")
        sa = self.ctl.aws.site(self.region, self.role)
        self.start_step(Id.INVALIDATE, f"invalidating {', '.join(cf.paths)} on {cf.distribution_id}", call=True)
        created = await asyncio.to_thread(sa.invalidate, cf.distribution_id, cf.paths,
                                          f"opex-rollback-{self.obj.ref.uid}")
        self.st.invalidation = Invalidation(id=created["Id"], status=created["Status"], paths=cf.paths)
        self.step(Id.INVALIDATE).runner = None
        self.event("InvalidationCreated", f"invalidation {created['Id']} of {', '.join(cf.paths)} on "
                                          f"{cf.distribution_id}")

    def write_manifest(self, bucket: str, prefix: str, live: dict) -> str:
        """The live objects before the restore (key -> ETag, size), to undo it; gzipped in a ConfigMap."""
        ref = self.obj.ref
        name = child_name(ref.name, "from")
        doc: dict[str, Any] = {"bucket": bucket, "prefix": prefix, "objects": {k: [v.etag, v.size] for k, v in sorted(live.items())}}
        data = gzip.compress(json.dumps(doc, separators=(",", ":")).encode())
        if len(data) > MAX_MANIFEST_GZ:
            doc = {"bucket": bucket, "prefix": prefix, "truncated": True, "objects": len(live)}
            data = gzip.compress(json.dumps(doc).encode())
        self.ctl.objects.put_config_map(ref.namespace, name, {}, ref, {"opex.dev/rollback": label_value(ref.name)},
                                        binary={"manifest.json.gz": base64.b64encode(data).decode()})
        return name

    # -- endings ----------------------------------------------------------------------------------
    def success_message(self) -> str:
        st = self.st
        if self.spec.lambda_ is not None:
            return f"{st.target} rolled back from {st.from_.description} to {st.to.description} and verified"
        return (f"{st.target} restored from {st.to.description}: {st.progress.copied} copied, "
                f"{st.progress.unchanged} unchanged, {st.progress.deleted} deleted"
                + (f"; invalidation {st.invalidation.id} {st.invalidation.status}" if st.invalidation else ""))

    async def aws_failed(self, err: AwsError) -> float | None:
        """A transient AWS error is retried (every step checks the target first); others end the rollback."""
        if err.transient:
            self.event("Retrying", str(err), warning=True)
            return TRANSIENT_RETRY_SECONDS
        reason = "AccessDenied" if err.denied else ("NotFound" if err.not_found else "AwsError")
        await self.finish(Phase.FAILED, reason, f"{err}; {rb.progress_note(self.st)}")
        return None

    async def finish(self, phase: Phase, reason: str, message: str) -> None:
        st = self.st
        st.finished_at = self.ctl.clock()
        st.message, st.reason = message, reason
        ok = phase == Phase.SUCCEEDED
        dry_run = reason == rb.DRY_RUN
        for step in st.steps:  # a step cut short says so; it is never left Running
            if step.state == State.RUNNING:
                step.state = State.FAILED if phase == Phase.FAILED else State.SKIPPED
                step.message, step.finished_at = f"{step.message}; stopped ({reason})", st.finished_at
        self.phase(phase, reason, message, warning=not ok)
        target_type = "lambda" if self.spec.lambda_ is not None else "static_site"
        outcome = {Phase.SUCCEEDED: "dry_run" if dry_run else "succeeded", Phase.ABORTED: "aborted"}.get(phase, "failed")
        metrics.ROLLBACKS.labels(target_type, outcome).inc()
        if phase == Phase.ABORTED:
            metrics.ROLLBACK_ABORTS.labels("requested" if reason == "AbortRequested" else reason).inc()
        if st.started_at is not None:
            metrics.ROLLBACK_DURATION.labels(target_type).observe((st.finished_at - st.started_at).total_seconds())


def run_batch(work: Callable[[T], None], items: Iterable[T], seconds: float, concurrency: int = COPY_CONCURRENCY,
              clock: Callable[[], float] = time.monotonic) -> tuple[int, BaseException | None]:
    """``work(item)`` for ``items`` in order, at most ``concurrency`` at once in threads (each in a copy
    of the caller's context: the AWS budget's foreground/background share). No item is started once
    ``seconds`` have passed (``clock``, seconds) or once one has failed; those started are waited for.
    Blocking. Returns (how many completed, the first exception raised, or None): a failure never
    hides the completions beside it."""
    deadline = clock() + seconds
    todo = list(items)[::-1]  # popped from the end: in order
    completed, error = 0, None
    running: set[Future] = set()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="opex-copy") as pool:
        while True:
            while todo and len(running) < concurrency and error is None and clock() <= deadline:
                running.add(pool.submit(contextvars.copy_context().run, work, todo.pop()))
            if not running:
                return completed, error
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                if future.exception() is None:
                    completed += 1
                elif error is None:
                    error = future.exception()


def needed_actions(spec: RollbackSpec) -> list[str]:
    """The mutating actions (as the operator policy names them) this rollback may call."""
    if spec.lambda_ is not None:
        return (["lambda:UpdateAlias" if spec.function.alias else "lambda:UpdateFunctionCode"]
                + (["lambda:UpdateFunctionConfiguration"] if spec.function.environment else []))
    site = spec.site
    return (["s3:PutObject"] + (["s3:DeleteObject"] if site.delete_extraneous else [])
            + (["cloudfront:CreateInvalidation"] if site.cloud_front else []))


async def _or_missing(call: Callable[..., T], what: str, *args: Any) -> T:
    """``call(*args)`` in a thread; a not-found AwsError ends the rollback naming ``what``."""
    try:
        return await asyncio.to_thread(call, *args)
    except AwsError as err:
        if err.not_found:
            raise RollbackFailed("NotFound", f"{what} does not exist; nothing was changed") from None
        raise
