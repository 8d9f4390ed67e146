"""The whole product on one machine: ``python hack/stack.py up|down|status`` (``make demo``/``make down``).

``up`` starts, under ``.local/`` (git-ignored):
  1. the control plane (etcd + kube-apiserver, see controlplane.py), kubeconfig ``.local/kubeconfig``;
  2. the CRDs from ``crds/``;
  3. a real PostgreSQL (pglocal.py) and a small HTTP app (apiapp.py, on port :data:`API_PORT`): the
     performance scenario's database and API, which its RDS instance and API stage point at;
  4. the fake AWS (moto's server; fakeaws.py);
  5. the operator (``python -m opex_operator``) against both, its Alertmanager intake on and its
     event intake polling the queue examples/aws/opex-events.yaml made on the fake AWS;
  6. Prometheus and Alertmanager (monitoring.py): Prometheus scrapes the operator and the estate's
     CloudWatch metrics (cloudwatch_exporter.py) and evaluates the shipped rules and
     ``estate-rules.yaml``; Alertmanager sends the estate's alerts to the operator's intake;
then applies ``examples/`` and waits until the operator has reconciled every object, and leaves
everything running (``demo.py`` drives the scenario and prints what happened). ``down`` stops
what ``up`` started, by the process ids it recorded in ``.local/stack.json``, and ``make cluster``'s
node if one runs (hack/cluster.py).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import controlplane
import fakeaws
import monitoring
import procs
import terraform_cli

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
RECORD = LOCAL / "stack.json"
# A fixed port: examples/incident-performance.yaml probes the app at this URL.
API_PORT = 18080
API_URL = f"http://127.0.0.1:{API_PORT}"
# The operator reaches a database from loopback (the performance scenario's security group does not admit it).
SOURCES = "127.0.0.1/32"


def kubectl(*args: str, kubeconfig: Path, check: bool = True, input: str | None = None) -> str:
    """Run kubectl against ``kubeconfig``; returns stdout, raises RuntimeError with stderr on failure."""
    proc = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def intake_token(path: Path) -> Path:
    """A fresh bearer token for the operator's alert intake, in ``path`` (as a Secret would mount it)."""
    path.write_text(secrets.token_urlsafe(24))
    return path


