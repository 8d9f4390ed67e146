"""The security runbook's investigation and classification, from facts to findings (pure).

Source: the runbook, "Security Incident Response": "Incident Classification" (critical: data
breach, unauthorized access to production; high: security control bypass, privilege
escalation; medium: configuration drift, policy violations; low: scan findings,
documentation) and "Investigation (15-60 minutes)" (CloudTrail records of the last 24 hours,
API Gateway access logs without 127.0.0.1).

The adapters fill :class:`SecurityFacts` (``aws.reader`` for CloudTrail and the access log,
``aws.ec2`` for security groups); this module reads no AWS and imports no boto3. The
declared severity is what the reporter saw; :func:`classify` may raise it on evidence, never
lower it.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from pydantic import Field

from ..api.common import Model
from ..api.incident import FindingSeverity, RootCause, RootCauseCategory as Cat, Severity
from ..api.security import SecurityTargets, parse_cidr, parse_cidr_loose
from ..environments import is_production
from ..errors import ACCESS_DENIED
from .diagnose import Diagnosis
from .facts import LogLine, TrailEvent

TOP = 5                 # entries of each "top" list in a finding's evidence
SAMPLE_LINES = 10       # access-log lines quoted in a finding
LOOPBACK = "127.0.0.1"     # the runbook's access-log filter: ip != "127.0.0.1"

# Remote administration and data-store ports that must not be open to the world: CIS AWS
# Foundations Benchmark 5.2/5.3 (22, 3389) and AWS Security Hub control EC2.19 (high-risk ports).
ADMIN_PORTS = {20: "FTP data", 21: "FTP", 22: "SSH", 23: "Telnet", 445: "SMB", 1433: "SQL Server", 3306: "MySQL",
               3389: "RDP", 5432: "PostgreSQL", 5985: "WinRM", 5986: "WinRM over HTTPS", 6379: "Redis",
               9200: "Elasticsearch", 27017: "MongoDB"}
# Successful calls that grant a principal more than it had (GuardDuty finding family
# PrivilegeEscalation; Rhino Security Labs' IAM privilege escalation methods).
PRIVILEGE_ESCALATION = {
    "iam:AttachUserPolicy", "iam:AttachGroupPolicy", "iam:AttachRolePolicy", "iam:PutUserPolicy", "iam:PutGroupPolicy",
    "iam:PutRolePolicy", "iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:AddUserToGroup",
    "iam:CreateAccessKey", "iam:CreateLoginProfile", "iam:UpdateLoginProfile", "iam:CreateUser", "iam:CreateRole",
    "iam:UpdateAssumeRolePolicy", "iam:PassRole", "sts:AssumeRole"}
# Successful calls that switch off a security control (GuardDuty Stealth / DefenseEvasion findings).
CONTROL_BYPASS = {
    "cloudtrail:StopLogging", "cloudtrail:DeleteTrail", "cloudtrail:UpdateTrail", "cloudtrail:PutEventSelectors",
    "guardduty:DeleteDetector", "guardduty:UpdateDetector", "securityhub:DisableSecurityHub",
    "config:StopConfigurationRecorder", "config:DeleteConfigurationRecorder", "ec2:DeleteFlowLogs",
    "wafv2:DeleteWebACL", "wafv2:DisassociateWebACL", "logs:DeleteLogGroup", "s3:PutBucketPolicy",
    "s3:DeletePublicAccessBlock", "kms:ScheduleKeyDeletion", "kms:DisableKey"}
_ORDER = [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


# ---- facts the adapters fill ------------------------------------------------------------------

class IngressRule(Model):
    """One inbound rule of a security group for one source CIDR, as EC2 DescribeSecurityGroups
    reports it (an IpPermission split per IpRanges/Ipv6Ranges entry)."""

    protocol: str = Field(description="tcp, udp, icmp, icmpv6 or -1 (all traffic).")
    from_port: int | None = None
    to_port: int | None = None
    cidr: str
    description: str | None = None

    def matches(self, protocol: str, from_port: int | None, to_port: int | None, cidr: str) -> bool:
        """Exactly this rule: same protocol, same ports (ignored for -1) and the same block."""
        return (self.protocol == protocol and (protocol == "-1" or (self.from_port, self.to_port) == (from_port, to_port))
                and parse_cidr_loose(self.cidr) == parse_cidr_loose(cidr))

    def opens(self, port: int) -> bool:
        """True when the rule lets TCP ``port`` in."""
        if self.protocol == "-1":
            return True
        return self.protocol == "tcp" and (self.from_port or 0) <= port <= (self.to_port if self.to_port is not None
                                                                             else 65535)

    @property
    def world(self) -> bool:
        return parse_cidr_loose(self.cidr).prefixlen == 0

    def label(self) -> str:
        """e.g. ``tcp/22 from 0.0.0.0/0``, ``tcp/8000-8080 from ::/0``, ``all traffic from 10.0.0.0/8``."""
        if self.protocol == "-1":
            return f"all traffic from {self.cidr}"
        ports = str(self.from_port) if self.from_port == self.to_port else f"{self.from_port}-{self.to_port}"
        return f"{self.protocol}/{ports} from {self.cidr}"


@dataclass
class SecurityGroupRules:
    """A security group and its inbound rules (DescribeSecurityGroups)."""

    group_id: str
    name: str | None = None
    vpc_id: str | None = None
    ingress: list[IngressRule] = field(default_factory=list)


@dataclass
class SecurityFacts:
    """What the investigation read; a source that could not be read is a ReadProblem elsewhere."""

    trail_events: list[TrailEvent] = field(default_factory=list)   # any principal; matched here
    trail_sources: list[str] = field(default_factory=list)         # "logs:<group>", "cloudtrail:LookupEvents"
    trail_limit_reached: bool = False                              # the reads stopped at their bound
    access_lines: list[LogLine] = field(default_factory=list)
    access_group: str | None = None
    security_groups: list[SecurityGroupRules] = field(default_factory=list)


# ---- what to read -----------------------------------------------------------------------------

def window_start(targets: SecurityTargets, now: dt.datetime) -> dt.datetime:
    """Start of the investigation window: ``lookbackHours`` (default 24) before ``now``."""
    return now - dt.timedelta(hours=targets.lookback_hours)


def trail_terms(targets: SecurityTargets) -> list[str]:
    """Terms for the CloudTrail log group's filter: every access key id and user name."""
    return list(dict.fromkeys([k for u in targets.iam_users for k in u.access_key_ids] +
                              [u.user_name for u in targets.iam_users]))


