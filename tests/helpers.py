"""Helpers for tests that drive the local stack as a user would: kubectl, the operator process."""
from __future__ import annotations

import contextlib
import http.server
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import procs
import stack
import yaml
from localhttp import serve_in_thread

CHART = Path(__file__).resolve().parent.parent / "charts" / "opex-operator"


class Kubectl:
    """``kubectl --kubeconfig=...`` with JSON helpers. Raises AssertionError on failure when check=True."""

    def __init__(self, kubeconfig: Path):
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
                              capture_output=True, text=True, input=input, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def json(self, *args: str) -> dict[str, Any]:
        return json.loads(self(*args, "-o", "json").stdout)

    def apply(self, manifest: str, namespace: str, check: bool = True) -> subprocess.CompletedProcess:
        return self("apply", "-n", namespace, "-f", "-", input=manifest, check=check)

    def create(self, manifest: str, namespace: str, check: bool = True) -> subprocess.CompletedProcess:
        return self("create", "-n", namespace, "-f", "-", input=manifest, check=check)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        return self.json("get", kind, name, "-n", namespace)

    def events(self, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
        items = self.json("get", "events", "-n", namespace)["items"]
        return [e for e in items if name is None or e["involvedObject"]["name"] == name]

    def delete_opex_objects(self, namespace: str) -> None:
        """Delete the opex objects of ``namespace``; drop finalizers no operator is left to remove."""
        if self("delete", "opex", "--all", "-n", namespace, "--wait=true", "--timeout=30s", check=False).returncode:
            self.drop_finalizers(namespace)

    def drop_finalizers(self, namespace: str) -> None:
        """Remove the finalizers of the opex objects of ``namespace``, for when no operator is left to."""
        for item in self.json("get", "opex", "-n", namespace)["items"]:
            self("patch", item["kind"].lower(), item["metadata"]["name"], "-n", namespace, "--type=merge",
                 "-p", '{"metadata":{"finalizers":null}}', check=False)


class Helm:
    """The ``helm`` CLI on ``charts/opex-operator`` (or another chart directory)."""

    def __init__(self, binary: Path, chart: Path = CHART):
        self.binary, self.chart = binary, chart

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(self.binary), *args], capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def template(self, *values: Path | str, sets: tuple[str, ...] = (), strings: tuple[str, ...] = (),
                 namespace: str = "opex-system", release: str = "opex",
                 check: bool = True) -> list[dict[str, Any]] | subprocess.CompletedProcess:
        """Rendered manifests (a list of objects); with check=False the process, to read a refusal.
        ``sets`` go to ``--set`` (helm types them: ``123`` is a number), ``strings`` to ``--set-string``."""
        args = ["template", release, str(self.chart), "--namespace", namespace]
        for v in values:
            args += ["-f", str(v)]
        for s in sets:
            args += ["--set", s]
        for s in strings:
            args += ["--set-string", s]
        proc = self.run(*args, check=check)
        if not check:
            return proc
        return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def argocd_health(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) as Argo CD computes them with the chart's Lua health check, in Lua 5.1
    (Argo CD's gopher-lua dialect), ``obj`` being the object as Argo CD passes it."""
    from lupa import lua51

    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute((CHART / "docs" / "argocd" / "health.lua").read_text())
    return hs["status"], hs["message"]


RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def chart_service_account(kubectl: Kubectl, helm: Helm, workdir: Path, namespace: str, release: str,
                          sets: tuple[str, ...] = ()) -> Path:
    """Install only the chart's ServiceAccount and RBAC (release ``release`` in ``namespace``) and
    return a kubeconfig that authenticates as that ServiceAccount with a token from the TokenRequest
    API: the operator then runs with exactly the chart's permissions, as its Pod would."""
    docs = helm.template(sets=sets, namespace=namespace, release=release)
    if kubectl("get", "namespace", namespace, check=False).returncode:
        kubectl("create", "namespace", namespace)
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all([d for d in docs if d["kind"] in RBAC_KINDS]))
    # the operator's (the chart also makes a plan-Job runner's in each namespace DriftChecks run Jobs in)
    (sa,) = {d["spec"]["template"]["spec"]["serviceAccountName"] for d in docs if d["kind"] == "Deployment"}
    token = kubectl("create", "token", sa, "-n", namespace, "--duration=24h").stdout.strip()
    admin = yaml.safe_load(kubectl.kubeconfig.read_text())
    config = {"apiVersion": "v1", "kind": "Config", "current-context": sa, "clusters": admin["clusters"],
              "users": [{"name": sa, "user": {"token": token}}],
              "contexts": [{"name": sa, "context": {"cluster": admin["clusters"][0]["name"], "user": sa}}]}
    path = workdir / f"kubeconfig-{release}"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


