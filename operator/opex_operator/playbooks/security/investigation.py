"""The security runbook's investigation and classification, from facts to findings (pure).

Source: the runbook, "Security Incident Response": "Incident Classification" (critical: data
breach, unauthorized access to production; high: security control bypass, privilege
escalation; medium: configuration drift, policy violations; low: scan findings,
documentation) and "Investigation (15-60 minutes)" (CloudTrail records of the last 24 hours,
API Gateway access logs without 127.0.0.1).

The adapters fill :class:`SecurityFacts` (``aws.reader`` for CloudTrail and the access log,
``aws.ec2`` for security groups); this module reads no AWS and imports no boto3. Each record is
read by what it means (``ports.cloudtrail``: a failed console sign-in is an attempt, not a
use; AWS acting on its own is not the attacker) and what the credentials did with themselves is
followed (``playbooks.security.blast_radius``: sessions, credentials and principals made, ports opened).
The declared severity is what the reporter saw; :func:`classify` may raise it on evidence, never
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

from ...api.common import Model
from ...api.incident import FindingSeverity, RootCause, RootCauseCategory as Cat, Severity
from ...api.security import SecurityTargets, parse_cidr, parse_cidr_loose
from ...environments import is_production
from ...ports.security import IngressRule, SecurityGroupRules
from .blast_radius import Change, Compromise, FollowUp, OpenedRule, follow
from ...ports.cloudtrail import AddressKind, SourceAddress, TrailEvent, source_address
from ..diagnose import Diagnosis
from ...ports.facts import LogLine

TOP = 5                 # entries of each "top" list in a finding's evidence
SAMPLE_LINES = 10       # access-log lines quoted in a finding
LOOPBACK = "127.0.0.1"     # the runbook's access-log filter: ip != "127.0.0.1"
# Failed console sign-ins from one address that make password guessing a finding of its own (CIS
# AWS Foundations Benchmark 4.6 alarms on failed console authentication; 5 is the threshold of
# Panther's and Datadog's brute-force rules). They never raise the severity: nobody got in.
BRUTE_FORCE = 5
# The investigation's CloudTrail reads: at most this many AWS calls (pages) in all, in at most
# FOLLOW_ROUNDS rounds of follow-ups (LookupEvents answers 2 calls a second per account and region).
TRAIL_CALLS = 20
FOLLOW_ROUNDS = 4
# The earliest record this close to the window's start (an hour, or a tenth of a shorter window)
# suggests the use began before it.
EDGE = dt.timedelta(hours=1)

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


# ---- facts the adapters fill (the security group types cross the EC2 port: ports.security) ------

@dataclass
class SecurityFacts:
    """What the investigation read; a source that could not be read is a ReadProblem elsewhere."""

    trail_events: list[TrailEvent] = field(default_factory=list)   # any principal; matched here
    trail_sources: list[str] = field(default_factory=list)         # "logs:<group>", "cloudtrail:LookupEvents"
    trail_limit_reached: bool = False                              # a read stopped at its record or page bound
    trail_skipped: Counter = field(default_factory=Counter)        # what the reads skipped (not records), by kind
    trail_calls: int = 0                                           # CloudTrail reads (AWS calls) made
    unread_follow_ups: list[FollowUp] = field(default_factory=list)  # lookups the call budget left out
    access_lines: list[LogLine] = field(default_factory=list)
    access_group: str | None = None
    security_groups: list[SecurityGroupRules] = field(default_factory=list)


# ---- what to read -----------------------------------------------------------------------------

def window_start(targets: SecurityTargets, now: dt.datetime) -> dt.datetime:
    """Start of the investigation window: ``lookbackHours`` (default 24) before ``now``."""
    return now - dt.timedelta(hours=targets.lookback_hours)


def leaked(targets: SecurityTargets) -> dict[str, list[str]]:
    """The compromised users and their leaked key ids, as ``blast_radius.follow`` takes them."""
    return {u.user_name: list(u.access_key_ids) for u in targets.iam_users}


def trail_terms(targets: SecurityTargets) -> list[str]:
    """Terms for the CloudTrail log group's filter: every access key id and user name."""
    return list(dict.fromkeys([k for u in targets.iam_users for k in u.access_key_ids] +
                              [u.user_name for u in targets.iam_users]))


