"""The operator's alerts and dashboard on the real Prometheus: the shipped rules pass promtool with
series the running operator really emits, and every dashboard panel returns data after a scenario."""
from __future__ import annotations

import json
import math
import re
import subprocess
import time
import uuid
from pathlib import Path

import yaml

from prometheus_client.parser import text_string_to_metric_families

import estate
import grafana_dashboard
import monitoring_build
import tfrepo
from helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "charts" / "opex-operator" / "files" / "prometheus-rules.yaml"
RULE_TESTS = ROOT / "tests" / "promtool" / "rules_test.yaml"
DASHBOARD = ROOT / "charts" / "opex-operator" / "files" / "grafana-dashboard.json"
SERIES = re.compile(r"\b(opex_[a-z_]+)\b")


def scraped_names(text: str) -> set[str]:
    """Every series name a /metrics text exposes, as PromQL sees them (counters with _total,
    histograms with _bucket/_count/_sum), families with no sample yet included."""
    names = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
        if family.type == "histogram":
            names |= {f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum")}
    return names


def test_the_shipped_rules_pass_promtool_with_series_the_running_operator_emits(operator):
    live = scraped_names(operator.metrics())
    for source in (RULES, RULE_TESTS):
        used = set(SERIES.findall(source.read_text()))
        assert used and used <= live, f"{source.name} names series the operator does not emit: {used - live}"
    promtool = str(monitoring_build.prometheus_dir() / "promtool")
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    shipped = sum(len(group["rules"]) for group in yaml.safe_load(RULES.read_text())["groups"])
    assert check.returncode == 0 and f"SUCCESS: {shipped} rules found" in check.stdout, check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent, capture_output=True,
                          text=True)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr


def test_prometheus_evaluates_the_shipped_rules_on_the_operator(operator, monitoring):
    def rules() -> dict[str, dict]:
        found = {r["name"]: r for g in monitoring.query_rules() for r in g["rules"]}
        return found if all(r.get("lastEvaluation", "").startswith("2") and r["health"] == "ok"
                            for r in found.values()) and found else {}

    evaluated = wait_for(rules, timeout=30, what="every shipped rule evaluated")
    shipped = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert "OpexOperatorAbsent" in shipped and set(evaluated) == shipped
    # The first evaluation may come before the first scrape (both start with Prometheus): once scraped,
    # up{job="opex-operator"} exists and the rule is inactive.
    wait_for(lambda: rules().get("OpexOperatorAbsent", {}).get("state") == "inactive", timeout=60,
             what="OpexOperatorAbsent inactive once the operator is scraped")
    assert monitoring.query('up{job="opex-operator"}')[0]["value"][1] == "1"


def finite(result: list[dict]) -> bool:
    return any(not math.isnan(float(sample["value"][1])) for sample in result)


def test_every_dashboard_panel_returns_data_after_an_incident_a_drift_check_and_an_alert(
        kubectl, namespace, aws, operator, monitoring, fire, terraform_bin, tmp_path):
    # Prometheus has scraped the operator before the scenario, so what happens in it is an increase.
    wait_for(lambda: finite(monitoring.query('count_over_time(up{job="opex-operator"}[1m]) >= 2')), timeout=30,
             what="two scrapes of the operator")
    started = time.monotonic()
    # An incident the operator resolves on its own (Auto): assessment, a page, a Rollback, verification.
    scenario = estate.deployment_failure("checkout")
    incident = {"apiVersion": "opex.dev/v1alpha1", "kind": "Incident", "metadata": {"name": "checkout"},
                "spec": {"type": "DeploymentFailure", "severity": "high", "environment": "production",
                         "title": "checkout deploy failed", "remediation": {"mode": "Auto"},
                         "targets": {"lambda": {"functionNames": [scenario.function]}}}}
    kubectl.apply(json.dumps(incident), namespace)
    # A production DriftCheck run now, against a Terraform state on moto that the committed configuration changes.
    repo = tfrepo.Repo(tmp_path)
    repo.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "small"}}, "network: small")
    config = tfrepo.backend_config(tfrepo.new_bucket())
    tfrepo.terraform(terraform_bin, repo.clone / "network", *tfrepo.init_args(config))
    tfrepo.terraform(terraform_bin, repo.clone / "network", "apply", "-auto-approve", "-input=false", "-no-color")
    repo.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "large"}}, "network: large")
    check = {"apiVersion": "opex.dev/v1alpha1", "kind": "DriftCheck",
             "metadata": {"name": "network", "annotations": {"opex.dev/run-requested": uuid.uuid4().hex[:8]}},
             "spec": {"schedule": ["0 9 * * *"], "environment": "production", "backendConfig": config,
                      "source": {"git": {"url": repo.url, "ref": "main", "path": "network"}}}}
    kubectl.apply(json.dumps(check), namespace)
    # An alert through Alertmanager to the intake.
    fire([{"labels": {"alertname": "DashboardProbe", "incident_type": "PipelineFailure",
                      "pipeline": "orders-pipeline", "namespace": namespace},
           "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}])

    wait_for(lambda: (kubectl.get("incident", "checkout", namespace).get("status") or {}).get("phase") == "Resolved",
             timeout=90, what="the incident resolved")
    wait_for(lambda: ((kubectl.get("driftcheck", "network", namespace).get("status") or {}).get("lastResult") or {})
             .get("outcome") == "DriftDetected", timeout=90, what="the drift check's run")
    wait_for(lambda: kubectl.json("get", "incidents", "-n", namespace, "-l", "opex.dev/source=alertmanager")["items"],
             timeout=30, what="the alert's Incident")
    # Nobody acknowledges an Incident in this scenario, and the Incident lifecycle records MTTA only once it
    # honours acknowledgements (issue 25's second part, after the controller's redesign): until then its
    # quantiles are NaN. Remove this exception with that change, and acknowledge one Incident above.
    pending = {"Time to acknowledge (MTTA) over the range"}
    panels = [(title, expr) for title, expr in grafana_dashboard.queries(json.loads(DASHBOARD.read_text()))
              if title not in pending]
    assert len(panels) >= 25

    def without_data() -> list[str]:
        window = f"{int(time.monotonic() - started) + 60}s"
        empty = []
        for title, expr in panels:
            promql = expr.replace("$__rate_interval", window).replace("$__range", window)
            if not finite(monitoring.query(promql)):
                empty.append(f"{title}: {promql}")
        return empty

    # Prometheus scrapes every second; a series born in the scenario needs two samples for increase().
    try:
        wait_for(lambda: not without_data(), timeout=30, interval=1.0, what="every panel with data")
    except AssertionError:
        empty = without_data()
        assert not empty, "panels without data:\n" + "\n".join(empty)
