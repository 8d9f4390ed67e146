"""EC2 security groups for the runbook's "Security Incident Response": read the inbound rules
(investigation) and revoke exactly the world-open rule asked for (recovery: "update security
groups", ``aws ec2 revoke-security-group-ingress --protocol tcp --port 22 --cidr 0.0.0.0/0``).

A revoke names the rule's protocol, ports and source block exactly (EC2 API reference,
RevokeSecurityGroupIngress: "the values that you specify in the revoke request must match the
existing rule's values exactly"), so a narrower rule such as tcp/22 from 10.0.0.0/8 stays.
"""
from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field

from ..api.security import Cidr, IpProtocol, parse_cidr_loose
from ..errors import AwsError
from ..ports.security import IngressRule, SecurityGroupRules
from ..ports.ec2 import RevokeIngressParams, IngressChange, ip_permissions  # noqa: F401 - the port's types
from .clients import AwsClients

# IANA protocol numbers EC2 may report instead of names.
_PROTOCOLS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "all": "-1"}
MAX_REVOKES = 3


def _rules(permissions: list[dict[str, Any]]) -> list[IngressRule]:
    rules = []
    for p in permissions:
        protocol = _PROTOCOLS.get(str(p.get("IpProtocol")), str(p.get("IpProtocol")))
        ports = {} if protocol == "-1" else {"from_port": p.get("FromPort"), "to_port": p.get("ToPort")}
        for r in p.get("IpRanges", []):
            rules.append(IngressRule(protocol=protocol, cidr=r["CidrIp"], description=r.get("Description"), **ports))
        for r in p.get("Ipv6Ranges", []):
            rules.append(IngressRule(protocol=protocol, cidr=r["CidrIpv6"], description=r.get("Description"), **ports))
    return rules


class Ec2Actions:
    def __init__(self, clients: AwsClients, region: str | None, role_key: str | None):
        self.ec2 = clients.client("ec2", region, role_key)

    def security_groups(self, group_ids: list[str]) -> list[SecurityGroupRules]:
        """The groups and their inbound CIDR rules (rules naming other groups or prefix lists are
        left out: they are not open to the world). Raises AwsError (InvalidGroup.NotFound naming
        the group) when one does not exist."""
        if not group_ids:
            return []
        groups = self.ec2.describe_security_groups(GroupIds=list(group_ids))["SecurityGroups"]
        return [SecurityGroupRules(group_id=g["GroupId"], name=g.get("GroupName"), vpc_id=g.get("VpcId"),
                                   ingress=_rules(g.get("IpPermissions", []))) for g in groups]

    def revoke_ingress(self, p: RevokeIngressParams) -> IngressChange:
        """Revoke the rules of ``p.group_id`` that match ``p`` exactly, one per asked-for block.

        A block with no such rule is reported ``absent`` (a no-op when none is there), and wider
        rules that still let the same traffic in are reported, not touched. Raises AwsError
        (InvalidGroup.NotFound naming the group; AccessDenied on ec2:RevokeSecurityGroupIngress).
        """
        protocol, ports = p.protocol.value, (p.from_port, p.to_port)
        revoked: list[IngressRule] = []
        for attempt in range(1, MAX_REVOKES + 1):
            [group] = self.security_groups([p.group_id])
            present = [r for r in group.ingress if any(r.matches(protocol, *ports, c) for c in p.cidrs)]
            if not present:
                break
            try:
                self.ec2.revoke_security_group_ingress(GroupId=p.group_id, IpPermissions=ip_permissions(present))
            except AwsError as err:
                # Someone removed one of them in between: read again and revoke what is left.
                if err.code != "InvalidPermission.NotFound" or attempt == MAX_REVOKES:
                    raise
                continue
            revoked = present
            break
        left = [r for r in group.ingress if r not in revoked]
        return IngressChange(
            changed=bool(revoked), group_id=p.group_id, revoked=revoked,
            absent=[c for c in p.cidrs if not any(r.matches(protocol, *ports, c) for r in revoked)],
            still_open_by=[r for r in left if any(_covers(r, protocol, *ports, c) for c in p.cidrs)])


def _covers(rule: IngressRule, protocol: str, from_port: int | None, to_port: int | None, cidr: str) -> bool:
    """True when ``rule`` lets in all of ``protocol`` ``from_port``-``to_port`` from ``cidr``."""
    asked, source = parse_cidr_loose(cidr), parse_cidr_loose(rule.cidr)
    if asked.version != source.version or not asked.subnet_of(source):
        return False
    if rule.protocol == "-1":
        return True
    if rule.protocol != protocol or protocol == "-1":
        return False
    lo = rule.from_port if rule.from_port is not None else -1
    hi = rule.to_port if rule.to_port is not None else 65535
    return lo <= (from_port if from_port is not None else -1) and (to_port if to_port is not None else 65535) <= hi
