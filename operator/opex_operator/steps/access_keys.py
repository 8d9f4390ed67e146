"""The runbook's "revoke" of a leaked access key: deactivate-access-key-<key> (``iam:UpdateAccessKey``
to Inactive, reversible) or, when the spec asks for Delete, delete-access-key-<key>
(``iam:DeleteAccessKey``). Holds while the key is not Active (deleted counts).
"""
from __future__ import annotations

import asyncio

from ..api.incident import Step
from ..ports import iam
from .base import Held, Outcome, Params, StepAction, StepContext, register
from .changes import changed

DEACTIVATE_ACCESS_KEY, DELETE_ACCESS_KEY = "iam:UpdateAccessKey", "iam:DeleteAccessKey"


class AccessKeyParams(Params):
    """deactivate-access-key-<key> / delete-access-key-<key>: one leaked key of one IAM user."""

    user_name: str
    access_key_id: str


class _KeyAction(StepAction[AccessKeyParams]):
    params = AccessKeyParams

    def observe(self, ctx: StepContext, p: AccessKeyParams) -> str | None:
        """The key's status (Active/Inactive), None when it is gone."""
        key = ctx.aws.iam(*ctx.region_role()).access_key(p.user_name, p.access_key_id)
        return key["Status"] if key else None

    def holds(self, step: Step, p: AccessKeyParams, seen: str | None) -> list[Held]:
        if seen == "Active":
            return [Held(False, f"access key {p.access_key_id} of {p.user_name} is Active again")]
        return [Held(True, f"access key {p.access_key_id} is {seen or 'deleted'}")]


class DeactivateAccessKey(_KeyAction):
    """UpdateAccessKey to Inactive (reversible), unless it already is."""

    names = (DEACTIVATE_ACCESS_KEY,)

    async def execute(self, ctx: StepContext, p: AccessKeyParams) -> Outcome:
        port = ctx.aws.iam(*ctx.region_role())
        return changed(await asyncio.to_thread(port.deactivate_access_key, iam.AccessKeyParams(
            user_name=p.user_name, access_key_id=p.access_key_id)))


class DeleteAccessKey(_KeyAction):
    """DeleteAccessKey. A key already gone fails the step (a wrong id), unless an earlier attempt
    of this step may have deleted it (resumed after a restart, or a retry)."""

    names = (DELETE_ACCESS_KEY,)

    async def execute(self, ctx: StepContext, p: AccessKeyParams) -> Outcome:
        port = ctx.aws.iam(*ctx.region_role())
        return changed(await asyncio.to_thread(port.delete_access_key, iam.DeleteAccessKeyParams(
            user_name=p.user_name, access_key_id=p.access_key_id, missing_ok=ctx.resumed or ctx.step.attempts > 1)))


register(DeactivateAccessKey())
register(DeleteAccessKey())