ADMISSION_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def admission_policies(kubectl: Kubectl, helm: Helm, run: str, severities: str = "{critical,high}"):
    """A fixture's body: the chart's admission policies (release ``adm<run>``) applied, the named-approvals
    one bound to namespaces labelled ``e2e-admission=<run>``, the two-person rule to those labelled
    ``e2e-two-person=<run>`` (the rest of the suite runs without them); yields them, then deletes them."""
    # label values as strings: a run id of digits only (one in 17 of uuid4's 6 hex digits) would
    # otherwise reach the chart's schema as a number, which it rightly refuses
    docs = helm.template(release=f"adm{run}", sets=(
        "admission.twoPersonRule.enabled=true", f"admission.twoPersonRule.severities={severities}"), strings=(
        f"admission.namespaceSelector.matchLabels.e2e-admission={run}",
        f"admission.twoPersonRule.namespaceSelector.matchLabels.e2e-two-person={run}"))
    chosen = [d for d in docs if d["kind"] in ADMISSION_KINDS]
    manifest = yaml.safe_dump_all(chosen)
    kubectl("apply", "-f", "-", input=manifest)
    yield chosen
    kubectl("delete", "-f", "-", "--ignore-not-found", input=manifest)


def admitted_people(kubectl: Kubectl, namespace: str, run: str, users: tuple[str, ...], two_person: bool = False) -> None:
    """Put ``namespace`` under the policies of :func:`admission_policies` (and the two-person rule), let
    ``users`` create and patch the opex kinds there (RBAC bound to their usernames, as a cluster binds
    people), and wait until the API server enforces the policies there (its informers take a moment)."""
    kubectl("label", "namespace", namespace, f"e2e-admission={run}", *([f"e2e-two-person={run}"] if two_person else []))
    kubectl("create", "role", "oncall", "-n", namespace, "--verb=get,list,watch,create,patch,update",
            "--resource=incidents.opex.dev,driftchecks.opex.dev,rollbacks.opex.dev")
    kubectl("create", "rolebinding", "oncall", "-n", namespace, "--role=oncall", *[f"--user={u}" for u in users])
    probe = json.dumps({"apiVersion": "opex.dev/v1alpha1", "kind": "Incident",
                        "metadata": {"name": "probe", "annotations": {"opex.dev/created-by": "someone-else"}},
                        "spec": {"type": "DeploymentFailure", "severity": "critical", "title": "probe",
                                 "environment": "production", "targets": {"lambda": {"functionNames": ["probe"]}}}})
    wait_for(lambda: "must be your own username" in kubectl("--as", users[0], "create", "-n", namespace, "--dry-run=server",
                                                            "-f", "-", check=False, input=probe).stderr,
             timeout=30, what="the admission policies enforced")


def serve_fake_aws(host: str = "127.0.0.1"):
    """A fixture's body: moto's server in this process on ``host``; yields its URL, then stops it."""
    import fakeaws

    server, url = fakeaws.start(host=host)
    yield url
    server.stop()


