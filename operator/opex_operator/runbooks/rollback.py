"""Decide a Rollback's next move from its spec, checkpointed status and what the target shows (pure).

Runbook: "Rollback Deployment" (Lambda code back to a previous version or an S3 package; static
assets copied back from a backup prefix, then a CloudFront invalidation) and "Lambda Function
Issues" (update environment variables if needed). The steps, in order:

* Lambda: ``capture`` (what runs now and the target) → ``apply`` (UpdateFunctionCode or
  UpdateAlias, skipped when the target already holds) → ``verify`` (Active, Successful, the
  target's CodeSha256) → ``environment`` (when the spec sets variables).
* Static site: ``capture`` (listings, the undo manifest) → ``apply`` (copy what differs, a batch
  per pass) → ``delete`` (with deleteExtraneous) → ``invalidate`` (CloudFront) → ``verify``.

:func:`decide` first answers from the status alone (terminal, abort, approval, deadline, which
step is next); when the step needs to see the target it returns :attr:`Move.OBSERVE` and the
controller calls it again with the observed :class:`Facts`. Each pass carries out one move.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from ..api.rollback import (Revision, RollbackApproval, RollbackPhase as Phase, RollbackSpec, RollbackStatus,
                            RollbackStepId as Id, RollbackStepState as State)
from ..ports.facts import FunctionState, LambdaVersion, ObjectInfo, previous_version

TERMINAL = {Phase.SUCCEEDED, Phase.FAILED, Phase.ABORTED}
POLL_SECONDS = 1.0
INVALIDATION_POLL_SECONDS = 5.0
COPY_BATCH = 200   # objects copied per pass: progress is checkpointed and an abort seen between batches


class Move(StrEnum):
    IDLE = "Idle"                      # terminal: nothing to do
    ABORT = "Abort"                    # spec.abort: stop, saying what was restored
    AWAIT_APPROVAL = "AwaitApproval"   # approval Manual and not approved
    START = "Start"                    # record the start
    FAIL = "Fail"                      # stop with ``reason`` and ``message``
    OBSERVE = "Observe"                # read the target for ``step``, then decide again
    CAPTURE = "Capture"                # record what runs now and the target
    DRY_RUN_DONE = "DryRunDone"        # report ``message`` (the plan) and end
    APPLY = "Apply"                    # Lambda: change the code or alias
    SET_ENVIRONMENT = "SetEnvironment"  # Lambda: merge ``variables`` into the environment
    COPY = "Copy"                      # static site: copy ``copies`` (target key, backup key)
    DELETE = "Delete"                  # static site: delete ``keys``
    INVALIDATE = "Invalidate"          # CloudFront CreateInvalidation
    WAIT = "Wait"                      # poll ``step`` again after ``wait`` seconds (``message``: what is seen)
    STEP_DONE = "StepDone"             # ``step`` ended (``state``) with ``message``
    FINISH = "Finish"                  # verified: Succeeded


@dataclass
class Facts:
    """What the target shows now, as far as the step needs: a Lambda function (or alias), or a
    static site's backup and live listings (keyed by full key) and the invalidation's status."""

    function: FunctionState | None = None
    backup: dict[str, ObjectInfo] = field(default_factory=dict)
    live: dict[str, ObjectInfo] = field(default_factory=dict)
    invalidation_status: str | None = None


@dataclass(frozen=True)
class Decision:
    move: Move
    step: Id | None = None
    reason: str = ""
    message: str = ""
    state: State = State.SUCCEEDED
    wait: float | None = None
    copies: tuple[tuple[str, str], ...] = ()
    keys: tuple[str, ...] = ()
    variables: tuple[tuple[str, str], ...] = ()


class RollbackFailed(Exception):
    """The rollback cannot go on: ``reason`` (CamelCase) and a message saying what was and was not changed."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def target(spec: RollbackSpec) -> str:
    """``lambda:NAME[:ALIAS]`` or ``s3://BUCKET/PREFIX``, as status.target shows it."""
    if spec.lambda_ is not None:
        return f"lambda:{spec.lambda_.function_name}" + (f":{spec.lambda_.alias}" if spec.lambda_.alias else "")
    site = spec.static_site
    return f"s3://{site.bucket}/{site.target_prefix}"


