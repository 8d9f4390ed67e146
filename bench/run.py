"""``make bench``: every benchmark on the local stack, in one run, written to docs/benchmarks.md.

Figures, not tests: nothing here passes or fails. Absolute times on shared machines are noisy, so
each figure that has a reference is measured beside it in the same run (the floor of an
assessment, a bare ``terraform plan``) and reported as a ratio; the machine's load is recorded.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
from pathlib import Path

import driftcheck_vs_plan
import plan_job
import pod_start
import runtime
from common import WRITES

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks.md"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores ({cpu}), {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB"


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def pod_rows(pods: dict) -> list[tuple[str, str, str]]:
    if "skipped" in pods:
        return [("pod start on the local node", f"not measured: {pods['skipped']}", "(reported)")]
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    return [
        (f"a pod of the operator image, create to Running (median of {pods['rounds']}; p95)",
         f"**{ms(pods['pod_running']['p50'])}** ({ms(pods['pod_running']['p95'])})", "(reported)"),
        (f"`opex --help` as a Job, create to Complete vs as a process (median of {pods['rounds']})",
         f"**{ms(pods['job_complete']['p50'])}** vs {ms(pods['process']['p50'])}: a Job costs "
         f"**{ms(pods['job_over_process_p50'])}** more", "(reported: the plan-as-Job overhead)"),
    ]


def plan_job_rows(plans: dict) -> list[tuple[str, str, str]]:
    if "skipped" in plans:
        return [("a DriftCheck plan as a Job vs in the operator", f"not measured: {plans['skipped']}", "(reported)")]
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    return [(f"`opex run driftcheck` round trip, runner Job vs InProcess (median of {plans['rounds']}; p95)",
             f"**{ms(plans['job']['p50'])}** ({ms(plans['job']['p95'])}) vs {ms(plans['in_process']['p50'])} "
             f"({ms(plans['in_process']['p95'])}): a Job costs **{ms(plans['job_over_in_process_p50'])}** more",
             "(reported: bench/plan_job.py)")]


def report(results: dict, drifts: list[dict], pods: dict, started: str, loads: tuple[str, str]) -> str:
    drift = drifts[0]
    lat, burst = results["latency"], results["burst"]
    rows = [
        ("assessment, one Incident at a time (p50 / p95 / p99)",
         f"{lat['ours']['p50'] * 1000:.0f} / {lat['ours']['p95'] * 1000:.0f} / {lat['ours']['p99'] * 1000:.0f} ms; "
         f"floor p50 {lat['floor']['p50'] * 1000:.0f} ms; **{lat['ratio_p50']:.2f}x** the floor", "≤ 1.2x the floor"),
        (f"burst of {burst['count']} Incidents ({burst['estates']} estates)",
         f"all assessed after **{burst['all_assessed_seconds']:.1f} s** ({burst['per_second']:.1f}/s)", "< 30 s"),
        ("a critical Incident created right after the burst",
         f"assessed after **{burst['critical_seconds']:.2f} s** (with {burst['backlog_when_critical_assessed']} of the "
         f"burst still waiting)", "< 2 s; aim < 1 s"),
        *cost_rows(burst),
        ("same burst within the default AWS call budget (real quotas)",
         f"{lat['default_budget']['seconds']:.0f} s for 1,000 assessments of distinct targets, limited by "
         f"{lat['default_budget']['limited_by']}", "(reported)"),
    ]
    for key in sorted(k for k in results if k.startswith("scale_")):
        sc = results[key]
        n, rs = sc["objects"], sc["restart"]
        rows += [
            (f"{n:,} objects at rest: RSS, idle CPU", f"**{sc['rss_mb']:.0f} MB**, **{sc['idle_cpu_percent']:.2f} %** "
             f"of a core", "RSS < 300 MB, idle CPU < 1 % (at 5,000)"),
            (f"{n:,} objects at rest: AWS calls per second", f"**{sc['aws_calls_per_second']:.3f}/s**",
             "a small share of the budget"),
            (f"`/metrics` at {n:,} objects", f"**{sc['metrics_seconds'] * 1000:.1f} ms**", "< 50 ms at 5,000"),
            (f"restart with {n:,} objects", f"healthy after {rs['healthy_seconds']:.1f} s, every object reconciled after "
             f"{rs['all_reconciled_seconds']:.0f} s; first minute: {rs['cpu_percent_first_minute']:.0f} % of a core, "
             f"{rs['aws_calls_first_minute']:.0f} AWS calls", "no burst after a restart"),
        ]
    ha = results["takeover"]
    rows.append((f"takeover: the leader killed (SIGKILL), {ha['lease_seconds']} s Lease (median of {ha['rounds']})",
                 f"the standby holds the Lease after **{ha['lease_taken']['p50']:.1f} s**; an Incident created at the "
                 f"kill is assessed after **{ha['incident_assessed']['p50']:.1f} s**", "within the Lease (+ a pass)"))
    for d, target in zip(drifts, ("≤ 1.5x", "≤ 1.2x")):
        rows.append((f"`opex run driftcheck`, {d['resources']} resources: annotation → result in status (median)",
                     f"{d['annotation -> result in status'] * 1000:.0f} ms vs a bare plan's "
                     f"{d['bare terraform plan'] * 1000:.0f} ms: **{d['ratio_latency_to_plan']:.2f}x** (the request "
                     f"answered, what the CLI waits for: {d.get('annotation -> request answered', float('nan')) * 1000:.0f}"
                     f" ms, {d.get('ratio_answer_to_plan', float('nan')):.2f}x); beyond the run "
                     f"({d['DriftCheck run (source, init, plan)'] * 1000:.0f} ms): the annotation's PATCH "
                     f"{d['  the annotation PATCH'] * 1000:.0f} ms, annotation → `Running` in status "
                     f"{d['  annotation -> Running in status'] * 1000:.0f} ms, `Running` → result less the run "
                     f"{d['  Running -> result, less the run'] * 1000:.0f} ms; inside the operator "
                     f"{d.get('passes per round', float('nan')):.0f} pass(es) per run, "
                     f"{d.get('pass time beyond the run (mean)', float('nan')) * 1000:.0f} ms of them beyond the run "
                     f"(two status writes, the report), {d.get('work queue wait (mean)', float('nan')) * 1000:.1f} ms "
                     f"in the work queue", target))
    for d in drifts:
        rows.append((f"DriftCheck run vs bare `terraform plan`, {d['resources']} resources (median)",
                     f"{d['DriftCheck run (source, init, plan)'] * 1000:.0f} ms vs {d['bare terraform plan'] * 1000:.0f} ms"
                     f" (`plan -json` {d['bare terraform plan -json'] * 1000:.0f} ms, `git ls-remote` beside the plan "
                     f"{d['git ls-remote (beside the plan)'] * 1000:.0f} ms; Terraform's own plan inside the run "
                     f"{d['terraform plan inside the run (mean)'] * 1000:.0f} ms): **{d['ratio_run_to_plan']:.2f}x**",
                     "≤ 1.10x"))
    rows += pod_rows(pods)
    rows += plan_job_rows(pods.get("plan_job") or {"skipped": "not run"})
    calls = ", ".join(f"{k} {v:.1f}" for k, v in sorted(lat["aws_calls_per_assessment"].items()))  # creation → rest
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    return f"""# Benchmarks

