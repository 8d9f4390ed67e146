"""Set conditions the Kubernetes way, and derive ``Ready`` from the specific ones.

Rules (API conventions; fluxcd/pkg runtime/conditions): a condition is replaced by type;
``lastTransitionTime`` moves only when ``status`` flips; every write stamps the generation it
was computed from.
"""
from __future__ import annotations

import datetime as dt

from .common import Condition, ConditionStatus, now

READY = "Ready"


def get(conditions: list[Condition], type_: str) -> Condition | None:
    """The condition of ``type_``, or None."""
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: list[Condition], type_: str) -> bool:
    cond = get(conditions, type_)
    return cond is not None and cond.status == ConditionStatus.TRUE


def set_condition(conditions: list[Condition], type_: str, status: ConditionStatus | str, reason: str,
                  message: str, generation: int | None, at: dt.datetime | None = None) -> bool:
    """Set one condition in place; returns True when anything about it changed.

    ``reason`` is CamelCase (metav1.Condition); ``message`` should say what to do next when
    the condition is bad.
    """
    status = ConditionStatus(status)
    at = at or now()
    current = get(conditions, type_)
    if current is None:
        conditions.append(Condition(type=type_, status=status, reason=reason, message=message,
                                    last_transition_time=at, observed_generation=generation))
        return True
    changed = (current.status, current.reason, current.message, current.observed_generation) != (
        status, reason, message, generation)
    if current.status != status:
        current.last_transition_time = at
    current.status, current.reason, current.message, current.observed_generation = status, reason, message, generation
    return changed
