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
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import time

IDENTITY = f"{socket.gethostname()}/{os.getpid()}/{int(time.time())}"
"""``host/pid/start``: unique across restarts and replicas."""

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def die_with_operator() -> None:
    """``preexec_fn`` of a child process: SIGINT it when the operator dies (Linux prctl(2))."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT)
