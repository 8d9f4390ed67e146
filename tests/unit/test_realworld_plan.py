"""Real plans (tests/realworld/plan) through `opex plan summarize --json`, as a user runs it: the exit code is
the one `terraform plan -detailed-exitcode` gives, the counts Terraform's own "Plan:" line."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from opex_operator.cli import cli
from realworld.corpus import Case, params

COUNTS = ("add", "change", "remove", "move", "forget", "read")


@pytest.mark.parametrize("case", params("plan"))
def test_real_plan_is_summarised_as_terraform_would(case: Case):
    result = CliRunner().invoke(cli, ["plan", "summarize", "--json", str(case.path)])
    expect = case.expect
    assert result.exit_code == expect["exit_code"], (case.why, result.output[-500:])
    data = json.loads(result.output)
    if "plans" in expect:
        assert [p["exit_code"] for p in data["plans"]] == expect["plans"]
        return
    assert {k: data[k] for k in COUNTS if k in expect} == {k: expect[k] for k in COUNTS if k in expect}, case.why
    if "outputs" in expect:
        assert data["output_changes"] == expect["outputs"]
