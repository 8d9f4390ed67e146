"""The circuit breaker's port: may an automated change run now? Adapter:
``guardrails.breaker_store.BreakerStore`` (a Lease per namespace), built in ``wiring``; the decision
itself is ``guardrails.breaker.admit`` (pure)."""
from __future__ import annotations

from typing import Protocol

from ..guardrails.breaker import Admission, ChangeLimit


class Breaker(Protocol):
    """Counts the changes made without a person's approval. Blocks; raises KubeError."""

    def admit(self, namespace: str, change_id: str, environment: str | None, limits: list[ChangeLimit]) -> Admission:
        """Admit (and count, before it returns) or hold the change ``change_id``; the same id is counted once."""
        ...
