"""How a SecurityIncident's steps are carried out (``runbooks.security_response`` plans them).

Each executor turns the step's params into its adapter's params model and calls the adapter,
which reads the current state first and changes only what differs (a key already Inactive, an
address already in the set, a rule already gone: a no-op success that says so). What changed
and how to undo it is recorded on the step (``outputs``, ``undo``). A target that does not
exist fails the step naming it (LookupError, or AwsError not-found), before anything changed.
Idempotency tokens come from the incident's uid and the step id (``runbooks.steps.request_token``),
so a repeated call after a restart is the call already made.
"""
from __future__ import annotations

import asyncio

from pydantic import ValidationError

from ..api.security import IpProtocol, WafScope
from ..aws import ec2, iam, secrets, waf
from ..aws.actions import Change
from ..ports import IamPort
from ..runbooks.security_response import ContainmentFacts, principal_key
from ..runbooks.steps import (AccessKeyParams, BlockIpsParams, DetachPolicyParams, InlinePolicyParams,
                              LoginProfileParams, QuarantineParams, RevokeIngressParams, RotateSecretParams, StepAction,
                              request_token)
from .steps import Executor, Outcome, StepContext

ROTATION_POLL = 10.0


def _changed(change: Change) -> Outcome:
    return Outcome(done=True, outputs=change.describe(), undo=change.undo())


def _refused(err: ValidationError) -> Outcome:
    """A params model refused the step's inputs (e.g. a private range without allowPrivateRanges)."""
    first = err.errors()[0]
    return Outcome(done=True, ok=False, error=str(first["msg"]).removeprefix("Value error, "))


async def deactivate_access_key(ctx: StepContext, p: AccessKeyParams) -> Outcome:
    """UpdateAccessKey to Inactive (reversible), unless it already is."""
    port = ctx.aws.iam(*ctx.region_role())
    return _changed(await asyncio.to_thread(port.deactivate_access_key, iam.AccessKeyParams(
        user_name=p.user_name, access_key_id=p.access_key_id)))


async def delete_access_key(ctx: StepContext, p: AccessKeyParams) -> Outcome:
    """DeleteAccessKey. A key already gone fails the step (a wrong id), unless an earlier attempt
    of this step may have deleted it (resumed after a restart, or a retry)."""
    port = ctx.aws.iam(*ctx.region_role())
    return _changed(await asyncio.to_thread(port.delete_access_key, iam.DeleteAccessKeyParams(
        user_name=p.user_name, access_key_id=p.access_key_id, missing_ok=ctx.resumed or ctx.step.attempts > 1)))


async def remove_login_profile(ctx: StepContext, p: LoginProfileParams) -> Outcome:
    """DeleteLoginProfile of this user only; a user without a console password is a no-op."""
    port = ctx.aws.iam(*ctx.region_role())
    return _changed(await asyncio.to_thread(port.remove_login_profile, iam.LoginProfileParams(user_name=p.user_name)))


async def block_ips(ctx: StepContext, p: BlockIpsParams) -> Outcome:
    """Merge the addresses into the IP set (read, merge, write with the lock token; never drops one)."""
    try:
        params = waf.BlockAddressesParams(name=p.name, id=p.id, scope=WafScope(p.scope), region=p.region,
                                          addresses=p.addresses, allow_private_ranges=p.allow_private_ranges,
                                          allow_world_ranges=p.allow_world_ranges)
    except ValidationError as err:
        return _refused(err)
    port = ctx.aws.waf(p.region or ctx.spec.targets.region, ctx.spec.targets.role_key)
    return _changed(await asyncio.to_thread(port.block_addresses, params))


async def revoke_ingress(ctx: StepContext, p: RevokeIngressParams) -> Outcome:
    """Revoke exactly the rules asked for; narrower rules stay, a rule already gone is a no-op."""
    try:
        params = ec2.RevokeIngressParams(group_id=p.group_id, protocol=IpProtocol(p.protocol), from_port=p.from_port,
                                         to_port=p.to_port, cidrs=p.cidrs)
    except ValidationError as err:
        return _refused(err)
    port = ctx.aws.ec2(*ctx.region_role())
    return _changed(await asyncio.to_thread(port.revoke_ingress, params))


