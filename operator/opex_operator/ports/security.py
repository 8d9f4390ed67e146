"""The security groups as EC2 reports them, and the AWS managed policies containment uses: the
types the EC2 and IAM ports carry (``aws.ec2`` fills them, the security playbook reads them).

Source: EC2 API reference, DescribeSecurityGroups (IpPermissions); IAM User Guide, "AWS managed
policies" (AWSDenyAll; AWSCompromisedKeyQuarantine, which AWS attaches to a user whose key it found
published).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field

from ..api.common import Model
from ..api.security import parse_cidr_loose

# AWS's own quarantine of a published key (V2, V3... are later versions of the same policy).
QUARANTINE = "AWSCompromisedKeyQuarantine"
QUARANTINE_ARN = "arn:aws:iam::aws:policy/" + QUARANTINE
# An explicit deny of every action: what the operator attaches to quarantine a principal.
DENY_ALL = "arn:aws:iam::aws:policy/AWSDenyAll"


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
