"""The WAFv2 block action's parameters and change record (what ``aws.waf`` takes and returns)."""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from ..api.security import Cidr, WafScope, refuse_unblockable
from .actions import Change, Params


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