def lookup_attributes(targets: SecurityTargets) -> list[tuple[str, str]]:
    """LookupEvents attributes (CloudTrail API reference, LookupAttribute): AccessKeyId per key,
    Username per user."""
    return ([("AccessKeyId", k) for u in targets.iam_users for k in u.access_key_ids] +
            [("Username", u.user_name) for u in targets.iam_users])


def follow_ups(events: Iterable[TrailEvent], targets: SecurityTargets, since: dt.datetime,
               now: dt.datetime) -> list[tuple[str, str]]:
    """The lookups (attribute, value) that may find more of the compromise in ``events``: the keys,
    sessions, users and roles it made or opened (``Compromise.follow_ups``)."""
    return [(f.attribute, f.value) for f in follow(events, leaked(targets), since, now).follow_ups()]


def opened_groups(events: Iterable[TrailEvent], targets: SecurityTargets, since: dt.datetime,
                  now: dt.datetime) -> list[str]:
    """The security groups in which ``events`` show the compromise opened an admin port to the world."""
    return list(dict.fromkeys(x.group_id for x in exposures(follow(events, leaked(targets), since, now).opened_rules)))


def access_log_pattern(cidrs: list[str]) -> str:
    """A CloudWatch Logs "any term" pattern of the suspicious single addresses, or "" (read all
    lines and match here) when a wider block is among them: a term cannot express a range."""
    nets = [parse_cidr(c) for c in cidrs]
    if not nets or any(n.num_addresses != 1 for n in nets):
        return ""
    return " ".join(f'?"{n.network_address}"' for n in nets)


# ---- CloudTrail: who called what, from where --------------------------------------------------

def _address(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An access-log line's source as an address (normalised as a CloudTrail source is), or None."""
    return source_address(value).network()


def _as_source(addr: SourceAddress | str | None) -> SourceAddress:
    return addr if isinstance(addr, SourceAddress) else source_address(addr)


@dataclass
class Addresses:
    """Which source addresses are suspicious (spec sourceIps) or unknown (outside knownCidrs)."""

    suspicious: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)

    def suspicious_match(self, ip: SourceAddress | str | None) -> bool:
        addr = _as_source(ip).network()
        return addr is not None and any(addr in parse_cidr_loose(c) for c in self.suspicious)

    def unknown(self, ip: SourceAddress | str | None) -> bool:
        """Suspicious, or outside knownCidrs when any are given. An AWS service or no address is
        never unknown; an address written in a form that does not parse is outside knownCidrs."""
        source = _as_source(ip)
        if source.kind in (AddressKind.SERVICE, AddressKind.ABSENT):
            return False
        if self.suspicious_match(source):
            return True
        addr = source.network()
        if addr is None:
            return bool(self.known)
        return bool(self.known) and not any(addr in parse_cidr_loose(c) for c in self.known)


@dataclass
class Usage:
    """One compromised user's CloudTrail records in the window (its keys, its console, and the
    sessions, keys and users the compromise reached from them): counts, top lists, first/last use."""

    user_name: str
    access_key_ids: list[str]
    calls: int = 0                                              # attempts by the holder (sign-in failures apart)
    denied: int = 0
    failed: int = 0                                             # other errors
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    apis: Counter = field(default_factory=Counter)
    denied_apis: Counter = field(default_factory=Counter)
    source_ips: Counter = field(default_factory=Counter)        # address labels (unparsed ones marked)
    user_agents: Counter = field(default_factory=Counter)
    keys: Counter = field(default_factory=Counter)              # access key id ("console" without one)
    via: Counter = field(default_factory=Counter)               # how each call was reached (key, session, ...)
    unknown_success: Counter = field(default_factory=Counter)   # successful calls per unknown address
    unknown_apis: Counter = field(default_factory=Counter)      # what those calls were
    escalations: Counter = field(default_factory=Counter)       # successful PRIVILEGE_ESCALATION calls
    bypasses: Counter = field(default_factory=Counter)          # successful CONTROL_BYPASS calls
    sign_in_failures: Counter = field(default_factory=Counter)  # failed console sign-ins per address
    sign_in_reasons: Counter = field(default_factory=Counter)
    aws_calls: Counter = field(default_factory=Counter)         # AWS acting on its own, per API (not the holder)
    unparsed: Counter = field(default_factory=Counter)          # addresses that do not parse, as written
    blockable: Counter = field(default_factory=Counter)         # unknown addresses not in sourceIps (as CIDRs)
    unknown_calls: Counter = field(default_factory=Counter)     # every call from an unknown address, per address
    sessions: int = 0                                           # sessions the compromise opened from this user


