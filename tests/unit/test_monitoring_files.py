"""The shipped monitoring files agree with the code: every metric documented with its type and
labels, the dashboard JSON is what hack/grafana_dashboard.py builds, and the rules, their promtool
tests and the dashboard name only metrics the operator defines. (tests/e2e/test_monitoring.py
checks the same names against a live scrape and runs the rules and queries on real servers.)"""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.metrics import MetricWrapperBase

import grafana_dashboard
from opex_operator import metrics

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "charts" / "opex-operator" / "files"
NAME = re.compile(r"\bopex_[a-z_]+\b")
SUFFIXES = ("_bucket", "_count", "_sum")


def defined() -> dict[str, tuple[str, tuple[str, ...]]]:
    """name as exposed -> (type, label names) of every metric in metrics.py."""
    found = {}
    for value in vars(metrics).values():
        value = getattr(value, "gauge", value)  # ObjectGauge/PhaseGauge wrap a Gauge
        if isinstance(value, MetricWrapperBase):
            name = value._name + ("_total" if value._type == "counter" else "")
            found[name] = (value._type, tuple(value._labelnames))
        elif isinstance(value, metrics._ObjectTimes):
            found[value.name] = ("gauge", value.labelnames)
    return found


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    rows = re.findall(r"^\| `(opex_[a-z_]+)` \| (\w+) \|([^|]*)\|", (ROOT / "docs" / "metrics.md").read_text(), re.M)
    return {name: (type_, tuple(label.strip() for label in labels.split(",") if label.strip()))
            for name, type_, labels in rows}


def base(name: str) -> str:
    return next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)


def test_every_metric_is_documented_with_its_type_and_labels():
    assert documented() == {name: (type_, tuple(labels)) for name, (type_, labels) in defined().items()}


def test_the_committed_dashboard_is_what_the_code_builds():
    committed = (FILES / "grafana-dashboard.json").read_text()
    assert committed == grafana_dashboard.render(), "stale dashboard: run make dashboard and commit the JSON"


def test_rules_their_tests_and_the_dashboard_name_only_metrics_the_operator_defines():
    names = set(defined())
    texts = [(FILES / "prometheus-rules.yaml").read_text(), (ROOT / "tests" / "promtool" / "rules_test.yaml").read_text(),
             (FILES / "grafana-dashboard.json").read_text()]
    used = {base(n) for text in texts for n in NAME.findall(text)}
    assert used - names == set()
    rules = yaml.safe_load(texts[0])["groups"][0]["rules"]
    tested = {t["alertname"] for case in yaml.safe_load(texts[1])["tests"] for t in case["alert_rule_test"]}
    assert {r["alert"] for r in rules} == tested  # every shipped alert has a promtool test


def test_every_dashboard_panel_with_data_has_a_query_and_a_title():
    document = json.loads((FILES / "grafana-dashboard.json").read_text())
    panels = [p for p in document["panels"] if p["type"] not in ("row", "text")]
    assert panels and all(p["title"] and p.get("targets") for p in panels)
    assert len({p["id"] for p in document["panels"]}) == len(document["panels"])
