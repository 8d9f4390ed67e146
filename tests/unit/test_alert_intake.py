"""The alert intake on a fake of the Kubernetes port, and its HTTP endpoint on a real socket:
one Incident per alert, the dedup held in the object, races, refusals and the replies."""
from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import pytest

from opex_operator import metrics
from opex_operator.alerts.intake import Intake, Outcome, Unavailable
from opex_operator.alerts.mapping import MappingRules
from opex_operator.alerts.server import AlertIntakeServer
from opex_operator.alerts.webhook import parse
from opex_operator.config import AlertIntakeSettings
from opex_operator.errors import KubeError
from support.fakes import Clock, FakeIncidentStore, T0
import procs

ZERO = "0001-01-01T00:00:00Z"


def alert(fn: str = "checkout-api", status: str = "firing", starts: str = "2026-11-29T08:58:00Z", ends: str = ZERO,
          **labels) -> dict:
    all_labels = {"alertname": "LambdaErrors", "incident_type": "DeploymentFailure", "severity": "high",
                  "function_name": fn, "namespace": "alerts", **labels}
    return {"status": status, "labels": all_labels, "annotations": {"summary": f"{fn} errors"},
            "startsAt": starts, "endsAt": ends, "generatorURL": "", "fingerprint": ""}


def body(*alerts: dict, **top) -> bytes:
    return json.dumps({"version": "4", "groupKey": "{}:{alertname=\"LambdaErrors\"}", "truncatedAlerts": 0,
                       "receiver": "opex", "status": "firing", "alerts": list(alerts), **top}).encode()


class World:
    def __init__(self):
        self.store, self.clock = FakeIncidentStore(), Clock(T0)
        self.intake = Intake(self.store, MappingRules(), "alerts", ("alerts",), clock=self.clock)

    def receive(self, *alerts: dict, **top):
        return asyncio.run(self.intake.receive(parse(body(*alerts, **top), self.clock())))

    def incident(self, name: str) -> dict:
        return self.store.objects[("alerts", name)]

    def names(self) -> list[str]:
        return sorted(name for _, name in self.store.objects)


def test_a_grouped_notification_of_three_alerts_opens_three_incidents():
    w = World()
    receipt = w.receive(alert("checkout-api"), alert("orders-api"), alert("payments-api"))
    assert [x.outcome for x in receipt.written] == [Outcome.CREATED] * 3 and not receipt.refused
    assert len(w.names()) == 3 and all(n.startswith("lambdaerrors-") for n in w.names())
    functions = sorted(w.store.objects[k]["spec"]["targets"]["lambda"]["functionNames"][0] for k in w.store.objects)
    assert functions == ["checkout-api", "orders-api", "payments-api"]
    for key in w.store.objects:
        assert w.store.objects[key]["status"]["alert"]["occurrences"] == 1


def test_the_same_alert_again_counts_an_occurrence_and_resolved_flips_the_state_and_wakes_the_loop():
    w = World()
    [first] = w.receive(alert()).written
    name = first.ref.name
    version = w.incident(name)["metadata"]["resourceVersion"]
    w.clock.advance(300)
    [again] = w.receive(alert()).written
    record = w.store.alert("alerts", name)
    assert again.outcome == Outcome.UPDATED and record["occurrences"] == 2
    assert record["firstSeen"] != record["lastSeen"] and "resolvedAt" not in record
    assert w.incident(name)["metadata"]["annotations"]["opex.dev/alert-state"] == "Firing"
    assert int(w.incident(name)["metadata"]["resourceVersion"]) == int(version) + 1  # only the status was written
    w.receive(alert(status="resolved", ends="2026-11-29T09:10:00Z"), status="resolved")
    record = w.store.alert("alerts", name)
    assert record["state"] == "Resolved" and record["resolvedAt"] == "2026-11-29T09:10:00Z"
    assert record["occurrences"] == 2
    assert w.incident(name)["metadata"]["annotations"]["opex.dev/alert-state"] == "Resolved"
    assert "closed" not in w.incident(name)["spec"] and w.names() == [name]
    w.receive(alert())  # firing again: the same Incident, resolvedAt gone
    record = w.store.alert("alerts", name)
    assert (record["state"], record["occurrences"]) == ("Firing", 3) and "resolvedAt" not in record