def lookup_attributes(targets: SecurityTargets) -> list[tuple[str, str]]:
    """LookupEvents attributes (CloudTrail API reference, LookupAttribute): AccessKeyId per key,
    Username per user."""
    return ([("AccessKeyId", k) for u in targets.iam_users for k in u.access_key_ids] +
            [("Username", u.user_name) for u in targets.iam_users])


def access_log_pattern(cidrs: list[str]) -> str:
    """A CloudWatch Logs "any term" pattern of the suspicious single addresses, or "" (read all
    lines and match here) when a wider block is among them: a term cannot express a range."""
    nets = [parse_cidr(c) for c in cidrs]
    if not nets or any(n.num_addresses != 1 for n in nets):
        return ""
    return " ".join(f'?"{n.network_address}"' for n in nets)


# ---- CloudTrail: who called what, from where --------------------------------------------------

def _api(event: TrailEvent) -> str:
    return f"{event.event_source.split('.')[0]}:{event.event_name}" if event.event_source else event.event_name


def _denied(event: TrailEvent) -> bool:
    # EC2 records say Client.UnauthorizedOperation.
    return (event.error_code or "").removeprefix("Client.") in ACCESS_DENIED


def _address(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The record's source as an address; None for an AWS service ("lambda.amazonaws.com", "AWS Internal")."""
    try:
        return ipaddress.ip_address(value or "")
    except ValueError:
        return None


@dataclass
class Addresses:
    """Which source addresses are suspicious (spec sourceIps) or unknown (outside knownCidrs)."""

    suspicious: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)

    def suspicious_match(self, ip: str | None) -> bool:
        addr = _address(ip)
        return addr is not None and any(addr in parse_cidr_loose(c) for c in self.suspicious)

    def unknown(self, ip: str | None) -> bool:
        """Suspicious, or outside knownCidrs when any are given (AWS services are never unknown)."""
        addr = _address(ip)
        if addr is None:
            return False
        if self.suspicious_match(ip):
            return True
        return bool(self.known) and not any(addr in parse_cidr_loose(c) for c in self.known)


