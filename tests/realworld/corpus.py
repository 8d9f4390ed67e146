"""The real-world corpus: artefacts nobody here wrote, each with its public source and the right answer.

Layout: one folder per surface that parses outside input (``lock``, ``plan``, ``logs``, ``alerts``,
``cloudtrail``...), each with the artefacts as files and a ``cases.yaml`` listing them::

    - id: s3-dynamodb-lock-held-terraform-1.5      # unique within the surface; the test's id
      file: s3-dynamodb-held.txt                    # the artefact, verbatim but for the scrubbing
      source: hashicorp/terraform issue 32435, the reporter's output   # repository and issue or file
      scrubbed: account ids, the user name          # what was replaced (with documentation values)
      why: what the source says the right answer is, and how we know (exit-code rules, backend code, thread)
      expect: {...}                                 # the surface's answer, compared by its test

Each surface's table-driven test (``tests/unit/test_realworld_<surface>.py``) runs every case
through the product's public surface (``opex lock parse``, ``opex plan summarize``, the assessment
with a fake reader, the alert intake, the CloudTrail reader) and compares with ``expect``.
When a bug is found in a real input, that input joins the corpus.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent
REQUIRED = ("id", "file", "source", "why", "expect")


@dataclass(frozen=True)
class Case:
    """One artefact: ``path`` to its bytes, ``source`` (where it was published), ``expect``."""

    surface: str
    id: str
    path: Path
    source: str
    why: str
    expect: dict[str, Any]
    scrubbed: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8", errors="surrogateescape")


def surfaces() -> list[str]:
    return sorted(p.parent.name for p in ROOT.glob("*/cases.yaml"))


def cases(surface: str) -> list[Case]:
    """Every case of ``surface``; raises ValueError on an entry without a source, a reason or a file."""
    folder = ROOT / surface
    out = []
    for entry in yaml.safe_load((folder / "cases.yaml").read_text()) or []:
        missing = [k for k in REQUIRED if not entry.get(k)]
        if missing:
            raise ValueError(f"{surface}/cases.yaml: {entry.get('id', '?')} lacks {missing}")
        path = folder / entry["file"]
        if not path.is_file():
            raise ValueError(f"{surface}/cases.yaml: {entry['id']}: no file {entry['file']}")
        known = {"id", "file", "source", "why", "expect", "scrubbed"}
        out.append(Case(surface, entry["id"], path, entry["source"], entry["why"], entry["expect"],
                        entry.get("scrubbed", ""), {k: v for k, v in entry.items() if k not in known}))
    ids = [c.id for c in out]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{surface}/cases.yaml: duplicate ids")
    return out


def params(surface: str) -> list[Any]:
    """``pytest.param(case, id=case.id)`` for each case of ``surface``, for ``parametrize``."""
    return [pytest.param(c, id=c.id) for c in cases(surface)]