def site_source(spec: RollbackSpec) -> tuple[str, str | None]:
    """The backup's bucket, and the prefix to leave out of the live listing (the backups live beside
    the site when they share a bucket: never copy onto them, never delete them)."""
    site = spec.static_site
    source = site.backup_bucket or site.bucket
    return source, site.backup_prefix if source == site.bucket else None


def step_of(status: RollbackStatus, step_id: Id) -> State:
    step = next((s for s in status.steps if s.id == step_id), None)
    return step.state if step else State.PENDING


def steps_of(spec: RollbackSpec) -> list[Id]:
    """The steps of this rollback, in order."""
    if spec.lambda_ is not None:
        return [Id.CAPTURE, Id.APPLY, Id.VERIFY] + ([Id.ENVIRONMENT] if spec.lambda_.environment else [])
    site = spec.static_site
    return ([Id.CAPTURE, Id.APPLY] + ([Id.DELETE] if site.delete_extraneous else [])
            + ([Id.INVALIDATE] if site.cloud_front else []) + [Id.VERIFY])


def decide(spec: RollbackSpec, status: RollbackStatus, now: dt.datetime, facts: Facts | None = None) -> Decision:
    """The next move (see the module docstring)."""
    if status.phase in TERMINAL:
        return Decision(Move.IDLE)
    if spec.abort:
        return Decision(Move.ABORT, reason="AbortRequested", message=abort_message(status))
    if spec.approval == RollbackApproval.MANUAL and not spec.approved and not spec.dry_run:
        return Decision(Move.AWAIT_APPROVAL)
    if status.started_at is None:
        return Decision(Move.START)
    if (now - status.started_at).total_seconds() > spec.progress_deadline_seconds:
        return Decision(Move.FAIL, reason="ProgressDeadlineExceeded",
                        message=f"not finished within progressDeadlineSeconds ({spec.progress_deadline_seconds}s) "
                                f"while {status.phase.value}; {progress_note(status)}")
    pending = [s for s in steps_of(spec) if step_of(status, s) not in (State.SUCCEEDED, State.SKIPPED)]
    if pending and pending[0] == Id.CAPTURE:
        return Decision(Move.CAPTURE, Id.CAPTURE)
    if spec.dry_run and spec.lambda_ is not None:
        return Decision(Move.DRY_RUN_DONE, message=_lambda_plan(spec, status))
    if not pending:
        return Decision(Move.FINISH)
    step = Id.CAPTURE if spec.dry_run else pending[0]
    if facts is None:
        return Decision(Move.OBSERVE, step)
    if spec.dry_run:
        return Decision(Move.DRY_RUN_DONE, message=_site_plan(spec, facts))
    if spec.lambda_ is not None:
        return _lambda_step(spec, status, step, facts.function)
    return _site_step(spec, status, step, facts)


# -- Lambda ----------------------------------------------------------------------------------------

def lambda_target(spec: RollbackSpec, current: FunctionState, versions: list[LambdaVersion],
                  named_sha: str | None) -> tuple[str | None, str | None]:
    """(version, CodeSha256) of the known-good code: ``spec.to.version`` (its sha ``named_sha``),
    ``to.s3`` (``named_sha`` of the package), or the version before the running one.

    Raises RollbackFailed (NoPreviousVersion) when there is nothing earlier to go to.
    """
    to, name = spec.lambda_.to, spec.lambda_.function_name
    if to.version:
        return to.version, named_sha
    if to.s3 is not None:
        return None, named_sha
    running = None if current.version == "$LATEST" else current.version
    older = previous_version(versions, current.code_sha256, running)
    if older is None:
        ran = running or next((v.version for v in reversed(versions) if v.code_sha256 == current.code_sha256), None)
        raise RollbackFailed("NoPreviousVersion", f"function {name} has no published version before "
                                                  f"{'version ' + ran if ran else 'its current code'}; nothing was changed")
    return older.version, older.code_sha256


