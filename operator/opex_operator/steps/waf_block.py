"""block-ips-<set>: the runbook's "block suspicious IP addresses" (``wafv2:UpdateIPSet``), merged
into the set (read, merge, write with the lock token; never drops an address). Holds while every
requested address of the set's IP version is in the set."""
from __future__ import annotations

import asyncio

from pydantic import ValidationError

from ..api.incident import Step
from ..api.security import WafScope, parse_cidr, parse_cidr_loose
from ..ports import waf
from .base import CommaList, Held, Outcome, Params, StepAction, StepContext, register
from .changes import changed, refused

UPDATE_IP_SET = "wafv2:UpdateIPSet"


class BlockIpsParams(Params):
    """block-ips-<set>: ``addresses`` added to a WAFv2 IP set (``region`` us-east-1 for CLOUDFRONT)."""

    name: str
    id: str
    scope: str
    region: str | None = None
    addresses: CommaList
    allow_private_ranges: bool = False
    allow_world_ranges: bool = False

    def target_region(self) -> str | None:
        return self.region


class BlockIps(StepAction[BlockIpsParams]):
    """Merge the addresses into the IP set."""

    names = (UPDATE_IP_SET,)
    params = BlockIpsParams

    async def execute(self, ctx: StepContext, p: BlockIpsParams) -> Outcome:
        try:
            params = waf.BlockAddressesParams(name=p.name, id=p.id, scope=WafScope(p.scope), region=p.region,
                                              addresses=p.addresses, allow_private_ranges=p.allow_private_ranges,
                                              allow_world_ranges=p.allow_world_ranges)
        except ValidationError as err:
            return refused(err)
        port = ctx.aws.waf(p.region or ctx.spec.targets.region, ctx.spec.targets.role_key)
        return changed(await asyncio.to_thread(port.block_addresses, params))

    def observe(self, ctx: StepContext, p: BlockIpsParams) -> tuple[str, list[str]]:
        """(IP version, addresses) of the set."""
        region = p.region or ctx.spec.targets.region
        return ctx.aws.waf(region, ctx.spec.targets.role_key).addresses(p.name, p.id, WafScope(p.scope), p.region)

    def holds(self, step: Step, p: BlockIpsParams, seen: tuple[str, list[str]]) -> list[Held]:
        version, present = seen
        mine = [a for a in p.addresses if f"IPV{parse_cidr(a).version}" == version]
        missing = [a for a in mine if not any(parse_cidr_loose(a) == parse_cidr_loose(c) for c in present)]
        if missing:
            return [Held(False, f"WAF IP set {p.name} no longer blocks {', '.join(missing)}")]
        return [Held(True, f"WAF IP set {p.name} blocks {', '.join(mine) or 'none of them (other IP version)'}")]


register(BlockIps())