def usages(compromise: Compromise, targets: SecurityTargets) -> list[Usage]:
    """Per IAM user of ``targets``: the compromise's records that lead back to it, counted."""
    addresses = Addresses(targets.source_ips, targets.known_cidrs)
    out = []
    for user in targets.iam_users:
        u = Usage(user.user_name, list(user.access_key_ids))
        u.sessions = sum(1 for s in compromise.sessions if s.holder.root == user.user_name)
        for e, holder in compromise.of(user.user_name):
            if e.aws_acting:
                u.aws_calls[e.api] += 1
                continue
            addr = e.address
            if e.sign_in and e.failed:
                u.sign_in_failures[addr.label] += 1
                u.sign_in_reasons[e.failure or "Failure"] += 1
                continue
            _count(u, e, holder.via, addr, addresses)
        out.append(u)
    return out


def _count(u: Usage, e: TrailEvent, via: str, addr: SourceAddress, addresses: Addresses) -> None:
    api, label = e.api, addr.label
    u.calls += 1
    u.apis[api] += 1
    u.source_ips[label] += 1
    u.user_agents[e.user_agent or "unknown"] += 1
    u.keys[e.access_key_id or "console"] += 1
    u.via[via] += 1
    if e.time is not None:
        u.first = min(u.first, e.time) if u.first else e.time
        u.last = max(u.last, e.time) if u.last else e.time
    if addr.kind == AddressKind.UNPARSED:
        u.unparsed[addr.written] += 1
    unknown = addresses.unknown(addr)
    if unknown:
        u.unknown_calls[label] += 1
        if addr.kind == AddressKind.IP and not addresses.suspicious_match(addr):
            u.blockable[addr.cidr()] += 1
    if e.denied:
        u.denied += 1
        u.denied_apis[f"{api} ({e.error_code})"] += 1
    elif e.failed:
        u.failed += 1
    else:
        if unknown:
            u.unknown_success[label] += 1
            u.unknown_apis[api] += 1
        if api in PRIVILEGE_ESCALATION:
            u.escalations[api] += 1
        if api in CONTROL_BYPASS:
            u.bypasses[api] += 1


def usage(events: Iterable[TrailEvent], targets: SecurityTargets, since: dt.datetime, now: dt.datetime) -> list[Usage]:
    """Per IAM user of ``targets``: its records in [since, now] and those of what its credentials
    reached (``blast_radius.follow``), counted. Records without a time are outside every window."""
    return usages(follow(events, leaked(targets), since, now), targets)


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
        identity = doc.get("identity")
        ip = next((str(doc[k]) for k in _JSON_IP_KEYS if doc.get(k)), None) or (
            identity.get("sourceIp") if isinstance(identity, dict) else None)
        status = str(doc.get("status") or "")
        if ip is None or _address(ip) is None:
            return None
        return AccessRequest(str(ip), int(status) if status.isdigit() else None, line)
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


@dataclass
class Exposure:
    """A rule the compromise added that opens an admin port to a whole address space (a prefix
    of length 0, whatever address bits it was written with: ``208.236.235.254/0`` is 0.0.0.0/0)."""

    opened: OpenedRule
    cidr: str                 # the block it opens, normalised: 0.0.0.0/0 or ::/0
    ports: list[int]

    @property
    def group_id(self) -> str:
        return self.opened.group_id or ""

    def rule(self) -> IngressRule:
        o = self.opened
        if o.protocol == "-1":
            return IngressRule(protocol=o.protocol, cidr=self.cidr)
        return IngressRule(protocol=o.protocol, cidr=self.cidr, from_port=o.from_port, to_port=o.to_port)

    def label(self) -> str:
        names = ", ".join(f"{ADMIN_PORTS[p]} ({p})" for p in self.ports[:TOP])
        more = f" and {len(self.ports) - TOP} more admin ports" if len(self.ports) > TOP else ""
        written = f" (written {self.opened.cidr})" if self.opened.cidr != self.cidr else ""
        return f"{self.rule().label()}{written} lets in {names}{more}"


