"""The CLI's view of the cluster: the opex objects, read and patched as a person with kubectl would."""
from __future__ import annotations

import json
import time
from typing import Any, Callable

import click
import kubernetes
import kubernetes.watch
from kubernetes.client.exceptions import ApiException

from .. import GROUP, VERSION
from ..api import KINDS as API_KINDS

# Every name kubectl accepts for a kind (singular, plural, short name) -> its plural.
KINDS = {name: k.plural for k in API_KINDS for name in (k.singular, k.plural, k.short_name)}
SINGULAR = {k.plural: k.singular for k in API_KINDS}


class CliError(click.ClickException):
    """A one-line error: what was wrong and what to do (exit code 1)."""

    def show(self, file: Any = None) -> None:
        click.echo(f"opex: {self.message}", err=True)


def plural_of(kind: str) -> str:
    try:
        return KINDS[kind.lower()]
    except KeyError:
        raise CliError(f"unknown kind {kind!r}; use incident (inc), driftcheck (dc) or rollback (rb)") from None


class Cluster:
    """The API server from ``kubeconfig`` (default $KUBECONFIG or ~/.kube/config) and ``context``;
    with ``as_user`` every request impersonates that user (kubectl's ``--as``)."""

    def __init__(self, kubeconfig: str | None, context: str | None, as_user: str | None = None):
        config = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=config)
            _, active = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)
            if context:
                contexts, _ = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)
                active = next(c for c in contexts if c["name"] == context)
        except (kubernetes.config.ConfigException, OSError, StopIteration) as err:
            raise CliError(f"no usable kubeconfig ({err}); set KUBECONFIG or pass --kubeconfig/--context") from None
        self.default_namespace = (active.get("context") or {}).get("namespace") or "default"
        client = (kubernetes.client.ApiClient(config, header_name="Impersonate-User", header_value=as_user)
                  if as_user else kubernetes.client.ApiClient(config))
        self.api_client = client
        self.api = kubernetes.client.CustomObjectsApi(client)
        self.authentication = kubernetes.client.AuthenticationV1Api(client)
        self._me: str | None = None

    def whoami(self) -> str:
        """The username the API server knows this client as (a SelfSubjectReview): who an approval or
        acknowledgement is recorded for (the admission policy admits no other name)."""
        if self._me is None:
            review = self._call("who you are (SelfSubjectReview)", self.authentication.create_self_subject_review,
                                {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
            self._me = review.status.user_info.username
        return self._me

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiException as err:
            if err.status == 404:
                raise CliError(f"{what} not found") from None
            raise CliError(f"{what}: {_api_message(err)}") from None
        except Exception as err:  # urllib3 connection errors and the like
            raise CliError(f"{what}: cannot reach the API server ({type(err).__name__}: {err})"[:300]) from None

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return self._call(f"{SINGULAR[plural]} {name} in namespace {namespace}",
                          self.api.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name)

    def list(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        if namespace is None:
            result = self._call(plural, self.api.list_cluster_custom_object, GROUP, VERSION, plural)
        else:
            result = self._call(f"{plural} in namespace {namespace}", self.api.list_namespaced_custom_object,
                                GROUP, VERSION, namespace, plural)
        return sorted(result["items"], key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]))

    def wait_for_change(self, plural: str, namespace: str, name: str, resource_version: str, timeout: float) -> None:
        """Return once the object changed after ``resource_version`` (a watch event), or after
        ``timeout`` seconds at the latest. A watch that cannot start or breaks (no ``watch``
        permission, an old version, a dropped connection) returns after half a second instead:
        the caller reads the object again either way."""
        watch = kubernetes.watch.Watch()
        try:
            for _ in watch.stream(self.api.list_namespaced_custom_object, GROUP, VERSION, namespace, plural,
                                  field_selector=f"metadata.name={name}", resource_version=resource_version,
                                  timeout_seconds=max(1, int(timeout)), _request_timeout=timeout + 5):
                return
        except Exception:  # noqa: BLE001 - the caller polls instead
            time.sleep(min(timeout, 0.5))
        finally:
            watch.stop()

    def patch(self, plural: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the object."""
        return self._call(f"{SINGULAR[plural]} {name} in namespace {namespace}",
                          self.api.patch_namespaced_custom_object, GROUP, VERSION, namespace, plural, name, body)

    def patch_unchanged(self, obj: dict[str, Any], body: dict[str, Any]) -> bool:
        """Merge-patch ``obj`` only if nobody changed it since it was read (its resourceVersion); False
        on a conflict, so the caller can read again and recompute (a list is replaced whole)."""
        meta = obj["metadata"]
        body = {**body, "metadata": {**body.get("metadata", {}), "resourceVersion": meta["resourceVersion"]}}
        try:
            self.api.patch_namespaced_custom_object(GROUP, VERSION, meta["namespace"], KINDS[obj["kind"].lower()],
                                                    meta["name"], body)
            return True
        except ApiException as err:
            if err.status == 409:
                return False
            raise CliError(f"{obj['kind'].lower()} {meta['name']}: {_api_message(err)}") from None


def _api_message(err: ApiException) -> str:
    try:
        return json.loads(err.body or "")["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {err.status} {err.reason}"
