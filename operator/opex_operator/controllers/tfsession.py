"""Get a DriftCheck's Terraform ready to run: source fetched, variables written, ``init`` done.

Shared by DriftCheck runs and the Incident's ``terraform-force-unlock`` step, so both see the
same configuration, backend and credentials.
"""
from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..api.driftcheck import DriftCheckSpec, ValuesFromKind
from ..kube import Kube
from ..terraform.runner import Terraform, TerraformError
from ..terraform.workspace import RunDir, SourceError, fetch_git, write_files, write_var_file

# The operator's own settings never reach Terraform; AWS credentials and endpoints do.
HIDDEN_ENV_PREFIXES = ("OPEX_", "KUBECONFIG", "KOPF_")


@dataclass
class Session:
    tf: Terraform
    run_dir: RunDir
    var_file: Path | None
    revision: str
    version: str
    deadline: float                  # time.monotonic() by which the whole run must end

    @property
    def var_path(self) -> str | None:
        """The var file's path for -var-file, or None when there are no variables."""
        return str(self.var_file) if self.var_file else None

    def remaining(self) -> float:
        """Seconds left before the deadline (a command gets at least 1)."""
        return max(1.0, self.deadline - time.monotonic())


async def prepare(kube: Kube, namespace: str, spec: DriftCheckSpec, run_dir: RunDir, binary: str, cache: Path,
                  timeout: float) -> Session:
    """Fetch the source, write variables, ``init`` (and select the workspace).

    Raises SourceError (source, variables or secrets missing) or TerraformError (init failed).
    """
    deadline = time.monotonic() + timeout
    run_dir.root.mkdir(parents=True, exist_ok=True)
    src = spec.source
    if src.git is not None:
        revision = await fetch_git(src.git.url, src.git.ref, cache, run_dir.source)
        config_dir = run_dir.config_dir(src.git.path)
    else:
        files = await asyncio.to_thread(kube.config_map_data, namespace, src.config_map_ref.name)
        if files is None:
            raise SourceError("SourceUnavailable", f"ConfigMap {src.config_map_ref.name} (spec.source.configMapRef) "
                                                   f"does not exist in namespace {namespace}")
        write_files(files, run_dir.source)
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
    version = await tf.version()
    session = Session(tf, run_dir, var_file, revision, version, deadline)
    init = await tf.init(spec.backend_config, timeout=session.remaining())
    if not init.ok:
        raise TerraformError("terraform init failed", init)
    if spec.workspace != "default":
        selected = await tf.select_workspace(spec.workspace, timeout=session.remaining())
        if not selected.ok:
            raise TerraformError(f"terraform workspace select {spec.workspace} failed", selected)
    return session
