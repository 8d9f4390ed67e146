"""What each namespace may do in AWS: operator configuration, never taken from a custom resource.

The policy is a YAML file (``OPEX_POLICY_FILE``; the Helm chart mounts it from a ConfigMap)::

    roles:                          # AWS roles the operator may assume, by key
      deployer: {roleArn: "arn:aws:iam::123456789012:role/opex-deployer", externalId: "opex"}
    rules:                          # the first rule whose namespaces match applies
      - namespaces: ["payments-*"]
        roles: ["", deployer]       # "" = the operator's own credentials
        regions: [us-east-1]
        actions: ["lambda:*", "codepipeline:RetryStageExecution", "terraform:ForceUnlock"]
        limits:                     # optional caps on what the actions may set
          lambdaMemoryMb: 3008      # no step raises a Lambda's memory above this (MB)
        terraform:                  # DriftChecks (and an Incident's Terraform steps) in these namespaces
          role: deployer            # Terraform's AWS credentials: this role, assumed; none when unset
          backends:                 # the state a configuration may use (one must match)
            - type: s3
              settings: {bucket: [opex-tfstate], key: ["payments/*"]}
              workspaces: [default]
          allowProvisioners: false  # refuse a plan whose configuration has provisioners
          deployers: ["arn:aws:iam::123456789012:role/ci-deploy"]  # changes by these are not out-of-band
        probes:                     # addresses the endpoint checks may reach, after DNS resolution
          denyCidrs: [10.0.0.0/8]   # link-local and metadata addresses are refused unless allowCidrs has them
        gates:                      # plan gates every automatic Terraform apply here must pass
          denyActions: [delete]
          maxChangedResources: 20
        environments:               # stricter settings for an environment (prod, prd, live: production)
          production:
            gates: {denyActions: [replace], deniedResourceTypes: ["aws_iam_*"]}
            limits: {automatedChangesPerHour: 3}
    escalation:                     # the default escalation matrix (an Incident may override it)
      levels: [...]
      snsTopicArns: [...]
      incidentUrl: "https://console.example.com/incidents/{namespace}/{name}"   # linked from pages
    oncall:                         # who is who in Slack and PagerDuty (the on-call receivers)
      users:
        - kubernetes: alice@example.com   # the Kubernetes username the operator impersonates
          slack: U024BE7LH                # Slack user id (Acknowledge and Approve buttons)
          pagerduty: PVE0ZR9              # PagerDuty user id (incident.acknowledged webhooks)

Reads (describe/get/list/filter) need a matching rule, role and region; mutating actions must
also match ``actions`` (fnmatch globs such as ``lambda:*``). Without a policy file every
namespace may read with the operator's own credentials and no mutating action is allowed.
``limits`` cap the values a step may set in those namespaces (the lower of the policy's cap and
the Incident's own wins).

``oncall.users`` maps Slack and PagerDuty users to Kubernetes users: a Slack button or a
PagerDuty acknowledgement is written in the mapped user's name, the operator impersonating that
user (the chart grants ``impersonate`` on exactly these usernames), so the API server's RBAC and
admission policy judge it as if that person used kubectl. A Slack user who is not listed can do
nothing; a PagerDuty acknowledgement by an unlisted user is recorded in the operator's own name,
naming the PagerDuty user in the note.

Guard rails of automation (issue 26): ``gates`` (``api.gates.PlanGates``) are the plan gates an
automatic apply in the rule's namespaces must pass, and ``environments.<name>.gates`` add to them
for that environment; a resource's own gates only add to both (:meth:`Policy.gate_layers`,
``guardrails.gates.merge``). ``limits.automatedChangesPerHour`` (and per environment) is the
circuit breaker: at most that many changes made without a person in one sliding hour
(:meth:`Policy.change_limits`, ``guardrails.breaker``).

Terraform (:meth:`Policy.check_terraform`, called before any Terraform runs): the actions
``terraform:Plan`` (a DriftCheck run), ``terraform:Apply`` (an Apply or RefreshOnly resolution),
``terraform:Import`` and ``terraform:ForceUnlock`` must match ``actions``; the backend the
configuration declares (its ``backend`` block with ``spec.backendConfig`` over it) and the
workspace must match one of ``terraform.backends`` (none listed: no Terraform at all). Terraform
runs with the credentials of ``terraform.role`` (assumed by the operator), never the operator's
own. Source: DESIGN.md §3 (safety model); issue 29 (tenant isolation).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable, Sequence

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from .api.approvals import USERNAME_MAX
from .api.common import Model
from .api.gates import PlanGates
from .api.incident import EscalationLevel, Severity, TopicArn
from .api.performance import LAMBDA_MAX_MB, LAMBDA_MIN_MB
from .environments import same as same_environment
from .guardrails.breaker import ChangeLimit
from .guardrails.gates import Layer
from .notify.escalation import PRODUCTION
from .terraform.backend import Backend


@dataclass(frozen=True)
class AssumeRole:
    """A role from the operator's policy: ``role_arn`` and optional ``external_id``."""

    role_arn: str
    external_id: str | None = None
    session_name: str = "opex-operator"