@dataclass
class Usage:
    """One compromised user's CloudTrail records in the window: counts, top lists, first/last use."""

    user_name: str
    access_key_ids: list[str]
    calls: int = 0
    denied: int = 0
    failed: int = 0                                             # other errors
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    apis: Counter = field(default_factory=Counter)
    denied_apis: Counter = field(default_factory=Counter)
    source_ips: Counter = field(default_factory=Counter)
    user_agents: Counter = field(default_factory=Counter)
    keys: Counter = field(default_factory=Counter)              # access key id ("console" without one)
    unknown_success: Counter = field(default_factory=Counter)   # successful calls per unknown address
    unknown_apis: Counter = field(default_factory=Counter)      # what those calls were
    escalations: Counter = field(default_factory=Counter)       # successful PRIVILEGE_ESCALATION calls
    bypasses: Counter = field(default_factory=Counter)          # successful CONTROL_BYPASS calls


def usage(events: Iterable[TrailEvent], targets: SecurityTargets, since: dt.datetime, now: dt.datetime) -> list[Usage]:
    """Per IAM user of ``targets``: its records in [since, now] (by userName, or by one of its
    access key ids), counted. Records without a time are outside every window."""
    addresses = Addresses(targets.source_ips, targets.known_cidrs)
    out = []
    for user in targets.iam_users:
        u = Usage(user.user_name, list(user.access_key_ids))
        for e in events:
            mine = e.user_name == user.user_name or (e.access_key_id and e.access_key_id in user.access_key_ids)
            if not mine or e.time is None or not since <= e.time <= now:
                continue
            api = _api(e)
            u.calls += 1
            u.apis[api] += 1
            u.source_ips[e.source_ip or "unknown"] += 1
            u.user_agents[e.user_agent or "unknown"] += 1
            u.keys[e.access_key_id or "console"] += 1
            u.first = min(u.first, e.time) if u.first else e.time
            u.last = max(u.last, e.time) if u.last else e.time
            if _denied(e):
                u.denied += 1
                u.denied_apis[f"{api} ({e.error_code})"] += 1
            elif e.error_code:
                u.failed += 1
            else:
                if addresses.unknown(e.source_ip):
                    u.unknown_success[e.source_ip] += 1
                    u.unknown_apis[api] += 1
                if api in PRIVILEGE_ESCALATION:
                    u.escalations[api] += 1
                if api in CONTROL_BYPASS:
                    u.bypasses[api] += 1
        out.append(u)
    return out


def top(counts: Counter, n: int = TOP) -> str:
    """``a ×3, b ×1 (+2 more)``: the ``n`` most frequent entries and how many are left out."""
    items = counts.most_common()
    text = ", ".join(f"{k} ×{v}" for k, v in items[:n])
    return text + (f" (+{len(items) - n} more)" if len(items) > n else "") if items else "none"


# ---- API Gateway access logs ------------------------------------------------------------------

_CLF_STATUS = re.compile(r'"\s+(\d{3})\s')
_JSON_IP_KEYS = ("ip", "sourceIp", "sourceIP", "clientIp", "client_ip")


@dataclass
class AccessRequest:
    """One access-log line: who (source address), what (the line) and the HTTP status if known."""

    ip: str
    status: int | None
    line: LogLine


def parse_access_line(line: LogLine) -> AccessRequest | None:
    """The source address and status of an access-log line, or None when it names no address.

    Accepts the JSON formats of the API Gateway console (``ip``/``sourceIp``, ``status``,
    or ``identity.sourceIp``) and the space-delimited ones (Common Log Format, or the
    runbook's ``timestamp request_id ip ...``): the first of the first three fields that is
    an address.
    """
    text = line.message.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        if not isinstance(doc, dict):
            return None
        identity = doc.get("identity") if isinstance(doc.get("identity"), dict) else {}
        ip = next((str(doc[k]) for k in _JSON_IP_KEYS if doc.get(k)), None) or identity.get("sourceIp")
        status = doc.get("status")
        if _address(ip) is None:
            return None
        return AccessRequest(ip, int(status) if str(status or "").isdigit() else None, line)
    for token in text.split()[:3]:
        if _address(token) is not None:
            m = _CLF_STATUS.search(text)
            return AccessRequest(token, int(m.group(1)) if m else None, line)
    return None