async def rotate_secret(ctx: StepContext, p: RotateSecretParams) -> Outcome:
    """RotateSecret with this step's token, then follow the rotation until AWSCURRENT moved.

    The four findings of ``aws.secrets`` each answer differently: no rotation configured and a
    missing rotation function fail the step saying what to configure (nothing changed); another
    rotation in progress is retried later; another rotation stuck fails the step saying how to
    clear it, as does this step's own rotation once it stays AWSPENDING past the rotation window.
    A rotation whose version was removed (the rotation function failed) fails the step,
    AWSCURRENT unchanged.
    """
    port = ctx.aws.secrets(*ctx.region_role())
    try:
        if p.version_id is None:
            rotation = await asyncio.to_thread(port.rotate, secrets.RotateSecretParams(
                secret_id=p.secret_id, client_request_token=request_token(ctx.ref.uid, ctx.step.id)), ctx.now)
        else:  # started by this step: follow it
            rotation = (await asyncio.to_thread(port.rotation, p.secret_id, p.version_id, ctx.now)).model_copy(
                update={"changed": True})
    except (secrets.RotationNotConfigured, secrets.RotationFunctionMissing, secrets.RotationStuck) as err:
        return Outcome(done=True, ok=False, error=str(err))
    except secrets.RotationInProgress as err:
        return Outcome(done=True, ok=False, error=str(err), retryable=True)
    started = p.model_copy(update={"version_id": rotation.version_id})
    if rotation.state == secrets.RotationState.STUCK:
        return Outcome(done=True, ok=False, params=started, undo=rotation.undo(),
                       error=f"{rotation.describe()}: version {rotation.version_id} stayed AWSPENDING past the "
                             f"rotation window; AWSCURRENT is unchanged")
    if rotation.state == secrets.RotationState.IN_PROGRESS:
        return Outcome(done=False, outputs=rotation.describe(), params=started, undo=rotation.undo(),
                       requeue=ROTATION_POLL)
    return Outcome(done=True, outputs=rotation.describe(), params=started, undo=rotation.undo())


# -- what the compromise gave itself: one object per action (params, execute, observe; the undo is
# the adapter's change record), as the playbook steps take them ----------------------------------

class _PolicyAction:
    """An IAM policy change to one principal: the step's params (``params``) become the adapter's
    (``adapter``, which refuses what IAM would) and ``method`` of the IAM port carries it out,
    reading the principal's policies first (``observe`` reads them again for verification)."""

    actions: tuple[StepAction, ...]
    params: type[DetachPolicyParams | InlinePolicyParams | QuarantineParams]
    adapter: type[iam.PrincipalParams]
    method: str
    inline = False

    @classmethod
    async def execute(cls, ctx: StepContext, p: DetachPolicyParams | InlinePolicyParams | QuarantineParams) -> Outcome:
        try:
            params = cls.adapter.model_validate(p.model_dump(include=set(cls.adapter.model_fields)))
        except ValidationError as err:
            return _refused(err)
        port = ctx.aws.iam(*ctx.region_role())
        change = await asyncio.to_thread(getattr(port, cls.method), params)
        outcome = _changed(change)
        if outcome.undo is None and not change.gone and (ctx.resumed or ctx.step.attempts > 1):
            # An earlier attempt's call may be what made it so (the operator died before recording
            # it): its undo is what reverses that.
            outcome.undo = (f"if the interrupted attempt made the change: "
                            f"{change.model_copy(update={'changed': True}).undo()}")
        return outcome

    @classmethod
    def observe(cls, port: IamPort, p: DetachPolicyParams | InlinePolicyParams | QuarantineParams,
                seen: ContainmentFacts) -> None:
        kind, key = iam.PrincipalType(p.principal_type), principal_key(p.principal_type, p.principal_name)
        if cls.inline:
            seen.inline[key] = port.inline_policies(kind, p.principal_name)
        else:
            seen.attached[key] = port.attached_policies(kind, p.principal_name)


class DetachPolicy(_PolicyAction):
    """detach-<type>-policy-<name>-<policy>: the managed policy the compromise attached, detached
    (iam:Detach{User,Role,Group}Policy); a no-op when it is not attached or the principal is gone.
    Undo: attach it again. Holds while it stays detached (``security_response.holds``)."""

    actions = (StepAction.DETACH_USER_POLICY, StepAction.DETACH_ROLE_POLICY, StepAction.DETACH_GROUP_POLICY)
    params, adapter, method = DetachPolicyParams, iam.DetachPolicyParams, "detach_policy"


class DeleteInlinePolicy(_PolicyAction):
    """delete-<type>-policy-<name>-<policy>: the inline policy the compromise put, deleted after its
    document is read (iam:Delete{User,Role,Group}Policy); a no-op when it is not there. Undo: put
    it again with that document. Holds while it stays deleted."""

    actions = (StepAction.DELETE_USER_POLICY, StepAction.DELETE_ROLE_POLICY, StepAction.DELETE_GROUP_POLICY)
    params, adapter, method, inline = InlinePolicyParams, iam.InlinePolicyParams, "delete_inline_policy", True


class Quarantine(_PolicyAction):
    """quarantine-<user|role>-<name>: AWSDenyAll attached to a user or role the compromise made (or
    whose trust it changed), so none of its keys, passwords or sessions can act
    (iam:Attach{User,Role}Policy, of that policy only); a no-op when it is attached or the
    principal is gone. Undo: detach it. Holds while it stays attached."""

    actions = (StepAction.ATTACH_USER_POLICY, StepAction.ATTACH_ROLE_POLICY)
    params, adapter, method = QuarantineParams, iam.QuarantineParams, "quarantine"


POLICY_ACTIONS: tuple[type[_PolicyAction], ...] = (DetachPolicy, DeleteInlinePolicy, Quarantine)
EXECUTORS: dict[StepAction, Executor] = {a: cls.execute for cls in POLICY_ACTIONS for a in cls.actions}
# What verification reads for a step of these actions (blocking; raises AwsError), by params type.
OBSERVERS = {cls.params: cls.observe for cls in POLICY_ACTIONS}
