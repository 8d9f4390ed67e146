"""IAM containment of the runbook's "Security Incident Response" (Containment, 0-15 minutes):
"disable compromised user accounts" and "revoke" their access keys, and undo what the
compromise gave itself: a managed policy it attached is detached, an inline policy it put is
deleted (its document kept for the undo), a user or role it made is quarantined with AWS's
managed policy ``AWSDenyAll`` (an explicit deny of every action, reversible by detaching it).

Every call names the user: UpdateAccessKey and DeleteAccessKey without ``UserName`` act on the
*caller's* own key (IAM API reference), so no action here ever leaves it out, and a key is
only touched after ListAccessKeys shows it belongs to that user. Every policy change reads the
principal's policies first and changes only what differs; a principal that no longer exists is
contained already (a no-op that says so).
"""
from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field, model_validator

from ..api.security import ACCESS_KEY_ID, IAM_USER_NAME
from ..errors import AwsError
from ..runbooks.blast_radius import DENY_ALL
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

    # -- what the compromise gave itself -----------------------------------------------------------
    def _list(self, method: str, key: str, kind: PrincipalType, name: str) -> list[Any] | None:
        """Every page's ``key`` items of ``<method>_<kind>_policies``, None when the principal is gone."""
        out: list[Any] = []
        try:
            for page in self.iam.get_paginator(f"{method}_{kind.value}_policies").paginate(
                    **{f"{_verb(kind)}Name": name}):
                out += page[key]
        except AwsError as err:
            if err.not_found:
                return None
            raise
        return out

    def attached_policies(self, kind: PrincipalType, name: str) -> list[str] | None:
        """The managed policy ARNs attached to the principal (ListAttached{User,Role,Group}Policies),
        None when it does not exist. Raises AwsError."""
        found = self._list("list_attached", "AttachedPolicies", kind, name)
        return None if found is None else [p["PolicyArn"] for p in found]

    def inline_policies(self, kind: PrincipalType, name: str) -> list[str] | None:
        """The inline policy names of the principal (List{User,Role,Group}Policies), None when it
        does not exist. Raises AwsError."""
        return self._list("list", "PolicyNames", kind, name)

    def detach_policy(self, p: DetachPolicyParams) -> PolicyChange:
        """Detach{User,Role,Group}Policy of ``p.policy_arn``, unless it is not attached (or the
        principal is gone). Raises AwsError (iam:Detach*Policy denied, ...)."""
        attached = self.attached_policies(p.principal_type, p.principal_name)
        change = PolicyChange(changed=False, principal_type=p.principal_type, principal_name=p.principal_name,
                              policy_arn=p.policy_arn, attached=False, gone=attached is None)
        if not attached or p.policy_arn not in attached:
            return change
        try:
            getattr(self.iam, f"detach_{p.principal_type.value}_policy")(
                **{f"{_verb(p.principal_type)}Name": p.principal_name, "PolicyArn": p.policy_arn})
        except AwsError as err:
            if not err.not_found:  # detached by someone in between
                raise
            return change
        return change.model_copy(update={"changed": True})

    def quarantine(self, p: QuarantineParams) -> PolicyChange:
        """Attach AWSDenyAll to the user or role, unless it is attached already (or the principal
        is gone). Raises AwsError (iam:Attach*Policy denied, ...)."""
        attached = self.attached_policies(p.principal_type, p.principal_name)
        change = PolicyChange(changed=False, principal_type=p.principal_type, principal_name=p.principal_name,
                              policy_arn=p.policy_arn, attached=True, gone=attached is None)
        if attached is None or p.policy_arn in attached:
            return change
        getattr(self.iam, f"attach_{p.principal_type.value}_policy")(
            **{f"{_verb(p.principal_type)}Name": p.principal_name, "PolicyArn": p.policy_arn})
        return change.model_copy(update={"changed": True})

    def delete_inline_policy(self, p: InlinePolicyParams) -> InlinePolicyChange:
        """Delete{User,Role,Group}Policy after reading its document (kept for the undo), unless the
        principal has no such policy (or is gone). Raises AwsError."""
        kind, who = p.principal_type, {f"{_verb(p.principal_type)}Name": p.principal_name}
        change = InlinePolicyChange(changed=False, principal_type=kind, principal_name=p.principal_name,
                                    policy_name=p.policy_name, event_id=p.event_id)
        names = self.inline_policies(kind, p.principal_name)
        if names is None or p.policy_name not in names:
            return change.model_copy(update={"gone": names is None})
        try:
            doc = getattr(self.iam, f"get_{kind.value}_policy")(PolicyName=p.policy_name, **who)["PolicyDocument"]
            getattr(self.iam, f"delete_{kind.value}_policy")(PolicyName=p.policy_name, **who)
        except AwsError as err:
            if not err.not_found:  # deleted by someone in between
                raise
            return change
        text = json.dumps(doc, separators=(",", ":")) if not isinstance(doc, str) else doc
        return change.model_copy(update={"changed": True, "document": text})
