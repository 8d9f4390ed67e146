"""The Secrets Manager rotation's parameters, its record and the four reasons it cannot start or
finish (what ``aws.secrets`` takes, returns and raises; see that adapter for how each is decided).
"""
from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from ..api.security import SECRET_ID
from .actions import Change, Params

CURRENT, PENDING, PREVIOUS = "AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"


class RotationNotConfigured(ValueError):
    """The secret has no rotation function nor managed rotation: RotateSecret must not be called."""


class RotationInProgress(RuntimeError):
    """Another rotation of the secret (a version other than ours) has not finished, within its window."""


class RotationStuck(RuntimeError):
    """A rotation's version stayed AWSPENDING past the rotation window (or never finished): it failed."""


class RotationFunctionMissing(LookupError):
    """The secret's rotation function (RotationLambdaARN) does not exist."""


class RotateSecretParams(Params):
    action: ClassVar[str] = "secretsmanager:RotateSecret"
    secret_id: str = Field(min_length=1, max_length=2048, pattern=SECRET_ID, description="ARN or name.")
    client_request_token: str = Field(min_length=32, max_length=64, pattern=r"^[A-Za-z0-9-]+$",
                                      description="Idempotency token, the new version's id: the same for every "
                                                  "attempt of one step (e.g. a UUID derived from incident and step).")


class RotationState(StrEnum):
    IN_PROGRESS = "InProgress"   # the new version is AWSPENDING
    ROTATED = "Rotated"          # AWSCURRENT is on the new version
    STUCK = "Stuck"              # the new version stayed AWSPENDING past the rotation window


class SecretRotation(Change):
    """A rotation started (or found already started/finished) with this step's token."""

    secret_arn: str
    name: str
    previous_version_id: str | None = Field(default=None, description="The version that was AWSCURRENT before.")
    version_id: str = Field(description="The new version (the step's ClientRequestToken).")
    state: RotationState

    def describe(self) -> str:
        what = {RotationState.ROTATED: "rotated", RotationState.IN_PROGRESS: "rotation in progress",
                RotationState.STUCK: "rotation stuck (see the rotation function's logs)"}[self.state]
        again = "" if self.changed else " (started by an earlier attempt: not started again)"
        return f"secret {self.name}: {what}, version {self.previous_version_id} -> {self.version_id}{again}"

    def undo(self) -> str | None:
        if self.previous_version_id is None:
            return None
        return (f"only if the old credentials still work where they are used: aws secretsmanager "
                f"update-secret-version-stage --secret-id {self.secret_arn} --version-stage {CURRENT} "
                f"--move-to-version-id {self.previous_version_id} --remove-from-version-id {self.version_id}")
