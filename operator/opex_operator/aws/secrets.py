"""Secrets Manager recovery of the runbook's "Security Incident Response": "rotate compromised
credentials" (``aws secretsmanager rotate-secret --secret-id <secret-arn>``).

RotateSecret only starts a rotation: the secret's rotation function (or managed rotation)
creates the new version as AWSPENDING, sets and tests it, and moves AWSCURRENT to it last
(Secrets Manager User Guide, "How rotation works"). Until that last step every reader still
gets the old value, so a rotation that fails never leaves a half-rotated secret behind; a
secret without rotation configured is refused before any call, since RotateSecret without a
function has nothing to run. The ClientRequestToken becomes the new version's id: repeating
the step with the same token follows the rotation already started instead of rotating twice.

Four findings keep a rotation from starting or finishing, each its own answer (:func:`pending_rotation`
decides the last two from DescribeSecret and ListSecretVersionIds, with no I/O):

* no rotation configured (``RotationNotConfigured``): nothing to call; configure a function;
* the rotation function is missing (``RotationFunctionMissing``): RotateSecret answers
  ResourceNotFoundException for the function's ARN (the secret itself was just described);
* a rotation in progress (``RotationInProgress``): another version is AWSPENDING and younger than
  the rotation window; the only one worth retrying, once it finished;
* a rotation stuck (``RotationStuck``): AWSPENDING on a version other than AWSCURRENT for longer
  than the rotation window (``RotationRules.Duration``; without one, an hour for an hourly schedule
  and the rest of the UTC day otherwise, Secrets Manager User Guide, "Rotation schedules"), or a
  secret that never finished a rotation (no ``LastRotatedDate``) with another version pending. Its
  rotation function failed; retrying cannot help until the label is cleared.
"""
from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field

from ..api.common import parse_time
from ..api.security import SECRET_ID
from ..errors import AwsError
from ..ports.secrets import (RotationNotConfigured, RotationInProgress, RotationStuck, RotationFunctionMissing, RotateSecretParams, RotationState, SecretRotation)  # noqa: F401 - the port's types
from .clients import AwsClients

from ..ports.secrets import CURRENT, PENDING, PREVIOUS  # noqa: E402


class PendingRotation(StrEnum):
    IN_PROGRESS = "InProgress"
    STUCK = "Stuck"


DAY = dt.timedelta(days=1)


def rotation_window(secret: dict[str, Any]) -> dt.timedelta:
    """How long one rotation may take: ``RotationRules.Duration`` ("3h"), else an hour for an hourly
    ``ScheduleExpression`` and a day otherwise (Secrets Manager User Guide, "Rotation schedules")."""
    rules = secret.get("RotationRules") or {}
    if (m := re.fullmatch(r"\s*(\d+)h\s*", str(rules.get("Duration") or ""))):
        return dt.timedelta(hours=int(m.group(1)))
    if re.search(r"rate\(\s*\d+\s+hours?\s*\)", str(rules.get("ScheduleExpression") or "")):
        return dt.timedelta(hours=1)
    return DAY


def pending_rotation(secret: dict[str, Any], versions: list[dict[str, Any]], version_id: str, now: dt.datetime,
                     ours: bool = False) -> tuple[PendingRotation, str]:
    """Whether the AWSPENDING ``version_id`` of ``secret`` (DescribeSecret) is a rotation in progress or
    stuck, and why. ``versions`` are ListSecretVersionIds' entries (their ``CreatedDate`` dates the
    version; without it, the secret's ``LastChangedDate``); ``ours``: this step started it, so a secret
    that never rotated before is expected to have no ``LastRotatedDate`` yet."""
    window = rotation_window(secret)
    created = next((v.get("CreatedDate") for v in versions if v.get("VersionId") == version_id), None)
    since = parse_time(created) or parse_time(secret.get("LastChangedDate"))
    age = now - since if since else None
    if age is not None and age > window:
        return PendingRotation.STUCK, (f"version {version_id} has been AWSPENDING for {_hours(age)}, longer than the "
                                       f"rotation window of {_hours(window)}")
    if not ours and not secret.get("LastRotatedDate"):
        return PendingRotation.STUCK, (f"version {version_id} is AWSPENDING and the secret has never finished a "
                                       f"rotation (no LastRotatedDate)")
    when = f" for {_hours(age)}" if age is not None else ""
    return PendingRotation.IN_PROGRESS, (f"version {version_id} is AWSPENDING{when}, within the rotation window of "
                                         f"{_hours(window)}")


def _hours(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.0f} days"


def _with(stages: dict[str, list[str]], label: str) -> str | None:
    return next((v for v, labels in stages.items() if label in labels), None)


