"""Set conditions the Kubernetes way, and derive ``Ready`` from each kind's own conditions.

Rules (API conventions; fluxcd/pkg runtime/conditions): a condition is replaced by type;
``lastTransitionTime`` moves only when ``status`` flips; every write stamps the generation it
was computed from. ``Reconciling`` and ``Stalled`` have negative polarity (True is the
abnormal state) and are removed when they no longer hold, as Flux and kstatus expect.
``Ready`` is never set by hand: :func:`summarize` derives it before every status write.
"""
from __future__ import annotations

import datetime as dt
from typing import Mapping, Sequence

from .common import Condition, ConditionStatus, now

READY = "Ready"
RECONCILING = "Reconciling"   # work is in progress (kstatus: InProgress)
STALLED = "Stalled"           # it cannot go on without a person (kstatus: Failed)
# (status, reason, message) of one condition, as a kind's pure function derives it from typed status.
ConditionValue = tuple[ConditionStatus, str, str]
# What each negative-polarity condition, when True, makes Ready.
NEGATIVE = {STALLED: ConditionStatus.FALSE, RECONCILING: ConditionStatus.UNKNOWN}


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


def remove(conditions: list[Condition], type_: str) -> bool:
    """Drop the condition of ``type_``; True when there was one."""
    kept = [c for c in conditions if c.type != type_]
    removed = len(kept) != len(conditions)
    conditions[:] = kept
    return removed


def mark(conditions: list[Condition], marker: str | None, reason: str, message: str, generation: int | None) -> None:
    """Set the negative-polarity condition ``marker`` (Reconciling or Stalled) True and remove the
    other one; with ``marker`` None remove both (the object is neither busy nor stuck)."""
    for type_ in NEGATIVE:
        if type_ == marker:
            set_condition(conditions, type_, ConditionStatus.TRUE, reason, message, generation)
        else:
            remove(conditions, type_)


def apply(conditions: list[Condition], wanted: Mapping[str, ConditionValue | None], generation: int | None) -> None:
    """Make ``conditions`` say what ``wanted`` derives (condition type → value; None removes it).
    Types not in ``wanted`` are left as they are."""
    for type_, value in wanted.items():
        if value is None:
            remove(conditions, type_)
        else:
            set_condition(conditions, type_, *value, generation)


def summarize(conditions: list[Condition], precedence: Sequence[str], generation: int | None) -> bool:
    """Derive ``Ready`` from the kind's conditions; True when it changed.

    ``precedence`` lists the kind's conditions, most telling first. The first one present
    decides: a negative-polarity condition only while True (``Stalled`` → Ready False,
    ``Reconciling`` → Ready Unknown), a positive one with its own status; Ready takes its
    reason and message. With none present Ready is Unknown/Pending. The pattern of Flux's
    ``conditions.SetSummary``, with an explicit order instead of a severity merge, so a kind
    states which condition speaks for it in each state.
    """
    for type_ in precedence:
        cond = get(conditions, type_)
        if cond is None or (type_ in NEGATIVE and cond.status != ConditionStatus.TRUE):
            continue
        status = NEGATIVE.get(type_, cond.status)
        return set_condition(conditions, READY, status, cond.reason, cond.message, generation)
    return set_condition(conditions, READY, ConditionStatus.UNKNOWN, "Pending", "not reconciled yet", generation)
