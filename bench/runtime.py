"""Benchmarks of the reconcile runtime on the local stack (figures, not tests).

* latency:  one Incident at a time, created → Assessed as a watching client sees it, against the
            floor timed the same way: a minimal controller in a process of its own (bench/floor.py)
            that learns of an Incident from its watch, makes the same AWS reads directly
            (AwsReader, all in parallel) and writes one status patch; once the Incident rests;
* burst:    1,000 Incidents created at once (20 per estate, as an alert storm is), time until all
            are assessed, and the latency of a critical production Incident created right after;
            what each Incident cost (CPU, API requests by verb, AWS calls) until all rest;
* scale:    1,000 and 5,000 objects of the three kinds at rest: RSS, idle CPU, AWS calls per
            second, ``/metrics`` time; then a restart: time to healthy, to every object reconciled,
            CPU and AWS calls in the first minute;
* takeover: two replicas with leader election and the chart's 15 s Lease; the leader is killed
            (SIGKILL: it releases nothing) and an Incident created at that moment: time until the
            standby holds the Lease and until that Incident is assessed.

Usage: ``.venv/bin/python bench/runtime.py [--quick] [--only burst,latency] [--count 600]
[--profile FILE] [--workers N]``; ``bench/run.py`` runs every part for ``make bench``.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import (NAMESPACE, UNLIMITED, OperatorProcess, Stack, Watch, api, assessed, aws_calls,
                    aws_calls_by_operation, cost, incident, process_cpu_seconds, process_rss_bytes, start_stack, summary,
                    usage)

import estate  # noqa: E402  (hack/, on the path through common)
from floor import ESTATE  # noqa: E402
from helpers import wait_for  # noqa: E402  (tests/, on the path through common)

FLOOR = "floor"   # the floor's namespace: the operator watches only NAMESPACE


def seed(prefixes: list[str]) -> None:
    """One deployment-failure estate per prefix, each with its own CloudTrail log group (so no two
    Incidents share a read and the operator's read sharing does not flatter the latency)."""
    for prefix in prefixes:
        estate.deployment_failure(prefix)
        estate.put_logs(f"CloudTrail/{prefix}", "trail", [json.dumps({
            "eventTime": "2026-11-29T08:41:05Z", "eventSource": "lambda.amazonaws.com", "eventName": "GetFunction",
            "errorCode": "AccessDenied", "userIdentity": {"arn": f"arn:aws:iam::123456789012:user/{prefix}"}})])


def own_trail(body: dict, prefix: str) -> dict:
    body["spec"]["targets"]["cloudTrail"] = {"logGroupName": f"CloudTrail/{prefix}"}
    return body


# Where an Incident rests until a person acts (or it is over): creation → here is one lifecycle.
RESTING = {"AwaitingApproval", "ManualActionRequired", "Resolved", "Failed", "Closed"}


def resting(obj: dict) -> bool:
    return (obj.get("status") or {}).get("phase") in RESTING


class Floor:
    """``bench/floor.py`` as a process of its own (the operator is one; moto's server is in this one):
    a minimal controller of the Incidents of ``namespace``, which the operator does not watch."""

    def __init__(self, stack: Stack, namespace: str):
        self.lines: queue.Queue[str] = queue.Queue()
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("floor.py")),
                                      str(stack.cp.kubeconfig), namespace],
                                     stdout=subprocess.PIPE, text=True, env={**os.environ, "OPEX_AWS_RATES": UNLIMITED})
        threading.Thread(target=lambda: [self.lines.put(line.strip()) for line in self.proc.stdout], daemon=True).start()
        if self.lines.get(timeout=60) != "ready":
            raise RuntimeError("the floor did not start")

    def errors(self) -> list[str]:
        """What the floor could not assess so far."""
        found = []
        while not self.lines.empty():
            found.append(self.lines.get())
        return found

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def latency(stack: Stack, rounds: int, profile: Path | None = None) -> dict:
    """Create → Assessed (as a watching client sees it) of one Incident at a time, each on an estate
    of its own, for the operator and for the floor (``bench/floor.py``), alternately; ``profile``:
    where py-spy writes its record of the operator over the measured rounds."""
    prefixes = [f"lat{i}" for i in range(rounds + 2)]
    seed(prefixes)
    client = api(stack)
    stack.kubectl("create", "namespace", FLOOR)
    floor = Floor(stack, FLOOR)  # the same raised budget as the operator's; warmed by the first rounds
    watch = Watch(stack, "incidents", assessed, resting=resting)
    floor_watch = Watch(stack, "incidents", assessed, namespace=FLOOR)
    ours, floors = [], []
    calls_before = aws_calls_by_operation(stack.operator)
    spy = None
    try:
        for i, prefix in enumerate(prefixes):
            name = f"lat-{i}"
            if i == 2 and profile is not None:
                spy = profiler(stack, profile)
            t0 = time.monotonic()
            client.create_namespaced_custom_object("opex.dev", "v1alpha1", NAMESPACE, "incidents",
                                                   own_trail(incident(name, prefix), prefix))
            if not watch.wait({name}, 60):
                raise RuntimeError(f"{name} was not assessed within 60 s")
            took = watch.seen[name] - t0
            # The floor on a machine as quiet as the assessment had: not while the operator goes on
            # with this Incident (classification, escalation, approval: writes and Events).
            watch.wait({name}, 60, "resting")
            body = own_trail(incident(name, prefix), prefix)
            body["metadata"]["annotations"] = {ESTATE: prefix}
            t1 = time.monotonic()
            client.create_namespaced_custom_object("opex.dev", "v1alpha1", FLOOR, "incidents", body)
            if not floor_watch.wait({name}, 60):
                raise RuntimeError(f"the floor did not assess {name} within 60 s: {floor.errors()}")
            if i >= 2:  # the first rounds warm clients and caches
                ours.append(took)
                floors.append(floor_watch.seen[name] - t1)
            time.sleep(0.2)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        watch.stop()
        floor_watch.stop()
        floor.stop()
    calls = {f"{svc}:{op}": (n - calls_before.get((svc, op), 0)) / len(prefixes)
             for (svc, op), n in aws_calls_by_operation(stack.operator).items()
             if svc != "sns" and n > calls_before.get((svc, op), 0)}
    return {"ours": summary(ours), "floor": summary(floors), "ratio_p50": summary(ours)["p50"] / summary(floors)["p50"],
            "aws_calls_per_assessment": calls, "default_budget": default_budget(calls, 1000)}


