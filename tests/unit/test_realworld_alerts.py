"""Real webhook bodies (tests/realworld/alerts) posted to the alert intake's HTTP endpoint on a real socket,
with the Kubernetes port faked: the status Alertmanager gets, what each alert became, and how its labels map."""
from __future__ import annotations

import asyncio
import datetime as dt
import json

import aiohttp
import pytest

from opex_operator.alerts.intake import Intake
from opex_operator.alerts.mapping import FINGERPRINT_LABEL, Mapped, MappingRules, map_alert
from opex_operator.alerts.server import AlertIntakeServer
from opex_operator.alerts.webhook import fingerprint, parse
from opex_operator.config import AlertIntakeSettings
from opex_operator.environments import is_production
from realworld.corpus import Case, params
from support.fakes import FakeIncidentStore
import procs

TOKEN = "s3cret"


def post(case: Case, rules: MappingRules, store: FakeIncidentStore, tmp_path) -> tuple[int, str]:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    settings = AlertIntakeSettings(port=procs.free_port(), path="/alerts", token_file=token)
    server = AlertIntakeServer(Intake(store, rules, "alerts"), settings)

    async def run():
        await server.start("127.0.0.1")
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(f"http://127.0.0.1:{settings.port}/alerts", data=case.path.read_bytes(),
                                        headers={"Authorization": f"Bearer {TOKEN}",
                                                 "Content-Type": "application/json"}) as resp:
                    return resp.status, await resp.text()
        finally:
            await server.stop()

    return asyncio.run(run())


@pytest.mark.parametrize("case", params("alerts"))
def test_real_webhook_body_is_taken_in_as_its_source_says(case: Case, tmp_path):
    rules = MappingRules.model_validate(case.extra.get("mapping") or {})
    store = FakeIncidentStore()
    status, text = post(case, rules, store, tmp_path)
    expect = case.expect
    assert status == expect["status"], (case.why, text)
    if "reason" in expect:
        assert expect["reason"] in text, text
    if status == 200:
        assert [i["outcome"] for i in json.loads(text)["incidents"]] == expect["outcomes"]
    elif status == 422:
        assert ["refused"] * len(text.strip().splitlines()) == expect["outcomes"]
    if status == 400:
        return
    notification = parse(case.path.read_bytes(), dt.datetime.now(dt.timezone.utc))
    mapped = [map_alert(a, notification, rules, "alerts") for a in notification.alerts]
    specs = [m.spec for m in mapped if isinstance(m, Mapped)]
    if "severities" in expect:
        assert [s["severity"] for s in specs] == expect["severities"]
    if "environments" in expect:
        assert [s["environment"] for s in specs] == expect["environments"]
    if "production" in expect:
        assert [is_production(s["environment"]) for s in specs] == expect["production"]
    if expect.get("alertmanager_fingerprints"):
        raw = json.loads(case.text())["alerts"]
        assert [fingerprint(a["labels"]) for a in raw] == [a["fingerprint"] for a in raw]
    if "fingerprints" in expect:
        named = sorted(o["metadata"]["labels"][FINGERPRINT_LABEL] for o in store.objects.values())
        assert named == sorted(expect["fingerprints"])
