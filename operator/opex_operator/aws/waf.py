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
from ..ports.waf import BlockAddressesParams, IpSetChange  # noqa: F401 - the port's types
from .clients import AwsClients

MAX_WRITES = 5
# Scope CLOUDFRONT is managed through us-east-1 only (AWS WAF API reference, "Scope").
CLOUDFRONT_REGION = "us-east-1"


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
