"""What the compromised credentials did with themselves: the blast radius (pure).

The runbook's "Investigation" ("Check CloudTrail logs") asks what the leaked credentials were
used for. A record names a key or a user, but what an attacker does *with* a key names neither:

* **Sessions**: ``sts:AssumeRole``, ``GetSessionToken`` and ``GetFederationToken`` by a held
  identity open a session. Its calls are followed by the session's ARN (``assumedRoleUser.arn``,
  ``federatedUser.arn`` in the response, ``userIdentity.arn`` later) within the session's
  lifetime, by its temporary key id when the response shows one (it may be redacted), and by
  ``sessionContext.sessionIssuer`` naming a held user (federation tokens). A session whose
  ``creationDate`` is not when the held identity opened it is someone else's session of the
  same name.
* **Credentials made**: ``CreateAccessKey`` (the new key id in ``responseElements.accessKey``),
  ``CreateLoginProfile``/``UpdateLoginProfile`` (that user's console sign-ins from then on),
  ``CreateUser`` (that user's calls from then on), ``CreateRole``/``UpdateAssumeRolePolicy``
  (that role assumed by anyone from then on).

Sources: CloudTrail User Guide, "CloudTrail userIdentity element" (sessionContext,
sessionIssuer, creationDate) and "Logging IAM and AWS STS API calls with AWS CloudTrail"
(AssumeRole and GetFederationToken responses); IAM API reference (CreateAccessKey,
CreateLoginProfile); STS API reference (DurationSeconds bounds).

Following runs to a fixpoint: a session opened by a key that a session created is followed too.
Only calls that succeeded and that AWS did not make on its own teach anything (a denied
CreateAccessKey created nothing; AWS quarantining a key is not the attacker).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ...ports.cloudtrail import TrailEvent
from ...ports.security import DENY_ALL, QUARANTINE, QUARANTINE_ARN  # noqa: F401 - re-exported for the response

# The longest a session can last (STS API reference: GetSessionToken and GetFederationToken up to
# 129,600 s; AssumeRole up to the role's maximum, at most 43,200 s), when the call does not say.
MAX_SESSION = dt.timedelta(seconds=129_600)
# How far a session's creationDate may be from the call that opened it (both are second-granular).
CREATION_SLACK = dt.timedelta(seconds=90)
KEY_ID = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{12,124}$")
OPENS_SESSION = {"AssumeRole", "GetSessionToken", "GetFederationToken"}


@dataclass(frozen=True)
class Holder:
    """Who holds an identity: the compromised spec user it leads back to, and how it was reached."""

    root: str          # the spec user whose credentials lead to it
    via: str           # "key AKIA...", "console", "session <arn> (AssumeRole by key AKIA... at T)", ...


@dataclass
class Session:
    """A session a held identity opened (AssumeRole, GetSessionToken, GetFederationToken)."""

    how: str
    opened_at: dt.datetime
    holder: Holder
    event_id: str | None
    arn: str | None = None             # assumed-role or federated-user ARN
    principal_id: str | None = None
    key_id: str | None = None          # the temporary key id, unless the response redacted it
    name: str | None = None            # role session name / federated user name
    role: str | None = None            # the role's ARN (AssumeRole)
    lasts: dt.timedelta = MAX_SESSION

    def label(self) -> str:
        who = self.arn or (f"key {self.key_id}" if self.key_id else self.how)
        return f"session {who} ({self.how} at {self.opened_at:%Y-%m-%dT%H:%M:%SZ} by {self.holder.via})"

    def covers(self, e: TrailEvent) -> bool:
        """``e`` is a call of this session: its ARN (or principal id) in the session's lifetime,
        and, when the record says when its session was created, created by this call."""
        if e.time is None or not (self.opened_at - CREATION_SLACK <= e.time <= self.opened_at + self.lasts):
            return False
        same = (self.arn and e.principal == self.arn) or (self.principal_id and e.principal_id == self.principal_id)
        if not same:
            return False
        return e.session_created is None or abs(e.session_created - self.opened_at) <= CREATION_SLACK


@dataclass
class Change:
    """A credential or principal the compromise created or changed (a persistence finding)."""

    what: str                          # the API: CreateUser, CreateAccessKey, AttachUserPolicy, ...
    principal_type: str                # user | role | group
    principal: str                     # its name
    event: TrailEvent
    holder: Holder
    key_id: str | None = None          # CreateAccessKey: the new key (None when the response hides it)
    policy_arn: str | None = None      # Attach*Policy
    policy_name: str | None = None     # Put*Policy (inline)


@dataclass
class OpenedRule:
    """An inbound rule an ``AuthorizeSecurityGroupIngress``/``ModifySecurityGroupRules`` call
    added or set (EC2 API reference, IpPermission and SecurityGroupRuleRequest)."""

    group_id: str | None
    rule_id: str | None
    protocol: str                      # tcp, udp, icmp, icmpv6, -1
    from_port: int | None
    to_port: int | None
    cidr: str                          # as written
    event: TrailEvent
    holder: Holder


@dataclass(frozen=True)
class FollowUp:
    """A CloudTrail lookup that may find more of the compromise (CloudTrail API reference,
    LookupAttribute: AccessKeyId, Username, ResourceName)."""

    attribute: str
    value: str


@dataclass
class Compromise:
    """The records of the compromise (each with its holder), and what it opened, made and changed."""

    attributed: list[tuple[TrailEvent, Holder]] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    opened_rules: list[OpenedRule] = field(default_factory=list)
    quarantines: list[TrailEvent] = field(default_factory=list)    # AWS quarantining a compromised user
    keys: dict[str, Holder] = field(default_factory=dict)          # every key id held (spec, made, sessions)
    users: dict[str, tuple[Holder, dt.datetime | None]] = field(default_factory=dict)  # user -> since when
    roles: dict[str, tuple[Holder, dt.datetime | None]] = field(default_factory=dict)  # role name -> since when
    spec_keys: set[str] = field(default_factory=set)
    spec_users: set[str] = field(default_factory=set)

    def follow_ups(self) -> list[FollowUp]:
        """Lookups for what the spec did not name: keys made or opened, session and user names,
        roles the compromise made or backdoored (their AssumeRole records)."""
        out = [FollowUp("AccessKeyId", k) for k in self.keys if k not in self.spec_keys]
        out += [FollowUp("Username", s.name) for s in self.sessions if s.name]
        out += [FollowUp("Username", u) for u in self.users if u not in self.spec_users]
        out += [FollowUp("ResourceName", r) for r in self.roles]
        return list(dict.fromkeys(out))

    def of(self, root: str) -> list[tuple[TrailEvent, Holder]]:
        return [(e, h) for e, h in self.attributed if h.root == root]


def _name_of(arn: Any) -> str | None:
    """The last path part of an IAM ARN (``arn:aws:iam::1:role/path/Name`` -> ``Name``)."""
    return str(arn).rsplit("/", 1)[-1] if arn else None


def _key(value: Any) -> str | None:
    return value if isinstance(value, str) and KEY_ID.match(value) else None


def _g(d: Any, *path: str) -> Any:
    for p in path:
        d = d.get(p) if isinstance(d, dict) else None
    return d


def _seconds(value: Any) -> dt.timedelta:
    try:
        return dt.timedelta(seconds=min(int(value), MAX_SESSION.total_seconds()))
    except (TypeError, ValueError):
        return MAX_SESSION


class _Follower:
    def __init__(self, users: dict[str, list[str]]):
        self.c = Compromise(spec_users=set(users), spec_keys={k for keys in users.values() for k in keys})
        for user, keys in users.items():
            self.c.users[user] = (Holder(user, f"user {user}"), None)
            for k in keys:
                self.c.keys[k] = Holder(user, f"key {k}")
        self.user_arns: dict[str, Holder] = {}

    def holder(self, e: TrailEvent) -> Holder | None:
        c = self.c
        if e.access_key_id and e.access_key_id in c.keys:
            return c.keys[e.access_key_id]
        if e.user_name and e.user_name in c.users and e.identity_type in (None, "IAMUser"):
            held, since = c.users[e.user_name]
            if e.user_name in c.spec_users:
                return Holder(held.root, f"key {e.access_key_id}" if e.access_key_id else "console")
            if since is None or (e.time is not None and e.time >= since):
                return Holder(held.root, f"user {e.user_name} ({held.via})")
        for s in c.sessions:
            if s.covers(e):
                return Holder(s.holder.root, s.label())
        if e.session_issuer and e.session_issuer in self.user_arns:
            return self.user_arns[e.session_issuer]
        if e.event_name == "AssumeRole" and e.succeeded:
            role = _name_of(e.request.get("roleArn"))
            if role in c.roles:
                held, since = c.roles[role]
                if since is None or (e.time is not None and e.time >= since):
                    return Holder(held.root, f"role {role} ({held.via})")
        return None

    def learn(self, e: TrailEvent, h: Holder) -> None:
        """What a successful call of a held identity handed the holder."""
        c, req, resp = self.c, e.request, e.response
        at = f"{e.time:%Y-%m-%dT%H:%M:%SZ}" if e.time else "?"
        if e.user_name and e.principal and e.identity_type == "IAMUser":
            self.user_arns.setdefault(e.principal, h)
        name = e.event_name
        if name in OPENS_SESSION and e.time is not None:
            s = Session(how=name, opened_at=e.time, holder=h, event_id=e.event_id,
                        key_id=_key(_g(resp, "credentials", "accessKeyId")), lasts=_seconds(req.get("durationSeconds")))
            if name == "AssumeRole":
                s.arn, s.principal_id = _g(resp, "assumedRoleUser", "arn"), _g(resp, "assumedRoleUser", "assumedRoleId")
                s.name, s.role = req.get("roleSessionName"), req.get("roleArn")
            elif name == "GetFederationToken":
                s.arn, s.principal_id = _g(resp, "federatedUser", "arn"), _g(resp, "federatedUser", "federatedUserId")
                s.name = req.get("name")
            c.sessions.append(s)
            if s.key_id:
                c.keys.setdefault(s.key_id, Holder(h.root, s.label()))
            return
        target = req.get("userName") or e.user_name
        if name == "CreateAccessKey":
            key = _key(_g(resp, "accessKey", "accessKeyId"))
            user = _g(resp, "accessKey", "userName") or target
            if key:
                c.keys.setdefault(key, Holder(h.root, f"key {key} (created at {at} by {h.via})"))
            if user:
                c.changes.append(Change(name, "user", user, e, h, key_id=key))
        elif name in ("CreateLoginProfile", "UpdateLoginProfile") and target:
            c.users.setdefault(target, (Holder(h.root, f"password set at {at} by {h.via}"), e.time))
            c.changes.append(Change(name, "user", target, e, h))
        elif name == "CreateUser" and req.get("userName"):
            user = req["userName"]
            c.users.setdefault(user, (Holder(h.root, f"created at {at} by {h.via}"), e.time))
            if _g(resp, "user", "arn"):
                self.user_arns.setdefault(_g(resp, "user", "arn"), Holder(h.root, f"user {user} (created by {h.via})"))
            c.changes.append(Change(name, "user", user, e, h))
        elif name in ("CreateRole", "UpdateAssumeRolePolicy") and req.get("roleName"):
            role = req["roleName"]
            c.roles.setdefault(role, (Holder(h.root, f"{'created' if name == 'CreateRole' else 'trust changed'} at "
                                                     f"{at} by {h.via}"), e.time))
            c.changes.append(Change(name, "role", role, e, h))
        elif name in ("AttachUserPolicy", "AttachRolePolicy", "AttachGroupPolicy", "PutUserPolicy", "PutRolePolicy",
                      "PutGroupPolicy"):
            kind = name.removeprefix("Attach").removeprefix("Put").removesuffix("Policy").lower()
            who = req.get(f"{kind}Name") or (e.user_name if kind == "user" else None)
            if who:
                c.changes.append(Change(name, kind, who, e, h, policy_arn=req.get("policyArn"),
                                        policy_name=req.get("policyName")))
        elif name in ("AuthorizeSecurityGroupIngress", "ModifySecurityGroupRules"):
            c.opened_rules += ingress_rules(e, h)


def is_quarantine(e: TrailEvent) -> bool:
    """AWS's own quarantine of a leaked key: its ``AWSCompromisedKeyQuarantine*`` managed policy
    attached, or the inline policy of that name put by AWS (IAM User Guide, "AWS managed policy:
    AWSCompromisedKeyQuarantineV3"; AWS puts it when it finds a key published)."""
    if not e.succeeded or e.event_source != "iam.amazonaws.com":
        return False
    if e.event_name == "AttachUserPolicy":
        return str(e.request.get("policyArn") or "").startswith(QUARANTINE_ARN)
    return e.event_name == "PutUserPolicy" and e.aws_acting and str(e.request.get("policyName") or "").startswith(
        QUARANTINE)


def follow(events: Iterable[TrailEvent], users: dict[str, list[str]], since: dt.datetime,
           now: dt.datetime) -> Compromise:
    """The compromise of ``users`` (user name -> its leaked key ids) in the records of [since, now].

    Records without a time are outside every window. Runs to a fixpoint (identities learned late
    in the list may own records earlier in it: records are second-granular and arrive unordered).
    """
    window = sorted((e for e in events if e.time is not None and since <= e.time <= now),
                    key=lambda e: e.time)  # type: ignore[arg-type, return-value]
    f = _Follower(users)
    held: dict[int, Holder] = {}
    grew = True
    while grew:
        grew = False
        for i, e in enumerate(window):
            if i in held:
                continue
            h = f.holder(e)
            if h is None:
                continue
            held[i], grew = h, True
            if e.succeeded and not e.aws_acting:
                f.learn(e, h)
    c = f.c
    c.attributed = [(window[i], held[i]) for i in sorted(held)]
    c.quarantines = [e for i, e in enumerate(window)
                     if is_quarantine(e) and (i in held or e.request.get("userName") in c.spec_users)]
    return c


# ---- ingress rules from EC2 records ---------------------------------------------------------------

_PROTOCOLS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "all": "-1", "-1": "-1"}


