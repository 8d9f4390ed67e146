"""What the benchmarks share: the local stack (control plane, moto in this process, the operator as a
process), a watch that timestamps status changes as they reach a client, and small statistics.

Figures only, never pass/fail: every benchmark prints and returns numbers, and ``bench/run.py``
writes them beside their targets into docs/benchmarks.md.
"""
from __future__ import annotations

import json
import os
import queue
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "hack"), str(ROOT / "tests")]

import controlplane  # noqa: E402
import fakeaws  # noqa: E402
import terraform_cli  # noqa: E402
from helpers import Kubectl, OperatorProcess  # noqa: E402

NAMESPACE = "bench"
# moto has no quotas: the budget is raised so the figures show the operator's own overhead.
UNLIMITED = ",".join(f"{s}=100000" for s in ("logs", "logs:FilterLogEvents", "logs:GetLogEvents", "cloudtrail",
                                              "cloudtrail:LookupEvents", "lambda", "lambda:GetFunction",
                                              "codepipeline", "codebuild", "sns", "sts", "s3"))
# The operator's default (the tests' helper turns sharing off): an alert storm's identical reads are
# made once. Every benchmark's estates have names of their own, so nothing carries over between them.
SHARED_READ_SECONDS = "10"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "p95": percentile(values, 0.95), "p99": percentile(values, 0.99),
            "min": min(values), "max": max(values), "n": len(values)}


@dataclass
class Stack:
    """A running local stack for a benchmark; ``operator`` may be restarted with other settings."""

    work: Path
    cp: Any
    server: Any
    url: str
    kubectl: Kubectl
    terraform: str
    operator: OperatorProcess | None = None

    def start_operator(self, **env: str) -> OperatorProcess:
        self.stop_operator()
        workdir = self.work / f"operator-{int(time.monotonic() * 1000)}"
        workdir.mkdir()
        self.operator = OperatorProcess(self.cp.kubeconfig, self.url, self.terraform, workdir, NAMESPACE,
                                        {"OPEX_AWS_RATES": UNLIMITED, "OPEX_SHARED_READ_SECONDS": SHARED_READ_SECONDS,
                                         **env})
        self.operator.start()
        return self.operator

    def stop_operator(self) -> None:
        if self.operator is not None:
            self.operator.stop()
            self.operator = None

    def stop(self) -> None:
        self.stop_operator()
        self.cp.stop()
        self.server.stop()


def start_stack(work: Path) -> Stack:
    terraform = terraform_cli.ensure_terraform()
    server, url = fakeaws.start()
    os.environ.update(fakeaws.aws_env(url))
    cp = controlplane.ControlPlane(work / "cp").start()
    kubectl = Kubectl(cp.kubeconfig)
    kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    kubectl("create", "namespace", NAMESPACE)
    return Stack(work, cp, server, url, kubectl, terraform)


def api(stack: Stack):
    """A kubernetes client (CustomObjectsApi) on the stack's control plane."""
    import kubernetes

    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(stack.cp.kubeconfig), client_configuration=config)
    config.connection_pool_maxsize = 32
    return kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(config))


class Watch:
    """Timestamps (time.monotonic) when each object of ``plural`` first satisfies ``done(obj)``, as a
    client watching the API server sees it (``seen``); and, per name of ``marks`` (more predicates),
    when it first satisfies that one (``marked[mark]``). One watch for all: each watching client
    costs the API server and this process CPU."""

    def __init__(self, stack: Stack, plural: str, done: Callable[[dict], bool], namespace: str = NAMESPACE,
                 **marks: Callable[[dict], bool]):
        import kubernetes

        self.seen: dict[str, float] = {}
        self.marked: dict[str, dict[str, float]] = {mark: {} for mark in marks}
        self.last: dict[str, dict] = {}  # each object as last seen
        self._marks = marks
        self._done, self._plural, self._namespace, self._api = done, plural, namespace, api(stack)
        self._stop = threading.Event()
        self._kubernetes = kubernetes
        self._ready = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.get(timeout=30)

    def _run(self) -> None:
        w = self._kubernetes.watch.Watch()
        listed = self._api.list_namespaced_custom_object("opex.dev", "v1alpha1", self._namespace, self._plural)
        self._ready.put(True)
        rv = listed["metadata"]["resourceVersion"]
        while not self._stop.is_set():
            for event in w.stream(self._api.list_namespaced_custom_object, "opex.dev", "v1alpha1", self._namespace,
                                  self._plural, resource_version=rv, timeout_seconds=5):
                obj = event["object"]
                rv = obj["metadata"]["resourceVersion"]
                name = obj["metadata"]["name"]
                now = time.monotonic()
                self.last[name] = obj
                if name not in self.seen and self._done(obj):
                    self.seen[name] = now
                for mark, done in self._marks.items():
                    if name not in self.marked[mark] and done(obj):
                        self.marked[mark][name] = now
                if self._stop.is_set():
                    return

    def wait(self, names: set[str], timeout: float, mark: str | None = None) -> bool:
        """Whether every one of ``names`` satisfied ``done`` (or the predicate ``mark``) within ``timeout`` s."""
        seen = self.seen if mark is None else self.marked[mark]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if names <= seen.keys():
                return True
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        self._stop.set()


