"""How an adapter's change record (``aws.actions.Change``) becomes a step's Outcome."""
from __future__ import annotations

from pydantic import ValidationError

from ..ports.actions import Change
from .base import Outcome


def changed(change: Change) -> Outcome:
    """Done, with what changed (or why nothing did) and how to undo it."""
    return Outcome(done=True, outputs=change.describe(), undo=change.undo())


def refused(err: ValidationError) -> Outcome:
    """A params model refused the step's inputs (e.g. a private range without allowPrivateRanges)."""
    first = err.errors()[0]
    return Outcome(done=True, ok=False, error=str(first["msg"]).removeprefix("Value error, "))
