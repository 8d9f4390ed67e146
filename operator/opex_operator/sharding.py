"""Which replica reconciles which object, when an estate is split across replicas (shards).

As Flux's controllers shard with ``sharding.fluxcd.io/key``: every object may carry the label
``opex.dev/shard=<name>``; a replica started with ``OPEX_SHARD=<name>`` reconciles only the
objects of its shard, and unlabelled objects belong to the default shard (``OPEX_DEFAULT_SHARD``,
``default``). A replica without ``OPEX_SHARD`` reconciles everything (no sharding). Moving an
object to another shard is a label change: the old replica lets go of it, the new one picks it up.

Pure: no Kopf, no I/O (the Kopf filter that applies it is in ``handlers/lifecycle.py``).
"""
from __future__ import annotations

import re
from typing import Mapping

from . import GROUP

SHARD_LABEL = f"{GROUP}/shard"

# A label value (Kubernetes API conventions: at most 63 characters, alphanumerics with - _ . inside).
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")


def belongs(labels: Mapping[str, str] | None, shard: str, default_shard: str) -> bool:
    """True when an object with ``labels`` is this replica's to reconcile.

    ``shard`` is this replica's shard (``""``: no sharding, every object belongs);
    ``default_shard`` is the shard of objects without the ``opex.dev/shard`` label (or with it empty).
    """
    if not shard:
        return True
    return ((labels or {}).get(SHARD_LABEL) or default_shard) == shard


def check_shard_name(variable: str, value: str, empty_ok: bool = False) -> str:
    """Return ``value`` when it can be the value of the ``opex.dev/shard`` label.

    Raises ValueError naming ``variable`` otherwise (an unusable shard name would silently match
    no object at all).
    """
    if (empty_ok and value == "") or _LABEL_VALUE.match(value):
        return value
    raise ValueError(f"{variable} must be a label value (at most 63 letters, digits, '-', '_' or '.', "
                     f"starting and ending with a letter or digit), got {value!r}")
