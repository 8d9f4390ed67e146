"""remove-login-profile-<user>: the runbook's "disable compromised user accounts"
(``iam:DeleteLoginProfile`` of this user only). Holds while the user has no console password."""
from __future__ import annotations

import asyncio

from ..api.incident import Step
from ..ports import iam
from .base import Held, Outcome, Params, StepAction, StepContext, register
from .changes import changed

DELETE_LOGIN_PROFILE = "iam:DeleteLoginProfile"


class LoginProfileParams(Params):
    """remove-login-profile-<user>: the user's console password."""

    user_name: str


class RemoveLoginProfile(StepAction[LoginProfileParams]):
    """DeleteLoginProfile of this user only; a user without a console password is a no-op."""

    names = (DELETE_LOGIN_PROFILE,)
    params = LoginProfileParams

    async def execute(self, ctx: StepContext, p: LoginProfileParams) -> Outcome:
        port = ctx.aws.iam(*ctx.region_role())
        return changed(await asyncio.to_thread(port.remove_login_profile, iam.LoginProfileParams(user_name=p.user_name)))

    def observe(self, ctx: StepContext, p: LoginProfileParams) -> bool:
        return ctx.aws.iam(*ctx.region_role()).has_login_profile(p.user_name)

    def holds(self, step: Step, p: LoginProfileParams, seen: bool) -> list[Held]:
        if seen:
            return [Held(False, f"IAM user {p.user_name} has a console password again")]
        return [Held(True, f"IAM user {p.user_name} has no console password")]


register(RemoveLoginProfile())