def default_budget(calls: dict[str, float], incidents: int) -> dict:
    """How long ``incidents`` assessments of distinct targets take within the DEFAULT AWS call budget
    (AWS's documented quotas): the slowest API decides."""
    from opex_operator.aws.budget import DEFAULT_RATES, FALLBACK_RATE

    seconds = {name: n * incidents / DEFAULT_RATES.get(name, DEFAULT_RATES.get(name.split(":")[0], FALLBACK_RATE))
               for name, n in calls.items()}
    slowest = max(seconds, key=seconds.get)
    return {"incidents": incidents, "seconds": seconds[slowest], "limited_by": slowest}


def burst(stack: Stack, count: int, estates: int, profile: Path | None = None) -> dict:
    """``count`` Incidents at once on ``estates`` estates, then a critical production one: when each
    is assessed, and what the burst cost per Incident (operator and control-plane CPU, API requests
    by verb, AWS calls) until all were assessed and until all rested (waiting for approval)."""
    prefixes = [f"burst{i}" for i in range(estates)]
    seed(prefixes + ["crit"])
    client = api(stack)
    names = {f"burst-{i}" for i in range(count)}
    watch = Watch(stack, "incidents", assessed, resting=resting)
    spy = profiler(stack, profile) if profile else None
    try:
        def create(i: int) -> None:
            body = incident(f"burst-{i}", prefixes[i % estates], severity=["low", "medium", "high"][i % 3],
                            environment="development")
            client.create_namespaced_custom_object("opex.dev", "v1alpha1", NAMESPACE, "incidents", body)

        before = usage(stack)
        t0 = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(create, range(count)))
        created = time.monotonic()
        client.create_namespaced_custom_object("opex.dev", "v1alpha1", NAMESPACE, "incidents",
                                               incident("critical", "crit", severity="critical"))
        critical_t0 = time.monotonic()
        watch.wait({"critical"}, 120)
        critical = watch.seen.get("critical", float("nan")) - critical_t0
        watch.wait(names, 600)
        done = max(watch.seen.get(n, float("nan")) for n in names) - t0
        at_assessed = usage(stack)
        watch.wait(names | {"critical"}, 600, "resting")
        at_rest = usage(stack)
        backlog_at_critical = count - sum(1 for n in names if watch.seen.get(n, float("inf")) <= watch.seen.get(
            "critical", 0))
        phases: dict[str, int] = {}
        for obj in watch.last.values():
            phase = (obj.get("status") or {}).get("phase") or "-"
            phases[phase] = phases.get(phase, 0) + 1
    finally:
        watch.stop()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
    own = {("POST", "incidents"): count + 1}  # the benchmark's own creates
    return {"count": count, "estates": estates, "create_seconds": created - t0, "all_assessed_seconds": done,
            "per_second": count / done, "critical_seconds": critical, "backlog_when_critical_assessed":
            backlog_at_critical, "phases": phases,
            "cost_to_assessed": cost(before, at_assessed, count + 1, own),
            "cost_to_rest": cost(before, at_rest, count + 1, own)}


