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
from ..runbooks.steps import (AccessKeyParams, BlockIpsParams, LoginProfileParams, RevokeIngressParams,
                              RotateSecretParams, request_token)
from .steps import Outcome, StepContext

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
