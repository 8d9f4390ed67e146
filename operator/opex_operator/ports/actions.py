"""The shape every mutating AWS action shares: typed params in, a change record out.

An executor builds the action's :class:`Params` from a step and calls the adapter method with
it; the method reads the current state first, changes only what differs, and returns a
:class:`Change` saying what it changed (``changed`` False: it already was as asked) and how to
undo it, for the step's outputs and the post-incident report.
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import ConfigDict, Field

from ..api.common import Model


class Params(Model):
    """Inputs of one mutating action (camelCase aliases, as a step's params carry them).

    ``action`` is the IAM-style name the operator policy checks (e.g. ``iam:UpdateAccessKey``).
    Unknown keys are refused: a misspelt parameter must not be silently dropped.
    """

    model_config = Model.model_config | ConfigDict(frozen=True, extra="forbid")
    action: ClassVar[str]


class Change(Model):
    """What a mutating action did."""

    changed: bool = Field(description="False when the state already was as asked (a no-op).")

    def describe(self) -> str:
        """One line for the step's outputs, saying what changed or why nothing did."""
        raise NotImplementedError

    def undo(self) -> str | None:
        """How to reverse it (an AWS CLI command or an instruction), or None when nothing changed."""
        raise NotImplementedError
