"""Benchmark: a DriftCheck run against a bare ``terraform plan`` of the same configuration.

Prints figures, asserts nothing. Everything is real: the local control plane, the operator as a
process, moto's S3 backend with locking, the terraform CLI. Per round it measures

* bare plan:       ``terraform plan -detailed-exitcode -out`` in an initialised directory;
* bare init+plan:  ``terraform init`` then the same plan (what a fresh CI job does);
* DriftCheck run:  the run's own duration (status.lastResult.durationSeconds: git fetch, init,
                   plan, show -json), and the end-to-end latency from the on-demand annotation
                   (one PATCH, as ``opex run driftcheck`` writes it) to the result in status as a
                   watching client sees it; split into the annotation's PATCH, annotation →
                   ``Running`` in status (the watch, the queue and the first status write,
                   which the run's source and ``init`` overlap: Terraform starts once it is
                   written; the pass starts from the annotation's watch event, no read) and ``Running`` → result less the run (the report
                   ConfigMap, the result's status write and the watch back, less whatever of
                   the run overlapped the first write: it can be negative); and until the request
                   is answered (``status.answeredRunRequest``, what ``opex run driftcheck`` waits
                   for: in the result's own write when nothing more follows at once).

The configuration is the tests' two ``terraform_data`` resources, plus ``resources`` more (a
``count``): the run's own work (reading the ``-json`` stream, the run directory; ``git ls-remote``
runs beside the plan, timed here on its own) is a fixed cost of some tens of milliseconds, so the ratio depends on how long the plan itself
takes; a real configuration, with providers refreshing real resources, plans for seconds.

Usage: ``.venv/bin/python bench/driftcheck_vs_plan.py [--rounds 10] [--resources 500]`` (after ``make tools``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import common
from common import percentile

import tfrepo  # noqa: E402  (tests/, on the path through common)
from helpers import OperatorProcess  # noqa: E402


def row(name: str, values: list[float]) -> str:
    return (f"{name:<34} {statistics.median(values):8.3f} {percentile(values, 0.9):8.3f} "
            f"{min(values):8.3f} {max(values):8.3f}")


FLEET = """
resource "terraform_data" "fleet" {
  count = %d
  input = "${var.size}-${count.index}"
}
"""


def pass_seconds(op: OperatorProcess) -> tuple[float, float, float, float]:
    """(sum, count) of the operator's DriftCheck reconcile passes and of their waits in the work
    queue so far, from its /metrics."""
    return tuple(op.metric(f"{name}_{part}", kind="DriftCheck") or 0.0 for name in (
        "opex_reconcile_duration_seconds", "opex_workqueue_queue_duration_seconds") for part in ("sum", "count"))


def plan_seconds(op: OperatorProcess) -> tuple[float, float]:
    """(sum, count) of the operator's ``terraform plan`` durations so far, from its /metrics."""
    return (op.metric("opex_terraform_command_duration_seconds_sum", command="plan") or 0.0,
            op.metric("opex_terraform_command_duration_seconds_count", command="plan") or 0.0)


