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

from ..api.incident import IncidentSpec, Step
from ..api.security import AccessKeyAction, IpProtocol, SecurityGroupRuleTarget, WafScope, parse_cidr, parse_cidr_loose
from .blast_radius import DENY_ALL, QUARANTINE, QUARANTINE_ARN, Change
from .security import Exposure, IngressRule, Investigation
from .steps import (AccessKeyParams, BlockIpsParams, DetachPolicyParams, InlinePolicyParams, LoginProfileParams, Params,
                    QuarantineParams, RevokeIngressParams, RotateSecretParams, StartPipelineParams, StepAction as A, slug,
                    step)

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


def _key_step(spec: IncidentSpec, user: str, key: str, note: str = "") -> Step:
    """Contain an access key: ``note`` says where it came from when the spec does not name it."""
    params = AccessKeyParams(user_name=user, access_key_id=key)
    if spec.remediation.security.access_key_action == AccessKeyAction.DELETE:
        return step(f"delete-access-key-{slug(key)}", A.DELETE_ACCESS_KEY, params,
                    f"delete access key {key} of IAM user {user}{note} (irreversible: "
                    f"spec.remediation.security.accessKeyAction is Delete)")
    return step(f"deactivate-access-key-{slug(key)}", A.DEACTIVATE_ACCESS_KEY, params,
                f"set access key {key} of IAM user {user} Inactive{note}")


def _login_step(user: str, note: str = "") -> Step:
    return step(f"remove-login-profile-{slug(user)}", A.DELETE_LOGIN_PROFILE, LoginProfileParams(user_name=user),
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
    if found is not None:
        out += _found_steps(spec, found, out)
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


# Containment order of what the compromise made: credentials first, then what they may do, then
# who they are, then the doors it opened.
_ORDER = {A.DEACTIVATE_ACCESS_KEY: 0, A.DELETE_ACCESS_KEY: 0, A.DELETE_LOGIN_PROFILE: 1, A.DETACH_USER_POLICY: 2,
          A.DETACH_ROLE_POLICY: 2, A.DETACH_GROUP_POLICY: 2, A.DELETE_USER_POLICY: 3, A.DELETE_ROLE_POLICY: 3,
          A.DELETE_GROUP_POLICY: 3, A.ATTACH_USER_POLICY: 4, A.ATTACH_ROLE_POLICY: 4,
          A.REVOKE_SECURITY_GROUP_INGRESS: 5}


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
        action = {"user": A.DETACH_USER_POLICY, "role": A.DETACH_ROLE_POLICY, "group": A.DETACH_GROUP_POLICY}[kind]
        return step(f"detach-{kind}-policy-{slug(c.principal)[:40]}-{slug(policy)[:40]}", action,
                    DetachPolicyParams(principal_type=kind, principal_name=c.principal, policy_arn=c.policy_arn,
                                       event_id=c.event.event_id),
                    f"detach {policy} from IAM {kind} {c.principal} (attached {why})")
    if c.what.startswith("Put") and c.policy_name:
        action = {"user": A.DELETE_USER_POLICY, "role": A.DELETE_ROLE_POLICY, "group": A.DELETE_GROUP_POLICY}[kind]
        return step(f"delete-{kind}-policy-{slug(c.principal)[:40]}-{slug(c.policy_name)[:40]}", action,
                    InlinePolicyParams(principal_type=kind, principal_name=c.principal, policy_name=c.policy_name,
                                       event_id=c.event.event_id),
                    f"delete inline policy {c.policy_name} of IAM {kind} {c.principal} (put {why}; its document "
                    f"is kept for the undo)")
    if c.what in ("CreateUser", "CreateRole", "UpdateAssumeRolePolicy"):
        made = c.what != "UpdateAssumeRolePolicy" or c.principal in created_roles
        return step(f"quarantine-{kind}-{slug(c.principal)}", A.ATTACH_USER_POLICY if kind == "user" else
                    A.ATTACH_ROLE_POLICY, QuarantineParams(principal_type=kind, principal_name=c.principal,
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
    return step(base + (f"-ipv{parse_cidr(x.cidr).version}" if taken else ""), A.REVOKE_SECURITY_GROUP_INGRESS,
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
    return sorted(out, key=lambda s: _ORDER.get(A(s.action), 9))


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
           A.REVOKE_SECURITY_GROUP_INGRESS, A.ROTATE_SECRET, A.DETACH_USER_POLICY, A.DETACH_ROLE_POLICY,
           A.DETACH_GROUP_POLICY, A.DELETE_USER_POLICY, A.DELETE_ROLE_POLICY, A.DELETE_GROUP_POLICY,
           A.ATTACH_USER_POLICY, A.ATTACH_ROLE_POLICY}
def principal_key(kind: str, name: str) -> str:
    """How ContainmentFacts files a principal's policies: ``user/backdoor``."""
    return f"{kind}/{name}"

@dataclass
class ContainmentFacts:
    """What verification observed of the security steps that ran (gathered by the controller)."""

    access_keys: dict[str, str | None] = field(default_factory=dict)        # key id -> Active/Inactive, None: gone
    login_profiles: dict[str, bool] = field(default_factory=dict)           # user -> has a console password
    ip_sets: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # IP set id -> (IPV4/IPV6, addresses)
    ingress: dict[str, list[IngressRule]] = field(default_factory=dict)     # group id -> inbound rules
    rotations: dict[str, str] = field(default_factory=dict)                 # secret id -> Rotated/InProgress/missing
    attached: dict[str, list[str] | None] = field(default_factory=dict)     # user/x -> managed policy ARNs (None: gone)
    inline: dict[str, list[str] | None] = field(default_factory=dict)       # user/x -> inline policy names (None: gone)


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
    if isinstance(p, (DetachPolicyParams, InlinePolicyParams, QuarantineParams)):
        return _policy_holds(p, facts)
    raise TypeError(f"{type(p).__name__} is not the params of a contained step")


def _policy_holds(p: DetachPolicyParams | InlinePolicyParams | QuarantineParams,
                  facts: ContainmentFacts) -> tuple[bool | None, str]:
    """A detached policy not attached again, a deleted inline policy not back, AWSDenyAll still on
    a quarantined principal; a principal deleted since is contained."""
    key = principal_key(p.principal_type, p.principal_name)
    who = f"IAM {p.principal_type} {p.principal_name}"
    names = facts.inline.get(key) if isinstance(p, InlinePolicyParams) else facts.attached.get(key)
    if names is None:
        return True, f"{who} no longer exists"
    if isinstance(p, QuarantineParams):
        if DENY_ALL in names:
            return True, f"{who} is quarantined (AWSDenyAll attached)"
        return False, f"AWSDenyAll is no longer attached to {who}"
    name = p.policy_name if isinstance(p, InlinePolicyParams) else p.policy_arn
    short = name.rsplit("/", 1)[-1]
    if name in names:
        return False, f"{who} has {short} again"
    return True, f"{who} does not have {short}"