Generated by `make bench` (`bench/run.py`) on {started}; figures, not tests. Machine: {machine()};
load average {loads[0]} at the start and {loads[1]} at the end (other work shares this machine, so
compare the ratios measured side by side more than the absolute times).

## Method

Everything runs on the local stack: the real kube-apiserver and etcd, moto's server in the
benchmark's process, the operator as a process (`python -m opex_operator`, 4 workers). moto has no
quotas, so the operator's AWS call budget is raised for these runs to show the operator's own
overhead; the last assessment row says what the default budget (AWS's documented quotas) allows.

* **Assessment latency**: an Incident is created and a watching client timestamps the moment its
  `Assessed` condition arrives. The *floor*, measured right after each round on the same estate
  and timed the same way (create → `Assessed` seen by a watching client), is the least any
  controller does: a minimal one in a process of its own (`bench/floor.py`, its clients warmed, as
  the operator's are) learns of the Incident from its watch, makes the same AWS reads directly
  through the AWS reader, all at once in threads, and writes one status patch. Both figures hold
  the create and the two watch deliveries; the ratio is what the operator adds (Kopf, the work
  queue, the playbook, the diagnosis, its status). moto's server runs in the benchmark's process,
  and a floor sharing its interpreter lock would be slower than the operator. Each Incident has
  its own estate, so no read is shared between them.
* **Burst**: 1,000 Incidents created by 16 client threads, 20 per estate (an alert storm: identical
  reads within 10 s are made once), then one critical production Incident on another estate.
  *Cost per Incident*: CPU seconds of the operator, kube-apiserver, etcd and the benchmark's own
  process (moto's server and the clients) from /proc, from before the first create until every
  Incident waits for approval, divided by the Incidents; API requests by verb from kube-apiserver's
  own `apiserver_request_total` (the benchmark's creates subtracted; watches and lists left out);
  AWS calls from the operator's `opex_aws_api_calls_total`. On a shared machine the wall times
  move with whatever else runs; the CPU and request counts per Incident are what to compare
  between runs.
* **At rest**: 40 % Incidents waiting for approval, 40 % suspended DriftChecks, 20 % Rollbacks
  waiting for approval; RSS and CPU from /proc over a quiet minute; AWS calls from the operator's
  own `opex_aws_api_calls_total`; `/metrics` the median of ten scrapes.
* **Restart**: the operator is stopped (SIGTERM) and started; healthy is its liveness endpoint,
  reconciled is every object's pass counted in `opex_reconcile_total`.
* **Takeover**: two operator processes with leader election and the chart's Lease; the leader is
  killed with SIGKILL (it releases nothing) and an Incident created at that moment; the standby
  must wait for the Lease to expire.
* **DriftCheck**: `bench/driftcheck_vs_plan.py`, {drift['rounds']} rounds of a bare plan and a
  DriftCheck run of the same configuration (S3 backend with locking on moto), {drift['terraform']},
  on the tests' configuration ({drifts[0]['resources']} resources) and on a larger one
  ({drifts[-1]['resources']}). The run plans the git revision it exported last while it asks the
  remote whether the ref still names it (`git ls-remote`, no fetch; a plan of a moved revision is
  stopped and made again), skips `init` when nothing it depends on changed, and plans once with
  `-json` (drift, changes and diagnostics in one invocation; `show -json` only when there are changes): its own cost
  is fixed, tens of milliseconds, so the ratio falls as the plan grows. The round trip of
  `opex run driftcheck` is timed from the annotation's PATCH (through the API client, as the CLI
  writes it) to the result in status as a watching client sees it, and split where it goes.
* **Pod start**: `bench/pod_start.py` on the local node (`make cluster`'s: containerd, the kubelet,
  the image built from the Dockerfile, `imagePullPolicy: Never`): a pod of the operator image from
  create to its container running, and `opex --help` as a Job (create to `Complete`) against the same
  command as a process here. The difference is what a DriftCheck plan would pay to run as a Job
  (docs/scaling.md §4) before its own work; polled through the API client every 50 ms.

## Figures

| measure | now | target |
|---|---|---|
{table}

AWS calls per Incident one at a time (no read shared), from creation until it waits for a person, by
operation: {calls}.

Raw figures: `docs/benchmarks.json`.
"""


def cost_rows(burst: dict) -> list[tuple[str, str, str]]:
    """The burst's cost per Incident (``runtime.burst``): CPU, API requests, AWS calls."""
    rest, assessed = burst["cost_to_rest"], burst["cost_to_assessed"]
    cpu = rest["cpu_ms"]
    writes = {k: v for k, v in rest["api_requests"].items() if k.split()[0] in WRITES}
    on_object = sum(v for k, v in writes.items() if not k.endswith(" events"))
    reads = ", ".join(f"{k} {v:.1f}" for k, v in rest["api_requests"].items() if k not in writes) or "none"
    return [
        ("operator CPU per Incident in the burst",
         f"**{cpu['operator']:.0f} ms** from creation to waiting for approval "
         f"({assessed['cpu_ms']['operator']:.0f} ms until the last was assessed)", "≤ 25 ms"),
        ("the rest of the machine per Incident in the burst",
         f"kube-apiserver {cpu['kube-apiserver']:.0f} ms, etcd {cpu['etcd']:.0f} ms, moto's server and the "
         f"benchmark's clients {cpu['moto and the benchmark']:.0f} ms of CPU", "(reported)"),
        ("API writes per Incident, creation → waiting for approval",
         f"**{on_object:.1f}** on the Incident and **{rest['api_writes'] - on_object:.1f}** Events: "
         + ", ".join(f"{k} {v:.1f}" for k, v in writes.items()) + f"; reads: {reads}", "≤ 3, Events included"),
        ("AWS calls per Incident in the burst", f"{rest['aws_calls']:.1f} (20 Incidents per estate share their reads; "
         f"one Incident alone makes its own, see below)", "(reported)"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and objects (a smoke run)")
    args = parser.parse_args()
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_start = load()
    results = runtime.main(args.quick)
    rounds = 5 if args.quick else 15
    drifts = [driftcheck_vs_plan.measure(rounds), driftcheck_vs_plan.measure(rounds, resources=500)]
    pods = pod_start.measure(rounds)
    pods["plan_job"] = plan_job.measure(rounds)
    OUT.parent.mkdir(exist_ok=True)
    # the raw figures first: a report that fails to format loses no run
    (OUT.parent / "benchmarks.json").write_text(json.dumps({"runtime": results, "driftcheck": drifts, "pods": pods},
                                                           indent=2))
    OUT.write_text(report(results, drifts, pods, started, (load_start, load())))
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
