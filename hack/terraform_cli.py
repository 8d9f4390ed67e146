"""Find the pinned Terraform CLI, or build OpenTofu from the Go module proxy when it is absent.

Order: ``$OPEX_TERRAFORM`` when set; ``terraform`` on PATH at :data:`TERRAFORM_VERSION`; a
cached OpenTofu build; else OpenTofu :data:`OPENTOFU_VERSION` is built from ``hack/opentofu/``
(a module requiring ``github.com/opentofu/opentofu`` with the ``hcl`` replace its own go.mod
carries; go.sum pins every module, and the Dockerfile builds the image's CLI from the same
files) into ``~/.cache/opex/bin/opentofu-<version>/tofu``. Both CLIs serve behind the same
adapter (``opex_operator.terraform``).

``python hack/terraform_cli.py`` prints the path of the binary to use.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import kube_build

TERRAFORM_VERSION = "1.11.4"
OPENTOFU_MODULE = Path(__file__).resolve().parent / "opentofu"
OPENTOFU_VERSION = re.search(r"github\.com/opentofu/opentofu (v\S+)", (OPENTOFU_MODULE / "go.mod").read_text()).group(1)


def cli_version(binary: str) -> str | None:
    """The version a terraform/tofu binary reports (``terraform version -json``), or None."""
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"}
    try:
        out = subprocess.run([binary, "version", "-json"], capture_output=True, text=True, env=env, timeout=30)
        return json.loads(out.stdout)["terraform_version"]
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return None


def _build_opentofu(target: Path) -> None:
    version = OPENTOFU_VERSION.lstrip("v")
    with tempfile.TemporaryDirectory(prefix="opex-tofu-build-") as tmp:
        kube_build._go(["build", "-trimpath", "-ldflags", f"-s -w -X github.com/opentofu/opentofu/version.dev=no "
                        f"-X github.com/opentofu/opentofu/version.Version={version}",
                        "-o", str(Path(tmp) / "tofu"), "github.com/opentofu/opentofu/cmd/tofu"], OPENTOFU_MODULE,
                       env={"GOFLAGS": "-mod=readonly"})
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(Path(tmp) / "tofu"), target)


def _cached_opentofu() -> Path:
    return kube_build.cache_root() / "bin" / f"opentofu-{OPENTOFU_VERSION}" / "tofu"


def find_terraform() -> str | None:
    """Path of the CLI :func:`ensure_terraform` would use, or None where it would have to build one."""
    if os.environ.get("OPEX_TERRAFORM"):
        return os.environ["OPEX_TERRAFORM"]
    on_path = shutil.which("terraform")
    if on_path and cli_version(on_path) == TERRAFORM_VERSION:
        return on_path
    tofu = _cached_opentofu()
    return str(tofu) if tofu.is_file() else None


def ensure_terraform(log=print) -> str:
    """Path of the Terraform-compatible CLI to use (see the module docstring for the order)."""
    found = find_terraform()
    if found:
        return found
    tofu = _cached_opentofu()
    if not tofu.is_file():
        on_path = shutil.which("terraform")
        found = cli_version(on_path) if on_path else None
        log(f"terraform {TERRAFORM_VERSION} not found (PATH has {found or 'none'}); "
            f"building OpenTofu {OPENTOFU_VERSION} from the Go module proxy (first run only)")
        _build_opentofu(tofu)
    return str(tofu)


if __name__ == "__main__":
    print(ensure_terraform(log=lambda m: print(m, file=sys.stderr)))
