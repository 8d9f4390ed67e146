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
from typing import Any, Callable, TypeVar, cast

import kubernetes
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from .api.common import truncate
from . import GROUP, VERSION
from .api.approvals import CREATED_BY_ANNOTATION
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
            message = json.loads(err.body or "")["message"]
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


def _drain(response: urllib3.BaseHTTPResponse) -> bytes:
    """Read a raw answer (``_preload_content=False``), hand its connection back to the pool and
    return its bytes.

    For writes whose answer is hardly read (status, Events: the most frequent in a burst), so the
    client does not build its models of the object the API server sends back (3 % of the
    operator's CPU in a burst of 1,000 Incidents: py-spy, ``bench/runtime.py --profile``)."""
    data = response.read()
    response.release_conn()
    return data


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
        self._impersonating: dict[str, Kube] = {}
        self._me: str | None = None
        self.batch = kubernetes.client.BatchV1Api(self.api_client)
        self.coordination = kubernetes.client.CoordinationV1Api(self.api_client)

    def as_user(self, username: str) -> "Kube":
        """The same API server, every request impersonating ``username`` (``Impersonate-User``): the
        API server's RBAC and admission judge it as that user's, and the requester is that user. The
        operator's RBAC allows it only for the users of the policy's ``oncall.users``."""
        if username not in self._impersonating:  # one client (and connection pool) per person, kept
            self._impersonating[username] = Kube(kubernetes.client.ApiClient(
                self.api_client.configuration, header_name="Impersonate-User", header_value=username))
        return self._impersonating[username]

    @_translated
    def whoami(self) -> str:
        """The username the API server knows this client as (a SelfSubjectReview)."""
        review = kubernetes.client.AuthenticationV1Api(self.api_client).create_self_subject_review(
            cast(Any, {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}))
        username = review.status.user_info.username if review.status and review.status.user_info else None
        if not username:
            raise KubeError(0, "", "the API server's SelfSubjectReview named no user", "whoami")
        return str(username)

    @_translated
    def patch(self, ref: ObjectRef, body: dict[str, Any], resource_version: str | None = None) -> dict[str, Any]:
        """Merge-patch the object itself (its spec, its metadata); returns it. With ``resource_version``
        only if the object is still at that version (``conflict`` otherwise). Raises KubeError
        (``forbidden`` when RBAC or an admission policy refused it, with the API server's message)."""
        if resource_version is not None:
            body = {**body, "metadata": {**body.get("metadata", {}), "resourceVersion": resource_version}}
        return cast(dict[str, Any], self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, ref.namespace, ref.plural, ref.name, body))

    @_translated
    def patch_status(self, ref: ObjectRef, status: dict[str, Any], resource_version: str | None = None) -> str:
        """Merge-patch ``status`` into the object's status subresource; returns the object's new
        ``metadata.resourceVersion`` (how the runtime recognises this write's watch event).

        With ``resource_version`` the write happens only if the object is still at that version
        (optimistic concurrency: a read-modify-write that lost a race gets ``conflict``).
        Raises KubeError (``not_found`` when the object is gone).
        """
        body: dict[str, Any] = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        answer = _drain(cast(urllib3.BaseHTTPResponse, self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ref.namespace, ref.plural, ref.name, body, _preload_content=False)))
        return str(json.loads(answer)["metadata"]["resourceVersion"])

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
        event: Any = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": ref.kind, "name": ref.name,
                               "namespace": ref.namespace, "uid": ref.uid},
            "type": type_, "reason": reason, "message": truncate(message, 1024), "count": 1,
            "firstTimestamp": stamp.isoformat(), "lastTimestamp": stamp.isoformat(),
            "source": {"component": component, **({"host": instance} if instance else {})},
            "reportingComponent": component, "reportingInstance": instance}
        _drain(cast(urllib3.BaseHTTPResponse, self.core.create_namespaced_event(ref.namespace, event,
                                                                                _preload_content=False)))

    @_translated
    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The custom resource, or None when it does not exist."""
        try:
            return cast(dict[str, Any], self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    @_translated
    def list_objects(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """The custom resources of ``plural`` in ``namespace``, or across namespaces (None: needs a
        ClusterRole; the chart grants only Roles when it watches a fixed list of namespaces)."""
        if namespace is not None:
            answer = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
        else:
            answer = self.custom.list_cluster_custom_object(GROUP, VERSION, plural)
        return cast(list[dict[str, Any]], cast(dict[str, Any], answer).get("items") or [])

    @_translated
    def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create a custom resource of ``plural``; returns it, or None when one of that name exists
        already (a restart re-creating what it created before). The creator is recorded as the chart's
        admission policy asks (annotation ``opex.dev/created-by``: this client's own username, unless
        the body names it), so an Incident's child Rollback is admitted under the two-person rule."""
        annotations = body.setdefault("metadata", {}).setdefault("annotations", {})
        if CREATED_BY_ANNOTATION not in annotations:
            if self._me is None:
                self._me = self.whoami()
            annotations[CREATED_BY_ANNOTATION] = self._me
        try:
            return cast(dict[str, Any], self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body))
        except ApiException as err:
            if err.status == 409:
                return None
            raise

    @_translated
    def put_config_map(self, namespace: str, name: str, data: dict[str, str], owner: ObjectRef,
                       labels: dict[str, str] | None = None, binary: dict[str, str] | None = None) -> None:
        """Create or replace a ConfigMap that ``owner`` owns (garbage-collected with it)."""
        body: Any = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace, "labels": labels or {},
                             "ownerReferences": [owner.owner_reference()]},
                "data": data, "binaryData": binary or {}}
        try:  # the answer is the ConfigMap sent back, unread (see _drain): a report can be hundreds of KB
            _drain(cast(urllib3.BaseHTTPResponse, self.core.create_namespaced_config_map(
                namespace, body, _preload_content=False)))
        except ApiException as err:
            if err.status != 409:
                raise
            _drain(cast(urllib3.BaseHTTPResponse, self.core.replace_namespaced_config_map(
                name, namespace, body, _preload_content=False)))

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
        return [cm.metadata.name for cm in self.core.list_namespaced_config_map(namespace, label_selector=selector).items
                if cm.metadata and cm.metadata.name]

    @_translated
    def delete_config_map(self, namespace: str, name: str) -> None:
        """Delete a ConfigMap; one already gone is fine."""
        try:
            self.core.delete_namespaced_config_map(name, namespace)
        except ApiException as err:
            if err.status != 404:
                raise


    # -- DriftCheck runs as Jobs (terraform.job_runner) --------------------------------------------
    @_translated
    def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create a batch/v1 Job; returns it, or None when one of that name exists already."""
        try:
            return self.api_client.sanitize_for_serialization(self.batch.create_namespaced_job(namespace, cast(Any, body)))
        except ApiException as err:
            if err.status == 409:
                return None
            raise

    @_translated
    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Job (as JSON), or None when it does not exist."""
        try:
            return self.api_client.sanitize_for_serialization(self.batch.read_namespaced_job(name, namespace))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    @_translated
    def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """The Jobs matching the label ``selector``, as JSON."""
        found = self.batch.list_namespaced_job(namespace, label_selector=selector).items
        return [self.api_client.sanitize_for_serialization(job) for job in found]

    @_translated
    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and (in the background) its pods and what it owns; one already gone is fine."""
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as err:
            if err.status != 404:
                raise

    @_translated
    def create_secret(self, namespace: str, name: str, data: dict[str, str], owner: dict[str, Any],
                      labels: dict[str, str] | None = None) -> None:
        """Create a Secret owned by ``owner`` (an ownerReference); ``data`` in plain text. One of that
        name already there is left as it is (a restart creating the same input again)."""
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": name, "namespace": namespace, "labels": labels or {}, "ownerReferences": [owner]},
                "stringData": data}
        try:
            self.core.create_namespaced_secret(namespace, cast(Any, body))
        except ApiException as err:
            if err.status != 409:
                raise

    @_translated
    def config_map_binary(self, namespace: str, name: str) -> dict[str, str] | None:
        """A ConfigMap's ``binaryData`` (base64 text), or None when it does not exist."""
        try:
            return cast(dict[str, str], self.core.read_namespaced_config_map(name, namespace).binary_data or {})
        except ApiException as err:
            if err.status == 404:
                return None
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
        return _stored(self.api.create_namespaced_lease(namespace, cast(Any, body)))

    @_translated
    def update_lease(self, lease: StoredLease, annotations: dict[str, str]) -> StoredLease:
        """Replace ``lease``'s annotations only if it is still at the version read (``conflict`` when
        someone wrote it since: read it again and recompute). A replace, not a patch: the verb the
        operator already holds on Leases in its namespace (``rbac.OWN_NAMESPACE``)."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": lease.name, "namespace": lease.namespace, "labels": lease.labels,
                             "annotations": annotations, "resourceVersion": lease.resource_version},
                "spec": {}}
        return _stored(self.api.replace_namespaced_lease(lease.name, lease.namespace, cast(Any, body)))

    @_translated
    def leases(self, selector: str, namespace: str | None = None) -> list[StoredLease]:
        """The Leases matching the label ``selector``, in ``namespace`` or in every namespace."""
        found = (self.api.list_namespaced_lease(namespace, label_selector=selector) if namespace else
                 self.api.list_lease_for_all_namespaces(label_selector=selector))
        return [_stored(item) for item in found.items]
