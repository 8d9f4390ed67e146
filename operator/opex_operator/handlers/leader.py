"""Active/standby: only the holder of a coordination.k8s.io Lease reconciles.

The kubernetes client's own leader election (``kubernetes.leaderelection`` with a ``LeaseLock``)
runs in a thread: it acquires the Lease, renews it every ``lease_seconds / 7`` and lets a
standby take over once a leader stops renewing for ``lease_seconds``. Losing the Lease ends the
process at once (as controller-runtime does): another replica may already be acting, and a
restarted process starts again as a standby. No mutating step runs twice across a takeover,
because every step is checkpointed in status before it acts and checks the real state when it
is resumed.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading

from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from ..config import Settings

log = logging.getLogger(__name__)


def identity() -> str:
    """This replica's name in the Lease: the Pod's name (its hostname) and the process id."""
    return f"{socket.gethostname()}-{os.getpid()}"


def elect(settings: Settings, leading: asyncio.Event) -> threading.Thread:
    """Start competing for the Lease; ``leading`` is set (on the running loop) once this replica
    holds it. Returns the election's daemon thread."""
    loop = asyncio.get_running_loop()
    me = identity()

    def started() -> None:
        log.info("%s leads (Lease %s/%s); reconciling", me, settings.lease_namespace, settings.lease_name)
        loop.call_soon_threadsafe(leading.set)

    def stopped() -> None:
        log.critical("%s lost the Lease %s/%s; stopping at once so that no two replicas act", me,
                     settings.lease_namespace, settings.lease_name)
        logging.shutdown()
        os._exit(1)

    seconds = settings.lease_seconds
    retry = max(1, seconds // 7)
    config = electionconfig.Config(LeaseLock(settings.lease_name, settings.lease_namespace, me),
                                   lease_duration=seconds, renew_deadline=max(retry * 2 + 1, seconds * 2 // 3),
                                   retry_period=retry, onstarted_leading=started, onstopped_leading=stopped)
    thread = threading.Thread(target=leaderelection.LeaderElection(config).run, name="opex-leader-election",
                              daemon=True)
    thread.start()
    log.info("%s is a standby until it holds the Lease %s/%s", me, settings.lease_namespace, settings.lease_name)
    return thread