@dataclass
class AccessHits:
    """Requests from suspicious addresses in an access log."""

    lines_read: int = 0
    loopback_skipped: int = 0
    by_ip: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)
    sample: list[AccessRequest] = field(default_factory=list)   # the first SAMPLE_LINES

    @property
    def requests(self) -> int:
        return sum(self.by_ip.values())


def access_log_hits(lines: Iterable[LogLine], cidrs: list[str]) -> AccessHits:
    """Lines whose source address is in one of ``cidrs``; 127.0.0.1 is left out as the runbook's
    filter does (``ip != "127.0.0.1"``: the API's own health checks)."""
    hits = AccessHits()
    addresses = Addresses(suspicious=cidrs)
    for line in lines:
        hits.lines_read += 1
        req = parse_access_line(line)
        if req is None:
            continue
        if req.ip == LOOPBACK:
            hits.loopback_skipped += 1
            continue
        if not addresses.suspicious_match(req.ip):
            continue
        hits.by_ip[req.ip] += 1
        hits.by_status[str(req.status) if req.status else "unknown"] += 1
        if len(hits.sample) < SAMPLE_LINES:
            hits.sample.append(req)
    return hits


# ---- security groups --------------------------------------------------------------------------

@dataclass
class OpenAdminRule:
    """A world-open inbound rule of a group that lets in one or more :data:`ADMIN_PORTS`."""

    group: SecurityGroupRules
    rule: IngressRule
    ports: list[int]

    def label(self) -> str:
        names = ", ".join(f"{ADMIN_PORTS[p]} ({p})" for p in self.ports[:TOP])
        more = f" and {len(self.ports) - TOP} more admin ports" if len(self.ports) > TOP else ""
        return f"{self.rule.label()} lets in {names}{more}"


def world_open_admin_rules(groups: Iterable[SecurityGroupRules]) -> list[OpenAdminRule]:
    """Every rule open to 0.0.0.0/0 or ::/0 that lets in an admin port, per group, in order."""
    found = []
    for g in groups:
        for rule in g.ingress:
            ports = [p for p in sorted(ADMIN_PORTS) if rule.world and rule.opens(p)]
            if ports:
                found.append(OpenAdminRule(g, rule, ports))
    return found


# ---- classification ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Evidence:
    """A severity the evidence supports and why (one line for status and the timeline)."""

    severity: Severity
    reason: str


@dataclass
class Classification:
    declared: Severity
    severity: Severity
    evidence: list[Evidence]              # all of it, most severe first

    @property
    def raised(self) -> bool:
        return _ORDER.index(self.severity) > _ORDER.index(self.declared)

    @property
    def reason(self) -> str:
        """Why the severity is what it is: the evidence that raised it, or that it was kept."""
        if not self.raised:
            return f"severity {self.declared.value} as declared"
        why = "; ".join(e.reason for e in self.evidence if e.severity == self.severity)
        return f"severity raised from {self.declared.value} to {self.severity.value}: {why}"


