"""Real CloudTrail records (tests/realworld/cloudtrail, each with its public source) read through the
product's CloudTrail reader and, where a case names the leaked user and keys, the security
investigation: what each record means, what the compromise did, and the severity it supports."""
from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from opex_operator.api.incident import Severity
from opex_operator.api.security import SecurityTargets
from opex_operator.playbooks.security import investigation as security
from opex_operator.playbooks.security.blast_radius import ingress_rules
from opex_operator.ports.cloudtrail import read_records
from realworld import corpus

INGRESS = ("AuthorizeSecurityGroupIngress", "ModifySecurityGroupRules")


def rule(group: str | None, text: str, rule_id: str | None) -> str:
    return f"{group} {text} {rule_id}"


@pytest.mark.parametrize("case", corpus.params("cloudtrail"))
def test_real_cloudtrail_records_are_read_by_what_they_mean(case: corpus.Case):
    read = read_records([case.path.read_bytes()])
    want = case.expect
    events = read.events
    assert len(events) == want["records"]
    assert read.duplicates == want.get("duplicates", 0)
    assert dict(read.skipped) == want.get("skipped", {})
    assert dict(Counter("denied" if e.denied else "failed" if e.failed else "succeeded" for e in events)) == \
        want["outcomes"]
    assert sum(e.aws_acting for e in events) == want.get("aws_acting", 0)
    assert list(dict.fromkeys(e.address.label for e in events)) == want["addresses"]
    opened = [o for e in events if e.event_name in INGRESS and e.succeeded for o in ingress_rules(e, None)]
    if "opened" in want:
        assert [rule(o.group_id, security.IngressRule(protocol=o.protocol, from_port=o.from_port, to_port=o.to_port,
                                                      cidr=o.cidr).label(), o.rule_id) for o in opened] == want["opened"]
    if "exposures" in want:
        assert [rule(x.group_id, x.rule().label(), x.opened.rule_id) for x in security.exposures(opened)] == \
            want["exposures"]
    if "leaked" in case.extra:
        _investigated(case, events, want["compromise"])


def _investigated(case: corpus.Case, events, want: dict) -> None:
    leaked = case.extra["leaked"]
    targets = SecurityTargets.model_validate({"iamUsers": [{"userName": leaked["user"], "accessKeyIds": leaked["keys"]}],
                                              "knownCidrs": ["198.51.100.0/24"], "lookbackHours": 2160})
    now = max(e.time for e in events) + dt.timedelta(hours=1)
    inv = security.investigate(targets, "production", Severity.LOW,
                               security.SecurityFacts(trail_events=events, trail_sources=["corpus"]), now)
    c = inv.compromise
    [u] = inv.usages
    seen = {"attributed": len(c.attributed), "sessions": len(c.sessions), "quarantines": len(c.quarantines),
            "sign_in_failures": sum(u.sign_in_failures.values()), "classified": inv.classification.severity.value,
            "changes": [" ".join(filter(None, (x.what, f"{x.principal_type}/{x.principal}",
                                               x.key_id or x.policy_arn or x.policy_name))) for x in c.changes]}
    assert {k: seen[k] for k in want} == want
