"""Environment names as people write them: ``prod``, ``prd``, ``production`` and ``live`` are all production.

Alert rule sets, Terraform workspaces and naming conventions spell production in several ways; a
rule that compared with ``"production"`` alone would page nobody at Level 3 for a critical
``prod`` incident (the runbook, "Escalation Matrix": Level 3 for critical production issues) and
classify a compromised ``prd`` key as outside production (the runbook, "Security Incident
Response"). Every reader of an environment asks :func:`is_production` or :func:`same`, never
compares strings itself.
"""
from __future__ import annotations

PRODUCTION = "production"
# The spellings of production in common rule sets and naming conventions (compared case-insensitively).
PRODUCTION_WORDS = frozenset({"production", "prod", "prd", "live"})


def canonical(environment: str | None) -> str:
    """``environment`` lower-cased and trimmed, with every production spelling as ``production``
    ('' for None)."""
    name = (environment or "").strip().lower()
    return PRODUCTION if name in PRODUCTION_WORDS else name


def is_production(environment: str | None) -> bool:
    """True when ``environment`` names production in any of :data:`PRODUCTION_WORDS`."""
    return canonical(environment) == PRODUCTION


def same(a: str | None, b: str | None) -> bool:
    """True when ``a`` and ``b`` name the same environment (``prod`` and ``production`` do)."""
    return canonical(a) == canonical(b)