MAX_CHANGES_PER_HOUR = 1000


class RoleSpec(Model):
    role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$")
    external_id: str | None = None


class Limits(Model):
    """Caps on what a step may set; None leaves a value to the Incident's own bounds."""

    lambda_memory_mb: int | None = Field(default=None, ge=LAMBDA_MIN_MB, le=LAMBDA_MAX_MB,
                                         description="The most memory (MB) a raise-lambda-memory step may set.")
    automated_changes_per_hour: int | None = Field(
        default=None, ge=0, le=MAX_CHANGES_PER_HOUR, description="The circuit breaker: at most this many changes "
        "made without a person's approval (Auto) in one namespace in any hour; past it, Auto waits for a person.")


class EnvironmentLimits(Model):
    """The circuit breaker of one environment (counted apart from the namespace's own limit)."""

    model_config = Model.model_config | ConfigDict(extra="forbid")

    automated_changes_per_hour: int | None = Field(default=None, ge=0, le=MAX_CHANGES_PER_HOUR)


class EnvironmentRule(Model):
    """Stricter settings for one environment of a rule's namespaces: gates added to the rule's, and a
    limit of automated changes counted over that environment's changes alone."""

    model_config = Model.model_config | ConfigDict(extra="forbid")

    gates: PlanGates | None = None
    limits: EnvironmentLimits = Field(default_factory=EnvironmentLimits)


class BackendRule(Model):
    """A state backend a namespace's configurations may use: its ``type`` and, per setting, the
    values (fnmatch globs) allowed; an unset setting counts as "" (list "" to allow leaving it out)."""

    type: str = Field(min_length=1, description="Backend type: s3, gcs, azurerm, local, cloud, ...")
    settings: dict[str, list[str]] = Field(default_factory=dict, description="Allowed values per setting "
                                           "(globs), e.g. {bucket: [opex-tfstate], key: ['team-a/*']}.")
    workspaces: list[str] = Field(default_factory=lambda: ["default"], description="Terraform workspaces (globs).")


class TerraformRule(Model):
    """What Terraform may do in the rule's namespaces, besides the ``terraform:*`` actions."""

    role: str | None = Field(default=None, description="Key in roles: Terraform's AWS credentials are this role's, "
                             "assumed by the operator; without it Terraform gets no AWS credentials from the operator.")
    backends: list[BackendRule] = Field(default_factory=list, description="Backends a configuration may use; "
                                        "none: Terraform never runs in these namespaces.")
    allow_provisioners: bool = Field(default=True, description="false: a plan whose configuration has a "
                                     "provisioner (local-exec runs inside the operator's pod) is refused.")
    deployers: list[str] = Field(default_factory=list, description="IAM role (or user) ARNs, * globs allowed, "
                                 "that deploy these namespaces' configurations (the CI/CD pipeline's role): a "
                                 "CloudTrail change by one of them, or by terraform.role, is not an out-of-band "
                                 "change.")


# Never probed unless a rule allows them: link-local addresses, where cloud metadata services
# answer with the node's credentials (AWS IMDS 169.254.169.254 and fd00:ec2::254, the ECS and EKS
# Pod Identity agents 169.254.170.2 and .23), and the IPv6 link-local range.
DEFAULT_REFUSED_CIDRS = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")


def _networks(values: list[str]) -> list[str]:
    for value in values:
        ipaddress.ip_network(value, strict=False)  # ValueError names it
    return values