def exposures(opened: Iterable[OpenedRule]) -> list[Exposure]:
    """The rules among ``opened`` that open an admin port to the world, once each (group,
    protocol, ports, block)."""
    found: dict[tuple, Exposure] = {}
    for o in opened:
        try:
            net = ipaddress.ip_network(o.cidr.strip(), strict=False)
        except ValueError:
            continue
        if net.prefixlen != 0 or not o.group_id:
            continue
        exposure = Exposure(o, str(net), [])
        exposure.ports = [p for p in sorted(ADMIN_PORTS) if exposure.rule().opens(p)]
        key = (o.group_id, o.protocol, o.from_port, o.to_port, str(net))
        if exposure.ports and key not in found:
            found[key] = exposure
    return list(found.values())


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


def evidence(environment: str, usages: list[Usage], open_rules: list[OpenAdminRule],
             opened: Iterable[Exposure] = (), quarantines: Iterable[TrailEvent] = ()) -> list[Evidence]:
    """The runbook's classification applied to what the investigation found.

    * critical: a compromised user's call succeeded in production from an unknown address
      (suspicious, or outside knownCidrs): unauthorized access to production;
    * high: it succeeded outside production; a successful privilege escalation or
      security-control bypass call (PRIVILEGE_ESCALATION, CONTROL_BYPASS), an admin port opened
      to the world by the compromise (a control bypassed), or AWS quarantining the key (AWS
      confirmed it leaked);
    * medium: calls denied (policy violation) or a world-open admin port (configuration drift).

    Failed console sign-ins and AWS acting on its own are none of these: nobody got in, and AWS
    is not the attacker.
    """
    out: list[Evidence] = []
    for u in usages:
        if u.unknown_success:
            ip, n = u.unknown_success.most_common(1)[0]
            what = (f"{u.user_name}'s credentials were used successfully from unknown address {ip} "
                    f"({n} calls, e.g. {u.unknown_apis.most_common(1)[0][0]})")
            out.append(Evidence(Severity.CRITICAL, f"{what} in production") if is_production(environment) else
                       Evidence(Severity.HIGH, f"{what} outside production"))
        if u.escalations:
            out.append(Evidence(Severity.HIGH, f"privilege escalation by {u.user_name}: {top(u.escalations, 3)}"))
        if u.bypasses:
            out.append(Evidence(Severity.HIGH, f"security control bypass by {u.user_name}: {top(u.bypasses, 3)}"))
        if u.denied:
            out.append(Evidence(Severity.MEDIUM, f"policy violation: {u.denied} calls by {u.user_name} denied, "
                                                 f"e.g. {u.denied_apis.most_common(1)[0][0]}"))
    for q in quarantines:
        out.append(Evidence(Severity.HIGH, f"AWS quarantined IAM user {q.request.get('userName')} "
                                           f"({_policy(q)} at {_when(q.time)}): the key is confirmed leaked"))
    for x in opened:
        out.append(Evidence(Severity.HIGH, f"security control bypass: the compromised credentials opened "
                                           f"{x.group_id} {x.label()}"))
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


def _policy(e: TrailEvent) -> str:
    arn = e.request.get("policyArn")
    return str(arn).rsplit("/", 1)[-1] if arn else str(e.request.get("policyName") or "a policy")


