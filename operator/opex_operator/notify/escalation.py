"""The escalation matrix: who is notified, and when, while an incident is unresolved (pure).

Source: the runbook, Deployment Failure Runbook, Escalation Matrix — Level 1 DevOps lead
immediately, Level 2 engineering manager if not resolved in 30 minutes, Level 3 CTO for critical
production issues. The default
matrix is operator policy (``policy.DEFAULT_LEVELS``); an Incident's ``spec.escalation.levels``
replaces it. Times count from ``status.detectedAt``; ``status.escalation.nextEscalationAt`` is
persisted so a restart neither skips nor repeats a level.

An incident's playbook may page every level at once (``Playbook.pages_every_level_at_once``: a
critical security incident in production, which the runbook contains within 15 minutes, long
before the Level 2 window of 30 minutes has passed).
"""
from __future__ import annotations

import datetime as dt

from ..api.incident import EscalationLevel, Severity
from ..environments import PRODUCTION, same

__all__ = ["PRODUCTION", "applicable", "due"]


def applicable(levels: list[EscalationLevel], severity: Severity, environment: str,
               immediate: bool = False) -> list[EscalationLevel]:
    """The levels that apply to this severity and environment, lowest first; with their
    ``afterSeconds`` set to 0 when ``immediate`` (each level is paged at once: the playbook says
    when). A level's environments match any spelling of the same environment (``prod`` is
    ``production``)."""
    chosen = sorted((lv for lv in levels
                     if (not lv.severities or severity in lv.severities)
                     and (not lv.environments or any(same(environment, e) for e in lv.environments))),
                    key=lambda lv: lv.level)
    if immediate:
        return [lv.model_copy(update={"after_seconds": 0}) for lv in chosen]
    return chosen


def due(levels: list[EscalationLevel], detected_at: dt.datetime, now: dt.datetime, current_level: int,
        force_next: bool = False) -> tuple[list[EscalationLevel], dt.datetime | None]:
    """Levels to notify now (above ``current_level``, their time reached) and when the next one is due.

    ``levels`` must be :func:`applicable`'s result. ``force_next`` escalates to the next level
    at once (a step whose onFailure is Escalate failed). Returns (to_notify, next_at or None).
    """
    pending = [lv for lv in levels if lv.level > current_level]
    now_due = [lv for lv in pending if detected_at + dt.timedelta(seconds=lv.after_seconds) <= now]
    if force_next and pending and not now_due:
        now_due = [pending[0]]
    top = max([current_level] + [lv.level for lv in now_due])
    later = [detected_at + dt.timedelta(seconds=lv.after_seconds) for lv in levels if lv.level > top]
    return now_due, (min(later) if later else None)