class ProbeRule(Model):
    """Which addresses the endpoint checks (``targets.probes``) may connect to, after name resolution."""

    allow_cidrs: list[str] = Field(default_factory=list, description="When set, the only addresses probes reach "
                                   "(an allowed link-local address overrides the default refusal).")
    deny_cidrs: list[str] = Field(default_factory=list, description="Addresses probes never reach.")

    _check_allow = field_validator("allow_cidrs", "deny_cidrs")(classmethod(lambda cls, v: _networks(v)))

    def refusal(self, address: str, where: str = "the operator policy") -> str | None:
        """None when a probe may connect to ``address`` (an IP address); otherwise why not."""
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped

        def within(cidrs: Sequence[str]) -> bool:
            return any(ip in ipaddress.ip_network(c, strict=False) for c in cidrs if
                       ipaddress.ip_network(c, strict=False).version == ip.version)

        if within(self.deny_cidrs):
            return f"address {ip} is in probes.denyCidrs of {where}"
        if self.allow_cidrs:
            return None if within(self.allow_cidrs) else f"address {ip} is not in probes.allowCidrs of {where}"
        if within(DEFAULT_REFUSED_CIDRS):
            return (f"address {ip} is link-local or a cloud metadata service, never probed unless probes.allowCidrs "
                    f"of {where} allows it")
        return None


class Rule(Model):
    namespaces: list[str] = Field(min_length=1)
    roles: list[str] = Field(default_factory=lambda: [""])
    regions: list[str] = Field(default_factory=lambda: ["*"])
    actions: list[str] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    terraform: TerraformRule = Field(default_factory=TerraformRule)
    probes: ProbeRule = Field(default_factory=ProbeRule)
    gates: PlanGates | None = None
    environments: dict[str, EnvironmentRule] = Field(default_factory=dict)

    def environment(self, name: str | None) -> tuple[str, EnvironmentRule] | None:
        """The settings of environment ``name`` (any spelling of it: ``prod`` is ``production``), with
        the key they are listed under; None when the rule has none for it."""
        return next(((key, rule) for key, rule in self.environments.items() if name and same_environment(key, name)),
                    None)


# The seed's escalation matrix: Level 1 DevOps lead immediately, Level 2 engineering manager when
# unresolved after 30 minutes, Level 3 CTO for critical production issues (also at 30 minutes).
DEFAULT_LEVELS = [
    EscalationLevel(level=1, contact="DevOps lead", after_seconds=0),
    EscalationLevel(level=2, contact="Engineering manager", after_seconds=1800),
    EscalationLevel(level=3, contact="CTO", after_seconds=1800, severities=[Severity.CRITICAL],
                    environments=[PRODUCTION]),
]


class EscalationDefaults(Model):
    levels: list[EscalationLevel] = Field(default_factory=lambda: list(DEFAULT_LEVELS))
    sns_topic_arns: list[TopicArn] = Field(default_factory=list, description="Topics every incident notifies.")
    incident_url: str | None = Field(default=None, description="Where a person sees an Incident (a console, a "
                                     "dashboard), linked from PagerDuty and Slack: {namespace} and {name} are "
                                     "replaced.")

    def incident_link(self, namespace: str, name: str) -> str | None:
        """``incident_url`` for one Incident, None when unset."""
        if not self.incident_url:
            return None
        return self.incident_url.replace("{namespace}", namespace).replace("{name}", name)


class OnCallUser(Model):
    """One person: their Kubernetes username and who they are in Slack and PagerDuty."""

    kubernetes: str = Field(min_length=1, max_length=USERNAME_MAX, description="Kubernetes username the operator "
                            "impersonates to write what this person did in Slack or PagerDuty.")
    slack: str | None = Field(default=None, pattern=r"^[UW][A-Z0-9]+$", description="Slack user id, e.g. U024BE7LH.")
    pagerduty: str | None = Field(default=None, pattern=r"^P[A-Z0-9]+$", description="PagerDuty user id, e.g. PVE0ZR9.")


class OnCall(Model):
    users: list[OnCallUser] = Field(default_factory=list)

    @model_validator(mode="after")
    def _each_identity_once(self) -> "OnCall":
        for attr in ("slack", "pagerduty"):
            ids = [getattr(u, attr) for u in self.users if getattr(u, attr)]
            twice = sorted({i for i in ids if ids.count(i) > 1})
            if twice:
                raise ValueError(f"oncall.users: {attr} user {twice[0]} is listed twice")
        return self

    def by_slack(self, user_id: str) -> str | None:
        """The Kubernetes username of Slack user ``user_id``, None when not listed."""
        return next((u.kubernetes for u in self.users if u.slack == user_id), None)

    def by_pagerduty(self, user_id: str | None) -> str | None:
        """The Kubernetes username of PagerDuty user ``user_id``, None when not listed."""
        return next((u.kubernetes for u in self.users if user_id and u.pagerduty == user_id), None)