def describe_revision(version: str | None, sha: str | None) -> str:
    """``v2 (wErUWPWtkx…)`` for printer columns."""
    label = f"v{version}" if version and version.isdigit() else version
    return f"{label} ({sha[:10]}…)" if sha else label


def holds(current: FunctionState, to: Revision, alias: str | None) -> bool:
    """Whether the function (or alias) runs the target release."""
    return current.version == to.version if alias else current.code_sha256 == to.code_sha256


def _lambda_plan(spec: RollbackSpec, status: RollbackStatus) -> str:
    target_ = spec.lambda_
    plan = (f"would point alias {target_.alias} from version {status.from_.version} to {status.to.version}"
            if target_.alias else f"would replace the code of {target_.function_name}, now {status.from_.description}, "
                                  f"with {status.to.description}")
    if target_.environment:
        plan += f", then set environment variables {', '.join(sorted(target_.environment))}"
    return plan


def _lambda_step(spec: RollbackSpec, status: RollbackStatus, step: Id, current: FunctionState) -> Decision:
    alias = spec.lambda_.alias
    if step == Id.APPLY:
        if holds(current, status.to, alias):
            return Decision(Move.STEP_DONE, step, message="already at the target; nothing called", state=State.SKIPPED)
        return Decision(Move.APPLY, step)
    if step == Id.VERIFY:
        if current.update_failed:
            return Decision(Move.FAIL, reason="UpdateFailed", message=f"Lambda reports the update failed: "
                                                                      f"{current.last_update_reason}; "
                                                                      f"{progress_note(status)}")
        if not (current.settled and holds(current, status.to, alias)):
            return Decision(Move.WAIT, step, wait=POLL_SECONDS,
                            message=f"State {current.state}, LastUpdateStatus {current.last_update_status}, "
                                    f"CodeSha256 {current.code_sha256}")
        return Decision(Move.STEP_DONE, step, message=f"Active, Successful, CodeSha256 {current.code_sha256}")
    wanted = {k: v for k, v in spec.lambda_.environment.items() if current.environment.get(k) != v}
    if not current.settled:  # never change configuration while an update is in progress
        return Decision(Move.WAIT, step, wait=POLL_SECONDS, message=f"waiting for {current.name} to settle")
    if wanted:  # a merge of the same values: safe to issue again after a restart
        return Decision(Move.SET_ENVIRONMENT, step, variables=tuple(sorted(wanted.items())))
    return Decision(Move.STEP_DONE, step,
                    message=f"environment variables {', '.join(sorted(spec.lambda_.environment))} set")


# -- static site -----------------------------------------------------------------------------------

def restore_plan(backup: dict[str, ObjectInfo], backup_prefix: str, live: dict[str, ObjectInfo],
                 target_prefix: str) -> tuple[dict[str, str], list[str], list[str]]:
    """(target key -> backup key to copy, target keys already equal, live keys absent from the backup)."""
    wanted = {target_prefix + key[len(backup_prefix):]: key for key in backup}
    to_copy = {t: b for t, b in wanted.items() if not backup[b].same(live.get(t))}
    unchanged = [t for t in wanted if t not in to_copy]
    extraneous = sorted(k for k in live if k not in wanted)
    return to_copy, unchanged, extraneous


def _restore(spec: RollbackSpec, facts: Facts) -> tuple[dict[str, str], list[str], list[str]]:
    site = spec.static_site
    return restore_plan(facts.backup, site.backup_prefix, facts.live, site.target_prefix)


