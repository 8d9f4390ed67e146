"""Real state-lock errors (tests/realworld/lock) through `opex lock parse --json`, as a user runs it.

Each case says whether the lock is held, denied or the backend failed, which backend wrote the error,
the id `terraform force-unlock` takes (none when the error gives no usable one) and the holder.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from opex_operator.cli import cli
from realworld.corpus import Case, params


def lock_parse(case: Case) -> dict:
    result = CliRunner().invoke(cli, ["lock", "parse", "--json", str(case.path)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize("case", params("lock"))
def test_real_lock_error_is_read_as_its_source_says(case: Case):
    data = lock_parse(case)
    expect = case.expect
    got = {"problem": data["problem"], "backend": data["backend"], "id": data.get("id"), "who": data["who"]}
    assert {k: got[k] for k in expect if k in got} == {k: v for k, v in expect.items() if k in got}, case.why
    denied = data.get("denied", {})
    if "denied_action" in expect:
        assert denied.get("action") == expect["denied_action"], data
    if "denied_principal" in expect:
        assert denied.get("principal") == expect["denied_principal"], data
    if data.get("id") is None:  # never a force-unlock command without an id force-unlock takes
        text = CliRunner().invoke(cli, ["lock", "parse", str(case.path)]).output
        assert "terraform force-unlock " not in text
