"""IAM containment of the runbook's "Security Incident Response" (Containment, 0-15 minutes):
"disable compromised user accounts" and "revoke" their access keys.

Every call names the user: UpdateAccessKey and DeleteAccessKey without ``UserName`` act on the
*caller's* own key (IAM API reference), so no action here ever leaves it out, and a key is
only touched after ListAccessKeys shows it belongs to that user.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from pydantic import Field

from ..api.security import ACCESS_KEY_ID, IAM_USER_NAME
from ..errors import AwsError
from .actions import Change, Params
from .clients import AwsClients


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


class IamActions:
    """Containment of compromised IAM users (IAM is global: ``region`` only picks the endpoint)."""

    def __init__(self, clients: AwsClients, region: str | None, role_key: str | None):
        self.iam = clients.client("iam", region, role_key)

    def access_key(self, user_name: str, access_key_id: str) -> dict[str, Any] | None:
        """The key's AccessKeyMetadata among ``user_name``'s keys, or None. Raises AwsError
        (NoSuchEntity naming the user) when the user does not exist."""
        for page in self.iam.get_paginator("list_access_keys").paginate(UserName=user_name):
            for key in page["AccessKeyMetadata"]:
                if key["AccessKeyId"] == access_key_id:
                    return key
        return None

    def has_login_profile(self, user_name: str) -> bool:
        """True when ``user_name`` has a console password (GetLoginProfile). Raises AwsError."""
        try:
            self.iam.get_login_profile(UserName=user_name)
        except AwsError as err:
            if err.not_found:
                return False
            raise
        return True

    def _existing_key(self, p: AccessKeyParams) -> dict[str, Any]:
        key = self.access_key(p.user_name, p.access_key_id)
        if key is None:
            raise LookupError(f"access key {p.access_key_id} is not a key of IAM user {p.user_name} "
                              f"(iam:ListAccessKeys does not list it); check both in spec.targets.security.iamUsers")
        return key

    def deactivate_access_key(self, p: AccessKeyParams) -> AccessKeyChange:
        """UpdateAccessKey to Inactive (reversible), unless it already is.

        Raises LookupError when the key is not one of the user's, AwsError otherwise
        (``describe()`` names iam:ListAccessKeys or iam:UpdateAccessKey).
        """
        previous = self._existing_key(p)["Status"]
        if previous != "Inactive":
            self.iam.update_access_key(UserName=p.user_name, AccessKeyId=p.access_key_id, Status="Inactive")
        return AccessKeyChange(changed=previous != "Inactive", user_name=p.user_name, access_key_id=p.access_key_id,
                               previous_status=previous, status="Inactive")

    def delete_access_key(self, p: DeleteAccessKeyParams) -> AccessKeyChange:
        """DeleteAccessKey (irreversible; only when the spec asks for Delete).

        A missing key is a no-op with ``missing_ok``, else LookupError naming it.
        """
        key = self.access_key(p.user_name, p.access_key_id)
        if key is None and p.missing_ok:
            return AccessKeyChange(changed=False, user_name=p.user_name, access_key_id=p.access_key_id,
                                   previous_status=None, status="Deleted")
        previous = (key or self._existing_key(p))["Status"]
        self.iam.delete_access_key(UserName=p.user_name, AccessKeyId=p.access_key_id)
        return AccessKeyChange(changed=True, user_name=p.user_name, access_key_id=p.access_key_id,
                               previous_status=previous, status="Deleted")

    def remove_login_profile(self, p: LoginProfileParams) -> LoginProfileChange:
        """DeleteLoginProfile of this user only (the runbook's "disable compromised user accounts").

        A user without a console password is a no-op. Raises AwsError (NoSuchEntity on
        iam:GetUser) when the user does not exist.
        """
        self.iam.get_user(UserName=p.user_name)  # GetLoginProfile's NoSuchEntity cannot tell "no user" apart
        try:
            profile = self.iam.get_login_profile(UserName=p.user_name)["LoginProfile"]
        except AwsError as err:
            if not err.not_found:
                raise
            return LoginProfileChange(changed=False, user_name=p.user_name)
        try:
            self.iam.delete_login_profile(UserName=p.user_name)
        except AwsError as err:
            if not err.not_found:
                raise
            return LoginProfileChange(changed=False, user_name=p.user_name)  # removed by someone in between
        return LoginProfileChange(changed=True, user_name=p.user_name, created_at=profile.get("CreateDate"))