def profiler(stack: Stack, out: Path) -> subprocess.Popen:
    """py-spy (a bench-only tool) sampling the operator without stopping it, into ``out`` (speedscope
    JSON when it ends in .json, else a flame graph SVG), until SIGINT. Only samples of the thread
    holding the interpreter lock count: the CPU the operator's Python spends, not its waits."""
    fmt = "speedscope" if out.suffix == ".json" else "flamegraph"
    spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--nonblocking", "--gil", "--rate", "200",
                            "--format", fmt, "--output", str(out), "--pid", str(stack.operator.proc.pid)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    return spy


def population(stack: Stack, total: int, prefixes: list[str]) -> None:
    """``total`` objects at rest: 40 % Incidents (Manual: they wait for approval), 40 % suspended
    DriftChecks, 20 % Rollbacks waiting for approval. The DriftChecks' source ConfigMap exists: one
    that is missing is looked for again every minute (``controllers.driftcheck.SOURCE_RECHECK``), which
    is not rest (2,000 such DriftChecks cost about 13 % of a core, before and after issue 27)."""
    client = api(stack)
    incidents, driftchecks = int(total * 0.4), int(total * 0.4)
    stack.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tf"},
        "data": {"main.tf": 'resource "terraform_data" "rest" {\n  input = "at rest"\n}\n'}}))

    def create(i: int) -> None:
        if i < incidents:
            plural, body = "incidents", incident(f"inc-{i}", prefixes[i % len(prefixes)], severity="low",
                                                 environment="development")
        elif i < incidents + driftchecks:
            plural, body = "driftchecks", {
                "apiVersion": "opex.dev/v1alpha1", "kind": "DriftCheck", "metadata": {"name": f"dc-{i}"},
                "spec": {"schedule": ["0 9 * * *"], "suspend": True, "source": {"configMapRef": {"name": "tf"}}}}
        else:
            plural, body = "rollbacks", {
                "apiVersion": "opex.dev/v1alpha1", "kind": "Rollback", "metadata": {"name": f"rb-{i}"},
                "spec": {"lambda": {"functionName": f"{prefixes[0]}-api", "to": {"previous": True}}}}
        client.create_namespaced_custom_object("opex.dev", "v1alpha1", NAMESPACE, plural, body)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(create, range(total)))


def reconciled_count(stack: Stack) -> int:
    client = api(stack)
    count = 0
    for plural in ("incidents", "driftchecks", "rollbacks"):
        for obj in client.list_namespaced_custom_object("opex.dev", "v1alpha1", NAMESPACE, plural)["items"]:
            status = obj.get("status") or {}
            if status.get("observedGeneration") == obj["metadata"]["generation"] and (
                    plural != "incidents" or status.get("phase") == "AwaitingApproval"):
                count += 1
    return count


