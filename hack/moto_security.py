"""Secrets Manager rotation modelled on moto's backend, for the local stack only (never the product).

moto 5.2.5 cannot rotate a secret as AWS does (REFERENCE.md): without a rotation function
``RotateSecret`` moves AWSCURRENT to a new version that has no value (the secret is broken),
and with one it invokes the function in Docker, which this machine lacks. Here ``RotateSecret``
behaves as it does on AWS with a rotation function configured, the function's four steps
modelled in place (Secrets Manager User Guide, "How rotation works"):

* createSecret: a new version with a new value under AWSPENDING (a JSON secret keeps its keys,
  its ``password`` is replaced; any other secret becomes a new random string);
* setSecret/testSecret: nothing to do (there is no database behind the secret);
* finishSecret: AWSCURRENT moves to the new version, AWSPREVIOUS to the old one.

A secret without a rotation function is refused with InvalidRequestException, as AWS does,
instead of being broken. :func:`hold_rotations` stops rotations of a secret after createSecret
(a rotation still running, or a rotation function that failed: AWSPENDING stays and AWSCURRENT
keeps the old value); :func:`finish_rotation` then completes one.

:func:`next_ids` gives the next access key, security group and WAF IP set created the ids an
example manifest names (moto draws them at random), as ``estate.static_site`` renames its
CloudFront distribution.

AWS managed policies: moto knows them only when told to load all of them (about a thousand,
a second per IAM backend), so each IAM backend here starts with the few the security scenarios
use (:data:`MANAGED_POLICIES`: what an attacker attaches, what AWS quarantines a leaked key with,
and what the operator quarantines with), exactly as moto would load them.

Not exercised: a real rotation function (its code, its calls to the database, its timeouts),
managed rotation, rotation schedules, and the asynchrony of AWS (here a rotation has finished
when RotateSecret returns unless it is held).
"""
from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from typing import Any, Iterator

import moto.ec2.models.security_groups as ec2_groups
import moto.iam.models as iam_models
from moto.awslambda.models import lambda_backends
from moto.secretsmanager.exceptions import InvalidRequestException, ResourceNotFoundException, SecretNotFoundException
from moto.secretsmanager.models import SecretsManagerBackend, secretsmanager_backends
from moto.wafv2.models import WAFV2Backend

MANAGED_POLICIES = ("AdministratorAccess", "AWSDenyAll", "AWSCompromisedKeyQuarantineV2",
                    "AWSCompromisedKeyQuarantineV3")

_lock = threading.Lock()
_held: set[tuple[str, str, str]] = set()   # (account, region, secret name) whose rotations stop at AWSPENDING


def _new_value(current: str | None) -> str:
    try:
        doc = json.loads(current or "")
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "password" in doc:
        return json.dumps({**doc, "password": secrets.token_urlsafe(24)})
    return secrets.token_urlsafe(32)


def _rotate_secret(self: SecretsManagerBackend, secret_id: str, client_request_token: str | None = None,
                   rotation_lambda_arn: str | None = None, rotation_rules: dict[str, Any] | None = None,
                   rotate_immediately: bool = True) -> str:
    if not self._is_valid_identifier(secret_id):
        raise SecretNotFoundException()
    secret = self.secrets[secret_id]
    arn = rotation_lambda_arn or secret.rotation_lambda_arn
    if not arn:
        raise InvalidRequestException("No Lambda rotation function ARN is associated with this secret.")
    try:
        lambda_backends[self.account_id][self.region_name].get_function(arn)
    except Exception:  # noqa: BLE001 - moto raises its own not-found types
        raise ResourceNotFoundException(f"Resource not found for ARN '{arn}'.") from None
    secret.rotation_lambda_arn = arn
    secret.rotation_requested = secret.rotation_enabled = True
    if rotation_rules and "AutomaticallyAfterDays" in rotation_rules:
        secret.auto_rotate_after_days = rotation_rules["AutomaticallyAfterDays"]
    token = client_request_token or secrets.token_hex(16)
    if not rotate_immediately or token in secret.versions:  # the same token again: the same rotation
        return secret.to_short_dict(version_id=token if token in secret.versions else None)
    pending = next((v for v, ver in secret.versions.items() if "AWSPENDING" in ver["version_stages"]), None)
    if pending is not None and "AWSCURRENT" not in secret.versions[pending]["version_stages"]:
        raise InvalidRequestException("Previous rotation request is still in progress.")
    # createSecret
    self.put_secret_value(secret.name, _new_value(secret.secret_string), None, token, ["AWSPENDING"])
    with _lock:
        held = (self.account_id, self.region_name, secret.name) in _held
    if not held:
        _finish(secret, token)
    secret.last_rotation_date = int(time.time())
    return secret.to_short_dict(version_id=token)


def _finish(secret: Any, version_id: str) -> None:
    """finishSecret: AWSCURRENT to ``version_id`` (moto moves AWSPREVIOUS to the old one)."""
    version = secret.versions[version_id]
    secret.reset_default_version(version, version_id)
    version["version_stages"] = ["AWSCURRENT"]
    secret.secret_string = version.get("secret_string")


SecretsManagerBackend.rotate_secret = _rotate_secret


def hold_rotations(account: str, region: str, name: str) -> None:
    """Rotations of secret ``name`` stop after createSecret, as when its function is still running or failed."""
    with _lock:
        _held.add((account, region, name))


def finish_rotation(account: str, region: str, name: str) -> str:
    """Complete the held rotation of ``name`` (finishSecret); returns the version now AWSCURRENT."""
    secret = secretsmanager_backends[account][region].secrets[name]
    pending = next(v for v, ver in secret.versions.items() if "AWSPENDING" in ver["version_stages"])
    with _lock:
        _held.discard((account, region, name))
    _finish(secret, pending)
    return pending


@contextlib.contextmanager
def next_ids(access_key: str | None = None, security_group: str | None = None,
             ip_set: str | None = None) -> Iterator[None]:
    """Inside the block, a new IAM user access key (AKIA...), security group or WAF IP set gets the
    id given for its kind (call it around one creation of each). Only the seeding process may
    create resources meanwhile: the ids are patched in for the whole process."""
    make_key, make_group, make_set = (iam_models.generate_access_key_id_from_account_id,
                                      ec2_groups.random_security_group_id, WAFV2Backend._generate_id)

    def key_id(account_id: str, prefix: str, total_length: int = 20) -> str:
        return access_key if access_key and prefix == "AKIA" else make_key(account_id, prefix=prefix,
                                                                          total_length=total_length)

    iam_models.generate_access_key_id_from_account_id = key_id
    ec2_groups.random_security_group_id = (lambda: security_group) if security_group else make_group
    WAFV2Backend._generate_id = (lambda self: ip_set) if ip_set else make_set
    try:
        yield
    finally:
        iam_models.generate_access_key_id_from_account_id = make_key
        ec2_groups.random_security_group_id = make_group
        WAFV2Backend._generate_id = make_set


def _init_aws_policies(self: iam_models.IAMBackend) -> list[Any]:
    data = json.loads(iam_models.aws_managed_policies_data)
    return [iam_models.AWSManagedPolicy.from_data(name, self.account_id, self.region_name, data[name])
            for name in MANAGED_POLICIES]


iam_models.IAMBackend._init_aws_policies = _init_aws_policies


def reset() -> None:
    with _lock:
        _held.clear()
