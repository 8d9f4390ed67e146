"""The EC2 revoke action's parameters and change record (what ``aws.ec2`` takes and returns)."""
from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field

from ..api.security import Cidr, IpProtocol, parse_cidr_loose
from .actions import Change, Params
from .security import IngressRule


class RevokeIngressParams(Params):
    """Inbound rules of one group to revoke: protocol, exact ports, and the source blocks."""

    action: ClassVar[str] = "ec2:RevokeSecurityGroupIngress"
    group_id: str = Field(min_length=1, max_length=32, pattern=r"^sg-[0-9a-f]{8,17}$")
    protocol: IpProtocol = IpProtocol.TCP
    from_port: int | None = Field(default=None, ge=-1, le=65535)
    to_port: int | None = Field(default=None, ge=-1, le=65535)
    cidrs: list[Cidr] = Field(min_length=1, max_length=10)


class IngressChange(Change):
    """The rules revoked from a group (exactly, with their descriptions, so they can be put back)."""

    group_id: str
    revoked: list[IngressRule] = Field(default_factory=list)
    absent: list[str] = Field(default_factory=list, description="Asked-for blocks with no such rule (already gone).")
    still_open_by: list[IngressRule] = Field(
        default_factory=list, description="Wider rules that still let the asked-for traffic in (not revoked: "
                                          "they were not asked for).")

    def describe(self) -> str:
        parts = [f"revoked {'; '.join(r.label() for r in self.revoked)} from {self.group_id}" if self.revoked else
                 f"no matching rule in {self.group_id}: already gone, nothing changed"]
        if self.revoked and self.absent:
            parts.append(f"already gone: {', '.join(self.absent)}")
        if self.still_open_by:
            parts.append(f"still open through {'; '.join(r.label() for r in self.still_open_by)}")
        return "; ".join(parts)

    def undo(self) -> str | None:
        if not self.revoked:
            return None
        return (f"aws ec2 authorize-security-group-ingress --group-id {self.group_id} "
                f"--ip-permissions '{json.dumps(ip_permissions(self.revoked), separators=(',', ':'))}'")


def ip_permissions(rules: list[IngressRule]) -> list[dict[str, Any]]:
    """EC2 IpPermissions for ``rules`` (one entry per rule, IPv4 or IPv6, descriptions kept)."""
    out = []
    for r in rules:
        perm: dict[str, Any] = {"IpProtocol": r.protocol}
        if r.protocol != "-1":
            perm.update(FromPort=r.from_port, ToPort=r.to_port)
        v6 = parse_cidr_loose(r.cidr).version == 6
        entry: dict[str, Any] = {"CidrIpv6" if v6 else "CidrIp": r.cidr}
        if r.description:
            entry["Description"] = r.description
        perm["Ipv6Ranges" if v6 else "IpRanges"] = [entry]
        out.append(perm)
    return out
