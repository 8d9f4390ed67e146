"""WAFv2 containment of the runbook's "Security Incident Response": "block suspicious IP addresses".

The runbook's ``aws wafv2 update-ip-set --addresses <malicious-ip>/32`` replaces the whole
address list; here the set is read, the new addresses are merged into what is there, and the
merged list is written with the LockToken of that read. AWS WAF refuses a write whose token is
stale (WAFOptimisticLockException: someone changed the set in between), and then the set is
read and merged again, so no address anybody added is ever dropped (AWS WAF Developer Guide,
"Optimistic locking").
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from ..api.security import Cidr, WafScope, parse_cidr, parse_cidr_loose, refuse_unblockable
from ..errors import AwsError
from .actions import Change, Params
from .clients import AwsClients

MAX_WRITES = 5
# Scope CLOUDFRONT is managed through us-east-1 only (AWS WAF API reference, "Scope").
CLOUDFRONT_REGION = "us-east-1"


class BlockAddressesParams(Params):
    """Addresses to add to one IP set. Private and world ranges are refused unless allowed."""

    action: ClassVar[str] = "wafv2:UpdateIPSet"
    name: str = Field(min_length=1, max_length=128, pattern=r"^[\w\-]+$")
    id: str = Field(min_length=1, max_length=36)
    scope: WafScope
    region: str | None = Field(default=None, description="Region of a REGIONAL set (the adapter's when omitted).")
    addresses: list[Cidr] = Field(min_length=1, max_length=50)
    allow_private_ranges: bool = False
    allow_world_ranges: bool = False

    @model_validator(mode="after")
    def _blockable(self) -> "BlockAddressesParams":
        refuse_unblockable(self.addresses, self.allow_private_ranges, self.allow_world_ranges)
        return self


class IpSetChange(Change):
    """What a block added to an IP set (``added``), and what it found there or could not add."""

    name: str
    id: str
    scope: WafScope
    region: str
    ip_address_version: str = Field(description="IPV4 or IPV6: the set takes addresses of this version only.")
    added: list[str] = Field(default_factory=list)
    already_present: list[str] = Field(default_factory=list)
    other_version: list[str] = Field(default_factory=list, description="Addresses of the other IP version: "
                                                                      "they need an IP set of their own version.")
    writes: int = Field(default=0, description="UpdateIPSet calls made (more than one: a concurrent change).")

    def describe(self) -> str:
        where = f"WAF IP set {self.name} ({self.scope.value}, {self.ip_address_version})"
        parts = [f"added {', '.join(self.added)} to {where}" if self.added else f"nothing added to {where}"]
        if self.already_present:
            parts.append(f"already there: {', '.join(self.already_present)}")
        if self.other_version:
            parts.append(f"not of this set's IP version: {', '.join(self.other_version)}")
        if self.writes > 1:
            parts.append(f"the set changed concurrently; merged again and written {self.writes} times")
        return "; ".join(parts)

    def undo(self) -> str | None:
        if not self.added:
            return None
        return (f"remove {', '.join(self.added)} from WAF IP set {self.name} (id {self.id}, scope {self.scope.value}, "
                f"region {self.region}): aws wafv2 get-ip-set, then update-ip-set with the other addresses and "
                f"the LockToken it returned")


class WafActions:
    def __init__(self, clients: AwsClients, region: str | None, role_key: str | None):
        self.clients, self.region, self.role_key = clients, region or clients.default_region, role_key

    def _region(self, p: BlockAddressesParams) -> str:
        return CLOUDFRONT_REGION if p.scope == WafScope.CLOUDFRONT else (p.region or self.region)

    def addresses(self, name: str, id: str, scope: WafScope, region: str | None = None) -> tuple[str, list[str]]:
        """(IPAddressVersion, Addresses) of the IP set (GetIPSet). Raises AwsError
        (WAFNonexistentItemException when no set has this name, id and scope)."""
        where = CLOUDFRONT_REGION if scope == WafScope.CLOUDFRONT else (region or self.region)
        ip_set = self.clients.client("wafv2", where, self.role_key).get_ip_set(Name=name, Scope=scope.value,
                                                                               Id=id)["IPSet"]
        return ip_set["IPAddressVersion"], list(ip_set.get("Addresses", []))

    def block_addresses(self, p: BlockAddressesParams) -> IpSetChange:
        """Add ``p.addresses`` of the set's IP version to the IP set: read, merge, write with the
        LockToken; on WAFOptimisticLockException read and merge again (at most 5 writes).

        Addresses already in the set (in any notation of the same block) are a no-op. Raises
        LookupError when no set has this name, id and scope, AwsError otherwise (the last
        WAFOptimisticLockException when the set kept changing: nothing was lost, retry).
        """
        region = self._region(p)
        waf = self.clients.client("wafv2", region, self.role_key)
        writes = 0
        while True:
            try:
                got = waf.get_ip_set(Name=p.name, Scope=p.scope.value, Id=p.id)
            except AwsError as err:
                if err.not_found:
                    raise LookupError(f"WAF IP set {p.name} with id {p.id} (scope {p.scope.value}, region {region}) "
                                      f"does not exist: check that the id belongs to that name") from err
                raise
            ip_set, token = got["IPSet"], got["LockToken"]
            version = ip_set["IPAddressVersion"]
            current = list(ip_set.get("Addresses", []))
            fits = [a for a in p.addresses if f"IPV{parse_cidr(a).version}" == version]
            present = [a for a in fits if any(parse_cidr_loose(a) == parse_cidr_loose(c) for c in current)]
            new = [a for a in fits if a not in present]
            change = IpSetChange(changed=bool(new), name=p.name, id=p.id, scope=p.scope, region=region,
                                 ip_address_version=version, added=new, already_present=present,
                                 other_version=[a for a in p.addresses if a not in fits], writes=writes)
            if not new:
                return change
            kwargs = {"Description": ip_set["Description"]} if ip_set.get("Description") else {}
            writes += 1
            try:
                # UpdateIPSet replaces the set's settings: the description is passed back unchanged.
                waf.update_ip_set(Name=p.name, Scope=p.scope.value, Id=p.id, Addresses=current + new,
                                  LockToken=token, **kwargs)
            except AwsError as err:
                if err.code != "WAFOptimisticLockException" or writes >= MAX_WRITES:
                    raise
                continue
            change.writes = writes
            return change
