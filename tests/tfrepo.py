"""Terraform configurations for tests: a local bare git repository and an S3 backend on moto.

Only what needs no provider download: ``terraform_data`` and a ``local-exec`` provisioner.
"""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import boto3

MAIN_TF = """\
terraform {
  backend "s3" {}
}

variable "size" {
  type    = string
  default = "%(size)s"
}

variable "db_password" {
  type      = string
  default   = "not-the-real-one"
  sensitive = true
}

resource "terraform_data" "network" {
  input = var.size
}

resource "terraform_data" "database" {
  input = sha256(var.db_password)
}

output "size" {
  value = terraform_data.network.output
}
"""

# A configuration whose apply holds the state lock for a while (the "other process" of the tests).
SLOW_TF = """\
terraform {
  backend "s3" {}
}

resource "terraform_data" "slow" {
  triggers_replace = "%(token)s"
  provisioner "local-exec" {
    command = "sleep %(seconds)s"
  }
}
"""


def backend_config(bucket: str, key: str = "network/terraform.tfstate") -> dict[str, str]:
    """-backend-config for the S3 backend on moto's server (the endpoint comes from AWS_ENDPOINT_URL)."""
    return {"bucket": bucket, "key": key, "region": "us-east-1", "use_path_style": "true", "use_lockfile": "true",
            "skip_credentials_validation": "true", "skip_requesting_account_id": "true",
            "skip_metadata_api_check": "true"}


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "opex tests", "GIT_AUTHOR_EMAIL": "tests@opex.dev",
           "GIT_COMMITTER_NAME": "opex tests", "GIT_COMMITTER_EMAIL": "tests@opex.dev"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


class Repo:
    """A bare repository (the DriftCheck's source) and a clone the test commits to."""

    def __init__(self, root: Path):
        self.bare, self.clone = root / "infra.git", root / "work"
        git("init", "--bare", "--initial-branch=main", str(self.bare), cwd=root)
        git("clone", "--quiet", str(self.bare), str(self.clone), cwd=root)
        (self.clone / "network").mkdir()

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def commit(self, files: dict[str, str], message: str) -> str:
        for name, text in files.items():
            (self.clone / name).write_text(text)
        git("add", "-A", cwd=self.clone)
        git("commit", "--quiet", "-m", message, cwd=self.clone)
        git("push", "--quiet", "origin", "HEAD:main", cwd=self.clone)
        return git("rev-parse", "HEAD", cwd=self.clone)


def new_bucket() -> str:
    name = f"tfstate-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def terraform(binary: str, workdir: Path, *args: str, env: dict[str, str] | None = None,
              check: bool = True) -> subprocess.CompletedProcess:
    """Run terraform as a person would, in ``workdir``, with this process's AWS environment."""
    full = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1",
            **(env or {})}
    proc = subprocess.run([binary, *args], cwd=workdir, env=full, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"terraform {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc


def init_args(config: dict[str, str]) -> list[str]:
    return ["init", "-input=false", "-no-color", *[f"-backend-config={k}={v}" for k, v in config.items()]]
