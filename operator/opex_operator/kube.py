"""Kubernetes API access for the operator's own writes: status, owned objects, Secrets.

Kopf watches and delivers the objects; what the operator writes outside Kopf goes through
:class:`Kube`, a thin layer over the official ``kubernetes`` client. Its methods block (call
them through ``asyncio.to_thread``) and raise :class:`~opex_operator.errors.KubeError` only:
the client's ``ApiException`` (with its HTTP headers) never leaves this module.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import json
from dataclasses import dataclass
from functools import wraps
from typing import Any, Callable, TypeVar

import kubernetes
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from . import GROUP, VERSION
from .ports.objects import MAX_CONFIG_MAP_BYTES, MAX_LABEL_VALUE, MAX_NAME, ObjectRef, child_name, label_value  # noqa: F401
from .errors import KubeError

# The API server refuses a ConfigMap whose data and binaryData values (binaryData decoded) add up to
# more than this (core.MaxSecretSize): 422 "Too long".
F = TypeVar("F", bound=Callable[..., Any])
# Connections kept to the API server: as many as threads may call at once (OPEX_MAX_WORKERS, 32 by
# default); the client keeps 5 per core, and each call past them opens a TLS connection (a
# handshake on both sides) and throws it away after.
POOL_CONNECTIONS = 32


def load_client_config() -> None:
    """Configure the ``kubernetes`` client: in-cluster when run in a Pod, else ``$KUBECONFIG``."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()


def translate(err: BaseException, what: str = "") -> KubeError:
    """The :class:`KubeError` for an ``ApiException`` or a connection failure of the client."""
    if isinstance(err, ApiException):
        try:
            message = json.loads(err.body)["message"]
        except (ValueError, KeyError, TypeError):
            message = err.reason or ""
        return KubeError(err.status or 0, err.reason or "", message, what)
    return KubeError(0, "", f"{type(err).__name__}: {err}", what)


def _translated(method: F) -> F:
    @wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (ApiException, urllib3.exceptions.HTTPError) as err:
            raise translate(err, method.__name__) from err
    return wrapper  # type: ignore[return-value]


class Kube:
    """Blocking helpers over the ``kubernetes`` client (one ApiClient, thread-safe for requests)."""

    def __init__(self, api_client: kubernetes.client.ApiClient | None = None):
        if api_client is None:
            config = kubernetes.client.Configuration.get_default_copy()
            config.connection_pool_maxsize = max(config.connection_pool_maxsize, POOL_CONNECTIONS)
            api_client = kubernetes.client.ApiClient(config)
        self.api_client = api_client
        self.custom = kubernetes.client.CustomObjectsApi(self.api_client)
        self.core = kubernetes.client.CoreV1Api(self.api_client)
        self.coordination = kubernetes.client.CoordinationV1Api(self.api_client)

    @_translated
    def patch_status(self, ref: ObjectRef, status: dict[str, Any], resource_version: str | None = None) -> dict[str, Any]:
        """Merge-patch ``status`` into the object's status subresource; returns the object.

        With ``resource_version`` the write happens only if the object is still at that version
        (optimistic concurrency: a read-modify-write that lost a race gets ``conflict``).
        Raises KubeError (``not_found`` when the object is gone).
        """
        body: dict[str, Any] = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        return self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ref.namespace, ref.plural, ref.name, body)

    @_translated
    def annotate(self, ref: ObjectRef, annotations: dict[str, str]) -> None:
        """Merge ``annotations`` into the object's metadata. Raises KubeError."""
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, ref.namespace, ref.plural, ref.name,
                                                   {"metadata": {"annotations": annotations}})

    @_translated
    def post_event(self, ref: ObjectRef, type_: str, reason: str, message: str, component: str,
                   instance: str = "") -> None:
        """Post a core/v1 Event on ``ref`` from ``component``, ``instance`` naming the replica (and
        shard) that posts it (``reportingInstance``, ``source.host``). Raises KubeError."""
        stamp = datetime.datetime.now(datetime.timezone.utc)
        self.core.create_namespaced_event(ref.namespace, {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": ref.kind, "name": ref.name,
                               "namespace": ref.namespace, "uid": ref.uid},
            "type": type_, "reason": reason, "message": message[:1024], "count": 1,
            "firstTimestamp": stamp.isoformat(), "lastTimestamp": stamp.isoformat(),
            "source": {"component": component, **({"host": instance} if instance else {})},
            "reportingComponent": component, "reportingInstance": instance})

    @_translated
    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The custom resource, or None when it does not exist."""
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    @_translated
    def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create a custom resource of ``plural``; returns it, or None when one of that name exists
        already (a restart re-creating what it created before)."""
        try:
            return self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
        except ApiException as err:
            if err.status == 409:
                return None
            raise

    @_translated
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

    @_translated
    def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A ConfigMap's ``data`` (None when it does not exist)."""
        try:
            return self.core.read_namespaced_config_map(name, namespace).data or {}
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    @_translated
    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's decoded ``data`` (None when it does not exist). Values never leave the caller."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """The decoded value of ``key`` in Secret ``name`` (None when the Secret or key is missing)."""
        return (self.secret_data(namespace, name) or {}).get(key)

    @_translated
    def config_map_names(self, namespace: str, selector: str) -> list[str]:
        """Names of the ConfigMaps matching the label ``selector``."""
        return [cm.metadata.name for cm in
                self.core.list_namespaced_config_map(namespace, label_selector=selector).items]

    @_translated
    def delete_config_map(self, namespace: str, name: str) -> None:
        """Delete a ConfigMap; one already gone is fine."""
        try:
            self.core.delete_namespaced_config_map(name, namespace)
        except ApiException as err:
            if err.status != 404:
                raise


