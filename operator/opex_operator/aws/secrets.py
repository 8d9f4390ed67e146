"""Secrets Manager recovery of the runbook's "Security Incident Response": "rotate compromised
credentials" (``aws secretsmanager rotate-secret --secret-id <secret-arn>``).

RotateSecret only starts a rotation: the secret's rotation function (or managed rotation)
creates the new version as AWSPENDING, sets and tests it, and moves AWSCURRENT to it last
(Secrets Manager User Guide, "How rotation works"). Until that last step every reader still
gets the old value, so a rotation that fails never leaves a half-rotated secret behind; a
secret without rotation configured is refused before any call, since RotateSecret without a
function has nothing to run. The ClientRequestToken becomes the new version's id: repeating
the step with the same token follows the rotation already started instead of rotating twice.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field

from ..api.security import SECRET_ID
from .actions import Change, Params
from .clients import AwsClients

CURRENT, PENDING, PREVIOUS = "AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"


class RotationNotConfigured(ValueError):
    """The secret has no rotation function nor managed rotation: RotateSecret must not be called."""


class RotationInProgress(RuntimeError):
    """Another rotation of the secret (a version other than ours) has not finished."""


class RotateSecretParams(Params):
    action: ClassVar[str] = "secretsmanager:RotateSecret"
    secret_id: str = Field(min_length=1, max_length=2048, pattern=SECRET_ID, description="ARN or name.")
    client_request_token: str = Field(min_length=32, max_length=64, pattern=r"^[A-Za-z0-9-]+$",
                                      description="Idempotency token, the new version's id: the same for every "
                                                  "attempt of one step (e.g. a UUID derived from incident and step).")


class RotationState(StrEnum):
    IN_PROGRESS = "InProgress"   # the new version is AWSPENDING
    ROTATED = "Rotated"          # AWSCURRENT is on the new version


class SecretRotation(Change):
    """A rotation started (or found already started/finished) with this step's token."""

    secret_arn: str
    name: str
    previous_version_id: str | None = Field(default=None, description="The version that was AWSCURRENT before.")
    version_id: str = Field(description="The new version (the step's ClientRequestToken).")
    state: RotationState

    def describe(self) -> str:
        what = {RotationState.ROTATED: "rotated", RotationState.IN_PROGRESS: "rotation in progress"}[self.state]
        again = "" if self.changed else " (started by an earlier attempt: not started again)"
        return f"secret {self.name}: {what}, version {self.previous_version_id} -> {self.version_id}{again}"

    def undo(self) -> str | None:
        if self.previous_version_id is None:
            return None
        return (f"only if the old credentials still work where they are used: aws secretsmanager "
                f"update-secret-version-stage --secret-id {self.secret_arn} --version-stage {CURRENT} "
                f"--move-to-version-id {self.previous_version_id} --remove-from-version-id {self.version_id}")


def _with(stages: dict[str, list[str]], label: str) -> str | None:
    return next((v for v, labels in stages.items() if label in labels), None)


class SecretsActions:
    def __init__(self, clients: AwsClients, region: str | None, role_key: str | None):
        self.sm = clients.client("secretsmanager", region, role_key)

    def _describe(self, secret_id: str) -> dict[str, Any]:
        return self.sm.describe_secret(SecretId=secret_id)

    def rotate(self, p: RotateSecretParams) -> SecretRotation:
        """Start the rotation (RotateSecret with the token), or find the one this token started.

        Raises RotationNotConfigured (saying what to configure) when the secret has no rotation,
        RotationInProgress when another rotation has not finished (AWSPENDING on another
        version), AwsError otherwise (ResourceNotFoundException naming the secret).
        """
        secret = self._describe(p.secret_id)
        stages: dict[str, list[str]] = secret.get("VersionIdsToStages", {})
        token = p.client_request_token
        if token in stages:
            return self._rotation(secret, token, changed=False)
        if not (secret.get("RotationEnabled") or secret.get("RotationLambdaARN")):
            raise RotationNotConfigured(
                f"secret {secret['Name']} has no rotation configured, so it was not rotated (nothing changed). "
                f"Configure a rotation function (aws secretsmanager rotate-secret --secret-id {secret['ARN']} "
                f"--rotation-lambda-arn <function ARN> --rotation-rules AutomaticallyAfterDays=30; AWS publishes "
                f"rotation function templates per database), or managed rotation for secrets that support it, "
                f"then run the step again; or change the credential by hand and put-secret-value.")
        pending = _with(stages, PENDING)
        if pending is not None and CURRENT not in stages[pending]:
            raise RotationInProgress(
                f"secret {secret['Name']}: an earlier rotation (version {pending}) has not finished; AWSCURRENT is "
                f"unchanged. See the rotation function's logs; when it cannot finish, remove the label with "
                f"update-secret-version-stage --version-stage {PENDING} --remove-from-version-id {pending}")
        self.sm.rotate_secret(SecretId=p.secret_id, ClientRequestToken=token, RotateImmediately=True)
        return self._rotation(self._describe(p.secret_id), token, changed=True,
                              previous=_with(stages, CURRENT))

    def rotation(self, secret_id: str, version_id: str) -> SecretRotation:
        """Where the rotation to ``version_id`` stands (poll until ROTATED). Raises LookupError when
        the version is gone (the rotation failed and its version was removed)."""
        return self._rotation(self._describe(secret_id), version_id, changed=False)

    @staticmethod
    def _rotation(secret: dict[str, Any], version_id: str, changed: bool, previous: str | None = None) -> SecretRotation:
        stages: dict[str, list[str]] = secret.get("VersionIdsToStages", {})
        if version_id not in stages:
            raise LookupError(f"secret {secret['Name']} has no version {version_id}: its rotation did not finish "
                              f"and the version was removed; AWSCURRENT is unchanged")
        labels = stages[version_id]
        # A version with neither label was current once and has been superseded since.
        state = RotationState.IN_PROGRESS if PENDING in labels and CURRENT not in labels else RotationState.ROTATED
        if previous is None:
            previous = _with(stages, PREVIOUS) if state == RotationState.ROTATED else _with(stages, CURRENT)
        return SecretRotation(changed=changed, secret_arn=secret["ARN"], name=secret["Name"],
                              previous_version_id=previous, version_id=version_id, state=state)