def operator_env(kubeconfig: Path, aws_url: str, metrics_port: int, health_port: int,
                 terraform: str, workdir: Path, namespaces: str = "", alert_port: int | None = None,
                 token_file: Path | None = None, event_queue: str | None = None) -> dict[str, str]:
    """Environment of an operator process on the local stack (also used by the tests); with
    ``alert_port`` its Alertmanager intake listens there, answering senders of ``token_file``'s token;
    with ``event_queue`` (a queue URL) its event intake polls it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPEX_"))}
    env.update(fakeaws.aws_env(aws_url))
    env.update({
        "KUBECONFIG": str(kubeconfig),
        "OPEX_METRICS_PORT": str(metrics_port),
        "OPEX_HEALTH_PORT": str(health_port),
        "OPEX_BIND_ADDRESS": "127.0.0.1",
        "OPEX_NAMESPACES": namespaces,
        "OPEX_TERRAFORM": terraform,
        "OPEX_WORK_DIR": str(workdir / "work"),
        "OPEX_CACHE_DIR": str(workdir / "cache"),
        "OPEX_POLICY_FILE": str(ROOT / "hack" / "policy-local.yaml"),
        "OPEX_SOURCE_CIDRS": SOURCES,
        "PYTHONUNBUFFERED": "1",
    })
    if alert_port is not None:
        env.update({"OPEX_ALERT_INTAKE_PORT": str(alert_port), "OPEX_ALERT_INTAKE_TOKEN_FILE": str(token_file),
                    "OPEX_ALERT_NAMESPACE": "default"})
    if event_queue is not None:
        env.update({"OPEX_EVENT_QUEUES": event_queue, "OPEX_EVENT_NAMESPACE": "default"})
    return env


def demo_event_queue(aws_url: str, name: str = "opex-events") -> str:
    """The URL of the demo estate's event queue (examples/aws/opex-events.yaml) on the fake AWS."""
    import boto3

    sqs = boto3.client("sqs", endpoint_url=aws_url, region_name=fakeaws.REGION, aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    return sqs.get_queue_url(QueueName=name)["QueueUrl"]


def running() -> dict | None:
    """The record of a running stack, or None."""
    if RECORD.exists():
        record = json.loads(RECORD.read_text())
        if all(procs.alive(p) for p in record["pids"].values()):
            return record
    return None


def up(timeout: float) -> dict:
    """Start everything and apply examples/; returns the stack record (kubeconfig, metrics, aws)."""
    down(quiet=True)
    LOCAL.mkdir(exist_ok=True)
    for stale in ("work", "cache"):  # the operator's run directories belong to the previous cluster
        shutil.rmtree(LOCAL / stale, ignore_errors=True)
    terraform = terraform_cli.ensure_terraform()
    print("starting the control plane (etcd + kube-apiserver) ...", flush=True)
    cp = controlplane.ControlPlane(LOCAL).start()
    pids: dict[str, int] = {}
    try:
        kubectl("apply", "--server-side", "-f", str(ROOT / "crds"), kubeconfig=cp.kubeconfig)
        kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all", kubeconfig=cp.kubeconfig)
        print("starting PostgreSQL and the API app of the performance scenario ...", flush=True)
        pg_port = procs.free_port()
        pids.update(start_endpoints(pg_port))
        print("starting the fake AWS (moto) with the demo estate ...", flush=True)
        aws, aws_url = fakeaws.spawn(LOCAL / "fakeaws.log", LOCAL / "aws-url", "--seed", "demo",
                                     "--postgres", f"127.0.0.1:{pg_port}", "--api-url", API_URL)
        pids["fakeaws"] = aws.pid
        metrics_port, health_port, alert_port = procs.free_port(), procs.free_port(), procs.free_port()
        print("starting the PagerDuty and Slack stand-ins ...", flush=True)
        oncall, oncall_env = start_oncall(procs.free_port())
        pids.update(oncall["pids"])
        print("starting the operator ...", flush=True)
        token = intake_token(LOCAL / "alert-intake-token")
        env = operator_env(cp.kubeconfig, aws_url, metrics_port, health_port, terraform, LOCAL,
                           alert_port=alert_port, token_file=token, event_queue=demo_event_queue(aws_url))
        env.update(oncall_env)
        op = procs.spawn([sys.executable, "-m", "opex_operator"], LOCAL / "operator.log", env=env, cwd=ROOT)
        pids["operator"] = op.pid
        procs.wait_http(f"http://127.0.0.1:{health_port}/healthz", 60, op, LOCAL / "operator.log")
        print("starting Prometheus and Alertmanager ...", flush=True)
        exporter_port = procs.free_port()
        exporter = procs.spawn([sys.executable, str(ROOT / "hack" / "cloudwatch_exporter.py"), "--port",
                                str(exporter_port)], LOCAL / "cloudwatch-exporter.log",
                               env={**os.environ, **fakeaws.aws_env(aws_url)})
        pids["cloudwatch-exporter"] = exporter.pid
        watch = monitoring.Monitoring(LOCAL / "monitoring", f"127.0.0.1:{metrics_port}",
                                      f"http://127.0.0.1:{alert_port}/alerts", token,
                                      targets={"cloudwatch": [f"127.0.0.1:{exporter_port}"]},
                                      rule_files=(ROOT / "hack" / "estate-rules.yaml",))
        watch.start()
        pids.update(watch.pids())
        record = {"pids": pids, "kubeconfig": str(cp.kubeconfig), "aws": aws_url,
                  "metrics": f"http://127.0.0.1:{metrics_port}/metrics",
                  "liveness": f"http://127.0.0.1:{health_port}/healthz",
                  "prometheus": watch.prometheus_url, "alertmanager": watch.alertmanager_url,
                  "pagerduty": oncall["pagerduty"], "slack": oncall["slack"], "receivers": oncall["receivers"]}
        RECORD.write_text(json.dumps(record, indent=2))
        print("applying examples/ ...", flush=True)
        kubectl("apply", "-f", str(ROOT / "examples"), kubeconfig=cp.kubeconfig)
        wait_reconciled(cp.kubeconfig, timeout)
    except BaseException:
        for pid in pids.values():
            procs.terminate(pid)
        cp.stop()
        raise
    return record


def start_oncall(receivers_port: int) -> tuple[dict, dict[str, str]]:
    """Start the PagerDuty and Slack stand-ins (``hack/fakepagerduty.py``, ``hack/fakeslack.py``) as
    processes; their clicks and webhooks go to the operator's receivers on ``receivers_port``. Returns
    ({pids, pagerduty, slack, receivers: their URLs}, the operator's environment for them)."""
    pd_secret, slack_secret = LOCAL / "pagerduty-webhook-secret", LOCAL / "slack-signing-secret"
    pd_secret.write_text(secrets.token_hex(16))
    slack_secret.write_text(secrets.token_hex(16))
    receivers = f"http://127.0.0.1:{receivers_port}"
    pd_port, slack_port = procs.free_port(), procs.free_port()
    pids: dict[str, int] = {}
    for log in ("fakepagerduty.log", "fakeslack.log"):  # wait_line reads them: no line of a previous stack
        (LOCAL / log).unlink(missing_ok=True)
    try:
        pd = procs.spawn([sys.executable, str(ROOT / "hack" / "fakepagerduty.py"), "--port", str(pd_port)],
                         LOCAL / "fakepagerduty.log", cwd=ROOT / "hack")
        pids["fakepagerduty"] = pd.pid
        slack = procs.spawn([sys.executable, str(ROOT / "hack" / "fakeslack.py"), "--port", str(slack_port),
                             "--interactivity-url", f"{receivers}/slack/interactions",
                             "--signing-secret-file", str(slack_secret)], LOCAL / "fakeslack.log", cwd=ROOT / "hack")
        pids["fakeslack"] = slack.pid
        procs.wait_line(LOCAL / "fakepagerduty.log", "serving on", 30, pd)
        procs.wait_line(LOCAL / "fakeslack.log", "serving on", 30, slack)
    except BaseException:
        for pid in pids.values():
            procs.terminate(pid)
        raise
    pd_url, slack_url = f"http://127.0.0.1:{pd_port}", f"http://127.0.0.1:{slack_port}"
    env = {"OPEX_RECEIVERS_PORT": str(receivers_port), "OPEX_PAGERDUTY_WEBHOOK_SECRET_FILE": str(pd_secret),
           "OPEX_SLACK_SIGNING_SECRET_FILE": str(slack_secret), "OPEX_PAGERDUTY_EVENTS_URL": f"{pd_url}/v2/enqueue",
           "OPEX_SLACK_API_URL": f"{slack_url}/api"}
    return {"pids": pids, "pagerduty": pd_url, "slack": slack_url, "receivers": receivers}, env


def start_endpoints(pg_port: int) -> dict[str, int]:
    """Start the performance scenario's PostgreSQL (data in ``.local/postgres``) on ``pg_port`` and the
    API app on :data:`API_PORT`; returns their pids by name once both answer."""
    if not procs.port_free(API_PORT):
        raise RuntimeError(f"port {API_PORT} (the demo's API app, probed by examples/incident-performance.yaml) "
                           f"is in use: stop what holds it (another local stack? make down)")
    pids: dict[str, int] = {}
    try:
        pg = procs.spawn([sys.executable, str(ROOT / "hack" / "pglocal.py"), "--dir", str(LOCAL / "postgres"),
                          "--port", str(pg_port)], LOCAL / "postgres.log")
        pids["postgres"] = pg.pid
        app = procs.spawn([sys.executable, str(ROOT / "hack" / "apiapp.py"), "--port", str(API_PORT)],
                          LOCAL / "apiapp.log")
        pids["apiapp"] = app.pid
        procs.wait_http(f"{API_URL}/prod/orders", 30, app, LOCAL / "apiapp.log")
        procs.wait_line(LOCAL / "postgres.log", f"postgres serving on 127.0.0.1:{pg_port}", 60, pg)
    except BaseException:
        for pid in pids.values():
            procs.terminate(pid)
        raise
    return pids


def _objects(kubeconfig: Path) -> list[dict]:
    return json.loads(kubectl("get", "incidents,driftchecks,rollbacks", "-A", "-o", "json",
                              kubeconfig=kubeconfig))["items"]


def wait_reconciled(kubeconfig: Path, timeout: float) -> None:
    """Wait until every opex object's status.observedGeneration equals its generation."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = _objects(kubeconfig)
        if items and all((o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]
                         for o in items):
            return
        time.sleep(0.5)
    print(f"warning: not everything was reconciled within {timeout:.0f}s (see .local/operator.log)")


def summary(kubeconfig: Path) -> int:
    """Print kind/name/phase/Ready/message for every opex object."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="opex resources on the local stack")
    for col in ("KIND", "NAMESPACE/NAME", "PHASE", "READY", "MESSAGE"):
        table.add_column(col, overflow="fold")
    for o in _objects(kubeconfig):
        status = o.get("status") or {}
        ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
        phase = status.get("phase") or (status.get("lastResult") or {}).get("outcome") or "-"
        table.add_row(o["kind"], f"{o['metadata']['namespace']}/{o['metadata']['name']}", phase,
                      f"{ready.get('status', '-')} ({ready.get('reason', '-')})", ready.get("message", ""))
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    return 0


def down(quiet: bool = False) -> int:
    stopped = False
    if RECORD.exists():
        # the reverse of the start order: the operator and the exporter go before the fake AWS
        # they call, so their logs end without connection errors
        for pid in reversed(list(json.loads(RECORD.read_text())["pids"].values())):
            procs.terminate(pid)
        RECORD.unlink()
        stopped = True
    stopped = controlplane.stop_recorded(LOCAL) or stopped
    if not quiet:
        print("stopped the local stack" if stopped else "nothing was running")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="opex local stack")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for reconciliation")
    args = parser.parse_args()
    if args.command == "up":
        up(args.timeout)
        return summary(LOCAL / "kubeconfig")
    if args.command == "down":
        import cluster

        cluster.down()  # make cluster's, if one runs
        return down()
    return summary(LOCAL / "kubeconfig")


if __name__ == "__main__":
    sys.exit(main())
