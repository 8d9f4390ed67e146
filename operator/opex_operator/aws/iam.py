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
from ..ports.iam import (AccessKeyChange, AccessKeyParams, DeleteAccessKeyParams, DetachPolicyParams, InlinePolicyChange, InlinePolicyParams, LoginProfileChange, LoginProfileParams, POLICY_ARN, POLICY_NAME, PolicyChange, PrincipalParams, PrincipalType, QuarantineParams, UNDO_DOCUMENT_CHARS, _cli, _verb)  # noqa: F401 - the port's types
from .clients import AwsClients


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
