"""The container image's recipe, checked without a container engine, in seconds: hadolint, and the
install steps against pyproject.toml and the chart's defaults. tests/e2e/test_node.py builds the
image and runs it where a node can run."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VALUES = yaml.safe_load((ROOT / "charts" / "opex-operator" / "values.yaml").read_text())


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def args() -> dict[str, str]:
    return dict(a.split("=", 1) for i, a in instructions() if i == "ARG" and "=" in a)


def env() -> dict[str, str]:
    (last,) = [a for i, a in instructions() if i == "ENV"][-1:]
    return dict(kv.split("=", 1) for kv in shlex.split(last))


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    proc = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_image_runs_a_python_that_pyproject_allows():
    image = args()["PYTHON_IMAGE"]
    version = re.match(r"python:(\d+\.\d+)-slim", image).group(1)
    assert version in SpecifierSet(PYPROJECT["project"]["requires-python"]), image
    stages = [a for i, a in instructions() if i == "FROM"]
    assert stages.count("${PYTHON_IMAGE} AS build") == 1 and stages[-1] == "${PYTHON_IMAGE}"


def install_line() -> str:
    """The build stage's one `uv sync` RUN (tests/integration/test_image_install.py runs it)."""
    (line,) = [a for i, a in instructions() if i == "RUN" and "uv sync" in a]
    return line


def test_the_image_installs_the_locked_runtime_set_and_never_resolves():
    line = install_line()
    sync = shlex.split(line.split("&&")[0])
    assert sync[:2] == ["/opt/uv/bin/uv", "sync"] and "--frozen" in sync, "the image installs from uv.lock, unresolved"
    assert not {"--extra", "--all-extras", "--group", "--all-groups"} & set(sync), "no test tools in the image"
    assert not [a for i, a in instructions() if i == "RUN" and "pip install" in a and "uv-requirements" not in a]
    assert set(PYPROJECT["project"]["optional-dependencies"]) == {"test"}
    # uv itself: the same file, the same hash check, as make and CI.
    (uv_install,) = [a for i, a in instructions() if i == "RUN" and "uv-requirements" in a]
    assert "--require-hashes" in uv_install and "-r hack/uv-requirements.txt" in uv_install
    assert PYPROJECT["tool"]["uv"]["required-version"] == "==" + re.search(
        r"^uv==(\S+)", (ROOT / "hack" / "uv-requirements.txt").read_text(), re.M).group(1)
    # What uv needs to build the package: all copied, none excluded by .dockerignore.
    copied = {src.rstrip("/") for i, a in instructions() if i == "COPY" and "--from" not in a
              for src in a.split()[:-1]}
    needed = {"pyproject.toml", "uv.lock", "hack/uv-requirements.txt", PYPROJECT["project"]["readme"],
              *PYPROJECT["tool"]["setuptools"]["packages"]["find"]["where"]}
    assert needed <= copied
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    assert copied <= allowed, f".dockerignore leaves out {copied - allowed}"
    assert [a for i, a in instructions() if i == "ENTRYPOINT"] == ['["python", "-m", "opex_operator"]']
    assert (ROOT / "operator" / "opex_operator" / "__main__.py").is_file()


def test_the_image_and_the_chart_agree_on_user_paths_and_the_terraform_cli():
    e = env()
    assert [a for i, a in instructions() if i == "USER"] == ["65532:65532"]
    assert e["OPEX_TERRAFORM"] == VALUES["operator"]["terraform"] == "/usr/local/bin/tofu"
    assert any(i == "COPY" and a.endswith(" /usr/local/bin/tofu") for i, a in instructions())
    assert e["HOME"] == "/var/lib/opex" and e["OPEX_WORK_DIR"].startswith("/var/lib/opex/")
    assert e["OPEX_CACHE_DIR"].startswith("/var/lib/opex/") and e["TMPDIR"] == "/tmp"
    labels = " ".join(a for i, a in instructions() if i == "LABEL")
    for key in ("title", "description", "version", "licenses", "source", "revision"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_the_image_builds_opentofu_from_the_module_the_local_stack_builds():
    assert [a for i, a in instructions() if i == "COPY" and a.startswith("hack/opentofu/")] == ["hack/opentofu/ ./"]
    gomod = (ROOT / "hack" / "opentofu" / "go.mod").read_text()
    assert re.search(r"^require github\.com/opentofu/opentofu v\d+\.\d+\.\d+$", gomod, re.M)
    assert (ROOT / "hack" / "opentofu" / "go.sum").stat().st_size > 0  # every module's checksum, verified by go
    assert any(i == "RUN" and "-mod=readonly" in a and "cmd/tofu" in a for i, a in instructions())
