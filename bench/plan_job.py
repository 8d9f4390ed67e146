"""Benchmark: a DriftCheck plan as a Job against the same plan in the operator's process, on the local node.

The chart installed on the node of hack/cluster.py (the image built from the Dockerfile, two
replicas), moto on the node's address, the example DriftCheck (examples/driftcheck.yaml: its
ConfigMap source, the S3 backend with locking) twice, one with ``spec.runner: InProcess`` and one
with ``spec.runner: Job``, each on its own state. Per round and runner: ``opex.dev/run-requested``
annotated (through the API client, as ``opex run driftcheck`` writes it) until the run's result is
in status, polled every 50 ms; the Job's figure holds the pod's start, the input Secret, the Python
start in the pod, the result ConfigMap and the Job's deletion. Figures, not tests. Needs a node
(root; see hack/node.py): elsewhere it says why.

Usage: ``.venv/bin/python bench/plan_job.py [--rounds 10]`` (after ``make tools`` and the image:
``cd hack && ../.venv/bin/python cluster.py image``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import common  # noqa: F401  (puts hack/ and tests/ on the path)
from common import summary

import cluster as local_cluster  # noqa: E402
import node  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "driftcheck.yaml"
NAMESPACE = "bench-plan-job"


def _until(check, timeout: float = 300.0, step: float = 0.05):
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        found = check()
        if found:
            return found
        time.sleep(step)
    raise RuntimeError(f"not done after {timeout:.0f}s")


def measure(rounds: int = 10) -> dict:
    """Run the rounds on a node of its own; returns the figures (seconds), or ``{"skipped": reason}``."""
    try:
        node.check_prerequisites()
    except node.NodeUnavailable as err:
        return {"skipped": str(err)}
    import boto3
    import fakeaws
    import kubernetes
    import yaml

    import gotools

    with tempfile.TemporaryDirectory(prefix="opex-bench-plan-job-") as tmp:
        started = local_cluster.start(Path(tmp))
        server, url = fakeaws.start(host=started.address)
        try:
            os.environ.update(fakeaws.aws_env(url))
            local_cluster.install_chart(gotools.ensure_helm(), started.kubeconfig, started.image, url, Path(tmp))
            kubectl = ["kubectl", f"--kubeconfig={started.kubeconfig}"]
            subprocess.run([*kubectl, "create", "namespace", NAMESPACE], check=True, capture_output=True)
            rendered = subprocess.run([str(gotools.ensure_helm()), "template", local_cluster.RELEASE, str(local_cluster.CHART),
                                       "-n", local_cluster.NAMESPACE, "-f", str(local_cluster.VALUES),
                                       "--set", f"planJob.namespaces={{{NAMESPACE}}}"],
                                      check=True, capture_output=True, text=True).stdout
            runner_rbac = [d for d in yaml.safe_load_all(rendered) if d and d["metadata"].get("namespace") == NAMESPACE]
            subprocess.run([*kubectl, "apply", "-n", NAMESPACE, "-f", "-"], input=json.dumps(
                {"apiVersion": "v1", "kind": "List", "items": runner_rbac}), check=True, capture_output=True, text=True)
            config_map, dc = yaml.safe_load_all(EXAMPLE.read_text())
            boto3.client("s3").create_bucket(Bucket=dc["spec"]["backendConfig"]["bucket"])
            manifests = [config_map]
            for runner in ("InProcess", "Job"):
                one = json.loads(json.dumps(dc))
                one["metadata"]["name"] = f"network-{runner.lower()}"
                one["spec"]["runner"] = runner
                one["spec"]["backendConfig"]["key"] = f"{runner.lower()}/network.tfstate"
                manifests.append(one)
            subprocess.run([*kubectl, "apply", "-n", NAMESPACE, "-f", "-"], input=json.dumps(
                {"apiVersion": "v1", "kind": "List", "items": manifests}), check=True, capture_output=True, text=True)
            kubernetes.config.load_kube_config(config_file=str(started.kubeconfig))
            api = kubernetes.client.CustomObjectsApi()

            def run_once(name: str) -> float:
                token = uuid.uuid4().hex[:8]
                began = time.monotonic()
                api.patch_namespaced_custom_object("opex.dev", "v1alpha1", NAMESPACE, "driftchecks", name, {
                    "metadata": {"annotations": {"opex.dev/run-requested": token}}})

                def done():
                    status = api.get_namespaced_custom_object("opex.dev", "v1alpha1", NAMESPACE, "driftchecks",
                                                              name).get("status") or {}
                    result = status.get("lastResult") or {}
                    return result.get("trigger", "").endswith(f"={token})") and result.get("finishedAt") and result
                result = _until(done)
                if result["outcome"] != "DriftDetected":
                    raise RuntimeError(f"{name}: {result}")
                return time.monotonic() - began

            figures: dict[str, list[float]] = {"InProcess": [], "Job": []}
            for runner in figures:  # a first run of each, not counted: init, the plugin cache, the image's first start
                run_once(f"network-{runner.lower()}")
            for _ in range(rounds):
                for runner, values in figures.items():
                    values.append(run_once(f"network-{runner.lower()}"))
        finally:
            server.stop()
            started.stop()
    in_process, job = summary(figures["InProcess"]), summary(figures["Job"])
    return {"rounds": rounds, "in_process": in_process, "job": job, "job_over_in_process_p50": job["p50"] - in_process["p50"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    print(json.dumps(measure(parser.parse_args().rounds), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
