"""Reconcile a Rollback: capture what runs now, restore the known-good release, verify it.

Source: the seed's "Rollback Deployment" (Lambda back to the previous version or an S3 package)
and "Lambda Function Issues" (update environment variables if needed). Phases: Pending →
AwaitingApproval (approval Manual until spec.approved) → InProgress → Verifying → Succeeded, or
Failed / Aborted with a message that says what was and was not changed. ``status.from`` holds
what ran before, so the rollback itself can be undone.

Every change is checked first (nothing is called when the target already holds), recorded
in ``status.steps`` before the call, and verified after: a restart resumes without repeating it.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gzip
import hashlib
import json
import time
from typing import Any, Callable

from pydantic import ValidationError

from .. import metrics
from ..api.common import ConditionStatus, EventType, now as utcnow
from ..api.conditions import set_condition
from ..api.rollback import (Invalidation, Progress, Revision, RollbackApproval, RollbackPhase as Phase, RollbackSpec,
                            RollbackStatus, RollbackStep)
from ..errors import AwsError
from ..aws.clients import AwsClients
from ..aws.lambda_ import FunctionState, LambdaActions
from ..aws.site import SiteActions, restore_plan
from ..kube import Kube, ObjectRef
from ..policy import Policy
from .base import Event, Observed
from .common import reject_spec, transition

TERMINAL = {Phase.SUCCEEDED, Phase.FAILED, Phase.ABORTED}
ROLLED_BACK = "RolledBack"
POLL_SECONDS = 1.0
COPY_BATCH, COPY_BATCH_SECONDS = 200, 5.0   # per pass: progress is checkpointed and an abort seen between batches
MAX_MANIFEST_GZ = 700 * 1024                 # a ConfigMap holds at most 1 MiB


class RollbackFailed(Exception):
    """Stop the rollback: ``reason`` (CamelCase) and a message saying what was and was not changed."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class RollbackController:
    kind, plural, status_model = "Rollback", "rollbacks", RollbackStatus
    wake_annotations: tuple[str, ...] = ()

    def __init__(self, aws: AwsClients, policy: Policy, kube: Kube, clock: Callable[[], dt.datetime] = utcnow):
        self.aws, self.policy, self.kube, self.clock = aws, policy, kube, clock

    def forget(self, ref: ObjectRef) -> None:
        pass

    async def reconcile(self, obj: Observed[RollbackStatus]) -> float | None:
        st, gen = obj.status, obj.generation
        try:
            spec = RollbackSpec.model_validate(obj.spec)
        except ValidationError as err:
            await reject_spec(obj, Phase.FAILED, err)
            return None
        events: list[Event] = []
        if st.phase is None:
            st.target = _target(spec)
            events += transition(st, Phase.PENDING, ConditionStatus.UNKNOWN, "Pending",
                                 f"rollback of {st.target} accepted", gen)
        if st.phase in TERMINAL:
            if st.observed_generation != gen:
                st.observed_generation = gen
                await obj.recorder.save(st, events)
            return None
        if spec.abort:
            await self._finish(obj, spec, Phase.ABORTED, "AbortRequested", self._abort_message(st), events)
            return None
        if spec.approval == RollbackApproval.MANUAL and not spec.approved and not spec.dry_run:
            events += transition(st, Phase.AWAITING_APPROVAL, ConditionStatus.FALSE, "AwaitingApproval",
                                 f"waiting for approval: set spec.approved: true to roll back {st.target}", gen)
            st.observed_generation = gen
            await obj.recorder.save(st, events)
            return None
        if st.started_at is None:
            st.started_at = self.clock()
            events += transition(st, Phase.IN_PROGRESS, ConditionStatus.UNKNOWN, "InProgress",
                                 f"dry run: planning the rollback of {st.target}" if spec.dry_run
                                 else f"rolling back {st.target}", gen)
        st.observed_generation = gen
        await obj.recorder.save(st, events)
        try:
            if self._deadline_passed(spec, st):
                raise RollbackFailed("ProgressDeadlineExceeded",
                                     f"not finished within progressDeadlineSeconds ({spec.progress_deadline_seconds}s) "
                                     f"while {st.phase.value}; " + self._progress_note(st))
            if spec.lambda_ is not None:
                return await self._lambda(obj, spec)
            return await self._static_site(obj, spec)
        except RollbackFailed as err:
            await self._finish(obj, spec, Phase.FAILED, err.reason, str(err), [])
            return None
        except AwsError as err:
            if err.transient:  # every step checks the target first: retrying is safe
                await obj.recorder.save(st, [(EventType.WARNING, "Retrying", str(err))])
                return 5.0
            reason = "AccessDenied" if err.denied else ("NotFound" if err.not_found else "AwsError")
            await self._finish(obj, spec, Phase.FAILED, reason, f"{err}; {self._progress_note(st)}", [])
            return None

    # -- Lambda -----------------------------------------------------------------------------------
    async def _lambda(self, obj: Observed[RollbackStatus], spec: RollbackSpec) -> float | None:
        st, target = obj.status, spec.lambda_
        lam = LambdaActions(self.aws, spec.region, spec.role_key)
        region = spec.region or self.aws.default_region
        name, alias = target.function_name, target.alias
        change_action = "lambda:UpdateAlias" if alias else "lambda:UpdateFunctionCode"
        needed = [change_action] + (["lambda:UpdateFunctionConfiguration"] if target.environment else [])
        for action in needed:
            denied = self.policy.check(obj.ref.namespace, spec.role_key, region, action)
            if denied:
                raise RollbackFailed("PolicyDenied", f"{denied}; nothing was changed")

        capture = _step(st, "capture")
        if capture.state != "Succeeded":
            current = await asyncio.to_thread(_or_missing, lambda: lam.current(name, alias),
                                              f"function {name}" + (f" or its alias {alias}" if alias else ""))
            to_version, to_sha, s3 = await asyncio.to_thread(self._resolve_lambda_target, lam, spec, current)
            running = current.version
            if running == "$LATEST":  # name the published version $LATEST's code is, when there is one
                same = [v for v, sha in await asyncio.to_thread(lam.versions, name) if sha == current.code_sha256]
                running = f"v{same[-1]} = $LATEST" if same else running
            st.from_ = Revision(version=current.version, code_sha256=current.code_sha256,
                                description=_describe(running, current.code_sha256))
            st.to = Revision(version=to_version, code_sha256=to_sha, s3=s3,
                             description=_describe(to_version or f"s3://{s3.bucket}/{s3.key}", to_sha))
            _done(capture, f"{name}{':' + alias if alias else ''} runs {st.from_.description}; "
                           f"target {st.to.description}", self.clock())
            verb = "a rollback would go to" if spec.dry_run else "rolling back to"
            await obj.recorder.save(st, [(EventType.NORMAL, "Captured",
                                          f"{st.target} runs {st.from_.description}; {verb} {st.to.description}")])
        if spec.dry_run:
            plan = (f"would point alias {alias} from version {st.from_.version} to {st.to.version}" if alias else
                    f"would replace the code of {name}, now {st.from_.description}, with {st.to.description}")
            if target.environment:
                plan += f", then set environment variables {', '.join(sorted(target.environment))}"
            return await self._dry_run_done(obj, spec, plan)

        apply = _step(st, "apply")
        if apply.state != "Succeeded":
            current = await asyncio.to_thread(lam.current, name, alias)
            if _matches(current, st.to, alias):
                _done(apply, "already at the target; nothing called", self.clock(), "Skipped")
            else:
                apply.state, apply.started_at = "Running", apply.started_at or self.clock()
                apply.message = f"{change_action} issued"
                await obj.recorder.save(st)  # intent on record before the call
                if alias:
                    await asyncio.to_thread(lam.point_alias, name, alias, st.to.version)
                elif st.to.s3 is not None:
                    await asyncio.to_thread(lam.restore_code_from_s3, name, st.to.s3.bucket, st.to.s3.key,
                                            st.to.s3.object_version)
                else:
                    await asyncio.to_thread(lam.restore_code_from_version, name, st.to.version)
                _done(apply, f"{change_action} to {st.to.description}", self.clock())
            events = transition(st, Phase.VERIFYING, ConditionStatus.UNKNOWN, "Verifying",
                                f"waiting until {st.target} is Active with LastUpdateStatus Successful and runs "
                                f"{st.to.description}", obj.generation)
            await obj.recorder.save(st, events)

        verify = _step(st, "verify")
        if verify.state != "Succeeded":
            current = await asyncio.to_thread(lam.current, name, alias)
            if current.update_failed:
                raise RollbackFailed("UpdateFailed", f"Lambda reports the update failed: {current.last_update_reason}; "
                                                     + self._progress_note(st))
            if not (current.settled and _matches(current, st.to, alias)):
                verify.state, verify.message = "Running", (f"State {current.state}, LastUpdateStatus "
                                                           f"{current.last_update_status}, CodeSha256 {current.code_sha256}")
                await obj.recorder.save(st)
                return POLL_SECONDS
            _done(verify, f"Active, Successful, CodeSha256 {current.code_sha256}", self.clock())
            await obj.recorder.save(st, [(EventType.NORMAL, "Verified", f"{st.target} runs {st.to.description}")])

        if target.environment:
            env = _step(st, "environment")
            if env.state != "Succeeded":
                current = await asyncio.to_thread(lam.current, name)
                wanted = {k: v for k, v in target.environment.items() if current.environment.get(k) != v}
                if not current.settled:
                    return POLL_SECONDS  # never change configuration while an update is in progress
                if wanted:  # a merge of the same values: safe to issue again after a restart
                    env.state, env.started_at = "Running", env.started_at or self.clock()
                    env.message = f"setting {', '.join(sorted(wanted))}"
                    await obj.recorder.save(st)
                    await asyncio.to_thread(lam.set_environment, name, wanted, current.environment)
                    return POLL_SECONDS
                _done(env, f"environment variables {', '.join(sorted(target.environment))} set", self.clock())
        await self._finish(obj, spec, Phase.SUCCEEDED, "RolledBack",
                           f"{st.target} rolled back from {st.from_.description} to {st.to.description} and verified", [])
        return None

    def _resolve_lambda_target(self, lam: LambdaActions, spec: RollbackSpec,
                               current: FunctionState) -> tuple[str | None, str | None, Any]:
        to, name = spec.lambda_.to, spec.lambda_.function_name
        if to.version:
            sha = _or_missing(lambda: lam.version_sha(name, to.version), f"version {to.version} of function {name}")
            return to.version, sha, None
        if to.s3 is not None:
            sha = _s3_sha(self.aws, spec, to.s3)
            return None, sha, to.s3
        versions = lam.versions(name)
        running = current.version if current.version != "$LATEST" else next(
            (v for v, sha in reversed(versions) if sha == current.code_sha256), None)
        older = [(v, sha) for v, sha in versions if sha != current.code_sha256
                 and (running is None or int(v) < int(running))]
        if not older:
            raise RollbackFailed("NoPreviousVersion",
                                 f"function {name} has no published version before "
                                 f"{'version ' + running if running else 'its current code'}; nothing was changed")
        return older[-1][0], older[-1][1], None

    # -- static site ------------------------------------------------------------------------------
    async def _static_site(self, obj: Observed[RollbackStatus], spec: RollbackSpec) -> float | None:
        st, site = obj.status, spec.static_site
        sa = SiteActions(self.aws, spec.region, spec.role_key)
        region = spec.region or self.aws.default_region
        source_bucket = site.backup_bucket or site.bucket
        # The backups live beside the site: never copy onto them, never delete them.
        exclude = site.backup_prefix if source_bucket == site.bucket else None
        if exclude is not None and site.target_prefix.startswith(site.backup_prefix):
            raise RollbackFailed("InvalidTarget", f"targetPrefix {site.target_prefix!r} is inside backupPrefix "
                                                  f"{site.backup_prefix!r}; nothing was changed")
        needed = ["s3:PutObject"] + (["s3:DeleteObject"] if site.delete_extraneous else []) + (
            ["cloudfront:CreateInvalidation"] if site.cloud_front else [])
        for action in needed:
            denied = self.policy.check(obj.ref.namespace, spec.role_key, region, action)
            if denied:
                raise RollbackFailed("PolicyDenied", f"{denied}; nothing was changed")

        async def listings():
            backup = await asyncio.to_thread(sa.listing, source_bucket, site.backup_prefix)
            live = await asyncio.to_thread(sa.listing, site.bucket, site.target_prefix, exclude)
            return backup, live

        capture = _step(st, "capture")
        if capture.state != "Succeeded":
            for bucket in {site.bucket, source_bucket}:
                if not await asyncio.to_thread(sa.bucket_exists, bucket):
                    raise RollbackFailed("NotFound", f"bucket {bucket} does not exist; nothing was changed")
            if site.cloud_front and not await asyncio.to_thread(sa.distribution_exists,
                                                                site.cloud_front.distribution_id):
                raise RollbackFailed("NotFound", f"CloudFront distribution {site.cloud_front.distribution_id} does "
                                                 f"not exist; nothing was changed")
            backup, live = await listings()
            if not backup:
                raise RollbackFailed("EmptyBackup", f"backup s3://{source_bucket}/{site.backup_prefix} has no objects; "
                                                    f"nothing was restored and nothing deleted")
            manifest = await asyncio.to_thread(self._write_manifest, obj.ref, site.bucket, site.target_prefix, live)
            to_copy, unchanged, extra = restore_plan(backup, site.backup_prefix, live, site.target_prefix)
            st.from_ = Revision(objects=len(live), manifest_ref={"name": manifest},
                                description=f"s3://{site.bucket}/{site.target_prefix} ({len(live)} objects)")
            st.to = Revision(objects=len(backup),
                             description=f"s3://{source_bucket}/{site.backup_prefix} ({len(backup)} objects)")
            st.progress = Progress(total=len(backup), unchanged=len(unchanged),
                                   extraneous=len(extra) if site.delete_extraneous else 0)
            _done(capture, f"{len(to_copy)} to copy, {len(unchanged)} unchanged, {len(extra)} live objects not in "
                           f"the backup; live listing saved in ConfigMap {manifest}", self.clock())
            await obj.recorder.save(st, [(EventType.NORMAL, "Captured", capture.message)])
        if spec.dry_run:
            backup, live = await listings()
            to_copy, unchanged, extra = restore_plan(backup, site.backup_prefix, live, site.target_prefix)
            plan = f"would copy {len(to_copy)} objects ({len(unchanged)} unchanged)"
            plan += (f", delete {len(extra)} not in the backup" if site.delete_extraneous else
                     f", keep {len(extra)} not in the backup")
            if site.cloud_front:
                plan += f", invalidate {', '.join(site.cloud_front.paths)} on {site.cloud_front.distribution_id}"
            return await self._dry_run_done(obj, spec, plan)

        apply = _step(st, "apply")
        if apply.state != "Succeeded":
            backup, live = await listings()
            to_copy, _, extra = restore_plan(backup, site.backup_prefix, live, site.target_prefix)
            self._count(st, len(to_copy))
            if to_copy:
                apply.state, apply.started_at = "Running", apply.started_at or self.clock()
                apply.message = f"copying: {st.progress.copied} of {st.progress.total - st.progress.unchanged} done"
                await obj.recorder.save(st)  # intent on record; a restart re-lists and copies only what differs
                deadline = time.monotonic() + COPY_BATCH_SECONDS
                for target, source in list(to_copy.items())[:COPY_BATCH]:
                    await asyncio.to_thread(sa.copy, source_bucket, source, site.bucket, target)
                    if time.monotonic() > deadline:
                        break
                backup, live = await listings()
                to_copy, _, extra = restore_plan(backup, site.backup_prefix, live, site.target_prefix)
                self._count(st, len(to_copy))
                apply.message = f"copying: {st.progress.copied} of {st.progress.total - st.progress.unchanged} done"
                await obj.recorder.save(st)
                if to_copy:
                    return 0.0  # next batch on the next pass (it sees an abort in between)
            _done(apply, f"copied {st.progress.copied} objects, {st.progress.unchanged} were unchanged", self.clock())
            await obj.recorder.save(st, [(EventType.NORMAL, "Copied", apply.message)])

        if site.delete_extraneous:
            delete = _step(st, "delete")
            if delete.state != "Succeeded":
                backup, live = await listings()
                _, _, extra = restore_plan(backup, site.backup_prefix, live, site.target_prefix)
                if extra:
                    delete.state, delete.started_at = "Running", delete.started_at or self.clock()
                    await obj.recorder.save(st)
                    failed = await asyncio.to_thread(sa.delete, site.bucket, extra)
                    if failed:
                        raise RollbackFailed("DeleteFailed", f"could not delete {len(failed)} objects (e.g. "
                                                             f"{failed[0]}); {self._progress_note(st)}")
                st.progress.deleted = st.progress.extraneous
                _done(delete, f"deleted {st.progress.deleted} objects not in the backup", self.clock())
                await obj.recorder.save(st, [(EventType.NORMAL, "Deleted", delete.message)])

        if site.cloud_front:
            cf = site.cloud_front
            if st.invalidation is None:
                created = await asyncio.to_thread(sa.invalidate, cf.distribution_id, cf.paths, f"opex-rollback-{obj.ref.uid}")
                st.invalidation = Invalidation(id=created["Id"], status=created["Status"], paths=cf.paths)
                await obj.recorder.save(st, [(EventType.NORMAL, "InvalidationCreated",
                                              f"invalidation {created['Id']} of {', '.join(cf.paths)} on "
                                              f"{cf.distribution_id}")])
            if cf.wait_for_completion and not _completed(st.invalidation.status):
                st.invalidation.status = await asyncio.to_thread(sa.invalidation_status, cf.distribution_id,
                                                                 st.invalidation.id)
                if not _completed(st.invalidation.status):
                    events = transition(st, Phase.VERIFYING, ConditionStatus.UNKNOWN, "Verifying",
                                        f"waiting for invalidation {st.invalidation.id}", obj.generation)
                    await obj.recorder.save(st, events)
                    return 5.0

        verify = _step(st, "verify")
        backup, live = await listings()
        to_copy, unchanged, extra = restore_plan(backup, site.backup_prefix, live, site.target_prefix)
        if to_copy or (site.delete_extraneous and extra):
            raise RollbackFailed("VerificationFailed", f"after the restore {len(to_copy)} objects still differ from the "
                                                       f"backup and {len(extra)} extraneous remain (something else "
                                                       f"writes to the site?); {self._progress_note(st)}")
        _done(verify, f"all {len(unchanged)} objects match the backup by ETag and size", self.clock())
        await self._finish(obj, spec, Phase.SUCCEEDED, "RolledBack",
                           f"{st.target} restored from {st.to.description}: {st.progress.copied} copied, "
                           f"{st.progress.unchanged} unchanged, {st.progress.deleted} deleted"
                           + (f"; invalidation {st.invalidation.id} {st.invalidation.status}" if st.invalidation else ""),
                           [])
        return None

    @staticmethod
    def _count(st: RollbackStatus, left_to_copy: int) -> None:
        """Copied so far, derived from the listing (so a restart mid-batch counts what it did)."""
        p = st.progress
        p.copied = max(0, p.total - left_to_copy - p.unchanged)

    def _write_manifest(self, ref: ObjectRef, bucket: str, prefix: str, live: dict) -> str:
        """The live objects before the restore (key -> ETag, size), to undo it; gzipped in a ConfigMap."""
        name = f"{ref.name[:240]}-from"
        doc = {"bucket": bucket, "prefix": prefix, "objects": {k: [v.etag, v.size] for k, v in sorted(live.items())}}
        data = gzip.compress(json.dumps(doc, separators=(",", ":")).encode())
        if len(data) > MAX_MANIFEST_GZ:
            doc = {"bucket": bucket, "prefix": prefix, "truncated": True, "objects": len(live)}
            data = gzip.compress(json.dumps(doc).encode())
        self.kube.put_config_map(ref.namespace, name, {}, ref, {"opex.dev/rollback": ref.name[:63]},
                                 binary={"manifest.json.gz": base64.b64encode(data).decode()})
        return name

    # -- bookkeeping ------------------------------------------------------------------------------
    def _deadline_passed(self, spec: RollbackSpec, st: RollbackStatus) -> bool:
        return st.started_at is not None and (
            self.clock() - st.started_at).total_seconds() > spec.progress_deadline_seconds

    @staticmethod
    def _progress_note(st: RollbackStatus) -> str:
        if st.progress is not None and st.progress.total:
            p = st.progress
            undo = (f"; the live listing before the restore is in ConfigMap {st.from_.manifest_ref.name}"
                    if st.from_ and st.from_.manifest_ref else "")
            return (f"restored {p.copied} of {p.total - p.unchanged} differing objects ({p.unchanged} were already "
                    f"equal), deleted {p.deleted}{undo}")
        apply = next((s for s in st.steps if s.id == "apply"), None)
        if apply is None or apply.state in ("Pending", "DryRun"):
            return "nothing was changed"
        if apply.state == "Skipped":
            return "the target already held; nothing was changed"
        undo = f" (it ran {st.from_.description} before; a Rollback to that undoes it)" if st.from_ else ""
        return f"the change to {st.to.description if st.to else 'the target'} was issued{undo}"

    def _abort_message(self, st: RollbackStatus) -> str:
        return f"aborted by spec.abort while {st.phase.value if st.phase else 'Pending'}; {self._progress_note(st)}"

    async def _dry_run_done(self, obj: Observed[RollbackStatus], spec: RollbackSpec, plan: str) -> None:
        """Record what would have been done; the rollback ends Succeeded with RolledBack=False/DryRun."""
        _step(obj.status, "apply").state, _step(obj.status, "apply").message = "DryRun", plan
        await self._finish(obj, spec, Phase.SUCCEEDED, "DryRun", f"dry run: {plan}; nothing was changed", [],
                           rolled_back=False)

    async def _finish(self, obj: Observed[RollbackStatus], spec: RollbackSpec, phase: Phase, reason: str, message: str,
                      events: list[Event], rolled_back: bool | None = None) -> None:
        st, gen = obj.status, obj.generation
        st.finished_at = self.clock()
        st.message = message
        ok = phase == Phase.SUCCEEDED
        events += transition(st, phase, ConditionStatus.TRUE if ok else ConditionStatus.FALSE, reason, message, gen,
                             warning=not ok)
        done = ok if rolled_back is None else rolled_back
        set_condition(st.conditions, ROLLED_BACK, ConditionStatus.TRUE if done else ConditionStatus.FALSE,
                      reason, message, gen)
        st.observed_generation = gen
        await obj.recorder.save(st, events)
        target_type = "lambda" if spec.lambda_ is not None else "static_site"
        outcome = {Phase.SUCCEEDED: "dry_run" if reason == "DryRun" else "succeeded",
                   Phase.ABORTED: "aborted"}.get(phase, "failed")
        metrics.ROLLBACKS.labels(target_type, outcome).inc()
        if phase == Phase.ABORTED:
            metrics.ROLLBACK_ABORTS.labels("requested" if reason == "AbortRequested" else reason).inc()
        if st.started_at is not None:
            metrics.ROLLBACK_DURATION.labels(target_type).observe((st.finished_at - st.started_at).total_seconds())