class SecretsActions:
    def __init__(self, clients: AwsClients, region: str | None, role_key: str | None):
        self.sm = clients.client("secretsmanager", region, role_key)

    def _describe(self, secret_id: str) -> dict[str, Any]:
        return self.sm.describe_secret(SecretId=secret_id)

    def _versions(self, secret_id: str) -> list[dict[str, Any]]:
        return self.sm.list_secret_version_ids(SecretId=secret_id, IncludeDeprecated=False).get("Versions", [])

    def rotate(self, p: RotateSecretParams, now: dt.datetime | None = None) -> SecretRotation:
        """Start the rotation (RotateSecret with the token), or find the one this token started.

        Raises RotationNotConfigured (saying what to configure) when the secret has no rotation,
        RotationInProgress when another rotation has not finished within its window,
        RotationStuck when another rotation's version stayed AWSPENDING (see the module docstring),
        RotationFunctionMissing when the rotation function does not exist, AwsError otherwise
        (ResourceNotFoundException naming the secret). ``now``: UTC, the clock the window is judged by.
        """
        now = now or dt.datetime.now(dt.timezone.utc)
        secret = self._describe(p.secret_id)
        stages: dict[str, list[str]] = secret.get("VersionIdsToStages", {})
        token = p.client_request_token
        if token in stages:
            return self._rotation(secret, token, changed=False, now=now, versions=self._versions(p.secret_id))
        if not (secret.get("RotationEnabled") or secret.get("RotationLambdaARN")):
            raise RotationNotConfigured(
                f"secret {secret['Name']} has no rotation configured, so it was not rotated (nothing changed). "
                f"Configure a rotation function (aws secretsmanager rotate-secret --secret-id {secret['ARN']} "
                f"--rotation-lambda-arn <function ARN> --rotation-rules AutomaticallyAfterDays=30; AWS publishes "
                f"rotation function templates per database), or managed rotation for secrets that support it, "
                f"then run the step again; or change the credential by hand and put-secret-value.")
        pending = _with(stages, PENDING)
        if pending is not None and CURRENT not in stages[pending]:
            state, why = pending_rotation(secret, self._versions(p.secret_id), pending, now)
            clear = (f"update-secret-version-stage --secret-id {secret['ARN']} --version-stage {PENDING} "
                     f"--remove-from-version-id {pending}")
            if state == PendingRotation.STUCK:
                raise RotationStuck(
                    f"secret {secret['Name']}: an earlier rotation (version {pending}) is stuck ({why}); AWSCURRENT "
                    f"is unchanged. Its rotation function failed: read its logs and fix it, then clear the label "
                    f"with {clear} and run the step again")
            raise RotationInProgress(
                f"secret {secret['Name']}: an earlier rotation (version {pending}) has not finished ({why}); "
                f"AWSCURRENT is unchanged. Retried once it finished; when it cannot, clear the label with {clear}")
        try:
            self.sm.rotate_secret(SecretId=p.secret_id, ClientRequestToken=token, RotateImmediately=True)
        except AwsError as err:
            function = secret.get("RotationLambdaARN")
            if err.not_found and function:  # the secret was just described: what is missing is its function
                raise RotationFunctionMissing(
                    f"secret {secret['Name']}: its rotation function {function} does not exist ({err.code}), so it "
                    f"was not rotated (nothing changed). Deploy the function, or point the secret at one with aws "
                    f"secretsmanager rotate-secret --secret-id {secret['ARN']} --rotation-lambda-arn <function "
                    f"ARN>, then run the step again") from err
            raise
        return self._rotation(self._describe(p.secret_id), token, changed=True, previous=_with(stages, CURRENT))

    def rotation(self, secret_id: str, version_id: str, now: dt.datetime | None = None) -> SecretRotation:
        """Where the rotation to ``version_id`` stands (poll until ROTATED; STUCK when its version stayed
        AWSPENDING past the rotation window, judged when ``now`` is given). Raises LookupError when
        the version is gone (the rotation failed and its version was removed)."""
        versions = self._versions(secret_id) if now is not None else []
        return self._rotation(self._describe(secret_id), version_id, changed=False, now=now, versions=versions)

    @staticmethod
    def _rotation(secret: dict[str, Any], version_id: str, changed: bool, previous: str | None = None,
                  now: dt.datetime | None = None, versions: list[dict[str, Any]] = ()) -> SecretRotation:
        stages: dict[str, list[str]] = secret.get("VersionIdsToStages", {})
        if version_id not in stages:
            raise LookupError(f"secret {secret['Name']} has no version {version_id}: its rotation did not finish "
                              f"and the version was removed; AWSCURRENT is unchanged")
        labels = stages[version_id]
        # A version with neither label was current once and has been superseded since.
        state = RotationState.IN_PROGRESS if PENDING in labels and CURRENT not in labels else RotationState.ROTATED
        if state == RotationState.IN_PROGRESS and now is not None and \
                pending_rotation(secret, list(versions), version_id, now, ours=True)[0] == PendingRotation.STUCK:
            state = RotationState.STUCK
        if previous is None:
            previous = _with(stages, PREVIOUS) if state == RotationState.ROTATED else _with(stages, CURRENT)
        return SecretRotation(changed=changed, secret_arn=secret["ARN"], name=secret["Name"],
                              previous_version_id=previous, version_id=version_id, state=state)