@dataclass(frozen=True)
class StoredLease:
    """A coordination.k8s.io Lease as the operator keeps state in one (the circuit breaker's
    window): its identity, labels, annotations and ``resource_version`` for a conditional write."""

    namespace: str
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    resource_version: str


def _stored(lease: Any) -> StoredLease:
    meta = lease.metadata
    return StoredLease(meta.namespace, meta.name, dict(meta.labels or {}), dict(meta.annotations or {}),
                       meta.resource_version)


class Leases:
    """Leases holding operator state, read and written with optimistic concurrency (blocking; every
    method raises KubeError, ``conflict`` when the Lease exists already or changed since it was read)."""

    def __init__(self, kube: Kube):
        self.api = kube.coordination

    @_translated
    def lease(self, namespace: str, name: str) -> StoredLease | None:
        """The Lease, or None when it does not exist."""
        try:
            return _stored(self.api.read_namespaced_lease(name, namespace))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    @_translated
    def create_lease(self, namespace: str, name: str, labels: dict[str, str],
                     annotations: dict[str, str]) -> StoredLease:
        """Create the Lease (``conflict`` when one of that name exists: read it and try again)."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
                "spec": {}}
        return _stored(self.api.create_namespaced_lease(namespace, body))

    @_translated
    def update_lease(self, lease: StoredLease, annotations: dict[str, str]) -> StoredLease:
        """Replace ``lease``'s annotations only if it is still at the version read (``conflict`` when
        someone wrote it since: read it again and recompute). A replace, not a patch: the verb the
        operator already holds on Leases in its namespace (``rbac.OWN_NAMESPACE``)."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": lease.name, "namespace": lease.namespace, "labels": lease.labels,
                             "annotations": annotations, "resourceVersion": lease.resource_version},
                "spec": {}}
        return _stored(self.api.replace_namespaced_lease(lease.name, lease.namespace, body))

    @_translated
    def leases(self, selector: str, namespace: str | None = None) -> list[StoredLease]:
        """The Leases matching the label ``selector``, in ``namespace`` or in every namespace."""
        found = (self.api.list_namespaced_lease(namespace, label_selector=selector) if namespace else
                 self.api.list_lease_for_all_namespaces(label_selector=selector))
        return [_stored(item) for item in found.items]
