"""A thin asyncio adapter over the Terraform (or OpenTofu) CLI.

Why not python-terraform: it blocks the event loop, has no timeout, raises on the plan exit code
2, passes the removed ``-force`` and writes a var file per call. Here every command runs with
``asyncio.create_subprocess_exec`` in its own process group, ``TF_IN_AUTOMATION=1``,
``-input=false -no-color``; a timeout sends SIGINT to the group (Terraform then releases its
state lock and saves state), and SIGKILL after a grace period (a ``local-exec`` child would
otherwise outlive it). Cancelling the awaiting task does the same.

Terraform writes its output to files in the run directory (``logs/<command>.stdout`` and
``.stderr``), never to pipes: a Terraform whose operator died (SIGKILL) gets SIGINT from the
kernel (``process.tied``) and must be able to print while it releases its lock; a
pipe with no reader would kill it with SIGPIPE and leave the lock behind. While a command runs,
``process.json`` in the run directory records its process group (id, leader start time, command,
operator); :func:`reap` stops whatever such a record names at the next start, so a
``local-exec`` child never outlives the operator by more than a restart. After every command,
what is left of its group (a child a provisioner put in the background) is killed. A Job runner
reuses the same layout: the output files and the record are in the run directory, not in memory.

Exit codes of ``plan -detailed-exitcode`` (Terraform docs, "Command: plan"): 0 no changes,
1 error, 2 changes present.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import metrics
from ..ports.terraform import Result, TerraformError  # noqa: F401 - the port's types
from ..process import IDENTITY, group_members, start_ticks, tied

log = logging.getLogger(__name__)

# Seconds Terraform gets after SIGINT to stop cleanly (save state, release its lock) before its
# process group is killed; the shutdown grace and the pod's terminationGracePeriodSeconds leave
# room for it (handlers.runtime, the chart).
GRACE_SECONDS = 15.0
RECORD = "process.json"


class Terraform:
    """Run ``binary`` in ``workdir`` with ``env`` (the caller's environment is not inherited),
    its output and process-group record in ``run_dir`` (default: ``workdir``)."""

    def __init__(self, binary: str, workdir: Path, env: dict[str, str], run_dir: Path | None = None):
        self.binary, self.workdir = binary, Path(workdir)
        self.run_dir = Path(run_dir or workdir)
        self.env = {**env, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
        self.last: Result | None = None   # the last command's result, also when it was cancelled

    async def run(self, *args: str, timeout: float) -> Result:
        """Run ``terraform ARGS``; never raises for a non-zero exit (see ``Result``). Cancelled, it
        stops Terraform (SIGINT, then SIGKILL after GRACE_SECONDS) before re-raising; :attr:`last`
        then says how it stopped (``Result.stopped``, ``Result.lock_released``)."""
        command = args[0]
        started = time.monotonic()
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out_path, err_path = logs / f"{command}.stdout", logs / f"{command}.stderr"
        argv, preexec = tied(self.binary, *args, path=self.env.get("PATH"))
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=self.workdir, env=self.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=err, start_new_session=True, preexec_fn=preexec)
        record = self.run_dir / RECORD
        _write_record(record, proc.pid, command)
        exited = asyncio.ensure_future(proc.wait())
        timed_out, stopped = False, None
        try:
            try:
                await asyncio.wait_for(asyncio.shield(exited), timeout)
            except TimeoutError:
                timed_out = True
                stopped = await _stop(proc.pid, exited)
        except asyncio.CancelledError:
            stopped = await _stop(proc.pid, exited)
            self.last = self._result(command, None, out_path, err_path, started, False, stopped)
            raise
        finally:
            _kill_group(proc.pid)   # what a provisioner left in the background
            record.unlink(missing_ok=True)
        result = self.last = self._result(command, None if timed_out else proc.returncode, out_path, err_path,
                                          started, timed_out, stopped)
        if timed_out:
            outcome = "timeout"
        elif result.ok or (command == "plan" and result.exit_code == 2):
            outcome = "success"
        else:
            outcome = "error"
        metrics.TERRAFORM_RUNS.labels(command, outcome).inc()
        metrics.TERRAFORM_DURATION.labels(command).observe(result.duration)
        return result

    @staticmethod
    def _result(command: str, code: int | None, out: Path, err: Path, started: float, timed_out: bool,
                stopped: str | None) -> Result:
        return Result(command, code, out.read_text(errors="replace"), err.read_text(errors="replace"),
                      time.monotonic() - started, timed_out, stopped)

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


async def _stop(pid: int, exited: asyncio.Future) -> str:
    """SIGINT the group and give Terraform GRACE_SECONDS to stop cleanly (save state, release its
    lock); then SIGKILL the group. Returns "interrupted" or "killed"."""
    _signal_group(pid, signal.SIGINT)
    try:
        await asyncio.wait_for(asyncio.shield(exited), GRACE_SECONDS)
        return "interrupted"
    except TimeoutError:
        _kill_group(pid)
        try:
            await asyncio.wait_for(exited, 5.0)
        except TimeoutError:
            pass
        return "killed"


def _kill_group(pgid: int) -> None:
    _signal_group(pgid, signal.SIGKILL)


def _write_record(path: Path, pid: int, command: str) -> None:
    record = {"pgid": pid, "start": start_ticks(pid), "command": command, "operator": IDENTITY}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


async def reap(work_dir: Path, grace: float | None = None) -> list[str]:
    """Stop the Terraform process groups that an operator which is gone left running, as named by
    ``process.json`` records under ``work_dir`` (``<namespace>/<name>/<purpose>/``): SIGINT, up to
    ``grace`` (GRACE_SECONDS) seconds to release the lock, then SIGKILL of the group. A record
    whose group is gone, or whose leader's start time shows its id was reused, stops nothing.
    Returns what was found, one line each, for the log."""
    grace = GRACE_SECONDS if grace is None else grace
    found = []
    for path in sorted(Path(work_dir).glob(f"*/*/*/{RECORD}")):
        try:
            record = json.loads(path.read_text())
            pgid, start = int(record["pgid"]), int(record["start"])
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        members = group_members(pgid, not_before=start)
        if record.get("operator") != IDENTITY and members:
            found.append(f"terraform {record.get('command')} (process group {pgid}, {len(members)} processes) in "
                         f"{path.parent} was left running by operator {record.get('operator')}: stopped")
            _signal_group(pgid, signal.SIGINT)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and group_members(pgid, not_before=start):
                await asyncio.sleep(0.2)
            _kill_group(pgid)
        if record.get("operator") != IDENTITY:
            path.unlink(missing_ok=True)
    for line in found:
        log.warning("%s", line)
    return found


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
