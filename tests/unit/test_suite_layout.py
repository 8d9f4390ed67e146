"""The suite's own layout: test modules are imported by basename (no packages under tests/), so two
files of one name in different folders break collection of the whole suite, which `make unit`
alone would never see."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_has_a_name_of_its_own():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert not [n for n, k in names.items() if k > 1]
