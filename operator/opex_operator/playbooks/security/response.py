"""The security runbook's gated steps: containment, then recovery (pure; each action's verification is its own, ``steps``).

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

and, from what the investigation found the compromise did (``Investigation.compromise`` and
``.exposures``; the runbook's containment applied to what the attacker made, not only to what the
spec names):

=======================================  ==================================  ==========================================
step id                                  action (policy name)                planned for
=======================================  ==================================  ==========================================
deactivate-access-key-<key id>           iam:UpdateAccessKey                 each key it created (or delete-, as above)
remove-login-profile-<user>              iam:DeleteLoginProfile              each console password it set
detach-<type>-policy-<name>-<policy>     iam:Detach{User,Role,Group}Policy   each managed policy it attached
delete-<type>-policy-<name>-<policy>     iam:Delete{User,Role,Group}Policy   each inline policy it put
quarantine-<user|role>-<name>            iam:Attach{User,Role}Policy         each user or role it created (AWSDenyAll)
                                                                             and each role whose trust it changed
                                                                             (waits for approval: the role's own
                                                                             callers are denied too)
revoke-ingress-<group>-<protocol>-<port> ec2:RevokeSecurityGroupIngress      each admin port it opened to the world,
                                                                             named in the spec or not
=======================================  ==================================  ==========================================

Recovery steps wait for approval even in ``Auto``: a rotation breaks whatever still holds the
old credential until the redeploy, so a person decides when (``Step.requires_approval``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from ...api.incident import IncidentSpec, Step
from ...api.security import AccessKeyAction, IpProtocol, SecurityGroupRuleTarget, WafScope, parse_cidr, parse_cidr_loose
from ...ports.security import DENY_ALL, QUARANTINE, QUARANTINE_ARN
from ...steps import slug, step
from ...steps.access_keys import DEACTIVATE_ACCESS_KEY, DELETE_ACCESS_KEY, AccessKeyParams
from ...steps.iam_policies import (ATTACH_ROLE_POLICY, ATTACH_USER_POLICY, DELETE_GROUP_POLICY, DELETE_ROLE_POLICY,
                                   DELETE_USER_POLICY, DETACH_GROUP_POLICY, DETACH_ROLE_POLICY, DETACH_USER_POLICY,
                                   DetachPolicyParams, InlinePolicyParams, QuarantineParams)
from ...steps.login_profile import DELETE_LOGIN_PROFILE, LoginProfileParams
from ...steps.pipeline import START_PIPELINE_EXECUTION, StartPipelineParams
from ...steps.revoke_ingress import REVOKE_SECURITY_GROUP_INGRESS, RevokeIngressParams
from ...steps.secret_rotation import ROTATE_SECRET, RotateSecretParams, secret_name
from ...steps.waf_block import UPDATE_IP_SET, BlockIpsParams
from .blast_radius import Change
from .investigation import Exposure, Investigation

# Scope CLOUDFRONT is managed through us-east-1 only (AWS WAF API reference, "Scope").
CLOUDFRONT_REGION = "us-east-1"


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


def _key_step(spec: IncidentSpec, user: str, key: str, note: str = "") -> Step:
    """Contain an access key: ``note`` says where it came from when the spec does not name it."""
    params = AccessKeyParams(user_name=user, access_key_id=key)
    if spec.remediation.security.access_key_action == AccessKeyAction.DELETE:
        return step(f"delete-access-key-{slug(key)}", DELETE_ACCESS_KEY, params,
                    f"delete access key {key} of IAM user {user}{note} (irreversible: "
                    f"spec.remediation.security.accessKeyAction is Delete)")
    return step(f"deactivate-access-key-{slug(key)}", DEACTIVATE_ACCESS_KEY, params,
                f"set access key {key} of IAM user {user} Inactive{note}")


def _login_step(user: str, note: str = "") -> Step:
    return step(f"remove-login-profile-{slug(user)}", DELETE_LOGIN_PROFILE, LoginProfileParams(user_name=user),
                f"remove the console password (login profile) of IAM user {user}{note}")


def steps(spec: IncidentSpec, found: Investigation | None = None) -> list[Step]:
    """Containment then recovery steps for what ``spec.targets.security`` names and, given the
    investigation (``found``), for what the compromise made, changed and opened, in runbook order
    (empty without security targets). Ids are unique: a repeated one gets ``-2``, ``-3``..."""
    s = spec.targets.security
    if s is None:
        return []
    limits = spec.remediation.security
    out: list[Step] = []
    for user in s.iam_users:
        for key in user.access_key_ids:
            out.append(_key_step(spec, user.user_name, key))
        out.append(_login_step(user.user_name))
    if s.source_ips:
        for ip_set in s.waf_ip_sets:
            region = CLOUDFRONT_REGION if ip_set.scope == WafScope.CLOUDFRONT else (ip_set.region or spec.targets.region)
            out.append(step(f"block-ips-{slug(ip_set.name)}", UPDATE_IP_SET, BlockIpsParams(
                name=ip_set.name, id=ip_set.id, scope=ip_set.scope.value, region=region, addresses=list(s.source_ips),
                allow_private_ranges=limits.allow_private_ranges, allow_world_ranges=limits.allow_world_ranges),
                f"add {', '.join(s.source_ips)} to WAF IP set {ip_set.name} ({ip_set.scope.value}), keeping the "
                f"addresses already there"))
    for rule in s.security_groups:
        out.append(step(f"revoke-ingress-{slug(rule.group_id)}-{slug(_ports(rule))}", REVOKE_SECURITY_GROUP_INGRESS,
                        RevokeIngressParams(group_id=rule.group_id, protocol=rule.protocol.value,
                                            from_port=rule.from_port, to_port=rule.to_port, cidrs=list(rule.cidrs)),
                        f"revoke {_rule_label(rule)} from {', '.join(rule.cidrs)} in {rule.group_id} (narrower rules "
                        f"stay)"))
    if found is not None:
        out += _found_steps(spec, found, out)
    for secret in s.secrets:
        out.append(step(f"rotate-secret-{slug(secret_name(secret))}", ROTATE_SECRET,
                        RotateSecretParams(secret_id=secret),
                        f"rotate secret {secret_name(secret)} (RotateSecret with its rotation function)",
                        requires_approval=True))
    if s.redeploy_pipeline:
        out.append(step(f"redeploy-{slug(s.redeploy_pipeline)}", START_PIPELINE_EXECUTION,
                        StartPipelineParams(pipeline=s.redeploy_pipeline),
                        f"start a new execution of {s.redeploy_pipeline} and follow it to its end (redeploy with "
                        f"the rotated credentials)", requires_approval=True))
    return _unique(out)


# Containment order of what the compromise made: credentials first, then what they may do, then
# who they are, then the doors it opened.
_ORDER = {DEACTIVATE_ACCESS_KEY: 0, DELETE_ACCESS_KEY: 0, DELETE_LOGIN_PROFILE: 1, DETACH_USER_POLICY: 2,
          DETACH_ROLE_POLICY: 2, DETACH_GROUP_POLICY: 2, DELETE_USER_POLICY: 3, DELETE_ROLE_POLICY: 3,
          DELETE_GROUP_POLICY: 3, ATTACH_USER_POLICY: 4, ATTACH_ROLE_POLICY: 4,
          REVOKE_SECURITY_GROUP_INGRESS: 5}


def _made(c: Change) -> str:
    when = f"{c.event.time:%Y-%m-%dT%H:%M:%SZ}" if c.event.time else "?"
    return f"by the compromise at {when}, event {c.event.event_id}"


def _change_step(spec: IncidentSpec, c: Change, created_roles: set[str]) -> Step | None:
    """The containment of one thing the compromise made or changed (None: nothing to run). A
    quarantine (AWS's or ours) is never undone."""
    kind, why = c.principal_type, _made(c)
    if str(c.policy_arn or "").startswith((QUARANTINE_ARN, DENY_ALL)) or str(c.policy_name or "").startswith(QUARANTINE):
        return None
    if c.what == "CreateAccessKey":
        return _key_step(spec, c.principal, c.key_id, f" (created {why})") if c.key_id else None
    if c.what in ("CreateLoginProfile", "UpdateLoginProfile"):
        return _login_step(c.principal, f" (set {why})")
    if c.what.startswith("Attach") and c.policy_arn:
        policy = c.policy_arn.rsplit("/", 1)[-1]
        action = {"user": DETACH_USER_POLICY, "role": DETACH_ROLE_POLICY, "group": DETACH_GROUP_POLICY}[kind]
        return step(f"detach-{kind}-policy-{slug(c.principal)[:40]}-{slug(policy)[:40]}", action,
                    DetachPolicyParams(principal_type=kind, principal_name=c.principal, policy_arn=c.policy_arn,
                                       event_id=c.event.event_id),
                    f"detach {policy} from IAM {kind} {c.principal} (attached {why})")
    if c.what.startswith("Put") and c.policy_name:
        action = {"user": DELETE_USER_POLICY, "role": DELETE_ROLE_POLICY, "group": DELETE_GROUP_POLICY}[kind]
        return step(f"delete-{kind}-policy-{slug(c.principal)[:40]}-{slug(c.policy_name)[:40]}", action,
                    InlinePolicyParams(principal_type=kind, principal_name=c.principal, policy_name=c.policy_name,
                                       event_id=c.event.event_id),
                    f"delete inline policy {c.policy_name} of IAM {kind} {c.principal} (put {why}; its document "
                    f"is kept for the undo)")
    if c.what in ("CreateUser", "CreateRole", "UpdateAssumeRolePolicy"):
        made = c.what != "UpdateAssumeRolePolicy" or c.principal in created_roles
        return step(f"quarantine-{kind}-{slug(c.principal)}", ATTACH_USER_POLICY if kind == "user" else
                    ATTACH_ROLE_POLICY, QuarantineParams(principal_type=kind, principal_name=c.principal,
                                                           event_id=c.event.event_id),
                    f"attach AWSDenyAll to IAM {kind} {c.principal} " +
                    (f"(created {why})" if made else f"(its trust policy changed {why}): its own callers are "
                                                    f"denied too, so a person approves it"),
                    requires_approval=not made)
    return None


def _exposure_step(x: Exposure, planned: list[Step]) -> Step | None:
    """Revoke an admin port the compromise opened to the world, unless a named step revokes it."""
    rule = x.rule()
    try:
        target = SecurityGroupRuleTarget(group_id=x.group_id, protocol=IpProtocol(rule.protocol),
                                         from_port=rule.from_port, to_port=rule.to_port, cidrs=[x.cidr])
    except (ValidationError, ValueError):   # not a rule EC2 could revoke (a group id as written oddly): a finding only
        return None
    base = f"revoke-ingress-{slug(x.group_id)}-{slug(_ports(target))}"
    for s in planned:
        p = s.params
        if s.id.startswith(base) and x.cidr in p.get("cidrs", "").split(","):
            return None
    taken = any(s.id == base for s in planned)
    opened = x.opened
    when = f"{opened.event.time:%Y-%m-%dT%H:%M:%SZ}" if opened.event.time else "?"
    return step(base + (f"-ipv{parse_cidr(x.cidr).version}" if taken else ""), REVOKE_SECURITY_GROUP_INGRESS,
                RevokeIngressParams(group_id=x.group_id, protocol=rule.protocol, from_port=rule.from_port,
                                    to_port=rule.to_port, cidrs=[x.cidr]),
                f"revoke {_rule_label(target)} from {x.cidr} in {x.group_id}"
                + (f" (rule {opened.rule_id})" if opened.rule_id else "")
                + f", opened by the compromise at {when} (event {opened.event.event_id}); narrower rules stay")


def _found_steps(spec: IncidentSpec, found: Investigation, named: list[Step]) -> list[Step]:
    """Containment of what the investigation found the compromise made, changed and opened,
    leaving out what a named step already contains."""
    created_roles = {c.principal for c in found.compromise.changes if c.what == "CreateRole"}
    out: list[Step] = []
    for c in found.compromise.changes:
        s = _change_step(spec, c, created_roles)
        if s is not None and all(s.id != o.id for o in named + out):
            out.append(s)
    for x in found.exposures:
        s = _exposure_step(x, named + out)
        if s is not None and all(s.id != o.id for o in named + out):
            out.append(s)
    return sorted(out, key=lambda s: _ORDER.get(s.action, 9))


def _unique(out: list[Step]) -> list[Step]:
    seen: dict[str, int] = {}
    for s in out:
        seen[s.id] = seen.get(s.id, 0) + 1
        if seen[s.id] > 1:
            s.id = f"{s.id[:96]}-{seen[s.id]}"
    return out