def evidence(environment: str, usages: list[Usage], open_rules: list[OpenAdminRule]) -> list[Evidence]:
    """The runbook's classification applied to what the investigation found.

    * critical: a compromised user's call succeeded in production from an unknown address
      (suspicious, or outside knownCidrs): unauthorized access to production;
    * high: it succeeded outside production, or a successful privilege escalation or
      security-control bypass call (PRIVILEGE_ESCALATION, CONTROL_BYPASS);
    * medium: calls denied (policy violation) or a world-open admin port (configuration drift).
    """
    out: list[Evidence] = []
    production = is_production(environment)
    for u in usages:
        if u.unknown_success:
            ip, n = u.unknown_success.most_common(1)[0]
            what = (f"{u.user_name}'s credentials were used successfully from unknown address {ip} "
                    f"({n} calls, e.g. {u.unknown_apis.most_common(1)[0][0]})")
            out.append(Evidence(Severity.CRITICAL, f"{what} in production") if production else
                       Evidence(Severity.HIGH, f"{what} outside production"))
        if u.escalations:
            out.append(Evidence(Severity.HIGH, f"privilege escalation by {u.user_name}: {top(u.escalations, 3)}"))
        if u.bypasses:
            out.append(Evidence(Severity.HIGH, f"security control bypass by {u.user_name}: {top(u.bypasses, 3)}"))
        if u.denied:
            out.append(Evidence(Severity.MEDIUM, f"policy violation: {u.denied} calls by {u.user_name} denied, "
                                                 f"e.g. {u.denied_apis.most_common(1)[0][0]}"))
    for o in open_rules:
        out.append(Evidence(Severity.MEDIUM, f"configuration drift: {o.group.group_id} {o.label()}"))
    return sorted(out, key=lambda e: -_ORDER.index(e.severity))


def classify(declared: Severity, found: list[Evidence]) -> Classification:
    """The incident's severity: the declared one, raised to the most severe evidence, never lowered."""
    severity = max([declared] + [e.severity for e in found], key=_ORDER.index)
    return Classification(declared, severity, found)


# ---- findings ---------------------------------------------------------------------------------

def _when(t: dt.datetime | None) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else "?"


def _usage_finding(d: Diagnosis, u: Usage, source: str, hours: int, limited: bool) -> None:
    who = f"IAM user {u.user_name}" + (f" (keys {', '.join(u.access_key_ids)})" if u.access_key_ids else "")
    if not u.calls:
        d.add(f"trail:{u.user_name}", "CloudTrail", f"user/{u.user_name}", FindingSeverity.INFO,
              f"no CloudTrail records of {who} in the last {hours} h ({source})")
        return
    at_least = "at least " if limited else ""
    observed = (f"{who}: {at_least}{u.calls} calls from {len(u.source_ips)} addresses between {_when(u.first)} "
                f"and {_when(u.last)}; {u.denied} denied, {u.failed} failed otherwise")
    if u.unknown_success:
        observed += f"; succeeded from unknown addresses {', '.join(u.unknown_success)}"
    lines = [f"APIs: {top(u.apis)}", f"source IPs: {top(u.source_ips)}", f"user agents: {top(u.user_agents)}",
             f"by key: {top(u.keys)}", f"denied: {top(u.denied_apis)}"]
    if u.escalations or u.bypasses:
        lines.append(f"privilege escalation: {top(u.escalations)}; control bypass: {top(u.bypasses)}")
    severity = (FindingSeverity.ERROR if u.unknown_success or u.escalations or u.bypasses else
                FindingSeverity.WARNING)
    d.add(f"trail:{u.user_name}", "CloudTrail", f"user/{u.user_name}", severity, observed,
          evidence="\n".join(lines), time=u.first)


def _access_finding(d: Diagnosis, group: str, hits: AccessHits, cidrs: list[str]) -> None:
    if not hits.requests:
        d.add("access-log", "APIGateway", group, FindingSeverity.INFO,
              f"no requests from {', '.join(cidrs)} among {hits.lines_read} access-log lines "
              f"({hits.loopback_skipped} from 127.0.0.1 left out)")
        return
    d.add("access-log", "APIGateway", group, FindingSeverity.WARNING,
          f"{hits.requests} requests from suspicious addresses: {top(hits.by_ip)}; statuses {top(hits.by_status)}",
          evidence="\n".join(r.line.message for r in hits.sample), time=hits.sample[0].line.time)


def _group_findings(d: Diagnosis, open_rules: list[OpenAdminRule], named: set[str]) -> None:
    by_group: dict[str, list[OpenAdminRule]] = {}
    for o in open_rules:
        by_group.setdefault(o.group.group_id, []).append(o)
    for gid, rules in by_group.items():
        group = rules[0].group
        name = f" ({group.name})" if group.name else ""
        note = "named in spec.targets.security.securityGroups" if gid in named else \
            "not named in the spec: a finding only, nothing is revoked"
        d.add(f"sg:{gid}", "EC2", f"security-group/{gid}", FindingSeverity.WARNING,
              f"{gid}{name} is open to the world on admin ports ({note})",
              evidence="\n".join(o.label() for o in rules))