def _port(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _items(value: Any) -> list[Any]:
    """EC2's CloudTrail lists: ``{"items": [...]}``, a plain list, or one object."""
    if isinstance(value, dict):
        value = value.get("items", [value] if value else [])
    return value if isinstance(value, list) else []


def _protocol(value: Any) -> str:
    text = str(value if value is not None else "-1").lower()
    return _PROTOCOLS.get(text, text)


def ingress_rules(e: TrailEvent, h: Holder) -> list[OpenedRule]:
    """The inbound CIDR rules ``e`` added (AuthorizeSecurityGroupIngress: the response's
    ``securityGroupRuleSet`` with the rule ids when recorded, else the request's ``ipPermissions``
    or its flat ``cidrIp`` form) or set (ModifySecurityGroupRules). Egress and rules naming other
    groups or prefix lists are left out: they do not open anything to an address range."""
    out: list[OpenedRule] = []
    req, resp = e.request, e.response
    if e.event_name == "ModifySecurityGroupRules":
        body = _g(req, "ModifySecurityGroupRulesRequest") or {}
        group = body.get("GroupId")
        for item in _items(body.get("SecurityGroupRule")):
            rule = _g(item, "SecurityGroupRule") or {}
            for cidr in (rule.get("CidrIpv4"), rule.get("CidrIpv6")):
                if cidr:
                    out.append(OpenedRule(group, item.get("SecurityGroupRuleId"), _protocol(rule.get("IpProtocol")),
                                          _port(rule.get("FromPort")), _port(rule.get("ToPort")), cidr, e, h))
        return out
    group = req.get("groupId")
    recorded = [r for r in _items(_g(resp, "securityGroupRuleSet")) if isinstance(r, dict) and not r.get("isEgress")]
    for r in recorded:
        cidr = r.get("cidrIpv4") or r.get("cidrIpv6")
        if cidr:
            out.append(OpenedRule(r.get("groupId") or group, r.get("securityGroupRuleId"), _protocol(r.get("ipProtocol")),
                                  _port(r.get("fromPort")), _port(r.get("toPort")), cidr, e, h))
    if recorded:
        return out
    for p in _items(req.get("ipPermissions")):
        if not isinstance(p, dict):
            continue
        proto, lo, hi = _protocol(p.get("ipProtocol")), _port(p.get("fromPort")), _port(p.get("toPort"))
        cidrs = [r.get("cidrIp") for r in _items(p.get("ipRanges")) if isinstance(r, dict)]
        cidrs += [r.get("cidrIpv6") for r in _items(p.get("ipv6Ranges")) if isinstance(r, dict)]
        out += [OpenedRule(group, None, proto, lo, hi, c, e, h) for c in cidrs if c]
    for flat in ("cidrIp", "cidrIpv6"):
        if req.get(flat):
            out.append(OpenedRule(group, None, _protocol(req.get("ipProtocol")), _port(req.get("fromPort")),
                                  _port(req.get("toPort")), req[flat], e, h))
    return out
