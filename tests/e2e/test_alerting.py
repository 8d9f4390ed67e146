"""Alerts open Incidents, end to end: alerts posted to the real Alertmanager reach the operator's
intake through its webhook receiver and become Incidents the operator assesses; repeats are
counted in the object; resolved is recorded and changes nothing else; bad posts are refused."""
from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request

import estate
from opex_operator.alerts.webhook import fingerprint
from helpers import wait_for


def stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def alert(namespace: str, function: str, ends_in: float = 3600, severity: str = "critical",
          alertname: str = "LambdaErrors") -> dict:
    """An alert as Prometheus posts it to Alertmanager (its API v2)."""
    now = dt.datetime.now(dt.timezone.utc)
    return {"labels": {"alertname": alertname, "incident_type": "DeploymentFailure", "severity": severity,
                       "environment": "production", "function_name": function, "namespace": namespace},
            "annotations": {"summary": f"{function} is failing", "description": f"CloudWatch Errors of {function}."},
            "startsAt": stamp(now - dt.timedelta(minutes=2)), "endsAt": stamp(now + dt.timedelta(seconds=ends_in)),
            "generatorURL": "http://prometheus.local/graph"}


def incidents(kubectl, namespace: str) -> list[dict]:
    return kubectl.json("get", "incidents", "-n", namespace, "-l", "opex.dev/source=alertmanager")["items"]


def conditions(obj: dict) -> dict[str, dict]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}


def test_an_alert_through_alertmanager_opens_one_assessed_incident_counts_repeats_and_records_resolution(
        kubectl, namespace, aws, operator, monitoring, fire):
    estate.database_unreachable("ledger-api")
    firing = alert(namespace, "ledger-api")
    fire([firing])

    [opened] = wait_for(lambda: incidents(kubectl, namespace), timeout=30, what="the Incident the alert opened")
    name = opened["metadata"]["name"]
    [held] = [a for a in monitoring.alerts() if a["labels"].get("namespace") == namespace]
    assert held["fingerprint"] == fingerprint(firing["labels"])  # Alertmanager's own, computed the same way
    assert name == f"lambdaerrors-{held['fingerprint']}"
    spec = opened["spec"]
    assert (spec["type"], spec["severity"], spec["environment"]) == ("DeploymentFailure", "critical", "production")
    assert spec["targets"]["lambda"]["functionNames"] == ["ledger-api"]
    assert spec["source"]["kind"] == "Alertmanager" and spec["source"]["alert"]["name"] == "LambdaErrors"
    assessed = wait_for(lambda: (s := kubectl.get("incident", name, namespace).get("status") or {}).get("rootCause")
                        and s, timeout=60, what="the assessment")
    assert assessed["rootCause"]["category"] == "DatabaseConnectivity" and assessed["assessedAt"]
    assert abs(when(assessed["detectedAt"]) - when(firing["startsAt"])) < dt.timedelta(milliseconds=1)  # startsAt

    # Alertmanager repeats the firing alert (repeat_interval 4s here) and Prometheus re-sends it: one Incident.
    fire([firing])
    record = wait_for(lambda: (a := kubectl.get("incident", name, namespace)["status"].get("alert") or {})
                      .get("occurrences", 0) >= 2 and a, timeout=30, what="a repeated notification")
    assert record["state"] == "Firing" and record["firstSeen"] <= record["lastSeen"]
    assert len(incidents(kubectl, namespace)) == 1
    firing_condition = wait_for(lambda: conditions(kubectl.get("incident", name, namespace)).get("AlertResolved"),
                                what="AlertResolved=False while firing")
    assert (firing_condition["status"], firing_condition["reason"]) == ("False", "Firing")
    phase_before = kubectl.get("incident", name, namespace)["status"]["phase"]

    fire([alert(namespace, "ledger-api", ends_in=-1)])  # Prometheus' resolved alert
    resolved = wait_for(lambda: (c := conditions(kubectl.get("incident", name, namespace)).get("AlertResolved"))
                        and c["status"] == "True" and c, timeout=30, what="AlertResolved=True")
    assert resolved["reason"] == "Resolved" and "stays open" in resolved["message"]
    obj = kubectl.get("incident", name, namespace)
    assert obj["status"]["alert"]["state"] == "Resolved" and obj["status"]["alert"]["resolvedAt"]
    assert obj["status"]["phase"] == phase_before and not obj["spec"].get("closed")
    assert "AlertResolved" in [e["reason"] for e in obj["status"]["timeline"]]
    assert "AlertResolved" in [e["reason"] for e in kubectl.events(namespace, name)]


def test_a_grouped_notification_of_three_alerts_opens_three_incidents(kubectl, namespace, aws, operator, fire):
    # names no other test uses: the operator shares identical AWS reads of different Incidents for 10 s
    functions = ["cart-api", "search-api", "profile-api"]
    fire([alert(namespace, fn, severity="high", alertname="ApiErrors") for fn in functions])
    opened = wait_for(lambda: len(found := incidents(kubectl, namespace)) == 3 and found, timeout=30,
                      what="three Incidents")
    assert sorted(i["spec"]["targets"]["lambda"]["functionNames"][0] for i in opened) == sorted(functions)
    # one Alertmanager group (alertname, namespace): the three came in one notification
    assert len({i["spec"]["source"]["alert"]["groupKey"] for i in opened}) == 1
    assert len({i["metadata"]["name"] for i in opened}) == 3


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_malformed_unauthenticated_and_oversized_posts_are_refused_and_open_nothing(kubectl, namespace, operator):
    token = operator.token_file.read_text()
    notification = json.dumps({"version": "4", "status": "firing", "receiver": "opex",
                               "alerts": [dict(alert(namespace, "orders-api"), status="firing")]}).encode()
    bearer = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    assert post(operator.intake_url, notification, {"Content-Type": "application/json"})[0] == 401
    assert post(operator.intake_url, notification, {**bearer, "Authorization": "Bearer wrong"})[0] == 401
    code, text = post(operator.intake_url, b'{"alerts": [{"labels": "not a map"}]}', bearer)
    assert code == 400 and text.strip() == ("not an Alertmanager notification: alerts[0].labels: "
                                            "Input should be a valid dictionary")
    code, text = post(operator.intake_url, b" " * (1024 * 1024 + 1), bearer)
    assert code == 413 and "1048576 bytes" in text
    unmapped = json.loads(notification)
    unmapped["alerts"][0]["labels"].pop("incident_type")
    code, text = post(operator.intake_url, json.dumps(unmapped).encode(), bearer)
    assert code == 422 and "no incident type" in text
    assert incidents(kubectl, namespace) == []
    assert operator.metric("opex_alert_intake_requests_total", code="401") >= 2
    assert operator.metric("opex_alert_intake_alerts_total", status="firing", outcome="refused") >= 1
