"""Prepare a run directory for one DriftCheck: the configuration, its variables and environment.

Sources: a git repository (the ``git`` CLI; a bare mirror per URL is cached and fetched on each
run, and the ref's tree is exported, so a run never sees a half-updated checkout), or a
ConfigMap whose keys are the files of a small configuration. Variable values (from ``vars`` and
``varsFrom`` Secrets/ConfigMaps) go to a 0600 JSON var file, never to the command line, a
log or the status.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..ports.terraform import SourceError  # noqa: F401 - the port's type
from ..process import tied

GIT_TIMEOUT = 120.0


async def _git(*args: str, cwd: Path | None = None, timeout: float = GIT_TIMEOUT) -> tuple[int, bytes, str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    try:
        argv, preexec = tied("git", *args, path=env.get("PATH"))
        proc = await asyncio.create_subprocess_exec(*argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                    start_new_session=True, preexec_fn=preexec)
    except FileNotFoundError as missing:
        if missing.filename != "git":  # a working directory that is gone is not a missing git
            raise
        raise SourceError("SourceUnavailable", "git is not installed in the operator's image (not on its PATH): "
                                               "a spec.source.git cannot be fetched") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError):
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None  # communicate() waited for the process
    return proc.returncode, out, err.decode(errors="replace").strip()


async def fetch_git(url: str, ref: str, cache: Path, into: Path) -> str:
    """Export ``ref`` of ``url`` into ``into``; returns the commit id. Raises SourceError (also when
    git is not installed)."""
    mirror = cache / "git" / hashlib.sha256(url.encode()).hexdigest()[:20]
    try:
        if (mirror / "HEAD").exists():
            code, _, err = await _git("remote", "update", "--prune", cwd=mirror)
        else:
            mirror.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(mirror, ignore_errors=True)
            code, _, err = await _git("clone", "--mirror", "--quiet", url, str(mirror))
    except TimeoutError:
        raise SourceError("SourceUnavailable", f"git fetch of {url} timed out after {GIT_TIMEOUT:.0f}s") from None
    if code != 0:
        raise SourceError("SourceUnavailable", f"git could not fetch {url}: {err.splitlines()[-1] if err else code}")
    code, out, _ = await _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=mirror)
    if code != 0:
        raise SourceError("RefNotFound", f"ref {ref!r} does not exist in {url} (a branch, tag or commit)")
    commit = out.decode().strip()
    code, tar, err = await _git("archive", "--format=tar", commit, cwd=mirror)
    if code != 0:
        raise SourceError("SourceUnavailable", f"git archive of {commit[:12]} failed: {err}")
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    return commit


async def remote_revision(url: str, ref: str) -> str | None:
    """The commit ``ref`` (a branch or tag) names in ``url`` now, by ``git ls-remote`` (no fetch);
    None when it names none there (e.g. ``ref`` is a commit id) or git cannot tell. Raises
    SourceError when git is not installed."""
    try:
        code, out, _ = await _git("ls-remote", "--exit-code", url, ref, f"refs/tags/{ref}^{{}}", timeout=30)
    except TimeoutError:
        return None
    if code != 0:
        return None
    commits = {line.split()[1]: line.split()[0] for line in out.decode().splitlines() if len(line.split()) == 2}
    # A peeled tag (^{}) names the commit; else the branch or lightweight tag itself.
    return commits.get(f"refs/tags/{ref}^{{}}") or commits.get(f"refs/heads/{ref}") or commits.get(f"refs/tags/{ref}")


def write_files(files: dict[str, str], into: Path) -> None:
    """Write a ConfigMap's keys as files (keys are file names; ConfigMap keys cannot hold a '/')."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    for name, content in files.items():
        (into / name).write_text(content)


def write_var_file(path: Path, values: dict[str, str]) -> Path | None:
    """A 0600 JSON var file with ``values`` (None when there are none)."""
    if not values:
        path.unlink(missing_ok=True)
        return None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f)
    return path


@dataclass
class RunDir:
    """Where one DriftCheck's runs happen: ``<work>/<namespace>/<name>/<purpose>/``, holding
    ``src/`` (the configuration), ``data/`` (TF_DATA_DIR), ``home/`` and ``tmp/`` (Terraform's HOME
    and TMPDIR), ``logs/<command>.stdout|.stderr`` (the last output of each command),
    ``process.json`` (the process group of the command running; ``terraform.runner``), the saved
    plan and the var file: everything a run needs or leaves, so a Job can run it from there too."""

    root: Path

    @property
    def source(self) -> Path:
        return self.root / "src"

    @property
    def data(self) -> Path:  # TF_DATA_DIR: kept between runs, so init reuses providers and modules
        return self.root / "data"

    @property
    def plan(self) -> Path:
        return self.root / "drift.tfplan"

    @property
    def var_file(self) -> Path:
        return self.root / "vars.tfvars.json"

    @property
    def home(self) -> Path:  # Terraform's HOME: nothing of the operator's home is in reach
        return self.root / "home"

    @property
    def tmp(self) -> Path:   # Terraform's TMPDIR
        return self.root / "tmp"

    def config_dir(self, path: str) -> Path:
        target = (self.source / path).resolve()
        if not str(target).startswith(str(self.source.resolve())):
            raise SourceError("InvalidPath", f"source path {path!r} leaves the repository")
        if not target.is_dir():
            raise SourceError("InvalidPath", f"source path {path!r} is not a directory of the configuration")
        return target