def _completed(status: str) -> bool:
    """AWS documents "Completed"; some implementations (moto) answer "COMPLETED"."""
    return status.lower() == "completed"


def _target(spec: RollbackSpec) -> str:
    if spec.lambda_ is not None:
        return f"lambda:{spec.lambda_.function_name}" + (f":{spec.lambda_.alias}" if spec.lambda_.alias else "")
    site = spec.static_site
    return f"s3://{site.bucket}/{site.target_prefix}"


def _step(st: RollbackStatus, step_id: str) -> RollbackStep:
    step = next((s for s in st.steps if s.id == step_id), None)
    if step is None:
        step = RollbackStep(id=step_id, state="Pending")
        st.steps.append(step)
    return step


def _done(step: RollbackStep, message: str, at: dt.datetime, state: str = "Succeeded") -> None:
    step.state, step.message, step.finished_at = state, message[:1024], at
    step.started_at = step.started_at or at


def _describe(version: str | None, sha: str | None) -> str:
    label = f"v{version}" if version and version.isdigit() else version
    return f"{label} ({sha[:10]}…)" if sha else label


def _matches(current: FunctionState, to: Revision, alias: str | None) -> bool:
    if alias:
        return current.version == to.version
    return current.code_sha256 == to.code_sha256


def _or_missing(call: Callable[[], Any], what: str) -> Any:
    try:
        return call()
    except AwsError as err:
        if err.not_found:
            raise RollbackFailed("NotFound", f"{what} does not exist; nothing was changed") from None
        raise


def _s3_sha(aws: AwsClients, spec: RollbackSpec, s3: Any) -> str:
    """Lambda's CodeSha256 of an S3 package: base64 of the SHA-256 of its bytes."""
    args = {"Bucket": s3.bucket, "Key": s3.key}
    if s3.object_version:
        args["VersionId"] = s3.object_version
    client = aws.client("s3", spec.region, spec.role_key)
    body = _or_missing(lambda: client.get_object(**args)["Body"], f"package s3://{s3.bucket}/{s3.key}")
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


