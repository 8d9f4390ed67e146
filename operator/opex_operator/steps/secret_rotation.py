"""rotate-secret-<name>: the runbook's "rotate compromised credentials"
(``secretsmanager:RotateSecret`` with this step's token, followed until AWSCURRENT moved).
Holds once the rotation finished."""
from __future__ import annotations

import asyncio

from ..api.incident import Step
from ..ports import secrets
from .base import Held, Outcome, Params, StepAction, StepContext, register, request_token

ROTATE_SECRET = "secretsmanager:RotateSecret"
ROTATION_POLL = 10.0


class RotateSecretParams(Params):
    """rotate-secret-<name>: RotateSecret; ``version_id`` is recorded once the rotation started."""

    secret_id: str
    version_id: str | None = None


def secret_name(secret_id: str) -> str:
    """The name part of a secret's ARN (``...:secret:prod/db-AbCdEf`` -> ``prod/db-AbCdEf``), or the name itself."""
    return secret_id.split(":secret:", 1)[-1]


class RotateSecret(StepAction[RotateSecretParams]):
    """RotateSecret, then follow the rotation until AWSCURRENT moved.

    The four findings of ``aws.secrets`` each answer differently: no rotation configured and a
    missing rotation function fail the step saying what to configure (nothing changed); another
    rotation in progress is retried later; another rotation stuck fails the step saying how to
    clear it, as does this step's own rotation once it stays AWSPENDING past the rotation window.
    A rotation whose version was removed (the rotation function failed) fails the step,
    AWSCURRENT unchanged.
    """

    names = (ROTATE_SECRET,)
    params = RotateSecretParams

    async def execute(self, ctx: StepContext, p: RotateSecretParams) -> Outcome:
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

    def observe(self, ctx: StepContext, p: RotateSecretParams) -> str:
        """Rotated, InProgress, or missing (the rotation's version was removed: it failed)."""
        if not p.version_id:
            return "missing"
        try:
            return ctx.aws.secrets(*ctx.region_role()).rotation(p.secret_id, p.version_id).state.value
        except LookupError:
            return "missing"

    def holds(self, step: Step, p: RotateSecretParams, seen: str) -> list[Held]:
        name = secret_name(p.secret_id)
        if seen == "Rotated":
            return [Held(True, f"secret {name} rotated")]
        if seen == "InProgress":
            return [Held(None, f"secret {name}: rotation in progress")]
        return [Held(False, f"secret {name}: its rotation did not finish (version {p.version_id} is gone)")]


register(RotateSecret())
