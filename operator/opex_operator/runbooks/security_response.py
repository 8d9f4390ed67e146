"""The security runbook's gated steps (containment, then recovery) and what it means for them to hold (pure).

Source: the runbook, "Security Incident Response": "Containment (0-15 minutes)" (disable the
compromised user, revoke its access keys, block the suspicious addresses in WAF) and
"Recovery (1-4 hours)" (rotate the compromised credentials, update the security groups,
force a re-deployment). The world-open rule is closed during containment here: it is the
door the incident may have used, and closing exactly that rule is reversible.

Every step comes from what ``spec.targets.security`` names, with a stable id:

=======================================  ==================================  ==========================================
step id                                  action (policy name)                planned for
=======================================  ==================================  ==========================================
deactivate-access-key-<key id>           iam:UpdateAccessKey                 each leaked key (accessKeyAction Deactivate)
delete-access-key-<key id>               iam:DeleteAccessKey                 each leaked key (accessKeyAction Delete)
remove-login-profile-<user>              iam:DeleteLoginProfile              each compromised user
block-ips-<IP set name>                  wafv2:UpdateIPSet                   each WAF IP set, when sourceIps are given
revoke-ingress-<group>-<protocol>-<port> ec2:RevokeSecurityGroupIngress      each securityGroups entry
rotate-secret-<secret name>              secretsmanager:RotateSecret         each secret (recovery)
redeploy-<pipeline>                      codepipeline:StartPipelineExecution redeployPipeline (recovery)
=======================================  ==================================  ==========================================

Recovery steps wait for approval even in ``Auto``: a rotation breaks whatever still holds the
old credential until the redeploy, so a person decides when (``Step.requires_approval``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..api.incident import IncidentSpec, Step
from ..api.security import AccessKeyAction, IpProtocol, SecurityGroupRuleTarget, WafScope, parse_cidr, parse_cidr_loose
from .security import IngressRule
from .steps import (AccessKeyParams, BlockIpsParams, LoginProfileParams, Params, RevokeIngressParams, RotateSecretParams,
                    StartPipelineParams, StepAction as A, slug, step)

# Scope CLOUDFRONT is managed through us-east-1 only (AWS WAF API reference, "Scope").
CLOUDFRONT_REGION = "us-east-1"


def secret_name(secret_id: str) -> str:
    """The name part of a secret's ARN (``...:secret:prod/db-AbCdEf`` -> ``prod/db-AbCdEf``), or the name itself."""
    return secret_id.split(":secret:", 1)[-1]


def _ports(rule: SecurityGroupRuleTarget) -> str:
    if rule.protocol == IpProtocol.ALL:
        return "all"
    if rule.from_port == rule.to_port:
        return f"{rule.protocol.value}-{rule.from_port}"
    return f"{rule.protocol.value}-{rule.from_port}-{rule.to_port}"


def _rule_label(rule: SecurityGroupRuleTarget) -> str:
    if rule.protocol == IpProtocol.ALL:
        return "all traffic"
    ports = str(rule.from_port) if rule.from_port == rule.to_port else f"{rule.from_port}-{rule.to_port}"
    return f"{rule.protocol.value}/{ports}"


def steps(spec: IncidentSpec) -> list[Step]:
    """Containment then recovery steps for what ``spec.targets.security`` names, in runbook order
    (empty without security targets). Ids are unique: a repeated one gets ``-2``, ``-3``..."""
    s = spec.targets.security
    if s is None:
        return []
    limits = spec.remediation.security
    out: list[Step] = []
    delete = limits.access_key_action == AccessKeyAction.DELETE
    for user in s.iam_users:
        for key in user.access_key_ids:
            params = AccessKeyParams(user_name=user.user_name, access_key_id=key)
            if delete:
                out.append(step(f"delete-access-key-{slug(key)}", A.DELETE_ACCESS_KEY, params,
                                f"delete access key {key} of IAM user {user.user_name} (irreversible: "
                                f"spec.remediation.security.accessKeyAction is Delete)"))
            else:
                out.append(step(f"deactivate-access-key-{slug(key)}", A.DEACTIVATE_ACCESS_KEY, params,
                                f"set access key {key} of IAM user {user.user_name} Inactive"))
        out.append(step(f"remove-login-profile-{slug(user.user_name)}", A.DELETE_LOGIN_PROFILE,
                        LoginProfileParams(user_name=user.user_name),
                        f"remove the console password (login profile) of IAM user {user.user_name}"))
    if s.source_ips:
        for ip_set in s.waf_ip_sets:
            region = CLOUDFRONT_REGION if ip_set.scope == WafScope.CLOUDFRONT else (ip_set.region or spec.targets.region)
            out.append(step(f"block-ips-{slug(ip_set.name)}", A.UPDATE_IP_SET, BlockIpsParams(
                name=ip_set.name, id=ip_set.id, scope=ip_set.scope.value, region=region, addresses=list(s.source_ips),
                allow_private_ranges=limits.allow_private_ranges, allow_world_ranges=limits.allow_world_ranges),
                f"add {', '.join(s.source_ips)} to WAF IP set {ip_set.name} ({ip_set.scope.value}), keeping the "
                f"addresses already there"))
    for rule in s.security_groups:
        out.append(step(f"revoke-ingress-{slug(rule.group_id)}-{slug(_ports(rule))}", A.REVOKE_SECURITY_GROUP_INGRESS,
                        RevokeIngressParams(group_id=rule.group_id, protocol=rule.protocol.value,
                                            from_port=rule.from_port, to_port=rule.to_port, cidrs=list(rule.cidrs)),
                        f"revoke {_rule_label(rule)} from {', '.join(rule.cidrs)} in {rule.group_id} (narrower rules "
                        f"stay)"))
    for secret in s.secrets:
        out.append(step(f"rotate-secret-{slug(secret_name(secret))}", A.ROTATE_SECRET,
                        RotateSecretParams(secret_id=secret),
                        f"rotate secret {secret_name(secret)} (RotateSecret with its rotation function)",
                        requires_approval=True))
    if s.redeploy_pipeline:
        out.append(step(f"redeploy-{slug(s.redeploy_pipeline)}", A.START_PIPELINE_EXECUTION,
                        StartPipelineParams(pipeline=s.redeploy_pipeline),
                        f"start a new execution of {s.redeploy_pipeline} and follow it to its end (redeploy with "
                        f"the rotated credentials)", requires_approval=True))
    return _unique(out)


