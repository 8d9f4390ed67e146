"""The real-world corpus as a whole (tests/realworld): every surface loads, every case cites where it was
published and why its answer is right, every artefact is used, and there are at least 60 of them."""
from __future__ import annotations

import re

import pytest

from realworld.corpus import ROOT, cases, surfaces

MIN_CASES = 60
# Where a case may come from: "owner/repo issue N", "owner/repo pull request N", or "owner/repo path/to/file".
SOURCE = re.compile(r"^[\w.-]+/[\w.-]+ (?:issue \d+|pull request \d+|[\w./-]+\.\w+)\b")
# An AWS account id in an ARN that is not one of the documentation ones must have been scrubbed.
ARN_ACCOUNT = re.compile(r"arn:aws[\w-]*:[\w-]+:[\w-]*:(\d{12}):")
DOCUMENTATION_ACCOUNTS = {"123456789012", "111122223333", "444455556666", "111111111111"}


def test_the_surfaces_that_parse_outside_input_each_have_cases():
    assert {"lock", "plan", "logs", "alerts"} <= set(surfaces())
    for surface in surfaces():
        assert cases(surface), surface


def test_there_are_at_least_60_real_artefacts():
    assert sum(len(cases(s)) for s in surfaces()) >= MIN_CASES


@pytest.mark.parametrize("surface", surfaces())
def test_every_case_cites_its_public_source_and_says_why(surface):
    for case in cases(surface):
        assert SOURCE.match(case.source), (case.id, case.source)
        assert len(case.why.split()) >= 5, case.id


@pytest.mark.parametrize("surface", surfaces())
def test_every_artefact_in_a_surface_folder_is_a_case(surface):
    used = {c.path.name for c in cases(surface)}
    files = {p.name for p in (ROOT / surface).iterdir() if p.is_file() and p.name != "cases.yaml"}
    assert files <= used, files - used


@pytest.mark.parametrize("surface", surfaces())
def test_no_aws_account_id_but_the_documentation_ones(surface):
    for case in cases(surface):
        assert set(ARN_ACCOUNT.findall(case.text())) <= DOCUMENTATION_ACCOUNTS, case.id