def measure(rounds: int, resources: int = 0) -> dict:
    """The figures (seconds, medians and ratios) of ``rounds`` rounds side by side, on a
    configuration of 2 + ``resources`` resources."""
    work = Path(tempfile.mkdtemp(prefix="opex-bench-"))
    stack = common.start_stack(work)
    terraform, kubectl = stack.terraform, stack.kubectl
    try:
        op = stack.start_operator()
        repo = tfrepo.Repo(work)
        main_tf = tfrepo.MAIN_TF % {"size": "small"} + (FLEET % resources if resources else "")
        repo.commit({"network/main.tf": main_tf}, "small")
        config = tfrepo.backend_config(tfrepo.new_bucket())
        clone = repo.clone / "network"
        tfrepo.terraform(terraform, clone, *tfrepo.init_args(config))
        tfrepo.terraform(terraform, clone, "apply", "-auto-approve", "-input=false", "-no-color")
        kubectl("apply", "-n", "bench", "-f", "-", input=json.dumps({
            "apiVersion": "opex.dev/v1alpha1", "kind": "DriftCheck", "metadata": {"name": "network"},
            "spec": {"schedule": ["0 9 * * *"], "source": {"git": {"url": repo.url, "path": "network"}},
                     "backendConfig": config}}))
        client = common.api(stack)
        bare, bare_json, bare_init, run, latency, ls_remote = [], [], [], [], [], []
        patch_call, to_running, after_run, answer = [], [], [], []  # where the round trip goes beyond the run
        inside = (0.0, 0.0)  # the operator's own timing of its terraform plan: (sum, count) after round 0
        passes = (0.0, 0.0, 0.0, 0.0)  # its DriftCheck passes and queue waits: pass_seconds after round 0
        for i in range(rounds + 1):  # round 0 warms caches and is dropped
            if i == 1:
                inside, passes = plan_seconds(op), pass_seconds(op)
            t0 = time.monotonic()
            tfrepo.terraform(terraform, clone, "plan", "-input=false", "-no-color", "-detailed-exitcode",
                             "-out=bench.tfplan", check=False)
            t1 = time.monotonic()
            tfrepo.terraform(terraform, clone, "plan", "-input=false", "-no-color", "-detailed-exitcode", "-json",
                             "-out=bench.tfplan", check=False)
            t1j = time.monotonic()
            tfrepo.terraform(terraform, clone, *tfrepo.init_args(config), "-reconfigure")
            tfrepo.terraform(terraform, clone, "plan", "-input=false", "-no-color", "-detailed-exitcode",
                             "-out=bench.tfplan", check=False)
            t2 = time.monotonic()
            # what a run does beside the plan: asking git whether the revision moved (no fetch when not)
            subprocess.run(["git", "ls-remote", "--exit-code", repo.url, "main", "refs/tags/main^{}"],
                           capture_output=True, check=False)
            ls, t2b = time.monotonic() - t2, time.monotonic()
            token = uuid.uuid4().hex[:8]

            def running(obj, token=token):
                return ((obj.get("status") or {}).get("runningTrigger") or "").endswith(f"={token})")

            def answered(obj, token=token):
                r = (obj.get("status") or {}).get("lastResult") or {}
                return r.get("trigger", "").endswith(f"={token})") and bool(r.get("finishedAt"))

            def closed(obj, token=token):  # what `opex run driftcheck` waits for: the request answered
                return (obj.get("status") or {}).get("answeredRunRequest") == token

            # The annotation as `opex run driftcheck` writes it (one PATCH through the API client: a
            # kubectl spawned here would add its own start-up to the figure and take CPU from the run),
            # and the result as a watching client sees it (no polling interval in the figure).
            watch = common.Watch(stack, "driftchecks", answered, running=running, closed=closed)
            try:
                t2b = time.monotonic()
                client.patch_namespaced_custom_object("opex.dev", "v1alpha1", "bench", "driftchecks", "network", {
                    "metadata": {"annotations": {"opex.dev/run-requested": token}}})
                patched = time.monotonic()
                if not watch.wait({"network"}, 120) or not watch.wait({"network"}, 30, "closed"):
                    raise RuntimeError("the run's result or its answer did not arrive in time")
            finally:
                watch.stop()
            t3 = watch.seen["network"]
            result = watch.last["network"]["status"]["lastResult"]
            started = watch.marked["running"].get("network", float("nan"))
            if result["outcome"] != "NoDrift":
                raise RuntimeError(f"unexpected outcome {result['outcome']}: {result.get('message')}")
            if i:
                bare.append(t1 - t0)
                bare_json.append(t1j - t1)
                bare_init.append(t2 - t1j)
                run.append(result["durationSeconds"])
                latency.append(t3 - t2b)
                ls_remote.append(ls)
                patch_call.append(patched - t2b)
                to_running.append(started - t2b)
                after_run.append(t3 - started - result["durationSeconds"])
                answer.append(watch.marked["closed"]["network"] - t2b)
        total, count = (a - b for a, b in zip(plan_seconds(op), inside))
        pass_sum, pass_count, wait_sum, wait_count = (a - b for a, b in zip(pass_seconds(op), passes))
        version = tfrepo.terraform(terraform, clone, "version").stdout.splitlines()[0]
        print(f"{version}; {2 + resources} resources; {rounds} rounds; seconds")
        print(f"{'':<34} {'median':>8} {'p90':>8} {'min':>8} {'max':>8}")
        rows = (("bare terraform plan", bare), ("bare terraform plan -json", bare_json),
                ("bare terraform init + plan", bare_init), ("DriftCheck run (source, init, plan)", run),
                ("annotation -> result in status", latency), ("git ls-remote (beside the plan)", ls_remote),
                ("  the annotation PATCH", patch_call), ("  annotation -> Running in status", to_running),
                ("  Running -> result, less the run", after_run),
                ("annotation -> request answered", answer))
        for name, values in rows:
            print(row(name, values))
        figures = {"terraform": version, "rounds": rounds, "resources": 2 + resources,
                   **{name: statistics.median(values) for name, values in rows},
                   "ratio_run_to_plan": statistics.median(run) / statistics.median(bare),
                   "ratio_run_to_init_plan": statistics.median(run) / statistics.median(bare_init),
                   "ratio_latency_to_plan": statistics.median(latency) / statistics.median(bare),
                   "ratio_answer_to_plan": statistics.median(answer) / statistics.median(bare)}
        figures["terraform plan inside the run (mean)"] = total / count if count else float("nan")
        # inside the operator: the passes of a round (the run, its status writes, the report) less
        # the run itself, and the wait in the work queue
        figures["passes per round"] = pass_count / rounds
        figures["pass time beyond the run (mean)"] = pass_sum / rounds - statistics.mean(run)
        figures["work queue wait (mean)"] = wait_sum / wait_count if wait_count else float("nan")
        for name in ("passes per round", "pass time beyond the run (mean)", "work queue wait (mean)"):
            print(f"{name:<34}    {figures[name]:8.3f}")
        print(f"terraform plan inside the run (mean)  {figures['terraform plan inside the run (mean)']:8.3f}")
        print(f"ratio DriftCheck run / bare plan:        {figures['ratio_run_to_plan']:.2f}")
        print(f"ratio DriftCheck run / bare init + plan: {figures['ratio_run_to_init_plan']:.2f}")
        print(f"ratio end-to-end latency / bare plan:    {figures['ratio_latency_to_plan']:.2f}")
        return figures
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--resources", type=int, default=0, help="terraform_data resources added to the two")
    args = parser.parse_args()
    measure(args.rounds, args.resources)