class PolicyError(ValueError):
    """The policy file is missing or malformed; the message names the file and the field."""


class Policy(Model):
    roles: dict[str, RoleSpec] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=lambda: [Rule(namespaces=["*"])])
    escalation: EscalationDefaults = Field(default_factory=EscalationDefaults)
    oncall: OnCall = Field(default_factory=OnCall)

    @model_validator(mode="after")
    def _terraform_roles_defined(self) -> "Policy":
        for index, rule in enumerate(self.rules, start=1):
            if rule.terraform.role and rule.terraform.role not in self.roles:
                raise ValueError(f"rules[{index - 1}].terraform.role {rule.terraform.role!r} is not defined in roles")
        return self

    @classmethod
    def load(cls, path: Path | None) -> "Policy":
        """The policy in ``path``, or the read-only default when ``path`` is None. Raises PolicyError."""
        if path is None:
            return cls()
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
            return cls.model_validate(data)
        except OSError as err:
            raise PolicyError(f"cannot read the policy file {path}: {err.strerror}") from None
        except (yaml.YAMLError, ValidationError) as err:
            raise PolicyError(f"invalid policy file {path}: {err}") from None

    def assume_roles(self) -> dict[str, AssumeRole]:
        return {k: AssumeRole(role_arn=r.role_arn, external_id=r.external_id) for k, r in self.roles.items()}

    def check(self, namespace: str, role_key: str | None, region: str, action: str | None = None) -> str | None:
        """None when allowed; otherwise why not, naming the rule, for a condition message.

        ``action`` is ``service:Operation`` for a mutating step, None for reads.
        """
        role_key = role_key or ""
        for index, rule in enumerate(self.rules, start=1):
            if not any(fnmatchcase(namespace, pattern) for pattern in rule.namespaces):
                continue
            where = f"operator policy rule {index} (namespaces {rule.namespaces})"
            if role_key not in rule.roles and "*" not in rule.roles:
                shown = role_key or "the operator's own credentials"
                return f"role {shown!r} is not allowed in namespace {namespace} by {where}; allowed roles: {rule.roles}"
            if role_key and role_key not in self.roles:
                return f"role {role_key!r} is not defined in the operator policy's roles"
            if not any(fnmatchcase(region, pattern) for pattern in rule.regions):
                return f"region {region} is not allowed in namespace {namespace} by {where}; allowed: {rule.regions}"
            if action is not None and not any(fnmatchcase(action, pattern) for pattern in rule.actions):
                return (f"action {action} is not allowed in namespace {namespace} by {where}; "
                        f"allowed actions: {rule.actions or 'none'}")
            return None
        return f"no operator policy rule matches namespace {namespace}; the platform team must add one"

    def _rule(self, namespace: str) -> tuple[int, Rule | None]:
        return next(((i, r) for i, r in enumerate(self.rules, start=1)
                     if any(fnmatchcase(namespace, p) for p in r.namespaces)), (0, None))

    def limits(self, namespace: str) -> Limits:
        """The caps of the first rule matching ``namespace`` (none when no rule matches: it may not act)."""
        _, rule = self._rule(namespace)
        return rule.limits if rule else Limits()

    def probe_guard(self, namespace: str) -> Callable[[str], str | None]:
        """The check an endpoint probe of ``namespace`` applies to each address it would connect to
        (``ProbeRule.refusal``; the defaults when no rule matches)."""
        index, rule = self._rule(namespace)
        probes = rule.probes if rule else ProbeRule()
        where = f"operator policy rule {index} (namespaces {rule.namespaces})" if rule else "the operator policy"
        return lambda address: probes.refusal(address, where)

    def gate_layers(self, namespace: str, environment: str | None) -> list[Layer]:
        """The policy's plan gates for an apply in ``namespace`` and ``environment``: the matching
        rule's ``gates``, then its environment's; a resource's own go after them
        (``guardrails.gates.merge``). None set: no layer."""
        index, rule = self._rule(namespace)
        if rule is None:
            return []
        where = f"operator policy rule {index} (namespaces {rule.namespaces})"
        layers = [Layer(where, rule.gates)] if rule.gates else []
        found = rule.environment(environment)
        if found and found[1].gates:
            layers.append(Layer(f"{where}, environment {found[0]}", found[1].gates))
        return layers

    def change_limits(self, namespace: str, environment: str | None) -> list[ChangeLimit]:
        """The circuit breaker's limits for an automated change in ``namespace`` and ``environment``:
        the rule's ``limits.automatedChangesPerHour`` (over the namespace's changes) and its
        environment's (over that environment's changes in the namespace). None set: no limit."""
        index, rule = self._rule(namespace)
        if rule is None:
            return []
        where = f"operator policy rule {index} (namespaces {rule.namespaces})"
        limits = []
        if rule.limits.automated_changes_per_hour is not None:
            limits.append(ChangeLimit(rule.limits.automated_changes_per_hour, None, where))
        found = rule.environment(environment)
        if found and found[1].limits.automated_changes_per_hour is not None:
            limits.append(ChangeLimit(found[1].limits.automated_changes_per_hour, found[0],
                                      f"{where}, environment {found[0]}"))
        return limits

    def terraform(self, namespace: str) -> TerraformRule:
        """What Terraform may do in ``namespace`` (nothing when no rule matches)."""
        _, rule = self._rule(namespace)
        return rule.terraform if rule else TerraformRule()

    def deployers(self, namespace: str) -> list[str]:
        """The ARNs whose changes to ``namespace``'s Terraform-managed resources are deployments:
        ``terraform.deployers`` and the role Terraform runs as (issue 24)."""
        rule = self.terraform(namespace)
        own = [self.roles[rule.role].role_arn] if rule.role and rule.role in self.roles else []
        return list(rule.deployers) + own

    def terraform_grant(self, namespace: str, action: str, workspace: str) -> "TerraformGrant":
        """What a Terraform run of ``action`` in ``namespace`` may use: the role whose credentials it
        gets and the verdict on its backend (see :class:`TerraformGrant`)."""
        rule = self.terraform(namespace)
        return TerraformGrant(self, namespace, action, workspace, rule.role, rule.allow_provisioners)

    def check_terraform(self, namespace: str, action: str, backend: Backend, workspace: str) -> str | None:
        """None when Terraform may run ``action`` (``terraform:Plan``, ``terraform:Apply``,
        ``terraform:Import``, ``terraform:ForceUnlock``) in ``namespace`` on ``backend``
        (``terraform.backend.Backend``) and ``workspace``; otherwise why not, naming the rule and
        what it allows. Pure: the controller calls it before any Terraform runs, and again on the
        backend ``init`` recorded."""
        index, rule = self._rule(namespace)
        if rule is None:
            return f"no operator policy rule matches namespace {namespace}; the platform team must add one"
        where = f"operator policy rule {index} (namespaces {rule.namespaces})"
        if not any(fnmatchcase(action, pattern) for pattern in rule.actions):
            return (f"action {action} is not allowed in namespace {namespace} by {where}; "
                    f"allowed actions: {rule.actions or 'none'}")
        candidates = [b for b in rule.terraform.backends if b.type == backend.type]
        if not candidates:
            allowed = sorted({b.type for b in rule.terraform.backends})
            return (f"backend {backend.type} is not allowed in namespace {namespace} by {where}; allowed backends: "
                    f"{allowed or 'none (terraform.backends is empty)'}")
        problems = []
        for candidate in candidates:
            problem = _backend_mismatch(candidate, backend, workspace)
            if problem is None:
                return None
            problems.append(problem)
        return f"{problems[0]}: not allowed in namespace {namespace} by {where}"