def _site_plan(spec: RollbackSpec, facts: Facts) -> str:
    site = spec.static_site
    to_copy, unchanged, extra = _restore(spec, facts)
    plan = f"would copy {len(to_copy)} objects ({len(unchanged)} unchanged)"
    plan += (f", delete {len(extra)} not in the backup" if site.delete_extraneous else
             f", keep {len(extra)} not in the backup")
    if site.cloud_front:
        plan += f", invalidate {', '.join(site.cloud_front.paths)} on {site.cloud_front.distribution_id}"
    return plan


def copied_so_far(status: RollbackStatus, left_to_copy: int) -> int:
    """Objects copied, derived from the listing (so a restart mid-batch counts what it did)."""
    p = status.progress
    return max(0, p.total - left_to_copy - p.unchanged)


def completed(invalidation_status: str | None) -> bool:
    """AWS documents "Completed"; some implementations (moto) answer "COMPLETED"."""
    return (invalidation_status or "").lower() == "completed"


def _site_step(spec: RollbackSpec, status: RollbackStatus, step: Id, facts: Facts) -> Decision:
    site = spec.static_site
    to_copy, unchanged, extra = _restore(spec, facts)
    if step == Id.APPLY:
        if to_copy:
            return Decision(Move.COPY, step, copies=tuple(list(to_copy.items())[:COPY_BATCH]))
        return Decision(Move.STEP_DONE, step, message=f"copied {status.progress.copied} objects, "
                                                      f"{status.progress.unchanged} were unchanged")
    if step == Id.DELETE:
        if extra:
            return Decision(Move.DELETE, step, keys=tuple(extra))
        return Decision(Move.STEP_DONE, step, message=f"deleted {status.progress.deleted} objects not in the backup")
    if step == Id.INVALIDATE:
        if status.invalidation is None:
            return Decision(Move.INVALIDATE, step)
        if site.cloud_front.wait_for_completion and not completed(facts.invalidation_status):
            return Decision(Move.WAIT, step, wait=INVALIDATION_POLL_SECONDS,
                            message=f"waiting for invalidation {status.invalidation.id}")
        return Decision(Move.STEP_DONE, step, message=f"invalidation {status.invalidation.id} "
                                                      f"{facts.invalidation_status or status.invalidation.status}")
    if to_copy or (site.delete_extraneous and extra):
        return Decision(Move.FAIL, reason="VerificationFailed",
                        message=f"after the restore {len(to_copy)} objects still differ from the backup and "
                                f"{len(extra)} extraneous remain (something else writes to the site?); "
                                f"{progress_note(status)}")
    return Decision(Move.STEP_DONE, step, message=f"all {len(unchanged)} objects match the backup by ETag and size")


# -- what a stop says --------------------------------------------------------------------------------

def progress_note(status: RollbackStatus) -> str:
    """What was and was not changed so far, for any stop (failure, abort, deadline)."""
    if status.progress is not None and status.progress.total:
        p = status.progress
        undo = (f"; the live listing before the restore is in ConfigMap {status.from_.manifest_ref.name}"
                if status.from_ and status.from_.manifest_ref else "")
        return (f"restored {p.copied} of {p.total - p.unchanged} differing objects ({p.unchanged} were already "
                f"equal), deleted {p.deleted}{undo}")
    apply = step_of(status, Id.APPLY)
    if apply in (State.PENDING, State.DRY_RUN):
        return "nothing was changed"
    if apply == State.SKIPPED:
        return "the target already held; nothing was changed"
    undo = f" (it ran {status.from_.description} before; a Rollback to that undoes it)" if status.from_ else ""
    return f"the change to {status.to.description if status.to else 'the target'} was issued{undo}"


def abort_message(status: RollbackStatus) -> str:
    return f"aborted by spec.abort while {status.phase.value if status.phase else 'Pending'}; {progress_note(status)}"
