"""A DriftCheck's Terraform workspace, ready to run: source fetched, variables written, ``init`` done.

The ``ports.Workspaces`` adapter. Shared by DriftCheck runs and the Incident's Terraform steps,
so both see the same configuration, backend and credentials. Every command the operator runs
is a method here: controllers never build Terraform argument lists.

Terraform runs a tenant's configuration, so it gets a minimal environment (:func:`environment`):
where AWS and the registries are, the credentials of the role the operator policy names for
the namespace (assumed by the operator; never the operator's own), its own HOME and TMPDIR
under the run directory, and nothing of the operator's (no credentials, kubeconfig, token
files or ``OPEX_`` settings). The backend is checked against the policy's grant twice: as the
configuration declares it, before ``init``, and as ``init`` recorded it, before anything else.
A ``local-exec`` provisioner still runs inside the operator's pod, as its user: only a separate
pod (a Kubernetes Job per run) isolates a configuration for real.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from typing import Any, Callable, Protocol

from ..api.driftcheck import DriftCheckSpec, ValuesFromKind
from ..policy import TerraformGrant
from .backend import Backend, BackendError, config_files, declared, initialised
from .runner import Result, Terraform, TerraformError
from .workspace import RunDir, SourceError, fetch_git, remote_revision, write_files, write_var_file

# What of the operator's environment Terraform sees: where AWS, the registries and the CLI's
# configuration are. Never credentials, a kubeconfig, token files or the operator's settings.
PASSED_ENV = frozenset({"PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY",
                        "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "AWS_REGION", "AWS_DEFAULT_REGION",
                        "AWS_CA_BUNDLE", "AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT",
                        "AWS_STS_REGIONAL_ENDPOINTS", "TF_CLI_CONFIG_FILE"})
PASSED_PREFIXES = ("AWS_ENDPOINT_URL",)
# spec.envFrom keys that would change how Terraform runs or whose identity it takes, rather than
# give it the tenant's own settings: Terraform's own variables (TF_VAR_* excepted: input
# variables), the loader's, and the AWS SDK's ways to reach the operator's credentials (its web
# identity token file, the container credentials endpoint, credential files and processes).
REFUSED_ENV = re.compile(r"^(TF_(?!VAR_).*|HOME|TMPDIR|PATH|LD_.*|AWS_EC2_METADATA_.*|AWS_CONTAINER_.*|"
                         r"AWS_WEB_IDENTITY_TOKEN_FILE|AWS_ROLE_ARN|AWS_ROLE_SESSION_NAME|AWS_SHARED_CREDENTIALS_FILE|"
                         r"AWS_CONFIG_FILE|KUBECONFIG|KUBERNETES_.*)$")
# A ref that is (an abbreviation of) a commit id names it forever: ls-remote cannot answer for it.
COMMIT_ID = re.compile(r"[0-9a-f]{7,64}")
Credentials = Callable[[str], dict[str, str]]
"""Role key -> ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` of that role,
assumed now (``aws.clients.AwsClients.role_environment``); blocking, raises on failure."""


class PolicyRefused(SourceError):
    """The operator policy does not allow this run; the message names the rule."""

    def __init__(self, message: str):
        super().__init__("PolicyRefused", message)


class ConfigSource(Protocol):
    """Where a workspace reads ConfigMaps and Secrets (``kube.Kube``); raises KubeError."""

    def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None: ...
    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None: ...


@dataclass
class Session:
    """One prepared workspace (``ports.TerraformSession``): commands share the run's deadline."""

    tf: Terraform
    run_dir: RunDir
    var_file: Path | None
    revision: str
    version: str
    deadline: float                  # time.monotonic() by which the whole run must end
    backend: Backend = field(default_factory=lambda: Backend("local"))   # as init recorded it
    secret_values: frozenset[str] = frozenset()   # values read from Secrets: never in a report or status
    # The commit the git ref names now (``remote_revision``), asked while Terraform plans the revision
    # already exported (``prepare`` with ``check_source_later``); see :meth:`source_moved`.
    source_check: asyncio.Future[str | None] | None = None

    @property
    def last_result(self) -> Result | None:
        """The last command's result, also of one cut short by cancellation (how it stopped)."""
        return self.tf.last

    def remaining(self) -> float:
        """Seconds left before the deadline (a command gets at least 1)."""
        return max(1.0, self.deadline - time.monotonic())

    def _vars(self) -> list[str]:
        return [f"-var-file={self.var_file}"] if self.var_file else []

    @property
    def plan_file(self) -> str:
        """Path of the saved plan (``plan -out``) in the operator's work directory."""
        return str(self.run_dir.plan)

    def has_saved_plan(self) -> bool:
        return self.run_dir.plan.exists()

    async def plan(self, lock_timeout: str, json_stream: bool = False) -> Result:
        """``plan -detailed-exitcode -out=<run dir>/drift.tfplan``: exit 0 no changes, 1 error, 2 changes.
        With ``json_stream`` stdout is Terraform's machine-readable UI (``-json``): drift, planned
        changes and diagnostics in one invocation."""
        return await self.tf.run("plan", "-input=false", "-no-color", "-detailed-exitcode", f"-out={self.run_dir.plan}",
                                 f"-lock-timeout={lock_timeout}", *(["-json"] if json_stream else []), *self._vars(),
                                 timeout=self.remaining())

    async def show_plan(self) -> dict[str, Any]:
        """``show -json`` of the saved plan, parsed. Raises TerraformError."""
        return await self.tf.show_json(str(self.run_dir.plan), timeout=self.remaining())

    def plan_inputs(self) -> dict[str, str]:
        """Digests of what applying the saved plan executes that its JSON leaves out (for
        ``terraform.plan.checksum``): ``configuration``, every file of the configuration snapshot
        the plan file carries (``tfconfig/``, modules included) and its provider lock file, which
        is what apply runs, whatever the work directory holds by then; ``backend``, the backend
        settings ``init`` recorded. Raises TerraformError when the plan file cannot be read."""
        digest = hashlib.sha256()
        try:
            with zipfile.ZipFile(self.run_dir.plan) as plan:
                for info in sorted(plan.infolist(), key=lambda i: i.filename):
                    if info.filename.startswith("tfconfig/") or info.filename == ".terraform.lock.hcl":
                        digest.update(info.filename.encode() + b"\0" + plan.read(info) + b"\0")
        except (OSError, zipfile.BadZipFile) as err:
            raise TerraformError(f"the saved plan {self.run_dir.plan} cannot be read: {err}",
                                 Result("show", None, "", str(err), 0.0)) from None
        backend = json.dumps({"type": self.backend.type, "settings": self.backend.settings}, sort_keys=True)
        return {"configuration": digest.hexdigest(), "backend": hashlib.sha256(backend.encode()).hexdigest()}

    async def apply_saved_plan(self, lock_timeout: str) -> Result:
        """``apply`` of exactly the saved plan (Terraform refuses a stale one)."""
        return await self.tf.run("apply", "-input=false", "-no-color", f"-lock-timeout={lock_timeout}",
                                 str(self.run_dir.plan), timeout=self.remaining())

    async def apply_refresh_only(self, lock_timeout: str) -> Result:
        """``apply -refresh-only -auto-approve``: the state takes the real infrastructure's values."""
        return await self.tf.run("apply", "-refresh-only", "-auto-approve", "-input=false", "-no-color",
                                 f"-lock-timeout={lock_timeout}", *self._vars(), timeout=self.remaining())

    async def import_(self, address: str, resource_id: str, lock_timeout: str) -> Result:
        """``import ADDRESS ID``."""
        return await self.tf.run("import", "-input=false", "-no-color", f"-lock-timeout={lock_timeout}",
                                 *self._vars(), address, resource_id, timeout=self.remaining())

    async def state_list(self) -> list[str]:
        """Addresses in the state. Raises TerraformError."""
        return await self.tf.state_list(timeout=self.remaining())

    async def force_unlock(self, lock_id: str) -> Result:
        """``force-unlock -force ID``."""
        return await self.tf.force_unlock(lock_id, timeout=self.remaining())

    async def source_moved(self) -> bool:
        """Whether the git ref names another commit than ``revision`` now, by the check ``prepare``
        left running (``check_source_later``): True also when git cannot tell (the check-first path
        fetches again then); False when no check was left running. Asked once. Raises SourceError
        (git is not installed)."""
        check, self.source_check = self.source_check, None
        if check is None:
            return False
        return await check != self.revision

    async def cancel_source_check(self) -> None:
        """Cancel the check :meth:`source_moved` was not asked for (a run cut short or failed) and
        wait for it to end (its git is killed); its outcome, an error included, is dropped."""
        check, self.source_check = self.source_check, None
        if check is None:
            return
        check.cancel()
        await asyncio.wait([check])
        if not check.cancelled():
            check.exception()  # retrieved: an error of a check no one asked about is not logged as lost


class Workspaces:
    """Opens DriftChecks' workspaces under ``work_dir/<namespace>/<name>/<purpose>`` (``check`` for the
    DriftCheck's own runs, ``unlock``/``import`` for an Incident's steps) (``ports.Workspaces``)."""

    def __init__(self, source: ConfigSource, binary: str, work_dir: Path, cache_dir: Path,
                 credentials: Credentials | None = None):
        self.source, self.binary, self.work_dir, self.cache_dir = source, binary, work_dir, cache_dir
        self.credentials = credentials

    async def open(self, namespace: str, name: str, spec: DriftCheckSpec, timeout: float, grant: TerraformGrant,
                   purpose: str = "", check_source_later: bool = False) -> Session:
        """Prepare the workspace under ``grant`` (the operator policy's answer for this run);
        ``check_source_later``: see :func:`prepare`. Raises SourceError (PolicyRefused among them)
        or TerraformError (see :func:`prepare`)."""
        run_dir = RunDir(self.work_dir / namespace / name / (purpose or "check"))
        role_env: dict[str, str] = {}
        if grant.role_key:
            if self.credentials is None:
                raise SourceError("CredentialsUnavailable", "no AWS credentials provider is configured")
            try:
                role_env = await asyncio.to_thread(self.credentials, grant.role_key)
            except Exception as err:  # noqa: BLE001 - any failure to assume the role ends the run, said why
                raise SourceError("CredentialsUnavailable", f"cannot assume role {grant.role_key!r} of the operator "
                                                            f"policy for Terraform: {err}") from None
        return await prepare(self.source, namespace, spec, run_dir, self.binary, self.cache_dir, timeout, grant,
                             role_env, check_source_later)

    def opens_by_reading(self, spec: DriftCheckSpec, grant: TerraformGrant, purpose: str = "") -> bool:
        """Always: opening fetches the source, writes variables and runs ``init`` (no plan, no state change)."""
        return True

    def discard(self, namespace: str, name: str) -> None:
        """Remove the DriftCheck's run directories."""
        shutil.rmtree(self.work_dir / namespace / name, ignore_errors=True)


def environment(operator_env: dict[str, str], run_dir: RunDir, role_env: dict[str, str],
                tenant_env: dict[str, str]) -> dict[str, str]:
    """Terraform's whole environment (see the module docstring): ``PASSED_ENV`` of the operator's,
    the role's credentials, the tenant's ``envFrom`` values, then what the operator decides (HOME,
    TMPDIR, TF_DATA_DIR; no metadata endpoint, so the SDK never falls back to the node's role).
    Raises SourceError naming an envFrom key of ``REFUSED_ENV``."""
    refused = sorted(k for k in tenant_env if REFUSED_ENV.match(k))
    if refused:
        raise SourceError("EnvironmentRefused", f"spec.envFrom sets {', '.join(refused)}: Terraform's own settings, "
                                                f"the loader's and the AWS SDK's credential sources are the "
                                                f"operator's to set, not a Secret's")
    env = {k: v for k, v in operator_env.items() if k in PASSED_ENV or k.startswith(PASSED_PREFIXES)}
    env.update(role_env)
    env.update(tenant_env)
    for directory in (run_dir.home, run_dir.tmp):
        directory.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(run_dir.home), TMPDIR=str(run_dir.tmp), TF_DATA_DIR=str(run_dir.data),
               AWS_EC2_METADATA_DISABLED="true")
    return env


async def prepare(kube: ConfigSource, namespace: str, spec: DriftCheckSpec, run_dir: RunDir, binary: str, cache: Path,
                  timeout: float, grant: TerraformGrant, role_env: dict[str, str] | None = None,
                  check_source_later: bool = False) -> Session:
    """Fetch the source, check its backend against ``grant``, write variables, ``init``, check
    the backend init recorded, select the workspace.

    ``check_source_later`` (a plan only: it changes nothing, so a plan of a revision the remote no
    longer names can be thrown away): a git branch or tag whose revision is exported already is not
    asked about (``git ls-remote``) before Terraform may run; the question is left running in
    ``Session.source_check``, and the caller must ask :meth:`Session.source_moved` before it uses
    what Terraform found (or :meth:`Session.cancel_source_check`).

    Raises SourceError (source, variables or secrets missing; PolicyRefused) or TerraformError
    (init failed).
    """
    deadline = time.monotonic() + timeout
    run_dir.root.mkdir(parents=True, exist_ok=True)
    src = spec.source
    unchecked = False   # the exported git revision, not asked about yet (check_source_later)
    if src.git is not None:
        revision, unchecked = await _git_source(src.git.url, src.git.ref, cache, run_dir, check_source_later)
        config_dir = run_dir.config_dir(src.git.path)
    else:
        assert src.config_map_ref is not None  # the CRD requires git or configMapRef
        files = await asyncio.to_thread(kube.config_map_data, namespace, src.config_map_ref.name)
        if files is None:
            raise SourceError("SourceUnavailable", f"ConfigMap {src.config_map_ref.name} (spec.source.configMapRef) "
                                                   f"does not exist in namespace {namespace}")
        digest = _digest(files)
        if _marker(run_dir, "source") != digest or not run_dir.source.is_dir():
            write_files(files, run_dir.source)
            _mark(run_dir, "source", digest)
        revision = f"configmap/{src.config_map_ref.name}"
        config_dir = run_dir.source
    try:
        backend = declared(await asyncio.to_thread(config_files, config_dir), spec.backend_config)
    except (OSError, BackendError) as err:
        raise SourceError("InvalidBackend", f"the configuration's backend cannot be read: {err}") from None
    if refused := grant.refusal(backend):
        raise PolicyRefused(f"{grant.action} refused: {refused}")
    values = dict(spec.vars)
    secret_values: set[str] = set()
    for ref in spec.vars_from:
        read = kube.secret_data if ref.kind == ValuesFromKind.SECRET else kube.config_map_data
        data = await asyncio.to_thread(read, namespace, ref.name)
        if data is None and not ref.optional:
            raise SourceError("VariablesUnavailable", f"{ref.kind.value} {ref.name} (spec.varsFrom) does not exist")
        values.update(data or {})
        if ref.kind == ValuesFromKind.SECRET:
            secret_values.update((data or {}).values())
    tenant_env: dict[str, str] = {}
    for env_ref in spec.env_from:
        secret = env_ref.secret_ref.name
        data = await asyncio.to_thread(kube.secret_data, namespace, secret)
        if data is None:
            raise SourceError("EnvironmentUnavailable", f"Secret {secret} (spec.envFrom) does not exist")
        tenant_env.update(data)
        secret_values.update(data.values())
    env = environment(dict(os.environ), run_dir, role_env or {}, tenant_env)
    empty_rc = cache / "empty.tfrc"
    empty_rc.parent.mkdir(parents=True, exist_ok=True)
    empty_rc.touch()
    plugins = cache / "plugins"
    plugins.mkdir(exist_ok=True)
    env.setdefault("TF_CLI_CONFIG_FILE", str(empty_rc))  # a missing file makes every command warn
    env["TF_PLUGIN_CACHE_DIR"] = str(plugins)
    var_file = write_var_file(run_dir.var_file, values)
    tf = Terraform(binary, config_dir, env, run_dir.root)
    version = await _version(tf, binary)
    session = Session(tf, run_dir, var_file, revision, version, deadline, backend, frozenset(secret_values))
    lock_file = config_dir / ".terraform.lock.hcl"

    def init_key() -> str:  # what init depends on; the lock file as init itself leaves it
        return _digest({"revision": revision if src.git is not None else _marker(run_dir, "source") or "",
                        "backend": json.dumps(spec.backend_config, sort_keys=True), "workspace": spec.workspace,
                        "version": version, "lock": lock_file.read_text() if lock_file.exists() else ""})

    # The marker lives beside TF_DATA_DIR (lost together): same configuration, backend, lock file
    # and CLI, and init would change nothing.
    if _marker(run_dir, "init") != init_key():
        init = await tf.init(spec.backend_config, timeout=session.remaining())
        if not init.ok:
            raise TerraformError("terraform init failed", init)
    session.backend = initialised(run_dir.data) or backend
    if refused := grant.refusal(session.backend):  # what init took, should the file reading have missed it
        _mark(run_dir, "init", "")
        raise PolicyRefused(f"{grant.action} refused after init: {refused}")
    if _marker(run_dir, "init") != init_key():
        if spec.workspace != "default":
            selected = await tf.select_workspace(spec.workspace, timeout=session.remaining())
            if not selected.ok:
                raise TerraformError(f"terraform workspace select {spec.workspace} failed", selected)
        _mark(run_dir, "init", init_key())
    if unchecked:  # started last: nothing above can fail and leave it running
        assert src.git is not None
        session.source_check = asyncio.ensure_future(remote_revision(src.git.url, src.git.ref))
    return session


# The CLI's version, by binary and its modification time: asked once per binary, not per run.
_VERSIONS: dict[tuple[str, float], str] = {}


async def _version(tf: Terraform, binary: str) -> str:
    resolved = shutil.which(binary) or binary
    try:
        key = (resolved, os.stat(resolved).st_mtime)
    except OSError:
        return await tf.version()
    if key not in _VERSIONS:
        _VERSIONS[key] = await tf.version()
    return _VERSIONS[key]


async def _git_source(url: str, ref: str, cache: Path, run_dir: RunDir, check_later: bool) -> tuple[str, bool]:
    """The configuration at ``ref`` in the run directory: fetched and exported only when the
    revision changed since the last run (``git ls-remote`` tells without a fetch). With
    ``check_later`` a branch or tag exported already is not asked about: (revision, True)."""
    exported = _marker(run_dir, "source")
    if exported and run_dir.source.is_dir():
        if ref == exported:
            return exported, False
        if check_later and not COMMIT_ID.fullmatch(ref):
            return exported, True
        if await remote_revision(url, ref) == exported:
            return exported, False
    commit = await fetch_git(url, ref, cache, run_dir.source)
    _mark(run_dir, "source", commit)
    return commit, False


def _digest(values: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def _marker(run_dir: RunDir, name: str) -> str | None:
    path = run_dir.root / f".{name}"
    return path.read_text() if path.exists() else None


def _mark(run_dir: RunDir, name: str, value: str) -> None:
    (run_dir.root / f".{name}").write_text(value)
