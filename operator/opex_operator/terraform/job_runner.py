"""The ``ports.Workspaces`` adapter that runs a DriftCheck's plan, and its approved apply, as Kubernetes Jobs.

Behind the same port as the in-process runner (``terraform.session.Workspaces``), so the DriftCheck
controller and its decider do not know which ran: ``open`` for a plan runs the plan Job to its end
and returns a session that answers ``plan``, ``show_plan`` and ``plan_inputs`` from the Job's result
ConfigMap (raising the SourceError or TerraformError the Job reported, as the in-process ``open``
would); ``open`` for an apply reads the last plan's result, and ``apply_saved_plan`` runs the apply
Job. Everything else (refresh-only, import, force-unlock, an Incident's Terraform steps, a
DriftCheck whose runner is InProcess) goes to the in-process runner.

The Job (``terraform.jobs.build_job``) gets, in a Secret it owns (garbage-collected with it), what
the in-process run would read: the DriftCheck's spec, the ConfigMaps and Secrets it names, the
operator policy (it checks the backend against it again), and the credentials of the role the
policy names for the namespace, assumed by the operator (never the operator's own); its pod runs
under the namespace's runner ServiceAccount, which may only create ConfigMaps there.

One active Job per DriftCheck: before creating one, an active Job of the same DriftCheck and
purpose is adopted (waited for, its result read), so a restarted operator never starts a second
run beside one still going; the name is the run's slot (``jobs.job_name``), so two operators asking
at once meet on the API server's name conflict. A force-unlock is refused while a Job of the
DriftCheck is running: the lock is then held by a live run, not orphaned.

Kubernetes calls and verbs (the rules in ``rbac.WATCHED``): batch/jobs create, get, list, delete;
secrets create (the run's input); configmaps get (the result) and delete (results once read);
driftchecks get (the run's slot and uid, from status).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import yaml

from ..api.driftcheck import DriftCheckSpec, ResolutionStrategy, Runner, ValuesFromKind
from ..policy import Policy, TerraformGrant
from ..ports import TerraformSession, Workspaces
from ..ports.objects import ObjectRef
from ..ports.terraform import Result, SourceError, TerraformError
from . import jobs
from .plan import checksum

log = logging.getLogger(__name__)

PLAN_ACTION, APPLY_ACTION, FORCE_UNLOCK_ACTION = "terraform:Plan", "terraform:Apply", "terraform:ForceUnlock"
POLL_SECONDS = 0.5
# Beyond activeDeadlineSeconds (counted by the Job controller from the Job's start), how long the
# operator waits for the Job to be marked finished before it reports the run timed out itself.
FINISH_SLACK = 60.0


class JobApi(Protocol):
    """What the Job runner calls on the API server (``kube.Kube``). Blocking; raises KubeError."""

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None: ...
    def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None: ...
    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]: ...
    def delete_job(self, namespace: str, name: str) -> None: ...
    def create_secret(self, namespace: str, name: str, data: dict[str, str], owner: dict[str, Any],
                      labels: dict[str, str] | None = None) -> None: ...
    def config_map_binary(self, namespace: str, name: str) -> dict[str, str] | None: ...
    def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None: ...
    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None: ...
    def config_map_names(self, namespace: str, selector: str) -> list[str]: ...
    def delete_config_map(self, namespace: str, name: str) -> None: ...


def load_template(path: Path) -> dict[str, Any]:
    """The chart's Job template (YAML). Raises ValueError when it is not a Job with a container."""
    doc = yaml.safe_load(Path(path).read_text())
    if not isinstance(doc, dict) or doc.get("kind") != "Job" or not (
            ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers"):
        raise ValueError(f"{path} is not a Job template with a container")
    return doc


class JobWorkspaces:
    """``ports.Workspaces``: plans and approved applies of DriftChecks whose runner is Job (or
    unset, with ``default_runner`` Job) as Jobs from ``template``; the rest through ``inner``.
    Without a template (the embedded stack) a DriftCheck asking for a Job fails its run with
    ``RunnerUnavailable``, saying so, rather than running where it did not ask."""

    def __init__(self, inner: Workspaces, api: JobApi, policy: Policy, template: dict[str, Any] | None,
                 default_runner: Runner = Runner.JOB, credentials: Callable[[str], dict[str, str]] | None = None,
                 poll: float = POLL_SECONDS):
        self.inner, self.api, self.policy, self.template = inner, api, policy, template
        self.default_runner, self.credentials, self.poll = default_runner, credentials, poll

    def as_job(self, spec: DriftCheckSpec, grant: TerraformGrant, purpose: str) -> bool:
        """Whether this run is a Job: the DriftCheck's runner is Job, and it is its own plan, or
        the apply of its saved plan."""
        if (spec.runner or self.default_runner) != Runner.JOB or purpose:
            return False
        return grant.action == PLAN_ACTION or (
            grant.action == APPLY_ACTION and spec.resolution.strategy == ResolutionStrategy.APPLY)

    def opens_by_reading(self, spec: DriftCheckSpec, grant: TerraformGrant, purpose: str = "") -> bool:
        """Not for a Job's run: opening runs it (and names it after the started record in status)."""
        return not self.as_job(spec, grant, purpose) and self.inner.opens_by_reading(spec, grant, purpose)

    async def open(self, namespace: str, name: str, spec: DriftCheckSpec, timeout: float, grant: TerraformGrant,
                   purpose: str = "", check_source_later: bool = False) -> TerraformSession:
        """As ``ports.Workspaces.open``; a plan runs its Job here (see the module docstring), which
        fetches its source checked first (``check_source_later`` is for the in-process runner)."""
        if grant.action == FORCE_UNLOCK_ACTION:
            await self.refuse_unlock_while_running(namespace, name)
        if not self.as_job(spec, grant, purpose):
            return await self.inner.open(namespace, name, spec, timeout, grant, purpose,
                                         check_source_later=check_source_later)
        if self.template is None:
            raise SourceError("RunnerUnavailable", "spec.runner is Job, but this operator has no Job template "
                                                   "(OPEX_PLAN_JOB_TEMPLATE, which the chart sets): it runs plans in "
                                                   "its own process only; set spec.runner: InProcess, or install the "
                                                   "operator with the chart")
        obj = await self._call(self.api.get, "driftchecks", namespace, name)
        if obj is None:
            raise SourceError("NotFound", f"DriftCheck {namespace}/{name} is gone")
        owner = ObjectRef("driftchecks", namespace, name, obj["metadata"]["uid"], "DriftCheck")
        session = JobSession(self, owner, spec, grant, timeout)
        status = obj.get("status") or {}
        if grant.action == PLAN_ACTION:
            await session.run(jobs.PLAN, jobs.now_slot(status.get("runningSince")), {})
        else:
            await session.load_plan()
        return session

    def discard(self, namespace: str, name: str) -> None:
        """The in-process runner's directories; the Jobs, their inputs and results go with the DriftCheck."""
        self.inner.discard(namespace, name)

    async def refuse_unlock_while_running(self, namespace: str, name: str) -> None:
        """SourceError ``LockHolderRunning`` when a Job of the DriftCheck is still running: a lock it
        holds is not orphaned, whatever its age."""
        obj = await self._call(self.api.get, "driftchecks", namespace, name)
        if obj is None:
            return
        running = [j["metadata"]["name"] for j in await self._call(
            self.api.list_jobs, namespace, f"{jobs.OWNER_LABEL}={obj['metadata']['uid']}")
            if not jobs.job_state(j).finished]
        if running:
            raise SourceError("LockHolderRunning", f"Job {running[0]} of this DriftCheck is still running and may hold "
                                                   f"the state lock: it is not orphaned, so it is not force-unlocked")

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)


