"""Every Kubernetes permission the operator uses, and the call that uses it.

The Helm chart's ClusterRole/Roles grant exactly these (a test renders the chart and compares),
and part of the e2e suite runs the operator as the chart's ServiceAccount against the real API
server, so a call that needs a verb missing here fails a test with a 403. When a change makes a
new Kubernetes call, add its rule here and to ``charts/opex-operator/templates/rbac.yaml``.

Three sets, by where they apply:

* :data:`WATCHED` in every namespace whose opex objects this operator reconciles: one Role per
  watched namespace whenever ``watch.namespaces`` lists exact names (either scope: Secrets and
  ConfigMaps are then never readable outside them), one ClusterRole only when it is empty (all
  namespaces) or has globs;
* :data:`NAMESPACE_SCAN`, cluster-scoped, only when ``OPEX_NAMESPACES`` has a glob (Kopf lists
  and watches namespaces to expand it, and CRDs while it scans); exact names need neither;
* :data:`OWN_NAMESPACE` in the operator's own namespace: the leader-election Lease of
  ``replicas: 2`` (active/standby, the scale issue);
* :data:`IMPERSONATION`, cluster-scoped, only with the on-call receivers on: ``impersonate`` on
  exactly the usernames of the policy's ``oncall.users`` (``resourceNames``), so what a person did
  in Slack or PagerDuty is written in their name and judged as theirs.

No wildcard verb, resource or API group, and nothing cluster-wide beyond the above.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import GROUP

KIND_PLURALS = ("incidents", "driftchecks", "rollbacks")


@dataclass(frozen=True)
class Rule:
    """One API group and resource, the verbs used on it, and why (which call needs them)."""

    api_group: str
    resource: str
    verbs: tuple[str, ...]
    why: str

    def triples(self) -> set[tuple[str, str, str]]:
        """``{(apiGroup, resource, verb)}``: the shape tests compare a rendered Role's rules in."""
        return {(self.api_group, self.resource, verb) for verb in self.verbs}


WATCHED: tuple[Rule, ...] = (
    Rule(GROUP, "incidents", ("create", "get", "list", "watch", "patch"),
         "Kopf watches them and patches the finalizer and its opex.dev/ annotations; every reconcile "
         "pass reads its object fresh (handlers/runtime.py); the Alertmanager intake creates one per alert "
         "and annotates it (alerts/intake.py)"),
    Rule(GROUP, "driftchecks", ("get", "list", "watch", "patch"),
         "as incidents; an Incident's terraform steps also read the DriftCheck they name"),
    Rule(GROUP, "rollbacks", ("create", "get", "list", "watch", "patch"),
         "as incidents; create: an Incident's rollback step creates a child Rollback and follows it"),
    *(Rule(GROUP, f"{plural}/status", ("patch",), "the status writer (kube.py patch_status, called by handlers/runtime.py)")
      for plural in KIND_PLURALS),
    # The API server's OwnerReferencesPermissionEnforcement admission plugin (on in OpenShift and
    # other hardened clusters; on in the local control plane) requires it to set blockOwnerDeletion
    # on an ownerReference to an object of that kind.
    *(Rule(GROUP, f"{plural}/finalizers", ("update",),
           "owned reports and child Rollbacks carry ownerReferences with blockOwnerDeletion")
      for plural in KIND_PLURALS),
    Rule("", "events", ("create",), "an Event for every state change (kopf.event in handlers/runtime.py), and the "
         "intake's AlertsTruncated (kube.py post_event)"),
    Rule("", "configmaps", ("create", "delete", "get", "list", "update"),
         "reports the objects own (kube.py put_config_map, config_map_names, delete_config_map) and "
         "DriftCheck sources and values read from ConfigMaps (config_map_data)"),
    Rule("", "secrets", ("create", "get"), "webhook URLs, probe credentials and DriftCheck values read from Secrets "
         "by name, each in the namespace of the object naming it (kube.py secret_data); create: the input of a "
         "DriftCheck run as a Job, owned by the Job (terraform/job_runner.py, kube.py create_secret)"),
    Rule("batch", "jobs", ("create", "delete", "get", "list"),
         "DriftCheck plans and approved applies as Jobs (terraform/job_runner.py): create, get while it runs, list "
         "to adopt one still running, delete once its result is read"),
)

# What a DriftCheck run as a Job may do, in its own namespace, under the runner ServiceAccount the
# chart renders there (templates/plan-job.yaml): write its result (terraform/plan_job.py report).
PLAN_JOB: tuple[Rule, ...] = (
    Rule("", "configmaps", ("create",), "the run's result ConfigMap, owned by the DriftCheck"),
)

NAMESPACE_SCAN: tuple[Rule, ...] = (
    Rule("", "namespaces", ("list", "watch"), "Kopf expands OPEX_NAMESPACES globs to the namespaces that exist"),
    Rule("apiextensions.k8s.io", "customresourcedefinitions", ("list", "watch"),
         "Kopf notices CRD changes while it scans (only then: handlers/lifecycle.py)"),
)

OWN_NAMESPACE: tuple[Rule, ...] = (
    Rule("coordination.k8s.io", "leases", ("create", "get", "update"),
         "leader election between replicas (active/standby): one Lease per Deployment"),
)


IMPERSONATION: tuple[Rule, ...] = (
    Rule("", "users", ("impersonate",), "the on-call receivers write an acknowledgement or approval as the person "
         "who clicked in Slack or acknowledged in PagerDuty (receivers/actions.py; resourceNames: the policy's "
         "oncall.users)"),
)


def triples(rules: tuple[Rule, ...]) -> set[tuple[str, str, str]]:
    """All ``(apiGroup, resource, verb)`` of ``rules``."""
    return set().union(*(r.triples() for r in rules))