def _unique(out: list[Step]) -> list[Step]:
    seen: dict[str, int] = {}
    for s in out:
        seen[s.id] = seen.get(s.id, 0) + 1
        if seen[s.id] > 1:
            s.id = f"{s.id[:96]}-{seen[s.id]}"
    return out


# ---- does the containment hold? -----------------------------------------------------------------

# The actions whose effect :func:`holds` checks (a redeploy is checked as a pipeline execution).
CHECKED = {A.DEACTIVATE_ACCESS_KEY, A.DELETE_ACCESS_KEY, A.DELETE_LOGIN_PROFILE, A.UPDATE_IP_SET,
           A.REVOKE_SECURITY_GROUP_INGRESS, A.ROTATE_SECRET}

@dataclass
class ContainmentFacts:
    """What verification observed of the security steps that ran (gathered by the controller)."""

    access_keys: dict[str, str | None] = field(default_factory=dict)        # key id -> Active/Inactive, None: gone
    login_profiles: dict[str, bool] = field(default_factory=dict)           # user -> has a console password
    ip_sets: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # IP set id -> (IPV4/IPV6, addresses)
    ingress: dict[str, list[IngressRule]] = field(default_factory=dict)     # group id -> inbound rules
    rotations: dict[str, str] = field(default_factory=dict)                 # secret id -> Rotated/InProgress/missing


def holds(p: Params, facts: ContainmentFacts) -> tuple[bool | None, str]:
    """Whether the security step with params ``p`` (an action of :data:`CHECKED`) still holds:
    (True, seen) it holds, (None, seen) not yet (a rotation running), (False, seen) it was undone.

    Holds means: the key is not Active (deleted counts), the user has no console password, every
    requested address of the set's IP version is in the set, no rule matching the revoked one
    is back, the rotation finished (AWSCURRENT on the new version).
    """
    if isinstance(p, AccessKeyParams):
        state = facts.access_keys.get(p.access_key_id)
        if state == "Active":
            return False, f"access key {p.access_key_id} of {p.user_name} is Active again"
        return True, f"access key {p.access_key_id} is {state or 'deleted'}"
    if isinstance(p, LoginProfileParams):
        if facts.login_profiles.get(p.user_name):
            return False, f"IAM user {p.user_name} has a console password again"
        return True, f"IAM user {p.user_name} has no console password"
    if isinstance(p, BlockIpsParams):
        version, present = facts.ip_sets.get(p.id, ("", []))
        mine = [a for a in p.addresses if f"IPV{parse_cidr(a).version}" == version]
        missing = [a for a in mine if not any(parse_cidr_loose(a) == parse_cidr_loose(c) for c in present)]
        if missing:
            return False, f"WAF IP set {p.name} no longer blocks {', '.join(missing)}"
        return True, f"WAF IP set {p.name} blocks {', '.join(mine) or 'none of them (other IP version)'}"
    if isinstance(p, RevokeIngressParams):
        back = [r for r in facts.ingress.get(p.group_id, [])
                if any(r.matches(p.protocol, p.from_port, p.to_port, c) for c in p.cidrs)]
        if back:
            return False, f"{p.group_id} has {'; '.join(r.label() for r in back)} again"
        return True, f"{p.group_id} has no rule from {', '.join(p.cidrs)} on those ports"
    if isinstance(p, RotateSecretParams):
        state = facts.rotations.get(p.secret_id, "missing")
        name = secret_name(p.secret_id)
        if state == "Rotated":
            return True, f"secret {name} rotated"
        if state == "InProgress":
            return None, f"secret {name}: rotation in progress"
        return False, f"secret {name}: its rotation did not finish (version {p.version_id} is gone)"
    raise TypeError(f"{type(p).__name__} is not the params of a contained step")
