"""Every install comes from uv.lock: the environment the tests run in is exactly the locked test
set, the lock agrees with pyproject.toml, and no install path of make or CI resolves on its own.

(The image's install step is run and compared with the lock in tests/integration/test_image_install.py.)
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import versions

ROOT = Path(__file__).resolve().parents[2]


def test_the_environment_running_the_tests_is_exactly_the_locked_test_set():
    expected, installed = versions.expected_set("test"), versions.installed_set()
    missing = {n: v for n, v in expected.items() if installed.get(n) != v}
    extra = {n: v for n, v in installed.items() if n not in expected}
    assert not missing and not extra, (f"differ from uv.lock: {missing} (locked) vs "
                                       f"{ {n: installed.get(n) for n in missing} } (installed); not locked: {extra}")
    assert len(expected) > 90  # the transitive set, not only the direct dependencies


def test_the_lock_check_refuses_a_pyproject_the_lock_does_not_satisfy(tmp_path):
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "operator", tmp_path / "operator", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    check = [str(versions.uv_binary()), "lock", "--check", "--offline", "--quiet"]
    assert subprocess.run(check, cwd=tmp_path, capture_output=True).returncode == 0
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"croniter>=7,<8"', '"croniter>=7,<8", "tabulate>=0.9"'))
    refused = subprocess.run(check, cwd=tmp_path, capture_output=True, text=True)
    assert refused.returncode != 0


def test_make_and_ci_install_only_from_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^\t\$\(UV\) sync .*--frozen", makefile, re.M), "the venv is synced from the lock, unresolved"
    assert "--require-hashes" in makefile and "hack/uv-requirements.txt" in makefile
    installs = [line for line in makefile.splitlines() if "pip install" in line]
    assert all("--require-hashes" in line for line in installs), installs
    assert re.search(r"^unit: lock-check", makefile, re.M) and re.search(r"^test: lock-check", makefile, re.M)
    assert "pip install" not in (ROOT / ".ci" / "run").read_text()
