"""This operator process: its identity, recorded on work it starts, and the lifetime of its children.

Work recorded in status as started (a remediation step, a DriftCheck run or resolution, a
Rollback batch) carries the identity of the process that started it. A pass that finds such
work started by another identity knows that process is gone (only one replica acts, see
``handlers.leader``): the work was interrupted, and it is resolved explicitly rather than
treated as still running or as done.

Child processes (Terraform, git) are tied to the operator's lifetime: the kernel sends them
SIGINT when the operator dies, however it dies (``PR_SET_PDEATHSIG``), so a Terraform that lost
its operator stops cleanly (it saves state and releases its lock) instead of running on
unobserved.

The signal is set by ``setpriv --pdeathsig`` (util-linux, in every Debian image) exec'ing the
program, not by a ``preexec_fn``: a ``preexec_fn`` makes Python fork the whole operator (its page
tables copied: 6-8 ms per child at 150 MB, measured) instead of vfork, and a DriftCheck run starts
two children (git, Terraform). Without setpriv the ``preexec_fn`` is the fallback.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import signal
import socket
import time
from typing import Callable

IDENTITY = f"{socket.gethostname()}/{os.getpid()}/{int(time.time())}"
"""``host/pid/start``: unique across restarts and replicas."""

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_SETPRIV = shutil.which("setpriv")


def start_ticks(pid: int) -> int:
    """When process ``pid`` started, in clock ticks since boot (``/proc/PID/stat`` field 22); 0
    when it is gone. With the pid it names one process: a pid can be reused, a start time not."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return 0
    return int(stat.rpartition(")")[2].split()[19])


def group_members(pgid: int, not_before: int = 0) -> list[int]:
    """Pids of the live processes in process group ``pgid`` that started at or after
    ``not_before`` (clock ticks since boot; a group's members start after its leader)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rpartition(")")[2].split()
        except OSError:
            continue
        # fields[0] is the state (field 3): a zombie has exited already.
        if int(fields[2]) == pgid and fields[0] != "Z" and int(fields[19]) >= not_before:
            members.append(int(entry))
    return members


def die_with_operator() -> None:
    """``preexec_fn`` of a child process: SIGINT it when the operator dies (Linux prctl(2))."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


def tied(program: str, *args: str, path: str | None = None) -> tuple[list[str], Callable[[], None] | None]:
    """(argv, preexec_fn) to start ``program ARGS`` as a child the kernel sends SIGINT when the
    operator dies (see the module docstring): through ``setpriv --pdeathsig INT``, which execs the
    program in the same process (same pid, process group and start time), else with
    :func:`die_with_operator` as ``preexec_fn``. ``path``: the child's PATH (the operator's when
    None). Raises FileNotFoundError when ``program`` is not on it, as starting it directly does
    (setpriv would start and exit 127 instead)."""
    if not _SETPRIV:
        return [program, *args], die_with_operator
    found = shutil.which(program, path=path)
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    return [_SETPRIV, "--pdeathsig", "INT", "--", found, *args], None
