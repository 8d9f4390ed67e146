"""The security runbook's investigation and classification on plain data (no AWS)."""
from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest
from pydantic import ValidationError

from opex_operator.api.incident import FindingSeverity, Severity
from opex_operator.api.security import SecurityTargets, is_private, is_world, parse_cidr, refuse_unblockable
from opex_operator.aws.waf import BlockAddressesParams
from opex_operator.playbooks.diagnose import MAX_EVIDENCE, Diagnosis
from opex_operator.ports.facts import LogLine, trail_events
from opex_operator.playbooks.security.investigation import (Evidence, IngressRule, SecurityFacts, SecurityGroupRules, access_log_hits,
                                             access_log_pattern, classify, evidence, investigate, lookup_attributes,
                                             root_cause, trail_terms, usage, world_open_admin_rules)

NOW = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.timezone.utc)
KEY, OTHER_KEY = "AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE"
HOSTILE, CI = "203.0.113.66", "198.51.100.10"


def targets(**overrides) -> SecurityTargets:
    base = {"iamUsers": [{"userName": "ci-deployer", "accessKeyIds": [KEY]}], "sourceIps": [f"{HOSTILE}/32"]}
    base.update(overrides)
    return SecurityTargets.model_validate(base)


def record(minutes_ago: float, name: str = "ListBuckets", source: str = "s3", ip: str = HOSTILE,
           user: str = "ci-deployer", key: str | None = KEY, agent: str = "python-requests/2.31.0",
           error: str | None = None, event_id: str | None = None) -> dict:
    identity = {"type": "IAMUser", "arn": f"arn:aws:iam::123456789012:user/{user}", "userName": user}
    if key:
        identity["accessKeyId"] = key
    r = {"eventTime": (NOW - dt.timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ"),
         "eventSource": f"{source}.amazonaws.com", "eventName": name, "sourceIPAddress": ip, "userAgent": agent,
         "userIdentity": identity, "eventID": event_id or f"id-{minutes_ago}-{name}-{ip}"}
    if error:
        r["errorCode"], r["errorMessage"] = error, "not authorized"
    return r


def events(*records: dict):
    return trail_events(json.dumps(r) for r in records)


# ---- parsing ----------------------------------------------------------------------------------

def test_raw_records_eventbridge_events_and_trail_files_are_all_read_once_each():
    raw = record(10, "GetCallerIdentity", "sts")
    wrapped = {"version": "0", "detail-type": "AWS API Call via CloudTrail", "source": "aws.s3",
               "detail": record(9, "ListBuckets")}
    trail_file = {"Records": [record(8, "GetSecretValue", "secretsmanager"), raw]}  # raw again: same eventID
    parsed = trail_events([json.dumps(raw), json.dumps(wrapped), json.dumps(trail_file), "not json", "[1, 2]"])
    assert [(e.event_source, e.event_name) for e in parsed] == [
        ("sts.amazonaws.com", "GetCallerIdentity"), ("s3.amazonaws.com", "ListBuckets"),
        ("secretsmanager.amazonaws.com", "GetSecretValue")]
    e = parsed[1]
    assert (e.source_ip, e.access_key_id, e.user_name, e.user_agent) == (HOSTILE, KEY, "ci-deployer",
                                                                       "python-requests/2.31.0")
    assert e.time == NOW - dt.timedelta(minutes=9)


def test_read_terms_and_lookup_attributes_name_every_key_and_user():
    t = targets(iamUsers=[{"userName": "ci-deployer", "accessKeyIds": [KEY, OTHER_KEY]}, {"userName": "ops"}])
    assert trail_terms(t) == [KEY, OTHER_KEY, "ci-deployer", "ops"]
    assert lookup_attributes(t) == [("AccessKeyId", KEY), ("AccessKeyId", OTHER_KEY), ("Username", "ci-deployer"),
                                    ("Username", "ops")]


# ---- CloudTrail use ---------------------------------------------------------------------------

def test_use_is_counted_per_user_with_first_and_last_use_and_denied_calls():
    evs = events(record(300, "UpdateFunctionCode20150331v2", "lambda", ip=CI, agent="aws-cli/2.15"),
                 record(90, "GetCallerIdentity", "sts"), record(85), record(84),
                 record(75, "CreateUser", "iam", error="AccessDenied"),
                 record(70, "RunInstances", "ec2", ip="2001:db8:bad:1::7", error="Client.UnauthorizedOperation"),
                 record(65, "PutObject", error="NoSuchBucket"),
                 record(60, "GetObject", user="release-bot", key="AKIAOTHERUSEREXAMPLE"),  # another user
                 record(30 * 60),                                                          # before the window
                 record(50, "ConsoleLogin", "signin", key=None))                           # console, no key
    [u] = usage(evs, targets(), NOW - dt.timedelta(hours=24), NOW)
    assert (u.calls, u.denied, u.failed) == (8, 2, 1)
    assert (u.first, u.last) == (NOW - dt.timedelta(minutes=300), NOW - dt.timedelta(minutes=50))
    assert u.apis["s3:ListBuckets"] == 2 and u.source_ips[HOSTILE] == 6 and u.source_ips[CI] == 1
    assert u.user_agents["aws-cli/2.15"] == 1
    assert u.denied_apis == {"iam:CreateUser (AccessDenied)": 1, "ec2:RunInstances (Client.UnauthorizedOperation)": 1}
    assert u.keys == {KEY: 7, "console": 1}
    assert u.unknown_success == {HOSTILE: 4}        # the CI address is not suspicious; no knownCidrs given


def test_known_cidrs_make_every_other_address_unknown():
    evs = events(record(300, ip=CI), record(200, ip="192.0.2.9"), record(100, ip="lambda.amazonaws.com"))
    [u] = usage(evs, targets(sourceIps=[], knownCidrs=["198.51.100.0/24"]), NOW - dt.timedelta(hours=24), NOW)
    assert u.unknown_success == {"192.0.2.9": 1}    # an AWS service is never an unknown address


# ---- classification ---------------------------------------------------------------------------

def _classified(environment: str, declared: Severity, *records: dict, groups=()):
    u = usage(events(*records), targets(), NOW - dt.timedelta(hours=24), NOW)
    return classify(declared, evidence(environment, u, world_open_admin_rules(groups)))


def test_successful_use_from_a_suspicious_address_in_production_raises_to_critical():
    c = _classified("production", Severity.MEDIUM, record(80, "GetSecretValue", "secretsmanager"))
    assert c.severity == Severity.CRITICAL and c.raised
    assert c.reason == ("severity raised from medium to critical: ci-deployer's credentials were used successfully "
                        f"from unknown address {HOSTILE} (1 calls, e.g. secretsmanager:GetSecretValue) in production")


def test_the_same_use_outside_production_is_high():
    c = _classified("staging", Severity.LOW, record(80))
    assert c.severity == Severity.HIGH and "outside production" in c.reason


def test_privilege_escalation_and_control_bypass_raise_to_high_from_any_address():
    c = _classified("staging", Severity.LOW, record(80, "AttachUserPolicy", "iam", ip=CI),
                    record(79, "StopLogging", "cloudtrail", ip=CI))
    assert c.severity == Severity.HIGH
    assert {e.reason for e in c.evidence} == {"privilege escalation by ci-deployer: iam:AttachUserPolicy ×1",
                                              "security control bypass by ci-deployer: cloudtrail:StopLogging ×1"}


def test_denied_calls_alone_are_a_policy_violation():
    c = _classified("production", Severity.LOW, record(75, "CreateUser", "iam", error="AccessDenied"))
    assert c.severity == Severity.MEDIUM and "policy violation: 1 calls by ci-deployer denied" in c.reason


@pytest.mark.parametrize("declared", [Severity.CRITICAL, Severity.HIGH])
def test_evidence_never_lowers_the_declared_severity(declared):
    c = _classified("production", declared, record(75, "CreateUser", "iam", error="AccessDenied"))
    assert c.severity == declared and not c.raised and c.reason == f"severity {declared.value} as declared"


def test_no_evidence_keeps_the_declared_severity():
    c = classify(Severity.LOW, [])
    assert (c.severity, c.raised, c.evidence) == (Severity.LOW, False, [])


def test_the_most_severe_evidence_decides_and_is_the_reason():
    found = [Evidence(Severity.MEDIUM, "m"), Evidence(Severity.HIGH, "h1"), Evidence(Severity.HIGH, "h2")]
    c = classify(Severity.LOW, found)
    assert c.severity == Severity.HIGH and c.reason == "severity raised from low to high: h1; h2"


# ---- security groups --------------------------------------------------------------------------

def group(*rules: IngressRule, gid: str = "sg-0123456789abcdef0") -> SecurityGroupRules:
    return SecurityGroupRules(gid, "bastion", "vpc-1", list(rules))


def rule(cidr: str, from_port: int | None = 22, to_port: int | None = 22, protocol: str = "tcp") -> IngressRule:
    return IngressRule(protocol=protocol, from_port=from_port, to_port=to_port, cidr=cidr)


def test_world_open_admin_ports_are_found_and_narrower_or_web_rules_are_not():
    g = group(rule("0.0.0.0/0"), rule("::/0"), rule("10.0.0.0/8"), rule("0.0.0.0/0", 443, 443),
              rule("::/0", 3000, 3400), rule("0.0.0.0/0", None, None, "-1"), rule("0.0.0.0/0", 22, 22, "udp"))
    found = world_open_admin_rules([g])
    assert [o.label() for o in found] == [
        "tcp/22 from 0.0.0.0/0 lets in SSH (22)", "tcp/22 from ::/0 lets in SSH (22)",
        "tcp/3000-3400 from ::/0 lets in MySQL (3306), RDP (3389)",
        "all traffic from 0.0.0.0/0 lets in FTP data (20), FTP (21), SSH (22), Telnet (23), SMB (445) and 9 more "
        "admin ports"]
    c = classify(Severity.LOW, evidence("production", [], found))
    assert c.severity == Severity.MEDIUM and "configuration drift: sg-0123456789abcdef0 tcp/22 from 0.0.0.0/0" in c.reason


# ---- access logs ------------------------------------------------------------------------------

def access(*messages: str) -> list[LogLine]:
    return [LogLine(NOW - dt.timedelta(minutes=5), m, "/aws/apigateway/checkout-prod", "s") for m in messages]


def test_access_log_lines_from_suspicious_addresses_in_every_format_and_never_loopback():
    lines = access(
        json.dumps({"requestId": "r1", "ip": HOSTILE, "httpMethod": "GET", "resourcePath": "/orders", "status": "200"}),
        json.dumps({"requestId": "r2", "identity": {"sourceIp": "2001:db8:bad:1::7"}, "status": 403}),
        f'{HOSTILE} - - [29/Nov/2026:08:55:00 +0000] "GET /admin HTTP/1.1" 403 12 r3',   # Common Log Format
        f"2026-11-29T08:55:01Z 3f1c-r4 {HOSTILE} GET /orders 200",                        # the runbook's fields
        json.dumps({"requestId": "r5", "ip": "127.0.0.1", "status": "200"}),
        "2026-11-29T08:55:02Z 3f1c-r6 127.0.0.1 GET /health 200",
        json.dumps({"requestId": "r7", "ip": "198.51.100.23", "status": "200"}),
        "START of something without an address", "{not json")
    hits = access_log_hits(lines, [f"{HOSTILE}/32", "2001:db8:bad::/48"])
    assert hits.by_ip == {HOSTILE: 3, "2001:db8:bad:1::7": 1}
    assert hits.by_status == {"200": 1, "403": 2, "unknown": 1}
    assert hits.loopback_skipped == 2 and hits.lines_read == 9 and len(hits.sample) == 4


def test_access_log_filter_uses_terms_only_for_single_addresses():
    assert access_log_pattern([f"{HOSTILE}/32", "2001:db8::7/128"]) == f'?"{HOSTILE}" ?"2001:db8::7"'
    assert access_log_pattern([f"{HOSTILE}/32", "192.0.2.0/24"]) == ""   # a range: read all, match here
    assert access_log_pattern([]) == ""


# ---- findings ---------------------------------------------------------------------------------

def test_investigation_findings_continue_the_numbering_and_are_bounded():
    noisy = [record(200 - i, f"Describe{i}", "ec2", ip=f"192.0.2.{i}", agent=f"agent/{i}") for i in range(40)]
    facts = SecurityFacts(trail_events=events(*noisy, record(80, "GetSecretValue", "secretsmanager")),
                          trail_sources=["logs:CloudTrail/management-events"],
                          access_lines=access(json.dumps({"ip": HOSTILE, "status": "200"})),
                          access_group="/aws/apigateway/checkout-prod",
                          security_groups=[group(rule("0.0.0.0/0"), rule("10.0.0.0/8")),
                                           group(rule("::/0", 3389, 3389), gid="sg-0fedcba9876543210")])
    d = Diagnosis()
    d.add("pipeline", "CodePipeline", "pipeline/p", FindingSeverity.INFO, "earlier finding")
    t = targets(securityGroups=[{"groupId": "sg-0123456789abcdef0", "fromPort": 22, "toPort": 22}])
    inv = investigate(t, "production", Severity.HIGH, facts, NOW, d)
    ids = [(f.id, f.source, f.resource, f.severity) for f in d.findings]
    assert ids == [("F1", "CodePipeline", "pipeline/p", FindingSeverity.INFO),
                   ("F2", "CloudTrail", "user/ci-deployer", FindingSeverity.ERROR),
                   ("F3", "APIGateway", "/aws/apigateway/checkout-prod", FindingSeverity.WARNING),
                   ("F4", "EC2", "security-group/sg-0123456789abcdef0", FindingSeverity.WARNING),
                   ("F5", "EC2", "security-group/sg-0fedcba9876543210", FindingSeverity.WARNING)]
    trail = d.findings[1]
    assert trail.observed.startswith("IAM user ci-deployer (keys AKIAIOSFODNN7EXAMPLE): 41 calls from 41 addresses")
    assert "(+36 more)" in trail.evidence and len(trail.evidence) <= MAX_EVIDENCE
    assert "named in spec" in d.findings[3].observed and "finding only" in d.findings[4].observed
    assert inv.classification.severity == Severity.CRITICAL


def test_a_user_without_records_is_reported_as_such():
    d = investigate(targets(), "production", Severity.HIGH, SecurityFacts(trail_sources=["cloudtrail:LookupEvents"]),
                    NOW).findings
    [f] = d.findings
    assert f.observed == ("no CloudTrail records of IAM user ci-deployer (keys AKIAIOSFODNN7EXAMPLE) in the last 24 h "
                          "(cloudtrail:LookupEvents)") and f.severity == FindingSeverity.INFO


# ---- CIDRs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["203.0.113.7", "10.0.0.1/8", "2001:db8::1/32", "300.1.1.1/32", "any"])
def test_a_cidr_needs_notation_without_host_bits(value):
    with pytest.raises(ValueError):
        parse_cidr(value)
    with pytest.raises(ValidationError, match="sourceIps.0"):
        targets(sourceIps=[value])


@pytest.mark.parametrize("cidr,world,private", [
    ("0.0.0.0/0", True, True), ("::/0", True, True), ("10.1.0.0/16", False, True), ("172.20.0.0/16", False, True),
    ("100.64.1.0/24", False, True), ("fd00::/8", False, True), ("fe80::1/128", False, True),
    ("8.0.0.0/5", False, True),   # holds 10.0.0.0/8
    ("203.0.113.66/32", False, False), ("2001:db8:bad::/48", False, False), ("11.0.0.0/8", False, False)])
def test_world_and_private_ranges(cidr, world, private):
    assert (is_world(cidr), is_private(cidr)) == (world, private)


def test_waf_block_refuses_world_and_private_ranges_unless_allowed():
    base = {"name": "blocked-ips", "id": "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9", "scope": "REGIONAL"}
    with pytest.raises(ValidationError, match=r"refusing to block 0\.0\.0\.0/0 \(the whole internet\).*allowWorldRanges"):
        BlockAddressesParams.model_validate({**base, "addresses": ["203.0.113.66/32", "0.0.0.0/0"]})
    with pytest.raises(ValidationError, match=r"refusing to block 192\.168\.4\.0/24: it overlaps a private range"):
        BlockAddressesParams.model_validate({**base, "addresses": ["192.168.4.0/24"]})
    with pytest.raises(ValidationError, match="allowWorldRanges"):  # the world is not a private range
        BlockAddressesParams.model_validate({**base, "addresses": ["::/0"], "allowPrivateRanges": True})
    allowed = BlockAddressesParams.model_validate({**base, "addresses": ["::/0", "10.0.0.0/8"],
                                                   "allowWorldRanges": True, "allowPrivateRanges": True})
    assert allowed.addresses == ["::/0", "10.0.0.0/8"]
    refuse_unblockable(["203.0.113.66/32", "2001:db8:bad::/48"], False, False)  # public addresses pass
    with pytest.raises(ValidationError, match="extra"):
        BlockAddressesParams.model_validate({**base, "addresses": ["203.0.113.66/32"], "adresses": []})


# ---- records read by their meaning -------------------------------------------------------------

def sign_in(minutes_ago: float, outcome: str = "Failure", ip: str = HOSTILE, user: str = "ci-deployer") -> dict:
    """A ConsoleLogin record as the CloudTrail User Guide's "AWS Management Console sign-in events"
    shows it: no errorCode, the outcome in responseElements, an empty accessKeyId."""
    r = record(minutes_ago, "ConsoleLogin", "signin", ip=ip, user=user, key=None, agent="Mozilla/5.0",
               event_id=f"signin-{minutes_ago}-{ip}")
    r["userIdentity"]["accessKeyId"] = ""
    r.update(eventType="AwsConsoleSignIn", responseElements={"ConsoleLogin": outcome},
             additionalEventData={"MFAUsed": "No"})
    if outcome == "Failure":
        r["errorMessage"] = "Failed authentication"
    return r


def test_failed_sign_ins_alone_keep_the_declared_severity_and_are_a_finding_of_their_own():
    facts = SecurityFacts(trail_events=events(*[sign_in(60 - i) for i in range(8)]), trail_sources=["logs:ct"])
    inv = investigate(targets(), "production", Severity.MEDIUM, facts, NOW)
    assert inv.classification.severity == Severity.MEDIUM and not inv.classification.raised
    [u] = inv.usages
    assert (u.calls, u.unknown_success, sum(u.sign_in_failures.values())) == (0, {}, 8)
    trail, attempts = inv.findings.findings
    assert trail.severity == FindingSeverity.INFO and "only 8 failed console sign-ins" in trail.observed
    assert attempts.severity == FindingSeverity.WARNING and attempts.observed == (
        "8 failed console sign-ins as IAM user ci-deployer (Failed authentication ×8): attempts, not use of the "
        f"credentials; 8 from {HOSTILE} alone: password guessing")
    assert root_cause(inv, targets(), NOW).category.value == "Unknown"


def test_a_few_failed_sign_ins_are_information_and_a_success_after_them_is_use():
    facts = SecurityFacts(trail_events=events(sign_in(60), sign_in(59), sign_in(58, "Success")), trail_sources=["x"])
    inv = investigate(targets(), "production", Severity.LOW, facts, NOW)
    [u] = inv.usages
    assert u.calls == 1 and u.unknown_success == {HOSTILE: 1} and inv.classification.severity == Severity.CRITICAL
    assert inv.findings.findings[1].severity == FindingSeverity.INFO


def test_aws_quarantining_the_key_confirms_the_leak_and_aws_acting_is_never_the_attacker():
    # Panther's AWS.IAM.AccessKeyCompromised record: AWS puts the quarantine policy in the user's own
    # name, signed aws-internal/3, from an Amazon address.
    quarantine = record(30, "PutUserPolicy", "iam", ip="72.21.217.97",
                        agent="aws-internal/3 aws-sdk-java/1.11.706 Linux/4.9.184 OpenJDK_64-Bit_Server_VM/25.242")
    quarantine["requestParameters"] = {"userName": "ci-deployer", "policyName": "AWSCompromisedKeyQuarantineV3",
                                       "policyDocument": "{}"}
    facts = SecurityFacts(trail_events=events(quarantine), trail_sources=["x"])
    inv = investigate(targets(knownCidrs=["198.51.100.0/24"]), "staging", Severity.LOW, facts, NOW)
    [u] = inv.usages
    assert (u.calls, u.escalations, u.blockable, u.aws_calls) == (0, {}, {}, {"iam:PutUserPolicy": 1})
    assert inv.classification.severity == Severity.HIGH
    assert "AWS quarantined IAM user ci-deployer (AWSCompromisedKeyQuarantineV3" in inv.classification.reason
    assert "confirmed leaked" in inv.findings.findings[1].observed
    assert root_cause(inv, targets(), NOW).category.value == "CompromisedCredentials"


def test_unparsed_addresses_are_flagged_never_blocked_and_real_unknown_ones_are_offered_for_blocking():
    evs = events(record(50, ip="203.0.113"), record(49, ip="192.0.2.9"), record(48, ip="203.000.113.066"))
    facts = SecurityFacts(trail_events=evs, trail_sources=["x"])
    inv = investigate(targets(knownCidrs=["198.51.100.0/24"]), "production", Severity.LOW, facts, NOW)
    [u] = inv.usages
    assert u.unparsed == {"203.0.113": 1}
    assert set(u.unknown_success) == {"203.0.113 (unparsed)", "192.0.2.9", HOSTILE}
    assert u.blockable == {"192.0.2.9/32": 1}          # the suspicious one is in sourceIps already
    evidence_text = inv.findings.findings[0].evidence
    assert "kept as written (cannot be blocked): 203.0.113 ×1" in evidence_text
    assert "to block, add to spec.targets.security.sourceIps: 192.0.2.9/32" in evidence_text


def test_an_admin_port_the_compromise_opened_to_the_world_is_a_finding_with_its_rule_id():
    opened = record(40, "AuthorizeSecurityGroupIngress", "ec2", ip="198.51.100.10")
    opened["requestParameters"] = {"groupId": "sg-0aaa", "ipPermissions": {"items": [
        {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipv6Ranges": {"items": [{"cidrIpv6": "2001:db8::/0"}]}}]}}
    opened["responseElements"] = {"_return": True, "securityGroupRuleSet": {"items": [
        {"groupId": "sg-0aaa", "securityGroupRuleId": "sgr-0123", "ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
         "cidrIpv6": "2001:db8::/0", "isEgress": False}]}}
    facts = SecurityFacts(trail_events=events(opened), trail_sources=["x"],
                          security_groups=[group(rule("2001:db8::/0"), gid="sg-0aaa")])
    inv = investigate(targets(), "staging", Severity.LOW, facts, NOW)
    [x] = inv.exposures
    assert (x.group_id, x.cidr, x.ports, x.opened.rule_id) == ("sg-0aaa", "::/0", [22], "sgr-0123")
    found = {f.source: f for f in inv.findings.findings if f.severity == FindingSeverity.ERROR}
    assert found["EC2"].observed == (f"sg-0aaa opened to the world by key {KEY} at 2026-11-29T08:20:00Z: tcp/22 from "
                                     f"::/0 (written 2001:db8::/0) lets in SSH (22) (rule sgr-0123); still open")
    assert "security control bypass: the compromised credentials opened sg-0aaa" in inv.classification.reason


def test_the_finding_says_when_the_lookback_or_the_call_budget_cut_the_investigation_short():
    from opex_operator.playbooks.security.blast_radius import FollowUp

    facts = SecurityFacts(trail_events=events(record(24 * 60 - 20)), trail_sources=["logs:ct"], trail_calls=20,
                          unread_follow_ups=[FollowUp("AccessKeyId", "AKIANEWKEYEXAMPLE001")],
                          trail_skipped=Counter({"GuardDuty Finding": 2}))
    [f] = investigate(targets(), "production", Severity.HIGH, facts, NOW).findings.findings
    assert "at least 1 calls" in f.observed
    assert ("the CloudTrail call budget (20 reads, 20 made) left 1 follow-up lookups unread: "
            "AccessKeyId=AKIANEWKEYEXAMPLE001") in f.observed
    assert "is within 60 min of the 24 h lookback's start: earlier use may be cut off" in f.observed
    assert "2 objects read were not CloudTrail records" in f.observed
