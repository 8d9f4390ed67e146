"""Values that came from a Secret never leave the operator: :func:`scrub` masks them wherever they
appear (a plan's JSON, a probe's response body, an error message) before anything is written to
a report, status, an Event or a log. DESIGN.md §3: no secret value reaches status, events, logs
or metrics; a value is masked whether or not the configuration declared it ``sensitive``.

A value is masked where it occurs inside a longer string too, once it is long enough to be
distinctive (:data:`MIN_EMBEDDED` characters); a shorter one only where it is the whole string
(masking every "1" in a plan would make the report unreadable, and such a value hides nothing).
"""
from __future__ import annotations

from typing import Any, Iterable

MASK = "(redacted: from a Secret)"
MIN_EMBEDDED = 4


class Scrubber:
    """Masks a fixed set of secret values (built once per run, applied to many texts)."""

    def __init__(self, secrets: Iterable[str]):
        values = {s for s in secrets if isinstance(s, str) and s.strip()}
        # Longest first: a value that contains another is masked whole.
        self.embedded = sorted((v for v in values if len(v) >= MIN_EMBEDDED), key=len, reverse=True)
        self.whole = values

    def __bool__(self) -> bool:
        return bool(self.whole)

    def text(self, value: str) -> str:
        """``value`` with every secret value in it masked."""
        if not self.whole:
            return value
        if value in self.whole:
            return MASK
        for secret in self.embedded:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def __call__(self, value: Any) -> Any:
        """``value`` (a str, or JSON-like dicts and lists of them, keys included) with every secret
        value masked; a new object, the input is left as it was."""
        if not self.whole:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value


def scrub(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` with every one of ``secrets`` masked (see :class:`Scrubber`)."""
    return Scrubber(secrets)(value)
