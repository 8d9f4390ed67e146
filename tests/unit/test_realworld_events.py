"""Real AWS event deliveries (tests/realworld/events) through `opex event explain --json` and through the event
intake with the Kubernetes port faked: what each event becomes, the Incidents written, and a second delivery
of the same message changing nothing."""
from __future__ import annotations

import asyncio
import json

import pytest
import yaml
from click.testing import CliRunner

from opex_operator.cli import cli
from opex_operator.events.intake import EventIntake
from opex_operator.events.mapping import EventRules
from realworld.corpus import Case, params
from support.fakes import FakeIncidentStore

QUEUE, MAX_RECEIVES = "opex-events", 5


class CodePipelineState:
    """``ports.BuildLookup``: the execution CodePipeline's state names for a build (None: none yet)."""

    def __init__(self, execution: str | None):
        self.execution, self.asked = execution, []

    def execution_of_build(self, pipeline, build_id, region, role_key):
        self.asked.append((pipeline, build_id, region))
        return self.execution


def explained(case: Case, tmp_path) -> list[dict]:
    args = ["event", "explain", "--json", "--namespace", "ops", str(case.path)]
    if case.extra.get("mapping"):
        rules = tmp_path / "mapping.yaml"
        rules.write_text(yaml.safe_dump(case.extra["mapping"]))
        args[2:2] = ["--rules", str(rules)]
    result = CliRunner().invoke(cli, args, env={"OPEX_NAMESPACES": ""})
    refused = any(o == "refused" for o in case.expect["outcomes"])
    assert result.exit_code == (1 if refused else 0), result.output
    return json.loads(result.output)


def written(store: FakeIncidentStore) -> dict[str, dict]:
    return {name: {"type": obj["spec"]["type"], "severity": obj["spec"]["severity"],
                   "events": obj["status"]["alert"]["occurrences"]} for (_, name), obj in store.objects.items()}


@pytest.mark.parametrize("case", params("events"))
def test_real_event_delivery_becomes_what_its_source_says(case: Case, tmp_path):
    expect = case.expect
    found = explained(case, tmp_path)
    assert [e["outcome"] for e in found] == expect["outcomes"], case.why
    assert [e["reason"] for e in found if e["outcome"] == "refused"] == expect.get("reasons", [])

    rules = EventRules.model_validate(case.extra.get("mapping") or {})
    store = FakeIncidentStore(namespaces=("ops",))
    lookups = CodePipelineState(case.extra.get("lookup"))
    intake = EventIntake(store, lookups, rules, "ops")
    body = case.path.read_bytes()
    verdicts = []
    for receive in range(1, MAX_RECEIVES + 1):
        verdicts.append(asyncio.run(intake.take(body, QUEUE, receive, MAX_RECEIVES)))
        if verdicts[-1].done or not any(t.outcome == "deferred" for t in verdicts[-1].taken):
            break
    assert written(store) == expect["incidents"], case.why
    refused = "refused" in expect["outcomes"]
    assert verdicts[-1].done is not refused  # deleted once written; a refused event's message is left for the DLQ
    if "lookup" in expect["outcomes"]:
        assert lookups.asked and lookups.asked[0][0] == json.loads(case.text())["detail"]["additional-information"][
            "initiator"].removeprefix("codepipeline/")
        assert len(verdicts) == (1 if case.extra.get("lookup") else 3)  # kept twice, then its own Incident
    if expect["incidents"]:
        before = json.dumps(list(store.objects.values()), sort_keys=True)
        again = asyncio.run(intake.take(body, QUEUE, len(verdicts) + 1, MAX_RECEIVES))  # not deleted: it comes back
        assert again.done and {t.outcome for t in again.taken if t.incident} == {"duplicate"}
        assert json.dumps(list(store.objects.values()), sort_keys=True) == before
