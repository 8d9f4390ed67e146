"""Benchmarks of the reconcile runtime on the local stack (figures, not tests).

* latency:  one Incident at a time, created → Assessed as a watching client sees it, against the
            floor: the same AWS reads made directly (AwsReader, all in parallel) plus one status
            patch, measured side by side in the same run;
* burst:    1,000 Incidents created at once (20 per estate, as an alert storm is), time until all
            are assessed, and the latency of a critical production Incident created right after;
* scale:    1,000 and 5,000 objects of the three kinds at rest: RSS, idle CPU, AWS calls per
            second, ``/metrics`` time; then a restart: time to healthy, to every object reconciled,
            CPU and AWS calls in the first minute;
* takeover: two replicas with leader election and the chart's 15 s Lease; the leader is killed
            (SIGKILL: it releases nothing) and an Incident created at that moment: time until the
            standby holds the Lease and until that Incident is assessed.

Usage: ``.venv/bin/python bench/runtime.py [--quick]``; ``bench/run.py`` runs it for ``make bench``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import (NAMESPACE, UNLIMITED, OperatorProcess, Stack, Watch, api, assessed, aws_calls,
                    aws_calls_by_operation, incident, process_cpu_seconds, process_rss_bytes, start_stack, summary)

import estate  # noqa: E402  (hack/, on the path through common)
from helpers import wait_for  # noqa: E402  (tests/, on the path through common)


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


def floor(prefix: str, patch, reader) -> float:
    """The same reads an assessment makes, directly and all at once, then one status patch (seconds)."""
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        builds = pool.submit(reader.builds, f"{prefix}-deploy", [])
        jobs = [pool.submit(reader.pipeline, f"{prefix}-pipeline", None),
                pool.submit(reader.lambda_function, f"{prefix}-api", since),
                pool.submit(reader.trail_errors_from_logs, f"CloudTrail/{prefix}", since)]
        build = builds.result()[0]
        jobs.append(pool.submit(reader.stream_lines, build.log_group, build.log_stream))
        for job in jobs:
            job.result()
    patch()
    return time.monotonic() - t0


def latency(stack: Stack, rounds: int) -> dict:
    prefixes = [f"lat{i}" for i in range(rounds + 2)]
    seed(prefixes)
    client = api(stack)
    from opex_operator.kube import Kube, ObjectRef
    import kubernetes

    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(stack.cp.kubeconfig), client_configuration=config)
    kube = Kube(kubernetes.client.ApiClient(config))
    stack.kubectl("create", "namespace", "floor")
    client.create_namespaced_custom_object("opex.dev", "v1alpha1", "floor", "incidents",
                                           {**incident("floor", "lat0"), "metadata": {"name": "floor"}})
    ref = ObjectRef("incidents", "floor", "floor")

    def patch():
        kube.patch_status(ref, {"phase": "Diagnosing", "assessedAt": dt.datetime.now(dt.timezone.utc).isoformat()})

    from opex_operator.aws.budget import Budget, parse_rates
    from opex_operator.aws.clients import AwsClients
    from opex_operator.aws.reader import AwsReader

    # warm clients and the same raised budget as the operator's
    reader = AwsReader(AwsClients("us-east-1", budget=Budget(rates=parse_rates(UNLIMITED))), None, None)
    watch = Watch(stack, "incidents", assessed)
    ours, floors = [], []
    calls_before = aws_calls_by_operation(stack.operator)
    try:
        for i, prefix in enumerate(prefixes):
            name = f"lat-{i}"
            t0 = time.monotonic()
            client.create_namespaced_custom_object("opex.dev", "v1alpha1", NAMESPACE, "incidents",
                                                   own_trail(incident(name, prefix), prefix))
            if not watch.wait({name}, 60):
                raise RuntimeError(f"{name} was not assessed within 60 s")
            took = watch.seen[name] - t0
            floor_took = floor(prefix, patch, reader)
            if i >= 2:  # the first rounds warm clients and caches
                ours.append(took)
                floors.append(floor_took)
            time.sleep(0.2)
    finally:
        watch.stop()
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


def burst(stack: Stack, count: int, estates: int) -> dict:
    prefixes = [f"burst{i}" for i in range(estates)]
    seed(prefixes + ["crit"])
    client = api(stack)
    names = {f"burst-{i}" for i in range(count)}
    watch = Watch(stack, "incidents", assessed)
    try:
        def create(i: int) -> None:
            body = incident(f"burst-{i}", prefixes[i % estates], severity=["low", "medium", "high"][i % 3],
                            environment="development")
            client.create_namespaced_custom_object("opex.dev", "v1alpha1", NAMESPACE, "incidents", body)

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
        backlog_at_critical = count - sum(1 for n in names if watch.seen.get(n, float("inf")) <= watch.seen.get(
            "critical", 0))
    finally:
        watch.stop()
    return {"count": count, "estates": estates, "create_seconds": created - t0, "all_assessed_seconds": done,
            "per_second": count / done, "critical_seconds": critical, "backlog_when_critical_assessed":
            backlog_at_critical}


def population(stack: Stack, total: int, prefixes: list[str]) -> None:
    """``total`` objects at rest: 40 % Incidents (Manual: they wait for approval), 40 % suspended
    DriftChecks, 20 % Rollbacks waiting for approval."""
    client = api(stack)
    incidents, driftchecks = int(total * 0.4), int(total * 0.4)

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


def main(quick: bool = False) -> dict:
    work = Path(tempfile.mkdtemp(prefix="opex-bench-"))
    stack = start_stack(work)
    results: dict = {}
    try:
        stack.start_operator()
        results["latency"] = latency(stack, 10 if quick else 30)
        print("latency", json.dumps(results["latency"], indent=1), flush=True)
        results["burst"] = burst(stack, 200 if quick else 1000, 50)
        print("burst", json.dumps(results["burst"], indent=1), flush=True)
        results["takeover"] = takeover(stack, 2 if quick else 5)
        print("takeover", json.dumps(results["takeover"], indent=1), flush=True)
        estates = [f"burst{i}" for i in range(50)]
        for total in ((300,) if quick else (1000, 5000)):
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
    print(json.dumps(main(parser.parse_args().quick), indent=2))
