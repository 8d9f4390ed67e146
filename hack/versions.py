"""What a run is made of, printed at the start of ``make test`` and ``make demo``.

Two lines a bug report can quote: the Python lock (``uv.lock``'s digest, its package count and
the versions that matter most, as installed) and the Terraform-compatible CLI the run uses
(which one, where, which version). The Go-built tools need no line: each is pinned by its
``go.sum`` and cached under a versioned path.

``python hack/versions.py`` prints them.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import subprocess
import tomllib
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "uv.lock"
# The packages whose internals the project reaches into or whose behaviour it depends on most.
NOTED = ("moto", "kopf", "kubernetes", "boto3", "pydantic")


def locked_packages(lock: Path = LOCK) -> dict[str, list[str]]:
    """``{name: [version, ...]}`` of every package in ``uv.lock`` (a name has several versions
    only where a marker splits it, e.g. by Python version); the project itself is left out."""
    doc = tomllib.loads(lock.read_text())
    out: dict[str, list[str]] = {}
    for pkg in doc.get("package", []):
        if "version" in pkg and pkg.get("source", {}).get("registry"):
            out.setdefault(pkg["name"], []).append(pkg["version"])
    return out


def uv_binary() -> Path:
    """The uv that make installs (``$OPEX_CACHE/uv/<version>/bin/uv``, version from
    hack/uv-requirements.txt); raises FileNotFoundError before ``make venv`` has run."""
    version = re.search(r"^uv==(\S+)", (ROOT / "hack" / "uv-requirements.txt").read_text(), re.M).group(1)
    uv = Path(os.environ.get("OPEX_CACHE", Path.home() / ".cache" / "opex")) / "uv" / version / "bin" / "uv"
    if not uv.is_file():
        raise FileNotFoundError(f"{uv} (make venv installs it)")
    return uv


def expected_set(*extras: str) -> dict[str, str]:
    """``{canonical name: version}`` that ``uv sync --frozen`` installs for this Python from the
    lock: the runtime set, plus ``extras`` (e.g. ``"test"``), plus the build group; the project
    itself is left out. Read with ``uv export`` (the lock's own reader), markers evaluated here."""
    args = [str(uv_binary()), "export", "--frozen", "--no-hashes", "--no-emit-project", "--no-header",
            "--no-annotate", *[f"--extra={e}" for e in extras]]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    pins: dict[str, str] = {}
    for line in out.splitlines():
        requirement, _, marker = line.partition(";")
        if "==" not in requirement or (marker.strip() and not Marker(marker.strip()).evaluate()):
            continue
        name, version = requirement.split("==")
        pins[canonicalize_name(re.sub(r"\[.*\]", "", name))] = version.strip()
    return pins


def installed_set(path: list[str] | None = None) -> dict[str, str]:
    """``{canonical name: version}`` of the distributions on ``path`` (default: this interpreter's),
    what ``pip freeze`` would list; the project itself is left out."""
    dists = importlib.metadata.distributions(**({"path": path} if path is not None else {}))
    found = {canonicalize_name(d.metadata["Name"]): d.version for d in dists}
    found.pop("opex-operator", None)
    return found


def python_lock_line() -> str:
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]
    installed = []
    for name in NOTED:
        try:
            installed.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return (f"Python packages: uv.lock sha256:{digest} ({len(locked_packages())} packages); "
            f"installed {', '.join(installed)}")


def terraform_line(binary: str) -> str:
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"}
    try:
        first = subprocess.run([binary, "version"], capture_output=True, text=True, env=env,
                               timeout=30).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired) as err:
        return f"Terraform CLI: {binary} (no version: {err})"
    return f"Terraform CLI: {first.strip()} at {binary}"


def lines() -> list[str]:
    """The two lines, the CLI found as the stack finds it (nothing is built here: a run that needs
    a CLI not yet built says so, and ``make tools`` builds it)."""
    import terraform_cli

    terraform = terraform_cli.find_terraform()
    return [python_lock_line(),
            terraform_line(terraform) if terraform else "Terraform CLI: none yet (make tools builds OpenTofu)"]


if __name__ == "__main__":
    print("\n".join(lines()))