def coverage(facts: SecurityFacts, compromise: Compromise, since: dt.datetime, hours: int) -> tuple[list[str], bool]:
    """How the reads fell short, if they did (the record bound, the call budget, the lookback: the
    earliest record of the compromise near the window's start; skipped input), and whether the
    counts are therefore lower bounds."""
    notes = []
    if facts.trail_limit_reached:
        notes.append("a read stopped at its record or page bound (counts are at least these)")
    if facts.unread_follow_ups:
        left = ", ".join(f"{f.attribute}={f.value}" for f in facts.unread_follow_ups[:3])
        more = f" (+{len(facts.unread_follow_ups) - 3} more)" if len(facts.unread_follow_ups) > 3 else ""
        notes.append(f"the CloudTrail call budget ({TRAIL_CALLS} reads, {facts.trail_calls} made) left "
                     f"{len(facts.unread_follow_ups)} follow-up lookups unread: {left}{more}")
    times = [e.time for e, _ in compromise.attributed if e.time]
    edge = min(EDGE, dt.timedelta(hours=hours) / 10)
    if times and min(times) - since < edge:
        notes.append(f"the earliest record ({_when(min(times))}) is within {edge.total_seconds() / 60:.0f} min of the "
                     f"{hours} h lookback's start: earlier use may be cut off (raise "
                     f"spec.targets.security.lookbackHours, at most 2160)")
    partial = bool(notes)
    skipped = sum(facts.trail_skipped.values())
    if skipped:
        notes.append(f"{skipped} objects read were not CloudTrail records and were skipped "
                     f"({top(facts.trail_skipped, 3)})")
    return notes, partial


def _usage_finding(d: Diagnosis, u: Usage, source: str, hours: int, cut: tuple[list[str], bool]) -> None:
    who = f"IAM user {u.user_name}" + (f" (keys {', '.join(u.access_key_ids)})" if u.access_key_ids else "")
    notes, partial = cut
    short = f"; cut short: {'; '.join(notes)}" if notes else ""
    attempts = sum(u.sign_in_failures.values())
    if not u.calls:
        extra = [f"{attempts} failed console sign-ins (see their finding)"] if attempts else []
        extra += [f"{sum(u.aws_calls.values())} records of AWS acting on its own"] if u.aws_calls else []
        observed = (f"no use of the credentials of {who} in the last {hours} h ({source}): only {', '.join(extra)}"
                    if extra else f"no CloudTrail records of {who} in the last {hours} h ({source})")
        d.add(f"trail:{u.user_name}", "CloudTrail", f"user/{u.user_name}", FindingSeverity.INFO, observed + short)
        return
    at_least = "at least " if partial else ""
    observed = (f"{who}: {at_least}{u.calls} calls from {len(u.source_ips)} addresses between {_when(u.first)} "
                f"and {_when(u.last)}; {u.denied} denied, {u.failed} failed otherwise")
    if u.sessions:
        observed += f"; {u.sessions} sessions opened and followed"
    if attempts:
        observed += f"; {attempts} failed console sign-ins apart"
    if u.aws_calls:
        observed += f"; {sum(u.aws_calls.values())} records of AWS acting on its own apart"
    if u.unknown_success:
        observed += f"; succeeded from unknown addresses {', '.join(u.unknown_success)}"
    lines = [f"APIs: {top(u.apis)}", f"source IPs: {top(u.source_ips)}", f"user agents: {top(u.user_agents)}",
             f"by key: {top(u.keys)}", f"denied: {top(u.denied_apis)}"]
    reached = Counter({v: n for v, n in u.via.items() if not v.startswith("key ") and v != "console"})
    if reached:
        lines.append(f"reached through: {top(reached, 3)}")
    if u.escalations or u.bypasses:
        lines.append(f"privilege escalation: {top(u.escalations)}; control bypass: {top(u.bypasses)}")
    if u.aws_calls:
        lines.append(f"AWS acting on its own (not counted, never blocked): {top(u.aws_calls, 3)}")
    if u.unparsed:
        lines.append(f"addresses that do not parse, kept as written (cannot be blocked): {top(u.unparsed, 3)}")
    if u.blockable:
        lines.append(f"to block, add to spec.targets.security.sourceIps: {', '.join(list(u.blockable)[:TOP])}")
    severity = (FindingSeverity.ERROR if u.unknown_success or u.escalations or u.bypasses else
                FindingSeverity.WARNING)
    d.add(f"trail:{u.user_name}", "CloudTrail", f"user/{u.user_name}", severity, observed + short,
          evidence="\n".join(lines), time=u.first)


