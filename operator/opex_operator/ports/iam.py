"""The IAM containment actions' parameters and change records (what ``aws.iam`` takes and returns):
see that adapter for what each call does. Every call names the user: UpdateAccessKey and
DeleteAccessKey without ``UserName`` act on the *caller's* own key (IAM API reference).
"""
from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import ClassVar

from pydantic import Field, model_validator

from ..api.security import ACCESS_KEY_ID, IAM_USER_NAME
from .actions import Change, Params
from .security import DENY_ALL


class AccessKeyParams(Params):
    """One access key of one IAM user."""

    action: ClassVar[str] = "iam:UpdateAccessKey"
    user_name: str = Field(min_length=1, max_length=64, pattern=IAM_USER_NAME)
    access_key_id: str = Field(min_length=16, max_length=128, pattern=ACCESS_KEY_ID)


class DeleteAccessKeyParams(AccessKeyParams):
    action: ClassVar[str] = "iam:DeleteAccessKey"
    missing_ok: bool = Field(default=False, description="True when resuming a step whose earlier attempt may have "
                                                        "deleted the key already; otherwise a missing key fails.")


class LoginProfileParams(Params):
    action: ClassVar[str] = "iam:DeleteLoginProfile"
    user_name: str = Field(min_length=1, max_length=64, pattern=IAM_USER_NAME)


class PrincipalType(StrEnum):
    USER = "user"
    ROLE = "role"
    GROUP = "group"


POLICY_ARN = r"^arn:aws[a-z-]*:iam::(aws|[0-9]{12}):policy/[A-Za-z0-9_+=,.@/-]+$"
POLICY_NAME = r"^[A-Za-z0-9_+=,.@-]{1,128}$"
# An undo command longer than this points at the CloudTrail record holding the document instead.
UNDO_DOCUMENT_CHARS = 700


class PrincipalParams(Params):
    """A user, role or group by name."""

    principal_type: PrincipalType
    principal_name: str = Field(min_length=1, max_length=128, pattern=IAM_USER_NAME)


class DetachPolicyParams(PrincipalParams):
    action: ClassVar[str] = "iam:Detach*Policy"
    policy_arn: str = Field(max_length=2048, pattern=POLICY_ARN)


class InlinePolicyParams(PrincipalParams):
    action: ClassVar[str] = "iam:Delete*Policy"
    policy_name: str = Field(pattern=POLICY_NAME)
    event_id: str | None = Field(default=None, max_length=128, description="The CloudTrail record that put it.")


class QuarantineParams(PrincipalParams):
    """A user or role to quarantine (a group has no credentials of its own to deny)."""

    action: ClassVar[str] = "iam:Attach*Policy"
    policy_arn: str = Field(default=DENY_ALL, pattern=f"^{DENY_ALL}$", description="AWSDenyAll, and nothing else.")

    @model_validator(mode="after")
    def _user_or_role(self) -> "QuarantineParams":
        if self.principal_type == PrincipalType.GROUP:
            raise ValueError("a quarantine is of a user or a role, not a group")
        return self


def _verb(kind: PrincipalType) -> str:
    return kind.value.capitalize()


def _cli(kind: PrincipalType, name: str) -> str:
    return f"--{kind.value}-name {name}"


class PolicyChange(Change):
    """A managed policy detached from (or, for a quarantine, attached to) a principal."""

    principal_type: PrincipalType
    principal_name: str
    policy_arn: str
    attached: bool = Field(description="True: the change attached it (a quarantine); False: it detached it.")
    gone: bool = Field(default=False, description="The principal no longer exists: nothing to change.")

    def describe(self) -> str:
        who = f"IAM {self.principal_type.value} {self.principal_name}"
        policy = self.policy_arn.rsplit("/", 1)[-1]
        if self.gone:
            return f"{who} no longer exists: nothing to change"
        if not self.changed:
            return f"{policy} was already {'attached to' if self.attached else 'not attached to'} {who}: nothing changed"
        return f"{'attached' if self.attached else 'detached'} {policy} {'to' if self.attached else 'from'} {who}"

    def undo(self) -> str | None:
        if not self.changed:
            return None
        verb = "detach" if self.attached else "attach"
        return (f"aws iam {verb}-{self.principal_type.value}-policy {_cli(self.principal_type, self.principal_name)} "
                f"--policy-arn {self.policy_arn}")


class InlinePolicyChange(Change):
    """An inline policy deleted from a principal, with the document it had (for the undo)."""

    principal_type: PrincipalType
    principal_name: str
    policy_name: str
    document: str | None = Field(default=None, description="The policy document deleted (compact JSON).")
    event_id: str | None = None
    gone: bool = False

    def describe(self) -> str:
        who = f"IAM {self.principal_type.value} {self.principal_name}"
        if self.gone:
            return f"{who} no longer exists: nothing to change"
        if not self.changed:
            return f"{who} has no inline policy {self.policy_name}: nothing changed"
        return f"deleted inline policy {self.policy_name} of {who}"

    def undo(self) -> str | None:
        if not self.changed:
            return None
        command = (f"aws iam put-{self.principal_type.value}-policy {_cli(self.principal_type, self.principal_name)} "
                   f"--policy-name {self.policy_name} --policy-document")
        if self.document and len(self.document) <= UNDO_DOCUMENT_CHARS:
            return f"{command} '{self.document}'"
        where = f"CloudTrail event {self.event_id} (requestParameters.policyDocument)" if self.event_id else \
            "the CloudTrail record that put it"
        return f"{command} file://policy.json, with the document of {where}"


class AccessKeyChange(Change):
    """An access key deactivated or deleted; ``previous_status`` is what it was (Active/Inactive)."""

    user_name: str
    access_key_id: str
    previous_status: str | None = Field(description="Active or Inactive; None when the key was already gone.")
    status: str = Field(description="Inactive or Deleted.")

    def describe(self) -> str:
        key = f"access key {self.access_key_id} of IAM user {self.user_name}"
        if not self.changed:
            return f"{key} was already {'deleted' if self.status == 'Deleted' else 'Inactive'}: nothing changed"
        return f"{key}: {self.previous_status} -> {self.status}"

    def undo(self) -> str | None:
        if not self.changed:
            return None
        if self.status == "Deleted":
            return (f"access key {self.access_key_id} of {self.user_name} was deleted and cannot be restored: "
                    f"aws iam create-access-key --user-name {self.user_name} and hand out the new key")
        return (f"aws iam update-access-key --user-name {self.user_name} --access-key-id {self.access_key_id} "
                f"--status {self.previous_status}")


class LoginProfileChange(Change):
    """A user's console password (login profile) removed."""

    user_name: str
    created_at: dt.datetime | None = Field(default=None, description="When the removed login profile was created.")

    def describe(self) -> str:
        if not self.changed:
            return f"IAM user {self.user_name} has no console password (login profile): nothing changed"
        return f"removed the console password (login profile) of IAM user {self.user_name}"

    def undo(self) -> str | None:
        if not self.changed:
            return None
        return (f"aws iam create-login-profile --user-name {self.user_name} --password-reset-required "
                f"--password <a new temporary password>")
