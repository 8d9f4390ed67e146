"""Names the guard rails of automation share between the operator and the ``opex`` CLI.

The circuit breaker (``guardrails.breaker``): an object whose automated change it holds carries the
condition ``CircuitOpen``; ``opex breaker reset`` annotates each such object with
``opex.dev/breaker-reset`` (a new value each time), so its reconcile loop asks the breaker again at
once instead of at its next requeue.
"""
from __future__ import annotations

CIRCUIT_OPEN = "CircuitOpen"
BREAKER_RESET_ANNOTATION = "opex.dev/breaker-reset"
