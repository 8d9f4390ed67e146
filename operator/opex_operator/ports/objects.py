"""How the operator names the objects it reconciles and the ones they own (reports, child
Rollbacks): identity, ownerReferences, deterministic child names and label values."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .. import GROUP, VERSION

MAX_CONFIG_MAP_BYTES = 1024 * 1024
MAX_NAME = 253          # DNS-1123 subdomain: names of ConfigMaps and custom resources
MAX_LABEL_VALUE = 63    # label values


@dataclass(frozen=True)
class ObjectRef:
    """Identity of a custom resource: ``plural`` as in the URL, e.g. ``incidents``."""

    plural: str
    namespace: str
    name: str
    uid: str = ""
    kind: str = ""

    def owner_reference(self, controller: bool = True) -> dict[str, Any]:
        """An ownerReference to this object, for objects it owns (reports, child Rollbacks)."""
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": self.kind, "name": self.name, "uid": self.uid,
                "controller": controller, "blockOwnerDeletion": True}

    @property
    def key(self) -> str:
        """``namespace/name``, as logs and work queues name an object."""
        return f"{self.namespace}/{self.name}"


def child_name(parent: str, suffix: str) -> str:
    """A deterministic object name ``<parent>-<suffix>`` within 253 characters (a restart finds the
    same child again); a long one keeps its start and ends in a hash of the whole."""
    name = f"{parent}-{suffix}"
    if len(name) <= MAX_NAME:
        return name
    return f"{name[:MAX_NAME - 9]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def label_value(value: str) -> str:
    """``value`` as a label value (at most 63 characters, ending in an alphanumeric)."""
    return value[:MAX_LABEL_VALUE].rstrip("-_.")