def _sign_in_finding(d: Diagnosis, u: Usage) -> None:
    total = sum(u.sign_in_failures.values())
    if not total:
        return
    address, most = u.sign_in_failures.most_common(1)[0]
    guessing = most >= BRUTE_FORCE
    observed = (f"{total} failed console sign-ins as IAM user {u.user_name} ({top(u.sign_in_reasons, 2)}): "
                f"attempts, not use of the credentials")
    if guessing:
        observed += f"; {most} from {address} alone: password guessing"
    d.add(f"signin:{u.user_name}", "CloudTrail", f"user/{u.user_name}",
          FindingSeverity.WARNING if guessing else FindingSeverity.INFO, observed,
          evidence=f"by address: {top(u.sign_in_failures)}")


_CHANGE = {"CreateUser": "IAM user {p} created", "CreateAccessKey": "access key {key} created for IAM user {p}",
           "CreateLoginProfile": "console password created for IAM user {p}",
           "UpdateLoginProfile": "console password of IAM user {p} changed",
           "CreateRole": "IAM role {p} created", "UpdateAssumeRolePolicy": "trust policy of IAM role {p} changed"}


def describe_change(c: Change) -> str:
    """``access key AKIA... created for IAM user backdoor``, ``AdministratorAccess attached to user x``."""
    if c.what in _CHANGE:
        return _CHANGE[c.what].format(p=c.principal, key=c.key_id or "(its id not recorded)")
    if c.what.startswith("Attach"):
        return f"managed policy {c.policy_arn} attached to IAM {c.principal_type} {c.principal}"
    return f"inline policy {c.policy_name} put on IAM {c.principal_type} {c.principal}"


def _change_findings(d: Diagnosis, changes: list[Change]) -> None:
    for i, c in enumerate(changes, start=1):
        d.add(f"change:{i}", "CloudTrail", f"{c.principal_type}/{c.principal}", FindingSeverity.ERROR,
              f"{describe_change(c)} by {c.holder.via} at {_when(c.event.time)} from {c.event.address.label} "
              f"(event {c.event.event_id}): persistence of the compromise", time=c.event.time)


def _exposure_findings(d: Diagnosis, found: list[Exposure], groups: list[SecurityGroupRules]) -> None:
    current = {g.group_id: g for g in groups}
    for x in found:
        o = x.opened
        group = current.get(x.group_id)
        rule = x.rule()
        still = ("" if group is None else "; still open" if any(
            r.matches(rule.protocol, rule.from_port, rule.to_port, x.cidr) for r in group.ingress) else
            "; no longer in the group")
        d.add(f"exposure:{x.group_id}:{o.rule_id or x.cidr}", "EC2", f"security-group/{x.group_id}",
              FindingSeverity.ERROR, f"{x.group_id} opened to the world by {o.holder.via} at {_when(o.event.time)}: "
                                     f"{x.label()}" + (f" (rule {o.rule_id})" if o.rule_id else "") + still,
              time=o.event.time)


def _quarantine_findings(d: Diagnosis, quarantines: list[TrailEvent]) -> None:
    for q in quarantines:
        user = q.request.get("userName") or q.user_name or "?"
        d.add(f"quarantine:{user}", "CloudTrail", f"user/{user}", FindingSeverity.ERROR,
              f"AWS quarantined IAM user {user} ({_policy(q)} at {_when(q.time)}, event {q.event_id}): AWS found its "
              f"access key published; the key is confirmed leaked", time=q.time)


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
    compromise: Compromise = field(default_factory=Compromise)
    exposures: list[Exposure] = field(default_factory=list)


