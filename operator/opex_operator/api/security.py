"""The Incident's security targets and containment limits (``spec.targets.security``,
``spec.remediation.security``), for ``type: SecurityIncident``.

Source: the runbook, "Security Incident Response": containment (disable the compromised user,
revoke its access keys, block the suspicious IPs in WAF), investigation (CloudTrail records
and API Gateway access logs of the last 24 hours), recovery (rotate the credentials, close the
world-open security group rule, redeploy through the pipeline).

Every field is optional. Rules the API server checks (CEL ``x-kubernetes-validations``):
CIDRs are in CIDR notation with no host bits set; a WAF IP set of scope CLOUDFRONT lives in
us-east-1 (AWS WAF: "for CLOUDFRONT, you must use the US East (N. Virginia) Region"); tcp and
udp rules name their ports; addresses that would be blocked in WAF are neither the whole
internet nor private ranges unless ``spec.remediation.security`` allows it. The same CIDR rules
are applied by the pydantic models, so a params model built by the operator cannot carry what
the API server would refuse.
"""
from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, Field, JsonValue

from .common import AWS_REGION, Model, obj_default

# Ranges a WAF block must not contain unless explicitly allowed: RFC 1918 private networks,
# RFC 6598 shared address space, loopback, link-local (IPv4 and IPv6) and RFC 4193 unique local
# IPv6. Blocking them would cut off the estate's own traffic (load balancers, VPN, health checks).
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
                  "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10")
WORLD = ("0.0.0.0/0", "::/0")
IAM_USER_NAME = r"^[\w+=,.@-]+$"
# Access key ids of IAM users start with AKIA (ASIA ids are temporary session credentials,
# which UpdateAccessKey cannot deactivate). IAM API reference, AccessKeyMetadata.
ACCESS_KEY_ID = r"^AKIA[A-Z0-9]{12,124}$"
LOG_GROUP = r"^[\.\-_/#A-Za-z0-9]+$"
PIPELINE_NAME = r"^[A-Za-z0-9.@\-_]+$"
# A secret's ARN or its name (Secrets Manager API reference, SecretId).
SECRET_ID = r"^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:)?[A-Za-z0-9/_+=.@!-]+$"


def _cel_in(ranges: tuple[str, ...], var: str) -> str:
    items = ", ".join(f"'{r}'" for r in ranges)
    # Aligned blocks overlap exactly when one contains the other.
    return f"[{items}].exists(p, cidr(p).containsCIDR(cidr({var})) || cidr({var}).containsCIDR(cidr(p)))"


