"""Prometheus and Alertmanager, the real servers, on loopback for the local stack and the tests.

Prometheus scrapes the operator (job ``opex-operator``, the name the shipped rules match) and any
other targets given, evaluates the shipped rules plus any given, and sends alerts to
Alertmanager. Alertmanager routes alerts that carry an ``incident_type`` label to the operator's
intake (bearer token from a file, as a Secret would give it) and every other alert, the
operator's own included, to a receiver that sends nothing: they stay visible in its API.
Intervals are seconds, not minutes, so a test or the demo sees an alert within seconds.

Binaries come from the cache ``monitoring_build`` fills (``make tools``); nothing is downloaded
here. Processes are stopped by the pid they were started with.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

import monitoring_build
import procs

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "charts" / "opex-operator" / "files" / "prometheus-rules.yaml"
OPERATOR_JOB = "opex-operator"


class Monitoring:
    """One Prometheus and one Alertmanager under ``workdir``.

    ``operator_metrics`` is the operator's ``host:port``; ``intake_url`` and ``token_file`` its
    alert intake; ``targets`` more scrape jobs (job name → ``host:port`` list); ``rule_files``
    rules besides the shipped ones.
    """

    def __init__(self, workdir: Path, operator_metrics: str, intake_url: str, token_file: Path,
                 targets: dict[str, list[str]] | None = None, rule_files: tuple[Path, ...] = (),
                 repeat_interval: str = "4s"):
        self.workdir, self.operator_metrics, self.intake_url, self.token_file = workdir, operator_metrics, intake_url, token_file
        self.targets, self.rule_files, self.repeat_interval = targets or {}, rule_files, repeat_interval
        self.prometheus_port, self.alertmanager_port = procs.free_port(), procs.free_port()
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"

    def alertmanager_config(self) -> dict[str, Any]:
        return {
            "route": {"receiver": "nowhere", "group_by": ["alertname"], "group_wait": "1s", "group_interval": "1s",
                      "repeat_interval": "1h",
                      "routes": [{"receiver": "opex", "matchers": ['incident_type=~".+"'],
                                  "group_by": ["alertname", "namespace"], "group_wait": "1s",
                                  "group_interval": "1s", "repeat_interval": self.repeat_interval}]},
            "receivers": [{"name": "nowhere"},
                          {"name": "opex", "webhook_configs": [{
                              "url": self.intake_url, "send_resolved": True, "max_alerts": 0,
                              "http_config": {"authorization": {"type": "Bearer",
                                                                "credentials_file": str(self.token_file)}}}]}],
        }

    def prometheus_config(self) -> dict[str, Any]:
        jobs = {OPERATOR_JOB: [self.operator_metrics], **self.targets}
        return {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES), *map(str, self.rule_files)],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.alertmanager_port}"]}]}]},
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                               for job, targets in jobs.items()],
        }

    def start(self, timeout: float = 60.0) -> "Monitoring":
        """Write both configs, start both servers, wait until both say they are ready."""
        prom_bin = monitoring_build.prometheus_dir()
        am_bin = monitoring_build.alertmanager_dir()
        for binary in (prom_bin / "prometheus", am_bin / "alertmanager"):
            if not binary.is_file():
                raise RuntimeError(f"{binary} is missing: run make tools (hack/monitoring_build.py builds it)")
        for sub in ("prometheus-data", "alertmanager-data"):
            shutil.rmtree(self.workdir / sub, ignore_errors=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "alertmanager.yml").write_text(yaml.safe_dump(self.alertmanager_config(), sort_keys=False))
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(self.prometheus_config(), sort_keys=False))
        try:
            self.procs["alertmanager"] = procs.spawn([
                str(am_bin / "alertmanager"), f"--config.file={self.workdir / 'alertmanager.yml'}",
                f"--storage.path={self.workdir / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{self.alertmanager_port}",
                "--cluster.listen-address=",  # no HA gossip port
                "--log.level=warn"], self.workdir / "alertmanager.log")
            procs.wait_http(f"{self.alertmanager_url}/-/ready", timeout, self.procs["alertmanager"],
                            self.workdir / "alertmanager.log")
            self.procs["prometheus"] = procs.spawn([
                str(prom_bin / "prometheus"), f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.prometheus_port}", "--log.level=warn"],
                self.workdir / "prometheus.log")
            procs.wait_http(f"{self.prometheus_url}/-/ready", timeout, self.procs["prometheus"],
                            self.workdir / "prometheus.log")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Prometheus first (it sends to Alertmanager), then Alertmanager."""
        for name in ("prometheus", "alertmanager"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                procs.terminate(proc.pid, 10.0, proc)

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items()}

    # -- the servers' HTTP APIs --------------------------------------------------------------------
    def query(self, expr: str) -> list[dict[str, Any]]:
        """Prometheus' instant query ``expr``: the result vector (``metric``, ``value``). Raises
        RuntimeError with Prometheus' error for a query it refuses."""
        url = f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                answer = json.load(resp)
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"Prometheus refused {expr!r}: {err.read().decode()}") from None
        result = answer["data"]["result"]
        return result if answer["data"]["resultType"] == "vector" else [{"metric": {}, "value": result}]

    def query_rules(self) -> list[dict[str, Any]]:
        """Prometheus' rule groups (``/api/v1/rules``): each rule's state, health and last evaluation."""
        with urllib.request.urlopen(f"{self.prometheus_url}/api/v1/rules", timeout=10) as resp:
            return json.load(resp)["data"]["groups"]

    def alerts(self) -> list[dict[str, Any]]:
        """Alertmanager's alerts (``/api/v2/alerts``): labels, annotations, status, fingerprint."""
        with urllib.request.urlopen(f"{self.alertmanager_url}/api/v2/alerts", timeout=10) as resp:
            return json.load(resp)

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Post alerts to Alertmanager as Prometheus does (``/api/v2/alerts``)."""
        request = urllib.request.Request(f"{self.alertmanager_url}/api/v2/alerts", data=json.dumps(alerts).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(request, timeout=10).close()