def wait_reconciled(stack: Stack, total: int, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if reconciled_count(stack) >= total:
            return time.monotonic() - t0
        time.sleep(2)
    return float("nan")


def at_rest(stack: Stack, idle_seconds: float) -> dict:
    op = stack.operator
    pid = op.proc.pid
    cpu0, calls0, t0 = process_cpu_seconds(pid), aws_calls(op), time.monotonic()
    time.sleep(idle_seconds)
    elapsed = time.monotonic() - t0
    timings = []
    for _ in range(10):
        s = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=10) as resp:
            resp.read()
        timings.append(time.monotonic() - s)
    return {"rss_mb": process_rss_bytes(pid) / 2**20,
            "idle_cpu_percent": 100 * (process_cpu_seconds(pid) - cpu0) / elapsed,
            "aws_calls_per_second": (aws_calls(op) - calls0) / elapsed,
            "metrics_seconds": summary(timings)["p50"]}


def restart(stack: Stack, total: int, window: float) -> dict:
    stack.stop_operator()
    t0 = time.monotonic()
    op = stack.start_operator()
    healthy = time.monotonic() - t0
    pid = op.proc.pid
    cpu0, calls0 = process_cpu_seconds(pid), aws_calls(op)
    reconciles = 0.0
    deadline = t0 + window
    everything = float("nan")
    while time.monotonic() < deadline:
        from prometheus_client.parser import text_string_to_metric_families

        reconciles = sum(s.value for f in text_string_to_metric_families(op.metrics()) if f.name == "opex_reconcile"
                         for s in f.samples if s.name == "opex_reconcile_total")
        if reconciles >= total and everything != everything:
            everything = time.monotonic() - t0
        time.sleep(1)
    return {"healthy_seconds": healthy, "all_reconciled_seconds": everything,
            "cpu_percent_first_minute": 100 * (process_cpu_seconds(pid) - cpu0) / window,
            "aws_calls_first_minute": aws_calls(op) - calls0}


def takeover(stack: Stack, rounds: int, lease_seconds: int = 15) -> dict:
    """Seconds from the leader's SIGKILL to the standby holding the Lease, and to an Incident
    created at the kill being assessed (what a user waits for), over ``rounds`` rounds."""
    stack.stop_operator()
    prefixes = [f"ha{i}" for i in range(rounds)]
    seed(prefixes)
    lease_taken, assessed_after = [], []

    # read through the API client, not kubectl: a process spawned every 100 ms takes CPU from the
    # operators being measured on a 2-core machine
    import kubernetes

    client = api(stack)
    leases = kubernetes.client.CoordinationV1Api(client.api_client)

    def holder(lease: str) -> str:
        try:
            return leases.read_namespaced_lease(lease, NAMESPACE).spec.holder_identity or ""
        except kubernetes.client.ApiException as err:
            if err.status == 404:  # not taken yet
                return ""
            raise

    for i, prefix in enumerate(prefixes):
        env = {"OPEX_AWS_RATES": UNLIMITED, "OPEX_LEADER_ELECTION": "true", "OPEX_LEASE_NAME": f"bench-ha-{i}",
               "OPEX_LEASE_NAMESPACE": NAMESPACE, "OPEX_LEASE_SECONDS": str(lease_seconds)}
        pair = []
        for name in ("a", "b"):
            workdir = stack.work / f"ha-{i}-{name}"
            workdir.mkdir()
            pair.append(OperatorProcess(stack.cp.kubeconfig, stack.url, stack.terraform, workdir, NAMESPACE, env))
            pair[-1].start()
        try:
            leader_id = wait_for(lambda: holder(f"bench-ha-{i}"), 60, 0.1, "a leader")
            leader = next(p for p in pair if leader_id.endswith(f"-{p.proc.pid}"))
            standby = next(p for p in pair if p is not leader)
            time.sleep(2)  # the leader renews at least once: a mid-term kill, as in production
            leader.kill()
            t0 = time.monotonic()
            name = f"ha-{i}"
            stack.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(
                own_trail(incident(name, prefix), prefix)))
            wait_for(lambda: holder(f"bench-ha-{i}").endswith(f"-{standby.proc.pid}"), 4 * lease_seconds, 0.1,
                     "the takeover")
            lease_taken.append(time.monotonic() - t0)
            wait_for(lambda: assessed(client.get_namespaced_custom_object("opex.dev", "v1alpha1", NAMESPACE,
                                                                          "incidents", name)), 4 * lease_seconds, 0.1,
                     "the assessment after the takeover")
            assessed_after.append(time.monotonic() - t0)
        finally:
            for proc in pair:
                proc.stop()
    stack.start_operator()  # the stack's own operator again (it removes finalizers when objects go)
    return {"lease_seconds": lease_seconds, "rounds": rounds, "lease_taken": summary(lease_taken),
            "incident_assessed": summary(assessed_after)}