@dataclass
class Investigation:
    findings: Diagnosis
    usages: list[Usage]
    access: AccessHits | None
    open_rules: list[OpenAdminRule]
    classification: Classification


def investigate(targets: SecurityTargets, environment: str, declared: Severity, facts: SecurityFacts,
                now: dt.datetime, d: Diagnosis | None = None) -> Investigation:
    """Findings and classification of a security incident from ``facts`` read over the window.

    Findings are appended to ``d`` (a new :class:`Diagnosis` when None), so their ids continue
    after the assessment's: one per IAM user (its CloudTrail use), one for the access log,
    one per security group open to the world on admin ports.
    """
    d = d if d is not None else Diagnosis()
    since = window_start(targets, now)
    usages = usage(facts.trail_events, targets, since, now)
    source = " and ".join(facts.trail_sources) or "no CloudTrail source could be read"
    for u in usages:
        _usage_finding(d, u, source, targets.lookback_hours, facts.trail_limit_reached)
    access = None
    if facts.access_group is not None and targets.source_ips:
        access = access_log_hits([line for line in facts.access_lines if line.time is None or line.time >= since],
                                 targets.source_ips)
        _access_finding(d, facts.access_group, access, targets.source_ips)
    open_rules = world_open_admin_rules(facts.security_groups)
    _group_findings(d, open_rules, {g.group_id for g in targets.security_groups})
    return Investigation(d, usages, access, open_rules, classify(declared, evidence(environment, usages, open_rules)))


def root_cause(inv: Investigation, targets: SecurityTargets, now: dt.datetime) -> RootCause:
    """The security incident's root cause, citing its findings.

    * CompromisedCredentials: a compromised user's credentials were used from an unknown address
      (suspicious, or outside knownCidrs), whether the calls succeeded or were denied: someone
      else holds them;
    * ExposedAdminPort: otherwise, a group is open to the world on an admin port;
    * Unknown: no such evidence in the window (containment still applies to what the spec names).
    """
    addresses = Addresses(targets.source_ips, targets.known_cidrs)
    ref = inv.findings.refs.get
    used = [(u, [ip for ip in u.source_ips if addresses.unknown(ip)]) for u in inv.usages]
    used = [(u, ips) for u, ips in used if ips]
    if used:
        parts = []
        for u, ips in used:
            calls = sum(u.source_ips[ip] for ip in ips)
            succeeded = sum(u.unknown_success.values())
            parts.append(f"IAM user {u.user_name}'s credentials were used from unknown addresses {', '.join(ips)}: "
                         f"{calls} calls, {succeeded} succeeded (e.g. {top(u.unknown_apis or u.denied_apis, 2)})")
        evidence = [ref(f"trail:{u.user_name}") for u, _ in used] + [ref("access-log")]
        return RootCause(category=Cat.COMPROMISED_CREDENTIALS, summary="; ".join(parts),
                         evidence=[e for e in evidence if e][:10], identified_at=now)
    if inv.open_rules:
        first = inv.open_rules[0]
        more = f" (+{len(inv.open_rules) - 1} more rules)" if len(inv.open_rules) > 1 else ""
        return RootCause(category=Cat.EXPOSED_ADMIN_PORT,
                         summary=f"{first.group.group_id} is open to the world: {first.label()}{more}",
                         evidence=[e for e in dict.fromkeys(ref(f"sg:{o.group.group_id}") for o in inv.open_rules)
                                   if e][:10], identified_at=now)
    what = ", ".join(u.user_name for u in inv.usages) or "the named users"
    return RootCause(category=Cat.UNKNOWN, identified_at=now,
                     summary=f"no use of {what}'s credentials from unknown addresses and no world-open admin port in "
                             f"the last {targets.lookback_hours} h; the containment steps still apply to what the "
                             f"spec names")
