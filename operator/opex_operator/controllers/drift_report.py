"""The report ConfigMap of a DriftCheck run, bounded by design so that its write is never refused.

The API server refuses a ConfigMap whose ``data`` and ``binaryData`` values add up to more than
1 MiB (Kubernetes ``core.MaxSecretSize``; ``binaryData`` counted decoded) with ``422 ... Too
long``. The summary grows by ~200 bytes per changed resource, so a plan of ~5,000 resources
outgrows it. Hence:

* ``summary.json`` is at most :data:`SUMMARY_BYTES`: its resource lists (changes first, then
  drift, output changes, drift nothing depends on, ignored addresses) keep the entries that fit,
  the counts (add, change, import, remove, ...) stay complete, and ``summary.truncated`` says how
  many entries of each list are listed out of how many, next to :data:`TRUNCATED_NOTE`;
* ``plan.json.gz`` (the redacted ``terraform show -json`` of the saved plan) goes in when it fits
  in what is left; otherwise ``planFile`` names the full plan: the saved plan file in the
  operator's work directory, the very plan an ``Apply`` resolution applies (the next run replaces it).
"""
from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass
from typing import Any, Callable

from ..ports.objects import MAX_CONFIG_MAP_BYTES
from ..terraform.plan import PlanSummary, redact

SUMMARY_BYTES = 256 * 1024
# The summary lists, most useful first: what applying would do comes before what only drifted.
LISTS = ("changes", "drift", "output_changes", "irrelevant_drift", "ignored")
TRUNCATED_NOTE = ("…[truncated]: the resource lists hold their first entries only (see truncated); the counts are "
                  "complete, and the full plan is plan.json.gz or, when that did not fit, planFile")


@dataclass(frozen=True)
class Report:
    """What goes into the ConfigMap: ``data`` (summary.json) and ``binary`` (base64 values)."""

    data: dict[str, str]
    binary: dict[str, str]
    plan_included: bool
    summary_truncated: bool
    plan_file: str | None     # where the full plan is when plan.json.gz is not in the report


def build(header: dict[str, Any], summary: PlanSummary, doc: dict[str, Any] | None, plan_file: str,
          scrub: Callable[[Any], Any] = lambda value: value) -> Report:
    """The report of one run: ``header`` (the DriftCheck and the run result, wire form), the plan's
    ``summary``, the saved plan's JSON ``doc`` (None when nothing changes) and the path of the saved
    plan file. Its values add up to at most :data:`~opex_operator.ports.objects.MAX_CONFIG_MAP_BYTES` bytes.
    ``scrub`` (``redaction.Scrubber``) masks the values that came from Secrets, sensitive or not."""
    header, doc = scrub(header), scrub(redact(doc)) if doc is not None else None
    listed, cut = capped(scrub(summary.to_dict()), lambda s: _render({**header, "summary": s}), SUMMARY_BYTES)
    base = {**header, "summary": listed}
    if doc is None:
        text = _render({**base, "planIncluded": False, "note": "no changes: the plan itself is not kept"})
        return Report({"summary.json": text}, {}, False, cut, None)
    plan_gz = gzip.compress(json.dumps(doc, separators=(",", ":")).encode())
    text = _render({**base, "planIncluded": True,
                    "note": "plan.json.gz is the redacted `terraform show -json` of the saved plan"})
    if len(text) + len(plan_gz) <= MAX_CONFIG_MAP_BYTES:
        return Report({"summary.json": text}, {"plan.json.gz": base64.b64encode(plan_gz).decode()}, True, cut, None)
    text = _render({**base, "planIncluded": False, "planFile": plan_file,
                    "note": f"the gzipped plan ({len(plan_gz)} bytes) does not fit in a ConfigMap beside the summary: "
                            f"the full plan is planFile, the saved plan in the operator's work directory "
                            f"(`terraform show -json` in its directory reads it) until the next run replaces it"})
    return Report({"summary.json": text}, {}, False, cut, plan_file)


def capped(summary: dict[str, Any], render, limit: int) -> tuple[dict[str, Any], bool]:
    """``summary`` (``PlanSummary.to_dict()``) with its :data:`LISTS` cut so that ``render(summary)``
    is at most ``limit`` bytes, and whether anything was cut. Entries are kept in list order; a cut
    summary gains ``truncated`` ({list: {listed, total}}) and ``note`` (:data:`TRUNCATED_NOTE`)."""
    if len(render(summary)) <= limit:
        return summary, False
    totals = {key: len(summary[key]) for key in LISTS}

    def keep(n: int) -> dict[str, Any]:
        out, left = dict(summary), n
        for key in LISTS:
            out[key] = summary[key][:left]
            left -= len(out[key])
        out["truncated"] = {key: {"listed": len(out[key]), "total": totals[key]} for key in LISTS
                            if len(out[key]) < totals[key]}
        out["note"] = TRUNCATED_NOTE
        return out

    lo, hi = 0, sum(totals.values())
    while lo < hi:  # the most entries that fit
        mid = (lo + hi + 1) // 2
        if len(render(keep(mid))) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return keep(lo), True


def _render(report: dict[str, Any]) -> str:
    """summary.json as written (ASCII: its length is its size in bytes)."""
    return json.dumps(report, indent=2)