def parse_cidr(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """``value`` as a network. Raises ValueError unless it is CIDR notation without host bits
    (``203.0.113.7/32``, ``2001:db8::/48``; not ``203.0.113.7`` nor ``10.0.0.1/8``)."""
    if "/" not in value:
        raise ValueError(f"{value!r} is not in CIDR notation: write {value}/32 (IPv4) or {value}/128 (IPv6)")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise ValueError(f"{value!r} is not a CIDR block without host bits: {err}") from None


def parse_cidr_loose(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A block as AWS returns it: host bits allowed, a bare address is /32 or /128."""
    return ipaddress.ip_network(value, strict=False)


def is_world(value: str) -> bool:
    """True for a block of prefix length 0 (``0.0.0.0/0``, ``::/0``): the whole internet."""
    return parse_cidr(value).prefixlen == 0


def is_private(value: str) -> bool:
    """True when the block overlaps one of :data:`PRIVATE_RANGES`."""
    net = parse_cidr(value)
    return any(net.version == r.version and net.overlaps(r) for r in map(ipaddress.ip_network, PRIVATE_RANGES))


def refuse_unblockable(cidrs: list[str], allow_private: bool, allow_world: bool) -> None:
    """Raise ValueError naming the first block that must not go into a WAF IP set without the
    matching ``spec.remediation.security`` flag (allowWorldRanges, allowPrivateRanges)."""
    for c in cidrs:
        if is_world(c) and not allow_world:
            raise ValueError(f"refusing to block {c} (the whole internet); set "
                             "spec.remediation.security.allowWorldRanges: true if that is really meant")
        if not is_world(c) and is_private(c) and not allow_private:
            raise ValueError(f"refusing to block {c}: it overlaps a private range ({', '.join(PRIVATE_RANGES)}); "
                             "set spec.remediation.security.allowPrivateRanges: true if that is really meant")


def _checked_cidr(value: str) -> str:
    parse_cidr(value)
    return value


Cidr = Annotated[str, AfterValidator(_checked_cidr), Field(max_length=49, json_schema_extra={
    "x-kubernetes-validations": [{"rule": "isCIDR(self) && cidr(self) == cidr(self).masked()",
                                  "message": "must be a CIDR block without host bits, e.g. 203.0.113.7/32 or "
                                             "2001:db8::/48"}]})]
AccessKeyId = Annotated[str, Field(max_length=128, pattern=ACCESS_KEY_ID)]
SecretId = Annotated[str, Field(max_length=2048, pattern=SECRET_ID)]


class IamUserTarget(Model):
    """A compromised IAM user and the access keys of it that leaked."""

    user_name: str = Field(min_length=1, max_length=64, pattern=IAM_USER_NAME,
                           description="IAM user name. Every action names it: UpdateAccessKey without a user "
                                       "would act on the operator's own key.")
    access_key_ids: list[AccessKeyId] = Field(
        default_factory=list, max_length=2, description="Leaked access key ids of this user (AKIA..., at most the "
        "two IAM allows); each is deactivated (or deleted) and its CloudTrail records are read.",
        json_schema_extra={"x-kubernetes-list-type": "set"})


class WafScope(StrEnum):
    CLOUDFRONT = "CLOUDFRONT"
    REGIONAL = "REGIONAL"


class WafIpSetTarget(Model):
    """A WAFv2 IP set the suspicious addresses are added to (its web ACL's rule blocks them)."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "self.scope != 'CLOUDFRONT' || !has(self.region) || self.region == 'us-east-1'",
         "message": "an IP set of scope CLOUDFRONT is managed in us-east-1: set region to us-east-1 or omit it"}]}}

    name: str = Field(min_length=1, max_length=128, pattern=r"^[\w\-]+$", description="IP set name.")
    id: str = Field(min_length=1, max_length=36, pattern=r"^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$",
                    description="IP set id; it must belong to the named set.")
    scope: WafScope = Field(description="CLOUDFRONT (managed in us-east-1) or REGIONAL.")
    region: str | None = Field(default=None, max_length=32, pattern=AWS_REGION,
                               description="Region of a REGIONAL set (spec.targets.region when omitted).")


class IpProtocol(StrEnum):
    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"
    ICMPV6 = "icmpv6"
    ALL = "-1"


