"""Kubernetes API access for the operator's own writes: status, owned objects, Secrets.

Kopf watches and delivers the objects; what the operator writes outside Kopf's handler
patches goes through :class:`Kube`, a thin layer over the official ``kubernetes`` client. Its
methods block: call them through ``asyncio.to_thread``.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from . import GROUP, VERSION


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


def load_client_config() -> None:
    """Configure the ``kubernetes`` client: in-cluster when run in a Pod, else ``$KUBECONFIG``."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()


class Kube:
    """Blocking helpers over the ``kubernetes`` client (one ApiClient, thread-safe for requests)."""

    def __init__(self, api_client: kubernetes.client.ApiClient | None = None):
        self.api_client = api_client or kubernetes.client.ApiClient()
        self.custom = kubernetes.client.CustomObjectsApi(self.api_client)
        self.core = kubernetes.client.CoreV1Api(self.api_client)

    def patch_status(self, ref: ObjectRef, status: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch ``status`` into the object's status subresource; returns the object.

        Raises ``ApiException`` (404 when the object is gone).
        """
        return self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ref.namespace, ref.plural, ref.name, {"status": status})

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, ref.namespace, ref.plural, ref.name)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a custom resource of ``plural``; returns it. 409 (exists) raises ApiException."""
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)

    def get_named(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(ObjectRef(plural, namespace, name))

    def put_config_map(self, namespace: str, name: str, data: dict[str, str], owner: ObjectRef,
                       labels: dict[str, str] | None = None, binary: dict[str, str] | None = None) -> None:
        """Create or replace a ConfigMap that ``owner`` owns (garbage-collected with it)."""
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace, "labels": labels or {},
                             "ownerReferences": [owner.owner_reference()]},
                "data": data, "binaryData": binary or {}}
        try:
            self.core.create_namespaced_config_map(namespace, body)
        except ApiException as err:
            if err.status != 409:
                raise
            self.core.replace_namespaced_config_map(name, namespace, body)

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """The decoded value of ``key`` in Secret ``name`` (None when the Secret or key is missing)."""
        return (self.secret_data(namespace, name) or {}).get(key)

    def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A ConfigMap's ``data`` (None when it does not exist)."""
        try:
            return self.core.read_namespaced_config_map(name, namespace).data or {}
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's decoded ``data`` (None when it does not exist)."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def config_map_names(self, namespace: str, selector: str) -> list[str]:
        return [cm.metadata.name for cm in
                self.core.list_namespaced_config_map(namespace, label_selector=selector).items]

    def delete_config_map(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_config_map(name, namespace)
        except ApiException as err:
            if err.status != 404:
                raise
