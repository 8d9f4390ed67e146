"""The probes' inputs from a Kubernetes Secret's data, decoded as ``ports.Objects.secret_data``
returns it (None when the Secret does not exist).

The controller reads the Secret; these functions only pick the keys, and raise LookupError
naming the Secret and the missing key (never a value) so the incident can carry a condition
saying what to fix.
"""
from __future__ import annotations

import json
from typing import Any

from ..api.performance import DatabaseSecretRef
from ..ports.performance import Credentials


def _value(data: dict[str, str] | None, name: str, key: str) -> str:
    if data is None:
        raise LookupError(f"Secret {name} not found")
    if key not in data:
        raise LookupError(f"Secret {name} has no key {key}")
    return data[key]


def database_credentials(data: dict[str, str] | None, ref: DatabaseSecretRef) -> Credentials:
    """User name and password from ``ref.usernameKey``/``ref.passwordKey`` of the Secret's ``data``."""
    return Credentials(_value(data, ref.name, ref.username_key), _value(data, ref.name, ref.password_key))


def headers(data: dict[str, str] | None, name: str) -> dict[str, str]:
    """Every key of the Secret as a header (e.g. ``Authorization``)."""
    if data is None:
        raise LookupError(f"Secret {name} not found")
    return {k: data[k] for k in sorted(data)}


def json_body(data: dict[str, str] | None, name: str, key: str) -> dict[str, Any]:
    """The JSON object held in ``key`` of the Secret."""
    try:
        body = json.loads(_value(data, name, key))
    except ValueError:
        raise LookupError(f"Secret {name} key {key} does not hold JSON") from None
    if not isinstance(body, dict):
        raise LookupError(f"Secret {name} key {key} holds JSON that is not an object")
    return body