class SecurityGroupRuleTarget(Model):
    """Inbound rules of a security group to close, exactly as listed (narrower rules stay)."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "!(self.protocol in ['tcp', 'udp']) || (has(self.fromPort) && has(self.toPort) "
                 "&& self.fromPort <= self.toPort)",
         "message": "tcp and udp rules need fromPort and toPort, with fromPort <= toPort"},
        {"rule": "self.protocol != '-1' || (!has(self.fromPort) && !has(self.toPort))",
         "message": "protocol -1 (all traffic) takes no fromPort/toPort"}]}}

    group_id: str = Field(min_length=1, max_length=32, pattern=r"^sg-[0-9a-f]{8,17}$", description="Security group id.")
    protocol: IpProtocol = Field(default=IpProtocol.TCP, description="tcp, udp, icmp, icmpv6 or -1 (all traffic).")
    from_port: int | None = Field(default=None, ge=-1, le=65535,
                                  description="First port (the ICMP type for icmp); the rule's, exactly.")
    to_port: int | None = Field(default=None, ge=-1, le=65535,
                                description="Last port (the ICMP code for icmp); the rule's, exactly.")
    cidrs: list[Cidr] = Field(default=list(WORLD), min_length=1, max_length=10,
                              description="Source CIDRs whose rule is revoked (IPv4 and IPv6); the world, "
                                          "0.0.0.0/0 and ::/0, when omitted.",
                              json_schema_extra={"x-kubernetes-list-type": "set"})


class SecurityTargets(Model):
    """What a security incident is about: who leaked, from where, and what to close and recover."""

    iam_users: list[IamUserTarget] = Field(default_factory=list, max_length=10,
                                           description="Compromised IAM users: console login removed, keys contained.",
                                           json_schema_extra={"x-kubernetes-list-type": "map",
                                                              "x-kubernetes-list-map-keys": ["userName"]})
    source_ips: list[Cidr] = Field(default_factory=list, max_length=50,
                                   description="Suspicious source addresses in CIDR notation (IPv4 and IPv6): "
                                               "searched in CloudTrail and access logs, blocked in wafIpSets.",
                                   json_schema_extra={"x-kubernetes-list-type": "set"})
    known_cidrs: list[Cidr] = Field(default_factory=list, max_length=20,
                                    description="Where the users' legitimate calls come from (office, VPN, CI NAT); "
                                                "a call from elsewhere counts as from an unknown address.",
                                    json_schema_extra={"x-kubernetes-list-type": "set"})
    waf_ip_sets: list[WafIpSetTarget] = Field(default_factory=list, max_length=4,
                                              description="WAFv2 IP sets sourceIps are added to (each takes the "
                                                          "addresses of its own IP version).",
                                              json_schema_extra={"x-kubernetes-list-type": "map",
                                                                 "x-kubernetes-list-map-keys": ["id"]})
    security_groups: list[SecurityGroupRuleTarget] = Field(default_factory=list, max_length=10,
                                                           description="World-open inbound rules to revoke.")
    secrets: list[SecretId] = Field(default_factory=list, max_length=10,
                                    description="Secrets Manager secrets (ARN or name) to rotate; each needs "
                                                "rotation configured.",
                                    json_schema_extra={"x-kubernetes-list-type": "set"})
    redeploy_pipeline: str | None = Field(default=None, min_length=1, max_length=100, pattern=PIPELINE_NAME,
                                          description="CodePipeline started after recovery, followed to its end.")
    api_access_log_group: str | None = Field(default=None, min_length=1, max_length=512, pattern=LOG_GROUP,
                                             description="API Gateway access-log group searched for sourceIps.")
    lookback_hours: int = Field(default=24, ge=1, le=2160,
                                description="Hours of CloudTrail records and access logs read (CloudTrail "
                                            "LookupEvents keeps 90 days).")


class AccessKeyAction(StrEnum):
    DEACTIVATE = "Deactivate"
    DELETE = "Delete"


class SecurityRemediation(Model):
    """Limits of the containment steps of a security incident."""

    access_key_action: AccessKeyAction = Field(
        default=AccessKeyAction.DEACTIVATE, description="Deactivate (default: reversible) or Delete the leaked keys.")
    allow_private_ranges: bool = Field(default=False, description="Allow blocking sourceIps that overlap private "
                                                                  "ranges (RFC 1918, loopback, link-local, fc00::/7).")
    allow_world_ranges: bool = Field(default=False, description="Allow blocking 0.0.0.0/0 or ::/0.")


def security_remediation_field() -> Any:
    """``spec.remediation.security``, defaulted to ``{}`` so the API server fills its defaults."""
    return Field(default_factory=SecurityRemediation, json_schema_extra=obj_default(),
                 description="Limits of the security incident's containment steps.")


_BLOCKED = "self.targets.security.sourceIps"
_BLOCKS = (f"!has(self.targets.security) || !has(self.targets.security.wafIpSets) "
           f"|| size(self.targets.security.wafIpSets) == 0 || !has({_BLOCKED})")
# Rules of IncidentSpec that span spec.targets.security and spec.remediation.security.
SPEC_RULES: list[JsonValue] = [
    {"rule": f"{_BLOCKS} || (has(self.remediation.security) && self.remediation.security.allowWorldRanges) "
             f"|| {_BLOCKED}.all(c, cidr(c).prefixLength() != 0)",
     "message": "spec.targets.security.sourceIps would block 0.0.0.0/0 or ::/0 in WAF: remove it, or set "
                "spec.remediation.security.allowWorldRanges: true"},
    {"rule": f"{_BLOCKS} || (has(self.remediation.security) && self.remediation.security.allowPrivateRanges) "
             f"|| {_BLOCKED}.all(c, cidr(c).prefixLength() == 0 || !{_cel_in(PRIVATE_RANGES, 'c')})",
     "message": "spec.targets.security.sourceIps would block a private range in WAF: remove it, or set "
                "spec.remediation.security.allowPrivateRanges: true"},
]
