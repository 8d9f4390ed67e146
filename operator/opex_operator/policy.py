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
    escalation:                     # the default escalation matrix (an Incident may override it)
      levels: [...]
      snsTopicArns: [...]

Reads (describe/get/list/filter) need a matching rule, role and region; mutating actions must
also match ``actions`` (fnmatch globs such as ``lambda:*``). Without a policy file every
namespace may read with the operator's own credentials and no mutating action is allowed.
``limits`` cap the values a step may set in those namespaces (the lower of the policy's cap and
the Incident's own wins). Source: DESIGN.md §3 (safety model).
"""
from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from .api.common import Model
from .api.incident import EscalationLevel, Severity, TopicArn
from .api.performance import LAMBDA_MAX_MB, LAMBDA_MIN_MB
from .aws.clients import AssumeRole
from .notify.escalation import PRODUCTION


class RoleSpec(Model):
    role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$")
    external_id: str | None = None


class Limits(Model):
    """Caps on what a step may set; None leaves a value to the Incident's own bounds."""

    lambda_memory_mb: int | None = Field(default=None, ge=LAMBDA_MIN_MB, le=LAMBDA_MAX_MB,
                                         description="The most memory (MB) a raise-lambda-memory step may set.")


class Rule(Model):
    namespaces: list[str] = Field(min_length=1)
    roles: list[str] = Field(default_factory=lambda: [""])
    regions: list[str] = Field(default_factory=lambda: ["*"])
    actions: list[str] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)


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


class PolicyError(ValueError):
    """The policy file is missing or malformed; the message names the file and the field."""


class Policy(Model):
    roles: dict[str, RoleSpec] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=lambda: [Rule(namespaces=["*"])])
    escalation: EscalationDefaults = Field(default_factory=EscalationDefaults)

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

    def limits(self, namespace: str) -> Limits:
        """The caps of the first rule matching ``namespace`` (none when no rule matches: it may not act)."""
        rule = next((r for r in self.rules if any(fnmatchcase(namespace, p) for p in r.namespaces)), None)
        return rule.limits if rule else Limits()