@dataclass(frozen=True)
class TerraformGrant:
    """The operator policy's answer for one Terraform run, handed to the workspace adapter: the
    role whose assumed credentials Terraform gets (None: no AWS credentials from the operator),
    whether provisioners are allowed, and :meth:`refusal` of a backend, which the adapter asks on
    the backend a configuration declares (before ``init``) and on the one ``init`` recorded."""

    policy: Policy
    namespace: str
    action: str
    workspace: str
    role_key: str | None
    allow_provisioners: bool

    def refusal(self, backend: Backend) -> str | None:
        """None when the run may use ``backend``; otherwise why not (the rule named)."""
        return self.policy.check_terraform(self.namespace, self.action, backend, self.workspace)


def _backend_mismatch(rule: BackendRule, backend: Backend, workspace: str) -> str | None:
    for name, patterns in sorted(rule.settings.items()):
        value = backend.settings.get(name, "")
        if not any(fnmatchcase(value, pattern) for pattern in patterns):
            shown = f"{value!r}" if value else "unset"
            return f"backend {backend.type} {name} {shown} (allowed: {patterns})"
    if not any(fnmatchcase(workspace, pattern) for pattern in rule.workspaces):
        return f"workspace {workspace!r} (allowed: {rule.workspaces})"
    return None
