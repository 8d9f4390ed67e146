"""A thin asyncio adapter over the Terraform (or OpenTofu) CLI.

Why not python-terraform: it blocks the event loop, has no timeout, raises on the plan exit code
2, passes the removed ``-force`` and writes a var file per call. Here every command runs with
``asyncio.create_subprocess_exec`` in its own process group, ``TF_IN_AUTOMATION=1``,
``-input=false -no-color``; a timeout sends SIGINT to the group (Terraform then releases its
state lock and saves state), and SIGKILL after a grace period (a ``local-exec`` child would
otherwise outlive it). Cancelling the awaiting task does the same.

Exit codes of ``plan -detailed-exitcode`` (Terraform docs, "Command: plan"): 0 no changes,
1 error, 2 changes present.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import metrics
from ..process import die_with_operator

GRACE_SECONDS = 15.0


@dataclass
class Result:
    """One CLI invocation: ``exit_code`` is None when it was killed after a timeout."""

    command: str
    exit_code: int | None
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def diagnostic(self, lines: int = 12) -> str:
        """The first lines of Terraform's error output (boxes stripped), for a condition message."""
        text = self.stderr.strip() or self.stdout.strip()
        kept = [line.strip("│╷╵ ").rstrip() for line in text.splitlines()]
        kept = [line for line in kept if line][:lines]
        return "\n".join(kept)[:2000]


class TerraformError(Exception):
    """A command failed: ``result`` holds its output."""

    def __init__(self, message: str, result: Result):
        super().__init__(message)
        self.result = result


class Terraform:
    """Run ``binary`` in ``workdir`` with ``env`` (the caller's environment is not inherited)."""

    def __init__(self, binary: str, workdir: Path, env: dict[str, str]):
        self.binary, self.workdir = binary, Path(workdir)
        self.env = {**env, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}

    async def run(self, *args: str, timeout: float) -> Result:
        """Run ``terraform ARGS``; never raises for a non-zero exit (see ``Result``)."""
        command = args[0]
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            self.binary, *args, cwd=self.workdir, env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
            preexec_fn=die_with_operator)
        communicate = asyncio.ensure_future(proc.communicate())
        timed_out = False
        try:
            try:
                out, err = await asyncio.wait_for(asyncio.shield(communicate), timeout)
            except TimeoutError:
                timed_out = True
                out, err = await self._stop(proc, communicate)
        except asyncio.CancelledError:
            await self._stop(proc, communicate)
            raise
        result = Result(command, None if timed_out else proc.returncode, out.decode(errors="replace"),
                        err.decode(errors="replace"), time.monotonic() - started, timed_out)
        if timed_out:
            outcome = "timeout"
        elif result.ok or (command == "plan" and result.exit_code == 2):
            outcome = "success"
        else:
            outcome = "error"
        metrics.TERRAFORM_RUNS.labels(command, outcome).inc()
        metrics.TERRAFORM_DURATION.labels(command).observe(result.duration)
        return result

    async def _stop(self, proc: asyncio.subprocess.Process, communicate: asyncio.Future) -> tuple[bytes, bytes]:
        """SIGINT the group, give Terraform the grace period to release its lock, then SIGKILL what is
        left of the group: a child that ignores SIGINT (a backgrounded command of a local-exec shell)
        would otherwise outlive a Terraform that exited gracefully."""
        output = (b"", b"")
        for sig, wait in ((signal.SIGINT, GRACE_SECONDS), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                output = await asyncio.wait_for(asyncio.shield(communicate), wait)
                break
            except TimeoutError:
                continue
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if not communicate.done():
            try:
                output = await asyncio.wait_for(communicate, 5.0)
            except TimeoutError:
                pass
        return output

    # -- commands ---------------------------------------------------------------------------------
    async def version(self) -> str:
        result = await self.run("version", "-json", timeout=60)
        try:
            return json.loads(result.stdout)["terraform_version"]
        except (ValueError, KeyError):
            raise TerraformError("terraform version -json gave no version", result) from None

    async def init(self, backend_config: dict[str, str], timeout: float) -> Result:
        args = ["init", "-input=false", "-no-color", "-reconfigure"]
        args += [f"-backend-config={k}={v}" for k, v in sorted(backend_config.items())]
        return await self.run(*args, timeout=timeout)

    async def select_workspace(self, name: str, timeout: float) -> Result:
        return await self.run("workspace", "select", "-or-create=true", "-no-color", name, timeout=timeout)

    async def show_json(self, plan_file: str, timeout: float) -> dict[str, Any]:
        """``terraform show -json PLAN`` parsed; TerraformError when it fails or is not JSON."""
        result = await self.run("show", "-json", "-no-color", plan_file, timeout=timeout)
        if not result.ok:
            raise TerraformError("terraform show -json failed", result)
        try:
            return json.loads(result.stdout)
        except ValueError:
            raise TerraformError("terraform show -json did not print JSON", result) from None

    async def state_list(self, timeout: float) -> list[str]:
        result = await self.run("state", "list", timeout=timeout)
        if not result.ok:
            raise TerraformError("terraform state list failed", result)
        return [line.strip() for line in result.stdout.splitlines() if line.strip()]

    async def force_unlock(self, lock_id: str, timeout: float) -> Result:
        """``force-unlock -force ID``: ok when Terraform printed "successfully unlocked"."""
        return await self.run("force-unlock", "-force", lock_id, timeout=timeout)
