"""The probes' inputs from a Kubernetes Secret's ``data`` (base64 values, as the API returns them).

The controller reads the Secret; these functions only pick and decode the keys, and raise
LookupError naming the Secret and the missing key (never a value) so the incident can carry a
condition saying what to fix.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ..api.performance import DatabaseSecretRef
from ..runbooks.perf_facts import Credentials


def _value(secret: dict[str, Any] | None, name: str, key: str) -> str:
    if secret is None:
        raise LookupError(f"Secret {name} not found")
    data = secret.get("data") or {}
    if key not in data:
        raise LookupError(f"Secret {name} has no key {key}")
    try:
        return base64.b64decode(data[key], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise LookupError(f"Secret {name} key {key} is not base64-encoded UTF-8") from None


def database_credentials(secret: dict[str, Any] | None, ref: DatabaseSecretRef) -> Credentials:
    """User name and password from ``ref.usernameKey``/``ref.passwordKey`` of the Secret ``secret``
    (None when it does not exist)."""
    return Credentials(_value(secret, ref.name, ref.username_key), _value(secret, ref.name, ref.password_key))


def headers(secret: dict[str, Any] | None, name: str) -> dict[str, str]:
    """Every key of the Secret as a header (e.g. ``Authorization``)."""
    if secret is None:
        raise LookupError(f"Secret {name} not found")
    return {k: _value(secret, name, k) for k in sorted(secret.get("data") or {})}


def json_body(secret: dict[str, Any] | None, name: str, key: str) -> dict[str, Any]:
    """The JSON object held in ``key`` of the Secret."""
    try:
        body = json.loads(_value(secret, name, key))
    except ValueError:
        raise LookupError(f"Secret {name} key {key} does not hold JSON") from None
    if not isinstance(body, dict):
        raise LookupError(f"Secret {name} key {key} holds JSON that is not an object")
    return body