class JobSession:
    """``ports.TerraformSession`` over a plan Job's result (and, for an apply, the apply Job)."""

    def __init__(self, runner: JobWorkspaces, owner: ObjectRef, spec: DriftCheckSpec, grant: TerraformGrant,
                 timeout: float):
        self.runner, self.owner, self.spec, self.grant = runner, owner, spec, grant
        self.deadline = time.monotonic() + timeout
        self.version = self.revision = ""
        self.secret_values: frozenset[str] = frozenset()
        self.outcome = jobs.JobResult()
        self._last: Result | None = None

    # -- the port ---------------------------------------------------------------------------------
    @property
    def plan_file(self) -> str:
        plan = self.outcome.plan
        return f"s3://{plan['bucket']}/{plan['key']}" if plan.get("key") else ""

    @property
    def last_result(self) -> Result | None:
        return self._last

    def plan_inputs(self) -> dict[str, str]:
        return dict(self.outcome.inputs)

    def has_saved_plan(self) -> bool:
        return bool(self.outcome.plan.get("key")) and self.outcome.doc is not None

    async def plan(self, lock_timeout: str, json_stream: bool = False) -> Result:
        """The plan the Job ran (always with ``-json``: the stream has drift, changes and diagnostics)."""
        if self.outcome.result is None:
            raise TerraformError("the plan Job reported no plan", Result("plan", None, "", "", 0.0))
        return self.outcome.result

    async def show_plan(self) -> dict[str, Any]:
        if self.outcome.doc is None:
            raise TerraformError("the plan Job saved no plan JSON", Result("show", None, "", "", 0.0))
        return self.outcome.doc

    async def apply_saved_plan(self, lock_timeout: str) -> Result:
        """The apply Job: it fetches the saved plan, refuses one whose SHA-256 or checksum is not the
        planned one, and applies it. A Job that fails before it reports is a failed apply."""
        if not self.has_saved_plan():
            return Result("apply", 1, "", "no saved plan to apply", 0.0)
        approved = checksum(self.outcome.doc or {}, self.outcome.inputs)
        obj = await self.runner._call(self.runner.api.get, "driftchecks", self.owner.namespace, self.owner.name)
        last = ((obj or {}).get("status") or {}).get("lastResolution") or {}
        slot = f"{last.get('planChecksum')}@{last.get('time')}"
        try:
            await self.run(jobs.APPLY, slot, {"plan": self.outcome.plan, "approvedChecksum": approved})
        except (SourceError, TerraformError) as err:
            result = getattr(err, "result", None) or Result("apply", None, "", str(err), 0.0)
            return Result("apply", result.exit_code if result.command == "apply" else None, result.stdout,
                          f"{err}\n{result.stderr}".strip(), result.duration, result.timed_out, result.stopped)
        return self._last or Result("apply", None, "", "the apply Job reported no result", 0.0)

    async def apply_refresh_only(self, lock_timeout: str) -> Result:
        raise self._in_process_only("apply -refresh-only")

    async def import_(self, address: str, resource_id: str, lock_timeout: str) -> Result:
        raise self._in_process_only("import")

    async def state_list(self) -> list[str]:
        raise self._in_process_only("state list")

    async def force_unlock(self, lock_id: str) -> Result:
        raise self._in_process_only("force-unlock")

    async def source_moved(self) -> bool:
        """Never: the Job fetched its source checked first."""
        return False

    async def cancel_source_check(self) -> None:
        """Nothing to end (see :meth:`source_moved`)."""

    @staticmethod
    def _in_process_only(what: str) -> TerraformError:
        return TerraformError(f"{what} runs in the operator, not in a Job", Result(what, None, "", "", 0.0))

    # -- the Jobs ---------------------------------------------------------------------------------
    def remaining(self) -> float:
        return max(1.0, self.deadline - time.monotonic())

    async def load_plan(self) -> None:
        """The last plan Job's result (kept until the next plan), for its apply."""
        api, ns = self.runner.api, self.owner.namespace
        names = await self.runner._call(api.config_map_names, ns, self._selector(jobs.PLAN))
        for name in sorted(names):
            binary = await self.runner._call(api.config_map_binary, ns, name)
            if binary:
                self.outcome = jobs.decode_result(binary)
                self.version, self.revision = self.outcome.version, self.outcome.revision
                return

    async def run(self, purpose: str, slot: str, extra: dict[str, Any]) -> None:
        """Run (or adopt) the Job of ``purpose`` for ``slot`` and take its result; raises the
        SourceError or TerraformError the Job reported, or TerraformError when the Job ended without
        a result (killed, past its deadline)."""
        api, ns, call = self.runner.api, self.owner.namespace, self.runner._call
        running = [j for j in await call(api.list_jobs, ns, self._selector(purpose))
                   if not jobs.job_state(j).finished]
        if running:
            name = running[0]["metadata"]["name"]
            log.info("DriftCheck %s: adopting the %s Job %s that is still running", self.owner.key, purpose, name)
        else:
            name = jobs.job_name(self.owner.name, purpose, self.owner.uid, slot)
            data = await self.input(purpose, name, extra)   # first: a role that cannot be assumed starts no Job
            body = jobs.build_job(self.runner.template or {}, name, self.owner, purpose,
                                  jobs.deadline_seconds(self.remaining()), f"{name}-input")
            created = await call(api.create_job, ns, body)
            if created is not None:
                owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": created["metadata"]["uid"],
                         "controller": True, "blockOwnerDeletion": False}
                await call(api.create_secret, ns, f"{name}-input", {jobs.INPUT_KEY: json.dumps(data)}, owner,
                           self._labels(purpose))
        state = await self.wait(name)
        binary = await call(api.config_map_binary, ns, name)
        await call(api.delete_job, ns, name)
        if not binary:
            self._last = Result(purpose, None, "", self._ended_without_result(name, state), 0.0,
                                timed_out=state.reason == "DeadlineExceeded", stopped="killed")
            raise TerraformError(f"the {purpose} Job {name} ended without a result", self._last)
        self.outcome = jobs.decode_result(binary)
        self.version, self.revision = self.outcome.version or self.version, self.outcome.revision or self.revision
        await self._prune(purpose, keep=name if purpose == jobs.PLAN else None)
        self._last = self.outcome.result
        error = self.outcome.error
        if error is not None:
            if error.get("type") == "TerraformError":
                failed = jobs.result_from(error["result"]) if error.get("result") else Result(purpose, None, "", "", 0)
                self._last = failed
                raise TerraformError(error.get("message") or "terraform failed in the Job", failed)
            raise SourceError(error.get("reason") or "JobFailed", error.get("message") or "")

    async def wait(self, name: str) -> jobs.JobState:
        """Poll the Job until it finished; past the deadline and the slack, a timed-out state."""
        limit = self.deadline + FINISH_SLACK
        while True:
            job = await self.runner._call(self.runner.api.get_job, self.owner.namespace, name)
            if job is None:
                return jobs.JobState(True, False, "Deleted", "the Job was deleted before it finished")
            state = jobs.job_state(job)
            if state.finished:
                return state
            if time.monotonic() > limit:
                return jobs.JobState(True, False, "DeadlineExceeded", "the Job did not finish within its deadline")
            await asyncio.sleep(self.runner.poll)

    def _ended_without_result(self, name: str, state: jobs.JobState) -> str:
        if state.reason == "DeadlineExceeded":
            return (f"the Job {name} ran past its activeDeadlineSeconds and was stopped: the run exceeded its budget "
                    f"(timeoutSeconds, or the next slot under concurrencyPolicy Replace)")
        why = state.message or "its pod was killed or deleted"
        return (f"the Job {name} failed before it reported ({state.reason}: {why}); nothing of this run is known, "
                f"and the next run plans again")

    async def _prune(self, purpose: str, keep: str | None) -> None:
        """Results already read: every apply result, and every plan result but the last."""
        api, ns = self.runner.api, self.owner.namespace
        for name in await self.runner._call(api.config_map_names, ns, self._selector(purpose)):
            if name != keep:
                await self.runner._call(api.delete_config_map, ns, name)

    def _selector(self, purpose: str) -> str:
        return f"{jobs.OWNER_LABEL}={self.owner.uid},{jobs.PURPOSE_LABEL}={purpose}"

    def _labels(self, purpose: str) -> dict[str, str]:
        return {jobs.OWNER_LABEL: self.owner.uid, jobs.PURPOSE_LABEL: purpose,
                "app.kubernetes.io/managed-by": "opex-operator"}

    async def input(self, purpose: str, name: str, extra: dict[str, Any]) -> dict[str, Any]:
        """What the Job runs on: what the in-process run would read itself (see the module docstring)."""
        api, ns, spec, call = self.runner.api, self.owner.namespace, self.spec, self.runner._call
        config_maps: dict[str, dict[str, str] | None] = {}
        secrets: dict[str, dict[str, str] | None] = {}
        if spec.source.config_map_ref is not None:
            config_maps[spec.source.config_map_ref.name] = await call(api.config_map_data, ns,
                                                                      spec.source.config_map_ref.name)
        for ref in spec.vars_from:
            into, read = (secrets, api.secret_data) if ref.kind == ValuesFromKind.SECRET else (
                config_maps, api.config_map_data)
            into[ref.name] = await call(read, ns, ref.name)
        for env in spec.env_from:
            secrets[env.secret_ref.name] = await call(api.secret_data, ns, env.secret_ref.name)
        self.secret_values = frozenset(v for data in secrets.values() for v in (data or {}).values())
        role_env: dict[str, str] = {}
        if self.grant.role_key:
            if self.runner.credentials is None:
                raise SourceError("CredentialsUnavailable", "no AWS credentials provider is configured")
            try:
                role_env = await asyncio.to_thread(self.runner.credentials, self.grant.role_key)
            except Exception as err:  # noqa: BLE001 - any failure to assume the role ends the run, said why
                raise SourceError("CredentialsUnavailable", f"cannot assume role {self.grant.role_key!r} of the "
                                                            f"operator policy for Terraform: {err}") from None
        return {"purpose": purpose, "result": name, "namespace": ns, "driftCheck": self.owner.name,
                "uid": self.owner.uid, "action": self.grant.action, "timeout": self.remaining(),
                "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
                "policy": self.runner.policy.model_dump(mode="json", by_alias=True, exclude_none=True),
                "configMaps": config_maps, "secrets": secrets, "roleEnv": role_env, **extra}
