"""What the compromise gave itself, undone (the runbook's containment applied to what the attacker
made): detach-<type>-policy-<name>-<policy>, delete-<type>-policy-<name>-<policy> and
quarantine-<user|role>-<name>. Each reads the principal's policies first and changes only what
differs; a principal deleted since is contained already. The undo is the adapter's change record.
"""
from __future__ import annotations

import asyncio
from typing import ClassVar

from pydantic import ValidationError

from ..api.incident import Step
from ..ports import iam
from ..ports.security import DENY_ALL
from .base import Held, Outcome, Params, StepAction, StepContext, register
from .changes import changed, refused

DETACH_USER_POLICY, DETACH_ROLE_POLICY, DETACH_GROUP_POLICY = (
    "iam:DetachUserPolicy", "iam:DetachRolePolicy", "iam:DetachGroupPolicy")
DELETE_USER_POLICY, DELETE_ROLE_POLICY, DELETE_GROUP_POLICY = (
    "iam:DeleteUserPolicy", "iam:DeleteRolePolicy", "iam:DeleteGroupPolicy")
# Only ever AWSDenyAll: a quarantine.
ATTACH_USER_POLICY, ATTACH_ROLE_POLICY = "iam:AttachUserPolicy", "iam:AttachRolePolicy"


class DetachPolicyParams(Params):
    """detach-<type>-policy-<name>-<policy>: a managed policy the compromise attached to a user,
    role or group (``principal_type``); ``event_id`` is the CloudTrail record that attached it."""

    principal_type: str
    principal_name: str
    policy_arn: str
    event_id: str | None = None


class InlinePolicyParams(Params):
    """delete-<type>-policy-<name>-<policy>: an inline policy the compromise put on a user, role or
    group; ``event_id`` is the CloudTrail record that put it (it holds the document)."""

    principal_type: str
    principal_name: str
    policy_name: str
    event_id: str | None = None


class QuarantineParams(Params):
    """quarantine-<type>-<name>: AWS's managed policy AWSDenyAll attached to a user or role the
    compromise made (or whose trust it changed), so none of its credentials or sessions can act."""

    principal_type: str
    principal_name: str
    event_id: str | None = None


PolicyParams = DetachPolicyParams | InlinePolicyParams | QuarantineParams


class _PolicyAction(StepAction[PolicyParams]):
    """An IAM policy change to one principal: the step's params become the adapter's (``adapter``,
    which refuses what IAM would) and ``method`` of the IAM port carries it out."""

    adapter: ClassVar[type[iam.PrincipalParams]]
    method: ClassVar[str]
    inline: ClassVar[bool] = False

    async def execute(self, ctx: StepContext, p: PolicyParams) -> Outcome:
        try:
            params = self.adapter.model_validate(p.model_dump(include=set(self.adapter.model_fields)))
        except ValidationError as err:
            return refused(err)
        port = ctx.aws.iam(*ctx.region_role())
        change = await asyncio.to_thread(getattr(port, self.method), params)
        outcome = changed(change)
        if outcome.undo is None and not change.gone and (ctx.resumed or ctx.step.attempts > 1):
            # An earlier attempt's call may be what made it so (the operator died before recording
            # it): its undo is what reverses that.
            outcome.undo = (f"if the interrupted attempt made the change: "
                            f"{change.model_copy(update={'changed': True}).undo()}")
        return outcome

    def observe(self, ctx: StepContext, p: PolicyParams) -> list[str] | None:
        """The principal's inline policy names or attached policy ARNs; None when it is gone."""
        port, kind = ctx.aws.iam(*ctx.region_role()), iam.PrincipalType(p.principal_type)
        if self.inline:
            return port.inline_policies(kind, p.principal_name)
        return port.attached_policies(kind, p.principal_name)

    def holds(self, step: Step, p: PolicyParams, seen: list[str] | None) -> list[Held]:
        """A detached policy not attached again, a deleted inline policy not back, AWSDenyAll still on
        a quarantined principal; a principal deleted since is contained."""
        who = f"IAM {p.principal_type} {p.principal_name}"
        if seen is None:
            return [Held(True, f"{who} no longer exists")]
        if isinstance(p, QuarantineParams):
            if DENY_ALL in seen:
                return [Held(True, f"{who} is quarantined (AWSDenyAll attached)")]
            return [Held(False, f"AWSDenyAll is no longer attached to {who}")]
        name = p.policy_name if isinstance(p, InlinePolicyParams) else p.policy_arn
        short = name.rsplit("/", 1)[-1]
        if name in seen:
            return [Held(False, f"{who} has {short} again")]
        return [Held(True, f"{who} does not have {short}")]


class DetachPolicy(_PolicyAction):
    """The managed policy the compromise attached, detached (iam:Detach{User,Role,Group}Policy); a
    no-op when it is not attached or the principal is gone. Undo: attach it again."""

    names = (DETACH_USER_POLICY, DETACH_ROLE_POLICY, DETACH_GROUP_POLICY)
    params = DetachPolicyParams
    adapter, method = iam.DetachPolicyParams, "detach_policy"


class DeleteInlinePolicy(_PolicyAction):
    """The inline policy the compromise put, deleted after its document is read
    (iam:Delete{User,Role,Group}Policy); a no-op when it is not there. Undo: put it again."""

    names = (DELETE_USER_POLICY, DELETE_ROLE_POLICY, DELETE_GROUP_POLICY)
    params = InlinePolicyParams
    adapter, method, inline = iam.InlinePolicyParams, "delete_inline_policy", True


class Quarantine(_PolicyAction):
    """AWSDenyAll attached to a user or role the compromise made (or whose trust it changed), so none
    of its keys, passwords or sessions can act (iam:Attach{User,Role}Policy, of that policy only); a
    no-op when it is attached or the principal is gone. Undo: detach it."""

    names = (ATTACH_USER_POLICY, ATTACH_ROLE_POLICY)
    params = QuarantineParams
    adapter, method = iam.QuarantineParams, "quarantine"


register(DetachPolicy())
register(DeleteInlinePolicy())
register(Quarantine())