def test_a_burst_of_one_alert_makes_one_incident_and_counts_every_delivery():
    w = World()

    async def burst():
        return await asyncio.gather(*(w.intake.receive(parse(body(alert()), w.clock())) for _ in range(6)))

    asyncio.run(burst())
    [name] = w.names()
    assert w.store.alert("alerts", name)["occurrences"] == 6


def test_a_write_that_lost_a_race_is_read_and_done_again_without_losing_the_other_write():
    w = World()
    [first] = w.receive(alert()).written
    w.store.race = [{"phase": "Assessing"}]  # the Incident controller checkpoints between our read and write
    w.receive(alert())
    status = w.incident(first.ref.name)["status"]
    assert status["phase"] == "Assessing" and status["alert"]["occurrences"] == 2


def test_a_closed_incident_is_not_reopened_when_the_alert_fires_again():
    w = World()
    [first] = w.receive(alert()).written
    w.incident(first.ref.name)["spec"]["closed"] = True
    w.receive(alert(status="resolved", ends="2026-11-29T09:10:00Z"))  # the end of the same firing: recorded there
    assert w.store.alert("alerts", first.ref.name)["state"] == "Resolved" and len(w.names()) == 1
    [second] = w.receive(alert(starts="2026-11-29T11:00:00Z")).written
    assert second.outcome == Outcome.CREATED and second.ref.name.startswith(first.ref.name + "-")
    assert w.store.alert("alerts", first.ref.name)["state"] == "Resolved"
    [same] = w.receive(alert(starts="2026-11-29T11:00:00Z")).written
    assert same.ref.name == second.ref.name and w.store.alert("alerts", second.ref.name)["occurrences"] == 2


def test_a_resolved_alert_without_an_incident_opens_none():
    w = World()
    [written] = w.receive(alert(status="resolved", ends="2026-11-29T09:10:00Z"), status="resolved").written
    assert written.outcome == Outcome.IGNORED and w.names() == [] and w.store.writes == 0


def test_alerts_that_map_to_nothing_or_that_the_api_server_refuses_are_refused_and_the_rest_written():
    w = World()
    receipt = w.receive(alert("checkout-api"), alert("orders-api", incident_type=""),
                        alert("payments-api", namespace="gone"))
    assert [x.outcome for x in receipt.written] == [Outcome.CREATED]
    reasons = [r.reason for r in receipt.refused]
    assert any("no incident type" in r for r in reasons)
    assert any("namespace gone is not watched" in r for r in reasons)
    w.intake.namespaces = ()  # all namespaces watched: the API server says the namespace is missing
    [refused] = w.receive(alert("payments-api", namespace="gone")).refused
    assert 'namespaces "gone" not found' in refused.reason


def test_an_api_server_that_does_not_answer_makes_the_sender_retry():
    w = World()
    w.store.fail = KubeError(0, "", "connection refused")
    with pytest.raises(Unavailable, match="did not take Incident alerts/lambdaerrors-"):
        w.receive(alert())
    assert w.names() == []
    w.receive(alert())  # Alertmanager's retry
    assert len(w.names()) == 1


def test_truncated_alerts_are_counted_and_said_on_each_incident_written():
    w = World()
    before = metrics.REGISTRY.get_sample_value("opex_alert_intake_truncated_alerts_total")
    w.receive(alert("checkout-api"), alert("orders-api"), truncatedAlerts=7)
    assert metrics.REGISTRY.get_sample_value("opex_alert_intake_truncated_alerts_total") == before + 7
    assert len(w.store.events) == 2
    assert all(e[1:3] == ("Warning", "AlertsTruncated") and "left 7 alerts" in e[3] for e in w.store.events)


# -- the HTTP endpoint -------------------------------------------------------------------------------