def assessed(obj: dict) -> bool:
    return any(c["type"] == "Assessed" and c["status"] == "True"
               for c in (obj.get("status") or {}).get("conditions", []))


def incident(name: str, prefix: str, severity: str = "high", environment: str = "production") -> dict:
    """A DeploymentFailure Incident on the estate ``estate.deployment_failure(prefix)`` seeds."""
    return {"apiVersion": "opex.dev/v1alpha1", "kind": "Incident", "metadata": {"name": name},
            "spec": {"type": "DeploymentFailure", "severity": severity, "environment": environment,
                     "title": f"{prefix} deployment failed",
                     "targets": {"pipeline": {"name": f"{prefix}-pipeline"}, "codeBuild": {"project": f"{prefix}-deploy"},
                                 "lambda": {"functionNames": [f"{prefix}-api"]},
                                 "cloudTrail": {"logGroupName": "CloudTrail/management-events"}}}}


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def aws_calls(op: OperatorProcess) -> float:
    """Every AWS call the operator made so far (opex_aws_api_calls_total, all labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(s.value for f in text_string_to_metric_families(op.metrics()) if f.name == "opex_aws_api_calls"
               for s in f.samples if s.name == "opex_aws_api_calls_total")


def aws_calls_by_operation(op: OperatorProcess) -> dict[tuple[str, str], float]:
    """AWS calls the operator made so far, by (service, operation)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(op.metrics()):
        if family.name == "opex_aws_api_calls":
            for s in family.samples:
                if s.name == "opex_aws_api_calls_total":
                    key = (s.labels["service"], s.labels["operation"])
                    out[key] = out.get(key, 0) + s.value
    return out


WRITES = ("POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION")


def apiserver_requests(stack: Stack) -> dict[tuple[str, str], float]:
    """Requests kube-apiserver has served so far, by (verb, resource[/subresource]), from its own
    ``apiserver_request_total`` on /metrics (every client's: subtract the benchmark's own)."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = stack.cp.get("/metrics")
    if status != 200:
        raise RuntimeError(f"kube-apiserver /metrics: HTTP {status}")
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "apiserver_request":
            for s in family.samples:
                if s.name == "apiserver_request_total":
                    resource = s.labels.get("resource", "") + (f"/{s.labels['subresource']}"
                                                               if s.labels.get("subresource") else "")
                    key = (s.labels.get("verb", ""), resource)
                    out[key] = out.get(key, 0) + s.value
    return out


def control_plane_pids(stack: Stack) -> dict[str, int]:
    """The pids of etcd and kube-apiserver (the control plane records them)."""
    return json.loads((stack.cp.state_dir / "controlplane.json").read_text())["pids"]


@dataclass
class Usage:
    """What the stack has used so far: CPU seconds per process, API requests, the operator's AWS calls."""

    cpu: dict[str, float]
    requests: dict[tuple[str, str], float]
    aws_calls: float
    at: float


def usage(stack: Stack) -> Usage:
    """A snapshot of :class:`Usage`: CPU of the operator, kube-apiserver, etcd and this process (which
    hosts moto's server and the benchmark's clients)."""
    pids = {"operator": stack.operator.proc.pid, **control_plane_pids(stack), "moto and the benchmark": os.getpid()}
    return Usage(cpu={name: process_cpu_seconds(pid) for name, pid in pids.items()},
                 requests=apiserver_requests(stack), aws_calls=aws_calls(stack.operator), at=time.monotonic())


def cost(before: Usage, after: Usage, incidents: int, own: dict[tuple[str, str], float] | None = None) -> dict:
    """Per Incident between two snapshots: CPU milliseconds per process, API requests by verb and
    resource (``own``: the benchmark's own requests, subtracted), writes in all, AWS calls.

    Requests a watching client makes (LIST/WATCH) and the API server's own (leases) are left out:
    only requests on the opex kinds and on Events count.
    """
    own = own or {}
    requests: dict[str, float] = {}
    for key, n in after.requests.items():
        verb, resource = key
        if resource.split("/")[0] not in ("incidents", "driftchecks", "rollbacks", "events", "configmaps"):
            continue
        delta = n - before.requests.get(key, 0) - own.get(key, 0)
        if delta > 0 and verb not in ("WATCH", "LIST"):
            requests[f"{verb} {resource}"] = delta / incidents
    writes = sum(v for k, v in requests.items() if k.split()[0] in WRITES)
    return {"incidents": incidents, "seconds": after.at - before.at,
            "cpu_ms": {name: 1000 * (after.cpu[name] - before.cpu[name]) / incidents for name in after.cpu},
            "api_requests": dict(sorted(requests.items())), "api_writes": writes,
            "aws_calls": (after.aws_calls - before.aws_calls) / incidents}