def use_fake_aws(url: str, monkeypatch) -> str:
    """Reset the fake AWS at ``url`` (moto's server) and point this process's boto3 at it; returns ``url``."""
    import fakeaws

    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).close()
    for key, value in fakeaws.aws_env(url).items():
        monkeypatch.setenv(key, value)
    return url


def forbidden_lines(log: str) -> list[str]:
    """Lines of an operator log that report a refused Kubernetes call (HTTP 403)."""
    return [line for line in log.splitlines() if "forbidden" in line.lower()]


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")


def reconciled(kubectl: Kubectl, kind: str, name: str, namespace: str, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until the operator has reconciled the object's current generation; returns its status.

    The way to assert that something did NOT happen: a pass over the latest spec has run."""
    def done():
        obj = kubectl.get(kind, name, namespace)
        status = obj.get("status") or {}
        return status if status.get("observedGeneration") == obj["metadata"]["generation"] else None
    return wait_for(done, timeout=timeout, what=f"{kind} {name} reconciled")


def bump(kubectl: Kubectl, kind: str, name: str, namespace: str, patch: str) -> dict[str, Any]:
    """Apply a spec merge ``patch`` and wait until the operator reconciled it; returns the status."""
    kubectl("patch", kind, name, "-n", namespace, "--type=merge", "-p", patch)
    return reconciled(kubectl, kind, name, namespace)


class OperatorProcess:
    """``python -m opex_operator`` on the local stack, started and stopped by its own pid."""

    def __init__(self, kubeconfig: Path, aws_url: str, terraform: str, workdir: Path, namespaces: str,
                 extra_env: dict[str, str] | None = None, alert_intake: bool = False):
        self.workdir = workdir
        self.log = workdir / "operator.log"
        self.metrics_port, self.health_port = procs.free_port(), procs.free_port()
        self.alert_port = procs.free_port() if alert_intake else None
        self.token_file = stack.intake_token(workdir / "alert-intake-token") if alert_intake else None
        self.env = stack.operator_env(kubeconfig, aws_url, self.metrics_port, self.health_port, terraform, workdir,
                                      namespaces=namespaces, alert_port=self.alert_port, token_file=self.token_file)
        self.env["OPEX_RESTART_SPREAD"] = "1"  # restarts in tests: no need to spread a handful of objects
        self.env["OPEX_SHARED_READ_SECONDS"] = "0"  # tests reuse names on a reset moto: no read may carry over
        self.env.update(extra_env or {})
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> None:
        start_together([self], timeout)

    def stop(self) -> None:
        if self.proc is not None:
            procs.terminate(self.proc.pid, 20.0, self.proc)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to finish what it was doing."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    @property
    def intake_url(self) -> str:
        """The Alertmanager intake's URL (operators started with ``alert_intake=True``)."""
        return f"http://127.0.0.1:{self.alert_port}/alerts"

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def metric(self, name: str, **labels: str) -> float | None:
        """Value of one sample of ``/metrics`` (exact name and labels), or None when absent."""
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(self.metrics()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
        return None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_together(operators: list[OperatorProcess], timeout: float = 60.0) -> None:
    """Start the operator processes side by side (each takes seconds to import and configure, most of
    it CPU), then wait until every one answers its liveness probe."""
    for op in operators:
        op.proc = procs.spawn([sys.executable, "-m", "opex_operator"], op.log, env=op.env, cwd=op.workdir)
    for op in operators:
        procs.wait_http(f"http://127.0.0.1:{op.health_port}/healthz", timeout, op.proc, op.log)


@contextlib.contextmanager
def webhook_server(status_for: Callable[[dict[str, Any]], int] = lambda payload: 204):
    """A local HTTP endpoint recording (path, JSON payload) of every POST; yields (url_base, received)."""
    received: list[tuple[str, dict[str, Any]]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, payload))
            self.send_response(status_for(payload))
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    serve_in_thread(server)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
