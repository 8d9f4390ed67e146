"""Operator start-up and shutdown: Kopf settings under our own names, clients, controllers, the
runtime and its workers (after leader election when it is on), /metrics; a graceful stop."""
from __future__ import annotations

import asyncio
import logging
import socket
from concurrent.futures import ThreadPoolExecutor

import kopf

from .. import GROUP, metrics, sharding
from ..kube import Kube, load_client_config
from ..terraform.runner import reap
from .leader import elect
from .runtime import Runtime

FINALIZER = f"{GROUP}/finalizer"


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger, **_) -> None:
    """Own finalizer and annotation prefixes (``opex.dev``), Event reporter, workers, clients.

    ``memo.settings`` and ``memo.policy`` were read once by ``runner.run``, which also hands over
    ``memo.build_controllers`` (the composition root, ``wiring``).
    """
    config = memo.settings
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.reporting_component = "opex-operator"
    # Which replica (the Pod's name in a cluster) and shard posted an Event: Kopf says "dev".
    instance = "/".join(filter(None, (socket.gethostname()[:63], config.shard)))
    settings.posting.reporting_instance = instance
    settings.execution.max_workers = config.max_workers
    # Listing and watching namespaces (and CRDs) is needed only to expand globs; without them the
    # operator needs no cluster-scoped read at all (the chart's namespaced RBAC mode).
    settings.scanning.disabled = not config.namespace_globs
    # boto3 and the kubernetes client block; asyncio.to_thread uses the loop's default executor.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="opex-io"))
    load_client_config()
    # Terraform left running by an operator that died (its record in a run directory): stopped
    # before any new run can start in the same directory.
    await reap(config.work_dir)
    memo.kube = Kube()
    memo.runtime = Runtime(memo.build_controllers(config, memo.policy, memo.kube), memo.kube, config.workers,
                           config.resync_seconds, config.restart_spread,
                           owns=lambda labels: sharding.belongs(labels, config.shard, config.default_shard),
                           reporting_instance=instance)
    if config.leader_election:
        elect(config, memo.runtime.leading)
    else:
        memo.runtime.leading.set()
    metrics.serve(config.metrics_port, config.bind_address)
    logger.info("opex-operator ready: %d workers, metrics on :%d, liveness on :%d, shard %s", config.workers,
                config.metrics_port, config.health_port, config.shard or "(all: not sharded)")


class NoDiffBase(kopf.DiffBaseStorage):
    """No "last handled" state: the runtime decides what an event means (``Runtime.observe``), and
    Kopf's changes only run the finalizer's handler, which needs none.

    Kopf's own storage deep-copies every object at every watch event (status included) to compare
    it with an annotation it writes after each create and spec change: one more PATCH per object
    and per change, and CPU on every event, for handlers this operator does not have. Every
    object's essence is the same empty one here, so Kopf sees no change and writes nothing; a
    deletion is still a deletion (``deletionTimestamp``)."""

    def build(self, *, body: kopf.Body, extra_fields=None) -> kopf.BodyEssence:
        return {}  # type: ignore[typeddict-item]

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence:
        return {}  # type: ignore[typeddict-item]

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_) -> None:
    """SIGTERM/SIGINT: no new passes; passes in flight get ``OPEX_SHUTDOWN_GRACE`` seconds to finish."""
    await memo.runtime.stop(memo.settings.shutdown_grace)


def in_shard(labels: kopf.Labels, memo: kopf.Memo, **_) -> bool:
    """Kopf ``when=`` filter of the finalizer: only the replica whose shard an object is in
    finalizes it (sharding.py; the runtime applies the same rule to reconcile passes)."""
    return sharding.belongs(labels, memo.settings.shard, memo.settings.default_shard)
