"""The circuit breaker as both controllers ask it, before a change no person approved (issue 26).

A DriftCheck's Auto resolution and an Incident's Auto step each ask :func:`ask` once per pass
until admitted; the answer sets the object's ``CircuitOpen`` condition and its Events
(:func:`record`). Counting, limits and the sliding hour are ``guardrails.breaker``'s; the store
is the ``ports.breaker.Breaker`` the entry point wires (a Lease per namespace).
"""
from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Protocol

from ..api.common import ConditionStatus
from ..api.conditions import get
from ..api.guardrails import CIRCUIT_OPEN
from ..errors import KubeError
from ..guardrails.breaker import Admission, Verdict, Window
from ..policy import Policy
from ..ports.breaker import Breaker

UNREADABLE_RETRY = dt.timedelta(seconds=60)


class Recorder(Protocol):
    st: Any  # the object's status (its conditions)

    def condition(self, type_: str, status: ConditionStatus, reason: str, message: str) -> bool: ...
    def event(self, reason: str, message: str, warning: bool = False) -> None: ...


async def ask(breaker: Breaker, policy: Policy, namespace: str, environment: str | None, change_id: str,
              now: dt.datetime) -> Admission:
    """The breaker's answer for ``change_id`` (counted when admitted, once per id). A breaker that
    cannot be read holds the change (fail closed) and is asked again in a minute."""
    limits = policy.change_limits(namespace, environment)
    try:
        return await asyncio.to_thread(breaker.admit, namespace, change_id, environment, limits)
    except KubeError as err:
        return Admission(Verdict.HELD, Window(), f"circuit breaker unreadable ({err.describe()}); Auto waits and "
                                                 f"asks again", reopens_at=now + UNREADABLE_RETRY)


def record(pass_: Recorder, admission: Admission, now: dt.datetime) -> float | None:
    """Set ``CircuitOpen`` from ``admission`` (an Event when it changes). None when the change may run,
    else the seconds until the hour frees a place (0: only a person or ``opex breaker reset``)."""
    if admission.allowed:  # CircuitOpen=False only on an object it held before: no condition on every Auto object
        if get(pass_.st.conditions, CIRCUIT_OPEN) is not None and pass_.condition(CIRCUIT_OPEN, ConditionStatus.FALSE, "Admitted", admission.message):
            pass_.event("CircuitClosed", admission.message)
        return None
    if pass_.condition(CIRCUIT_OPEN, ConditionStatus.TRUE, "AutomatedChangeLimit", admission.message):
        pass_.event("CircuitOpen", admission.message, warning=True)
    return max(1.0, (admission.reopens_at - now).total_seconds()) if admission.reopens_at else 0.0


def approved(pass_: Recorder, what: str) -> None:
    """A person approved the change the breaker held (``what``): it runs uncounted; CircuitOpen says so."""
    held = get(pass_.st.conditions, CIRCUIT_OPEN)
    if held is not None and held.status == ConditionStatus.TRUE:
        pass_.condition(CIRCUIT_OPEN, ConditionStatus.FALSE, "Approved", f"{what} was approved by a person: it runs "
                                                                         f"without counting against the limit")