def investigate(targets: SecurityTargets, environment: str, declared: Severity, facts: SecurityFacts,
                now: dt.datetime, d: Diagnosis | None = None) -> Investigation:
    """Findings and classification of a security incident from ``facts`` read over the window.

    Findings are appended to ``d`` (a new :class:`Diagnosis` when None), so their ids continue
    after the assessment's: one per IAM user (its CloudTrail use, saying when the reads fell
    short), one per user with failed console sign-ins, one per AWS quarantine, one per credential
    or principal the compromise made or changed, one per admin port it opened to the world, one
    for the access log, one per security group open to the world on admin ports.
    """
    d = d if d is not None else Diagnosis()
    since = window_start(targets, now)
    compromise = follow(facts.trail_events, leaked(targets), since, now)
    found = usages(compromise, targets)
    opened = exposures(compromise.opened_rules)
    source = " and ".join(facts.trail_sources) or "no CloudTrail source could be read"
    cut = coverage(facts, compromise, since, targets.lookback_hours)
    for u in found:
        _usage_finding(d, u, source, targets.lookback_hours, cut)
        _sign_in_finding(d, u)
    _quarantine_findings(d, compromise.quarantines)
    _change_findings(d, compromise.changes)
    _exposure_findings(d, opened, facts.security_groups)
    access = None
    if facts.access_group is not None and targets.source_ips:
        access = access_log_hits([line for line in facts.access_lines if line.time is None or line.time >= since],
                                 targets.source_ips)
        _access_finding(d, facts.access_group, access, targets.source_ips)
    open_rules = world_open_admin_rules(facts.security_groups)
    _group_findings(d, open_rules, {g.group_id for g in targets.security_groups})
    classification = classify(declared, evidence(environment, found, open_rules, opened, compromise.quarantines))
    return Investigation(d, found, access, open_rules, classification, compromise, opened)


def root_cause(inv: Investigation, targets: SecurityTargets, now: dt.datetime) -> RootCause:
    """The security incident's root cause, citing its findings.

    * CompromisedCredentials: a compromised user's credentials were used from an unknown address
      (suspicious, or outside knownCidrs), whether the calls succeeded or were denied (someone
      else holds them), or the compromise made credentials or principals, opened a port, or AWS
      quarantined the key;
    * ExposedAdminPort: otherwise, a group is open to the world on an admin port;
    * Unknown: no such evidence in the window (failed sign-ins alone are attempts; containment
      still applies to what the spec names).
    """
    ref = inv.findings.refs.get
    c = inv.compromise
    used = [u for u in inv.usages if u.unknown_calls]
    if used or c.changes or c.quarantines or inv.exposures:
        parts = []
        for u in used:
            calls = sum(u.unknown_calls.values())
            succeeded = sum(u.unknown_success.values())
            parts.append(f"IAM user {u.user_name}'s credentials were used from unknown addresses "
                         f"{', '.join(list(u.unknown_calls)[:TOP])}: {calls} calls, {succeeded} succeeded "
                         f"(e.g. {top(u.unknown_apis or u.denied_apis, 2)})")
        if c.quarantines:
            parts.append(f"AWS quarantined {', '.join(dict.fromkeys(str(q.request.get('userName')) for q in c.quarantines))}"
                         f" (the key is confirmed leaked)")
        if c.changes:
            parts.append(f"they made or changed {len(c.changes)} credentials or principals "
                         f"({'; '.join(describe_change(x) for x in c.changes[:3])}"
                         f"{'; ...' if len(c.changes) > 3 else ''})")
        if inv.exposures:
            parts.append(f"they opened {len(inv.exposures)} admin ports to the world "
                         f"({'; '.join(f'{x.group_id} {x.rule().label()}' for x in inv.exposures[:3])})")
        keys = ([f"trail:{u.user_name}" for u in used] + [f"quarantine:{q.request.get('userName')}" for q in c.quarantines]
                + [f"change:{i}" for i in range(1, len(c.changes) + 1)]
                + [f"exposure:{x.group_id}:{x.opened.rule_id or x.cidr}" for x in inv.exposures] + ["access-log"])
        evidence = [ref(k) for k in dict.fromkeys(keys)]
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
    attempts = sum(sum(u.sign_in_failures.values()) for u in inv.usages)
    tried = (f"; {attempts} failed console sign-ins are attempts, not use" if attempts else "")
    return RootCause(category=Cat.UNKNOWN, identified_at=now,
                     summary=f"no use of {what}'s credentials from unknown addresses and no world-open admin port in "
                             f"the last {targets.lookback_hours} h{tried}; the containment steps still apply to what "
                             f"the spec names",
                     evidence=[e for e in (ref(f"signin:{u.user_name}") for u in inv.usages) if e][:10])