def serve_and_post(tmp_path, requests: list[tuple[dict, bytes]], store: FakeIncidentStore | None = None,
                   **settings) -> list[tuple[int, str]]:
    """Start the endpoint on a free port, send each (headers, body), return (status, text) of each."""
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    password = tmp_path / "password"
    password.write_text("pa55")
    config = AlertIntakeSettings(port=procs.free_port(), path="/alerts", token_file=token, username="am",
                                 password_file=password, **settings)
    intake = Intake(store or FakeIncidentStore(), MappingRules(), "alerts", ("alerts",))

    async def run():
        server = AlertIntakeServer(intake, config)
        await server.start("127.0.0.1")
        replies = []
        try:
            async with aiohttp.ClientSession() as session:
                for headers, data in requests:
                    async with session.post(f"http://127.0.0.1:{config.port}/alerts", data=data,
                                            headers=headers) as resp:
                        replies.append((resp.status, await resp.text()))
        finally:
            await server.stop()
        return replies

    return asyncio.run(run())


BEARER = {"Authorization": "Bearer s3cret", "Content-Type": "application/json"}


def test_the_endpoint_replies_200_only_after_the_incident_is_written(tmp_path):
    store = FakeIncidentStore()
    [(status, text)] = serve_and_post(tmp_path, [(BEARER, body(alert()))], store)
    assert status == 200 and len(store.objects) == 1
    [written] = json.loads(text)["incidents"]
    assert written["namespace"] == "alerts" and written["outcome"] == "created"
    assert ("alerts", written["name"]) in store.objects


def test_the_endpoint_refuses_without_credentials_and_accepts_basic_auth(tmp_path):
    basic = base64.b64encode(b"am:pa55").decode()
    wrong = base64.b64encode(b"am:guess").decode()
    replies = serve_and_post(tmp_path, [({}, body(alert())), ({"Authorization": "Bearer guess"}, body(alert())),
                                        ({"Authorization": f"Basic {wrong}"}, body(alert())),
                                        ({"Authorization": f"Basic {basic}"}, body(alert()))])
    assert [s for s, _ in replies] == [401, 401, 401, 200]


def test_the_endpoint_says_what_is_wrong_with_a_body_in_one_line(tmp_path):
    huge = body(*(alert(f"fn-{i}") for i in range(400)))
    replies = serve_and_post(tmp_path, [(BEARER, b"{not json"), (BEARER, huge),
                                        (BEARER, body(alert(), alert("orders-api", incident_type="")))],
                             max_body_bytes=16 * 1024)
    (bad, bad_text), (large, large_text), (partly, partly_text) = replies
    assert bad == 400 and bad_text.startswith("not an Alertmanager notification: the body is not JSON")
    assert len(bad_text.strip().splitlines()) == 1
    assert large == 413 and "16384 bytes" in large_text
    assert partly == 422 and "no incident type" in partly_text and len(partly_text.strip().splitlines()) == 1


def test_the_endpoint_asks_for_a_retry_when_the_api_server_is_down(tmp_path):
    store = FakeIncidentStore()
    store.fail = KubeError(503, "ServiceUnavailable", "etcd is not ready")
    [(status, text)] = serve_and_post(tmp_path, [(BEARER, body(alert()))], store)
    assert status == 503 and "retry" in text and store.objects == {}


def test_settings_refuse_an_intake_without_credentials(monkeypatch, tmp_path):
    monkeypatch.setenv("OPEX_ALERT_INTAKE_PORT", "8082")
    with pytest.raises(ValueError, match="no credentials are: set OPEX_ALERT_INTAKE_TOKEN_FILE"):
        AlertIntakeSettings.from_env()
    monkeypatch.setenv("OPEX_ALERT_INTAKE_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="OPEX_ALERT_INTAKE_TOKEN_FILE: no such file"):
        AlertIntakeSettings.from_env()
    (tmp_path / "token").write_text("t")
    monkeypatch.setenv("OPEX_ALERT_INTAKE_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("POD_NAMESPACE", "opex-system")
    settings = AlertIntakeSettings.from_env()
    assert (settings.port, settings.path, settings.default_namespace) == (8082, "/alerts", "opex-system")
    monkeypatch.delenv("OPEX_ALERT_INTAKE_PORT")
    assert AlertIntakeSettings.from_env() is None


def test_an_incident_created_then_losing_the_status_race_is_reported_created():
    w = World()
    w.store.race = [{"phase": "Assessing"}]  # the controller's first checkpoint lands between create and status
    [written] = w.receive(alert()).written
    assert written.outcome.value == "created" and w.incident(written.ref.name)["status"]["alert"]["occurrences"] == 1
