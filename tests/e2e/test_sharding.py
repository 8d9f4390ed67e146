"""Two operator processes on different shards share one namespace: each reconciles only its share."""
from __future__ import annotations

import copy
import json

from helpers import OperatorProcess, start_together, wait_for
from test_crd_validation import DRIFTCHECK


def driftcheck(name: str, shard: str | None) -> str:
    doc = copy.deepcopy(DRIFTCHECK)
    doc["metadata"] = {"name": name, **({"labels": {"opex.dev/shard": shard}} if shard is not None else {})}
    return json.dumps(doc)


def observed(kubectl, namespace: str, name: str) -> bool:
    return bool((kubectl.get("driftcheck", name, namespace).get("status") or {}).get("observedGeneration"))


def reporters(kubectl, namespace: str, name: str) -> set[str]:
    """The shard of each replica that posted an Event about ``name`` (reportingInstance host/shard)."""
    return {e.get("reportingInstance", "").rpartition("/")[2] for e in kubectl.events(namespace, name)}


def test_two_shards_each_reconcile_only_their_objects_and_a_relabel_moves_one(
        cluster, kubectl, solo_namespace, aws_server, terraform_bin, tmp_path):
    ns = solo_namespace
    # Created first: once the later objects are reconciled, both replicas have listed this one too.
    kubectl.create(driftcheck("team-b", "team-b"), ns)
    shares = {"unlabelled": None, "labelled-default": "default", "team-a-1": "team-a", "team-a-2": "team-a"}
    for name, shard in shares.items():
        kubectl.create(driftcheck(name, shard), ns)
    replicas = []
    for shard in ("default", "team-a"):
        workdir = tmp_path / shard
        workdir.mkdir()
        replicas.append(OperatorProcess(cluster.kubeconfig, aws_server, terraform_bin, workdir, namespaces=ns,
                                        extra_env={"OPEX_SHARD": shard}))
    try:
        start_together(replicas)
        for name in shares:
            wait_for(lambda: observed(kubectl, ns, name), what=f"{name} reconciled")
        for name, shard in shares.items():
            assert wait_for(lambda: reporters(kubectl, ns, name), what=f"an Event on {name}") == {shard or "default"}
        assert not observed(kubectl, ns, "team-b") and kubectl.events(ns, "team-b") == []

        kubectl("label", "driftcheck", "team-b", "-n", ns, "opex.dev/shard=team-a", "--overwrite")
        wait_for(lambda: observed(kubectl, ns, "team-b"), what="team-b picked up by shard team-a")
        assert wait_for(lambda: reporters(kubectl, ns, "team-b"), what="an Event on team-b") == {"team-a"}
    finally:
        kubectl.delete_opex_objects(ns)
        for proc in replicas:
            proc.stop()
