"""The image's install step, run here as the Dockerfile writes it, installs exactly uv.lock's runtime set.

Without a container engine (tests/e2e/test_node.py builds the image where a node can run and
compares what it holds with the lock too), the build stage's ``uv sync`` line is taken from the
Dockerfile verbatim and run with the image's paths moved under a temporary directory (``/opt/uv``
becomes the uv make installed, verified by the same hashes; ``/opt/opex`` a fresh environment),
offline: everything it installs must already be in uv's cache from ``make venv``, so nothing is
resolved or downloaded. Then what landed is compared with the lock.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from unit.test_image import install_line

import versions

ROOT = Path(__file__).resolve().parents[2]


def test_the_images_install_step_installs_exactly_the_locked_runtime_set(tmp_path):
    src, env_dir = tmp_path / "src", tmp_path / "opt-opex"
    src.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "operator", src / "operator", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    line = install_line().replace("/opt/uv/bin/uv", str(versions.uv_binary())).replace("/opt/opex", str(env_dir))
    python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_PROJECT_ENVIRONMENT": str(env_dir), "UV_OFFLINE": "1",
           "PATH": f"{python.parent}:{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=src, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    site = [str(p) for p in env_dir.glob("lib/python3.*/site-packages")]
    installed, expected = versions.installed_set(site), versions.expected_set()
    assert installed == expected, {"only installed": installed.keys() - expected.keys(),
                                   "only locked": expected.keys() - installed.keys(),
                                   "versions": {n: (installed[n], expected[n]) for n in installed.keys() & expected.keys()
                                                if installed[n] != expected[n]}}
    assert "moto" not in installed and "pytest" not in installed  # the test set stays out of the image
    version = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import opex_operator, importlib.metadata as m; "
                              "print(m.version('opex-operator'))"], capture_output=True, text=True, check=True)
    assert version.stdout.strip()
