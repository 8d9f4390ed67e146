"""Alertmanager notifications read and mapped to Incidents (pure): payload forms old and new,
fingerprints as Alertmanager computes them, mapping rules and their refusals."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from opex_operator.alerts.mapping import MappingError, MappingRules, Mapped, Refused, map_alert, next_record
from opex_operator.alerts.webhook import AlertStatus, PayloadError, fingerprint, parse

NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.timezone.utc)
ZERO = "0001-01-01T00:00:00Z"


def alert(status: str | None = "firing", ends: str = ZERO, **labels) -> dict:
    raw = {"labels": {"alertname": "CheckoutApiErrors", "incident_type": "DeploymentFailure", "severity": "critical",
                      "function_name": "checkout-api", **labels},
           "annotations": {"summary": "checkout-api errors above 5%", "description": "Errors since 09:41."},
           "startsAt": "2026-11-30T09:58:00.123456789Z", "endsAt": ends,
           "generatorURL": "http://prometheus:9090/graph?g0.expr=...", "fingerprint": "5d7e0b0c1c2e0f3a"}
    if status is not None:
        raw["status"] = status
    return raw


def payload(*alerts: dict, **top) -> bytes:
    return json.dumps({"version": "4", "groupKey": '{}:{alertname="CheckoutApiErrors"}', "truncatedAlerts": 0,
                       "receiver": "opex", "status": "firing", "alerts": list(alerts), "groupLabels": {},
                       "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
                       **top}).encode()


def mapped(raw: dict, rules: MappingRules | None = None, namespaces=()) -> Mapped | Refused:
    notification = parse(payload(raw), NOW)
    return map_alert(notification.alerts[0], notification, rules or MappingRules(), "alerts", namespaces)


def test_fingerprint_is_alertmanagers_for_the_same_labels():
    # prometheus/common model/signature_test.go: LabelSet{"name": "garland, briggs", "fear": "love is not enough"}
    assert int(fingerprint({"name": "garland, briggs", "fear": "love is not enough"}), 16) == 5799056148416392346
    assert fingerprint({}) == f"{14695981039346656037:016x}"


def test_a_version_4_notification_is_read_with_its_times_and_group():
    n = parse(payload(alert(), truncatedAlerts=3), NOW)
    [a] = n.alerts
    assert (n.receiver, n.status, n.truncated) == ("opex", AlertStatus.FIRING, 3)
    assert n.group_key == '{}:{alertname="CheckoutApiErrors"}'
    assert a.status == AlertStatus.FIRING and a.fingerprint == "5d7e0b0c1c2e0f3a"
    assert a.starts_at == dt.datetime(2026, 11, 30, 9, 58, 0, 123456, tzinfo=dt.timezone.utc)
    assert a.ends_at is None  # Go's zero time means "not set"


def test_an_older_sender_without_status_or_fingerprint_is_read_from_endsat_and_labels():
    old = alert(status=None, ends="2026-11-30T09:59:00Z")
    del old["fingerprint"]
    [a] = parse(payload(old), NOW).alerts
    assert a.status == AlertStatus.RESOLVED  # endsAt is in the past
    assert a.fingerprint == fingerprint(old["labels"])
    still = alert(status=None, ends="2026-11-30T10:05:00Z")
    assert parse(payload(still), NOW).alerts[0].status == AlertStatus.FIRING


def test_a_resolved_alert_with_the_zero_endsat_is_trusted_to_be_resolved():
    [a] = parse(payload(alert(status="resolved", ends=ZERO), status="resolved"), NOW).alerts
    assert a.status == AlertStatus.RESOLVED and a.ends_at is None


@pytest.mark.parametrize("body, where", [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (json.dumps({"receiver": "opex"}).encode(), "alerts: Field required"),
    (json.dumps({"alerts": [{"labels": "x"}]}).encode(), "alerts[0].labels"),
    (json.dumps({"alerts": [{"labels": {}}]}).encode(), "alerts[0].labels"),
    (json.dumps({"alerts": [{"labels": {"a": "b"}, "status": "exploded"}]}).encode(), "alerts[0].status"),
    (json.dumps({"alerts": [], "truncatedAlerts": -1}).encode(), "truncatedAlerts"),
])
def test_a_malformed_body_is_refused_naming_the_field(body, where):
    with pytest.raises(PayloadError, match="^[^\n]*$") as err:
        parse(body, NOW)
    assert where in str(err.value)


def test_an_alert_maps_to_an_incident_named_after_its_fingerprint():
    m = mapped(alert())
    assert isinstance(m, Mapped)
    assert (m.namespace, m.name) == ("alerts", "checkoutapierrors-5d7e0b0c1c2e0f3a")
    assert m.spec["type"] == "DeploymentFailure" and m.spec["severity"] == "critical"
    assert m.spec["environment"] == "production" and m.spec["title"] == "checkout-api errors above 5%"
    assert m.spec["targets"] == {"lambda": {"functionNames": ["checkout-api"]}}
    assert m.spec["summary"].startswith("Errors since 09:41.") and "function_name=checkout-api" in m.spec["summary"]
    source = m.spec["source"]
    assert source["kind"] == "Alertmanager" and source["alert"]["fingerprint"] == "5d7e0b0c1c2e0f3a"
    assert source["alert"]["startsAt"].startswith("2026-11-30T09:58:00.123456")
    body = m.body(m.name)
    assert body["metadata"]["labels"]["opex.dev/alert-fingerprint"] == "5d7e0b0c1c2e0f3a"
    assert body["metadata"]["annotations"] == {"opex.dev/alert-state": "Firing"}


def test_yace_dimension_labels_and_common_names_are_targets():
    m = mapped(alert(function_name="", dimension_FunctionName="orders-api", region="eu-west-1",
                     pipeline="orders-pipeline", namespace="alerts", env="staging"))
    assert m.spec["targets"] == {"region": "eu-west-1", "lambda": {"functionNames": ["orders-api"]},
                                 "pipeline": {"name": "orders-pipeline"}}
    assert m.spec["environment"] == "staging"


def test_an_alert_with_no_type_is_refused_with_a_reason_not_guessed():
    r = mapped(alert(incident_type=""))
    assert isinstance(r, Refused)
    assert "CheckoutApiErrors: no incident type" in r.reason and "byAlertname" in r.reason
    bad = mapped(alert(incident_type="Outage"))
    assert "label incident_type='Outage' is not an incident type" in bad.reason


def test_configured_rules_map_alertnames_severities_and_labels(tmp_path):
    rules_file = tmp_path / "mapping.yaml"
    rules_file.write_text("type:\n  byAlertname: {CheckoutApiErrors: PipelineFailure}\n"
                          "severity:\n  labels: [priority]\n  values: {P1: critical, P3: low}\n"
                          "targets:\n  pipeline: [pipeline_name]\n")
    rules = MappingRules.load(rules_file)
    m = mapped(alert(incident_type="", priority="p3", pipeline_name="checkout-pipeline"), rules)
    assert m.spec["type"] == "PipelineFailure" and m.spec["severity"] == "low"
    assert m.spec["targets"]["pipeline"] == {"name": "checkout-pipeline"}
    unknown = mapped(alert(incident_type="", priority="P9"), rules)
    assert unknown.spec["severity"] == "medium"  # a refusal would lose the alert: the default, and say so
    assert "Severity label 'P9' is not one the alert mapping knows; medium (its default) assumed." in \
        unknown.spec["summary"]


@pytest.mark.parametrize("words,severity", [
    (["critical", "page", "P1", "p1", "SEV-1", "Sev 0", "emergency", "disaster"], "critical"),
    (["major", "error", "high", "P2", "ERR"], "high"),
    (["warning", "warn", "Warning", "medium", "P3", "average"], "medium"),
    (["minor", "low", "info", "informational", "P4", "P5", "none", "debug"], "low"),
])
def test_severity_words_of_common_rule_sets_map_instead_of_being_refused(words, severity):
    for word in words:
        m = mapped(alert(severity=word))
        assert isinstance(m, Mapped) and m.spec["severity"] == severity, word
        assert "not one the alert mapping knows" not in m.spec["summary"]


@pytest.mark.parametrize("label,environment", [("prod", "prod"), ("Production", "production"), ("PRD", "prd"),
                                                ("EU West", "eu-west"), ("--", "production")])
def test_environment_labels_become_dns_labels_instead_of_a_refusal(label, environment):
    m = mapped(alert(environment=label))
    assert isinstance(m, Mapped) and m.spec["environment"] == environment


def test_a_mapping_file_with_an_unknown_key_names_it(tmp_path):
    rules_file = tmp_path / "mapping.yaml"
    rules_file.write_text("type:\n  byAlertname: {X: Outage}\n")
    with pytest.raises(MappingError, match=r"mapping.yaml: type.byAlertname.X: Input should be"):
        MappingRules.load(rules_file)


def test_alerts_for_namespaces_the_operator_does_not_watch_or_bad_labels_are_refused():
    r = mapped(alert(namespace="kube-system"), namespaces=("e2e-*", "alerts"))
    assert "namespace kube-system is not watched by this operator (OPEX_NAMESPACES=e2e-*,alerts)" in r.reason
    assert isinstance(mapped(alert(namespace="e2e-one"), namespaces=("e2e-*",)), Mapped)
    assert "is not a namespace name" in mapped(alert(namespace="Not_A_Namespace")).reason
    bad_fn = mapped(alert(function_name="checkout api!"))
    assert isinstance(bad_fn, Refused) and "spec.targets.lambda.functionNames.0 from its labels" in bad_fn.reason


def test_the_record_counts_firing_deliveries_and_keeps_the_first_sighting():
    firing = parse(payload(alert()), NOW).alerts[0]
    first = next_record(None, firing, "opex", NOW)
    assert (first.state, first.occurrences, first.first_seen, first.resolved_at) == ("Firing", 1, NOW, None)
    later = NOW + dt.timedelta(minutes=5)
    again = next_record(first, firing, "opex", later)
    assert (again.occurrences, again.first_seen, again.last_seen) == (2, NOW, later)
    resolved = parse(payload(alert(status="resolved", ends="2026-11-30T10:04:00Z")), NOW).alerts[0]
    done = next_record(again, resolved, "opex", later)
    assert (done.state, done.occurrences) == ("Resolved", 2)
    assert done.resolved_at == dt.datetime(2026, 11, 30, 10, 4, tzinfo=dt.timezone.utc)
    refired = next_record(done, firing, "opex", later)
    assert (refired.state, refired.occurrences, refired.resolved_at) == ("Firing", 3, None)
