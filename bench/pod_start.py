"""Benchmark: what starting a pod from the operator image costs on the local node.

The price a DriftCheck plan would pay to run as a Job (docs/scaling.md §4) instead of in the
operator's process, measured before that runner exists. Per round, on the node of hack/cluster.py
(the image built from the Dockerfile, imported into containerd, ``imagePullPolicy: Never``):

* process: ``opex --help`` run here as a process (the Python start and imports the Job also pays);
* pod Running: a pod of the image (``sleep``) from create to its container started, as the API
  server reports it;
* Job Complete: a Job running ``opex --help`` (``backoffLimit: 0``) from create to its
  ``Complete`` condition: scheduling, the sandbox, the container, the command, the Job controller.

Polled through the API client every 50 ms (a ``kubectl`` spawned that often would take the CPU the
pods need). Figures, not tests. Needs a node (root; see hack/node.py): elsewhere it says why.

Usage: ``.venv/bin/python bench/pod_start.py [--rounds 10]`` (after ``make tools``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (puts hack/ and tests/ on the path)
from common import summary

import cluster as local_cluster  # noqa: E402
import node  # noqa: E402

NAMESPACE = "bench-pods"
RESTRICTED = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


def _pod_spec(image: str, command: list[str]) -> dict:
    return {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "opex", "image": image, "imagePullPolicy": "Never", "command": command,
                            "securityContext": RESTRICTED}]}


def _until(check, timeout: float = 120.0) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if check():
            return time.monotonic()
        time.sleep(0.05)
    raise RuntimeError(f"not done after {timeout:.0f}s")


def measure(rounds: int = 10) -> dict:
    """Run the rounds on a node of its own; returns the figures (seconds), or ``{"skipped": reason}``."""
    try:
        node.check_prerequisites()
    except node.NodeUnavailable as err:
        return {"skipped": str(err)}
    import kubernetes

    with tempfile.TemporaryDirectory(prefix="opex-bench-pods-") as tmp:
        started = local_cluster.start(Path(tmp))
        try:
            kubernetes.config.load_kube_config(config_file=str(started.kubeconfig))
            core, batch = kubernetes.client.CoreV1Api(), kubernetes.client.BatchV1Api()
            core.create_namespace({"metadata": {"name": NAMESPACE}})
            _until(lambda: core.list_namespaced_service_account(NAMESPACE, field_selector="metadata.name=default").items)
            process, running, job = [], [], []
            opex = Path(sys.executable).with_name("opex")
            for i in range(rounds):
                began = time.monotonic()
                subprocess.run([str(opex), "--help"], capture_output=True, check=True)
                process.append(time.monotonic() - began)

                began = time.monotonic()
                core.create_namespaced_pod(NAMESPACE, {"metadata": {"name": f"p{i}"},
                                                       "spec": _pod_spec(started.image, ["sleep", "600"])})
                running.append(_until(lambda: any(
                    (s.state.running is not None) for s in
                    (core.read_namespaced_pod_status(f"p{i}", NAMESPACE).status.container_statuses or []))) - began)
                core.delete_namespaced_pod(f"p{i}", NAMESPACE, grace_period_seconds=0)

                began = time.monotonic()
                batch.create_namespaced_job(NAMESPACE, {"metadata": {"name": f"j{i}"}, "spec": {
                    "backoffLimit": 0, "template": {"spec": _pod_spec(started.image, ["opex", "--help"])}}})
                job.append(_until(lambda: any(
                    c.type == "Complete" and c.status == "True" for c in
                    (batch.read_namespaced_job_status(f"j{i}", NAMESPACE).status.conditions or []))) - began)
                batch.delete_namespaced_job(f"j{i}", NAMESPACE, propagation_policy="Background")
        finally:
            started.stop()
    p, r, j = summary(process), summary(running), summary(job)
    return {"rounds": rounds, "process": p, "pod_running": r, "job_complete": j,
            "job_over_process_p50": j["p50"] - p["p50"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    print(json.dumps(measure(parser.parse_args().rounds), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
