"""revoke-ingress-<group>-<protocol>-<ports>: the runbook's "update security groups"
(``ec2:RevokeSecurityGroupIngress`` of exactly the rules asked for; narrower rules stay). Holds
while no rule matching a revoked one is back."""
from __future__ import annotations

import asyncio

from pydantic import ValidationError

from ..api.incident import Step
from ..api.security import IpProtocol
from ..ports import ec2
from ..ports.security import IngressRule
from .base import CommaList, Held, Outcome, Params, StepAction, StepContext, register
from .changes import changed, refused

REVOKE_SECURITY_GROUP_INGRESS = "ec2:RevokeSecurityGroupIngress"


class RevokeIngressParams(Params):
    """revoke-ingress-<group>-<protocol>-<ports>: the exact inbound rules from ``cidrs``."""

    group_id: str
    protocol: str
    from_port: int | None = None
    to_port: int | None = None
    cidrs: CommaList


class RevokeIngress(StepAction[RevokeIngressParams]):
    """Revoke exactly the rules asked for; a rule already gone is a no-op."""

    names = (REVOKE_SECURITY_GROUP_INGRESS,)
    params = RevokeIngressParams

    async def execute(self, ctx: StepContext, p: RevokeIngressParams) -> Outcome:
        try:
            params = ec2.RevokeIngressParams(group_id=p.group_id, protocol=IpProtocol(p.protocol),
                                             from_port=p.from_port, to_port=p.to_port, cidrs=p.cidrs)
        except ValidationError as err:
            return refused(err)
        port = ctx.aws.ec2(*ctx.region_role())
        return changed(await asyncio.to_thread(port.revoke_ingress, params))

    def observe(self, ctx: StepContext, p: RevokeIngressParams) -> list[IngressRule]:
        return [r for g in ctx.aws.ec2(*ctx.region_role()).security_groups([p.group_id]) for r in g.ingress]

    def holds(self, step: Step, p: RevokeIngressParams, seen: list[IngressRule]) -> list[Held]:
        back = [r for r in seen if any(r.matches(p.protocol, p.from_port, p.to_port, c) for c in p.cidrs)]
        if back:
            return [Held(False, f"{p.group_id} has {'; '.join(r.label() for r in back)} again")]
        return [Held(True, f"{p.group_id} has no rule from {', '.join(p.cidrs)} on those ports")]


register(RevokeIngress())
