"""A DriftCheck's Terraform workspace, ready to run: source fetched, variables written, ``init`` done.

The ``ports.Workspaces`` adapter. Shared by DriftCheck runs and the Incident's Terraform steps,
so both see the same configuration, backend and credentials. Every command the operator runs
is a method here: controllers never build Terraform argument lists.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from typing import Any, Protocol

from ..api.driftcheck import DriftCheckSpec, ValuesFromKind
from .runner import Result, Terraform, TerraformError
from .workspace import RunDir, SourceError, fetch_git, remote_revision, write_files, write_var_file

# The operator's own settings never reach Terraform; AWS credentials and endpoints do.
HIDDEN_ENV_PREFIXES = ("OPEX_", "KUBECONFIG", "KOPF_")


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


class Workspaces:
    """Opens DriftChecks' workspaces under ``work_dir/<namespace>/<name>/<purpose>`` (``check`` for the
    DriftCheck's own runs, ``unlock``/``import`` for an Incident's steps) (``ports.Workspaces``)."""

    def __init__(self, source: ConfigSource, binary: str, work_dir: Path, cache_dir: Path):
        self.source, self.binary, self.work_dir, self.cache_dir = source, binary, work_dir, cache_dir

    async def open(self, namespace: str, name: str, spec: DriftCheckSpec, timeout: float,
                   purpose: str = "") -> Session:
        """Prepare the workspace; raises SourceError or TerraformError (see :func:`prepare`)."""
        run_dir = RunDir(self.work_dir / namespace / name / (purpose or "check"))
        return await prepare(self.source, namespace, spec, run_dir, self.binary, self.cache_dir, timeout)

    def discard(self, namespace: str, name: str) -> None:
        """Remove the DriftCheck's run directories."""
        shutil.rmtree(self.work_dir / namespace / name, ignore_errors=True)


async def prepare(kube: ConfigSource, namespace: str, spec: DriftCheckSpec, run_dir: RunDir, binary: str, cache: Path,
                  timeout: float) -> Session:
    """Fetch the source, write variables, ``init`` (and select the workspace).

    Raises SourceError (source, variables or secrets missing) or TerraformError (init failed).
    """
    deadline = time.monotonic() + timeout
    run_dir.root.mkdir(parents=True, exist_ok=True)
    src = spec.source
    if src.git is not None:
        revision = await _git_source(src.git.url, src.git.ref, cache, run_dir)
        config_dir = run_dir.config_dir(src.git.path)
    else:
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
    values = dict(spec.vars)
    for ref in spec.vars_from:
        read = kube.secret_data if ref.kind == ValuesFromKind.SECRET else kube.config_map_data
        data = await asyncio.to_thread(read, namespace, ref.name)
        if data is None and not ref.optional:
            raise SourceError("VariablesUnavailable", f"{ref.kind.value} {ref.name} (spec.varsFrom) does not exist")
        values.update(data or {})
    env = {k: v for k, v in os.environ.items() if not k.startswith(HIDDEN_ENV_PREFIXES)}
    for ref in spec.env_from:
        data = await asyncio.to_thread(kube.secret_data, namespace, ref.secret_ref.name)
        if data is None:
            raise SourceError("EnvironmentUnavailable", f"Secret {ref.secret_ref.name} (spec.envFrom) does not exist")
        env.update(data)
    empty_rc = cache / "empty.tfrc"
    empty_rc.parent.mkdir(parents=True, exist_ok=True)
    empty_rc.touch()
    plugins = cache / "plugins"
    plugins.mkdir(exist_ok=True)
    env.setdefault("TF_CLI_CONFIG_FILE", str(empty_rc))  # a missing file makes every command warn
    env.update(TF_DATA_DIR=str(run_dir.data), TF_PLUGIN_CACHE_DIR=str(plugins))
    var_file = write_var_file(run_dir.var_file, values)
    tf = Terraform(binary, config_dir, env)
    version = await _version(tf, binary)
    session = Session(tf, run_dir, var_file, revision, version, deadline)
    lock_file = config_dir / ".terraform.lock.hcl"

    def init_key() -> str:  # what init depends on; the lock file as init itself leaves it
        return _digest({"revision": revision if src.git is not None else _marker(run_dir, "source") or "",
                        "backend": json.dumps(spec.backend_config, sort_keys=True), "workspace": spec.workspace,
                        "version": version, "lock": lock_file.read_text() if lock_file.exists() else ""})

    if _marker(run_dir, "init") == init_key():  # the marker lives beside TF_DATA_DIR: lost together
        return session  # same configuration, backend, lock file and CLI: init would change nothing
    init = await tf.init(spec.backend_config, timeout=session.remaining())
    if not init.ok:
        raise TerraformError("terraform init failed", init)
    if spec.workspace != "default":
        selected = await tf.select_workspace(spec.workspace, timeout=session.remaining())
        if not selected.ok:
            raise TerraformError(f"terraform workspace select {spec.workspace} failed", selected)
    _mark(run_dir, "init", init_key())
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


async def _git_source(url: str, ref: str, cache: Path, run_dir: RunDir) -> str:
    """The configuration at ``ref`` in the run directory: fetched and exported only when the
    revision changed since the last run (``git ls-remote`` tells without a fetch)."""
    exported = _marker(run_dir, "source")
    if exported and run_dir.source.is_dir() and (ref == exported or await remote_revision(url, ref) == exported):
        return exported
    commit = await fetch_git(url, ref, cache, run_dir.source)
    _mark(run_dir, "source", commit)
    return commit


def _digest(values: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def _marker(run_dir: RunDir, name: str) -> str | None:
    path = run_dir.root / f".{name}"
    return path.read_text() if path.exists() else None


def _mark(run_dir: RunDir, name: str, value: str) -> None:
    (run_dir.root / f".{name}").write_text(value)