def clear(stack: Stack) -> None:
    """Every opex object of the namespace gone, at once: the operator is stopped and the finalizers
    taken off (its cleanup of a thousand deletions is not what is measured here)."""
    stack.stop_operator()
    client = api(stack)
    for plural in ("incidents", "driftchecks", "rollbacks"):
        for obj in client.list_namespaced_custom_object("opex.dev", "v1alpha1", NAMESPACE, plural)["items"]:
            client.patch_namespaced_custom_object("opex.dev", "v1alpha1", NAMESPACE, plural, obj["metadata"]["name"],
                                                  {"metadata": {"finalizers": None}})
        client.delete_collection_namespaced_custom_object("opex.dev", "v1alpha1", NAMESPACE, plural)


PARTS = ("latency", "burst", "takeover", "scale")


def main(quick: bool = False, only: tuple[str, ...] = PARTS, count: int | None = None,
         profile: Path | None = None, workers: int | None = None) -> dict:
    """The figures of ``only`` (all by default); ``count``: Incidents in the burst (1,000; 200 quick);
    ``profile``: where py-spy writes its record of the operator during the burst (and, named
    ``latency-<it>``, during the latency rounds); ``workers``: the
    operator's OPEX_WORKERS for the latency and burst parts (its default, 4, when None)."""
    work = Path(tempfile.mkdtemp(prefix="opex-bench-"))
    stack = start_stack(work)
    results: dict = {}
    try:
        stack.start_operator(**({"OPEX_WORKERS": str(workers)} if workers else {}))
        if "latency" in only:
            results["latency"] = latency(stack, 10 if quick else 30,
                                         profile.with_name(f"latency-{profile.name}") if profile else None)
            print("latency", json.dumps(results["latency"], indent=1), flush=True)
        if "burst" in only:
            results["burst"] = burst(stack, count or (200 if quick else 1000), 50, profile)
            print("burst", json.dumps(results["burst"], indent=1), flush=True)
        if "takeover" in only:
            results["takeover"] = takeover(stack, 2 if quick else 5)
            print("takeover", json.dumps(results["takeover"], indent=1), flush=True)
        estates = [f"burst{i}" for i in range(50)]
        if "scale" in only and "burst" not in only:
            seed(estates)  # the burst seeds them otherwise
        for total in ((300,) if quick else (1000, 5000)) if "scale" in only else ():
            clear(stack)
            stack.start_operator()  # a fresh process: its memory is what these objects cost
            population(stack, total, estates)
            settle = wait_reconciled(stack, total, 900)
            figures = {"objects": total, "settled_seconds": settle, **at_rest(stack, 30 if quick else 60)}
            figures["restart"] = restart(stack, total, 30 if quick else 60)
            results[f"scale_{total}"] = figures
            print(f"scale {total}", json.dumps(figures, indent=1), flush=True)
        return results
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and objects (a smoke run)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}")
    parser.add_argument("--count", type=int, help="Incidents in the burst")
    parser.add_argument("--profile", type=Path, help="record the operator during the burst with py-spy into this "
                                                     "file (.json: speedscope; else SVG); slows the operator a little")
    parser.add_argument("--workers", type=int, help="the operator's OPEX_WORKERS (reconcile passes at once; default 4)")
    args = parser.parse_args()
    print(json.dumps(main(args.quick, tuple(args.only.split(",")), args.count, args.profile, args.workers), indent=2))
