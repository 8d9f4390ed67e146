"""Which resources a Terraform configuration manages did a CloudTrail call change (pure; no I/O).

The first half of "drift checked when someone changes a managed resource": the calls are ``AWS API
Call via CloudTrail`` events (or any delivery :func:`~.cloudtrail.read_records` reads), the managed
resources are those in a plan's prior state. The DriftCheck side is built on these: the event
intake (``events.trail``) records each matching call on the DriftCheck (:func:`change_record`,
:func:`with_change`), whose controller runs the check for the calls still :func:`pending`
(``runbooks.drift``: debounced) and names, per drifted resource, the calls :func:`attributed` to it
and whether the caller :func:`is_deployer`.

* **Mutating calls** (:func:`mutating`): ``readOnly`` false (CloudTrail User Guide, "CloudTrail
  record contents": ``readOnly`` says whether the operation only reads), or, in records without
  it, an operation whose name does not read (``Describe*``, ``Get*``, ``List*``, ...); that
  succeeded (an ``errorCode`` changed nothing); not a console sign-in.
* **Resource identifiers of a call** (:func:`identifiers`): every ARN in ``requestParameters``,
  ``responseElements`` and ``resources``; values of keys ending in ``Id``/``Ids``/``Arn``/``Arns``
  (``groupId``, ``securityGroupRuleId``, ``accessKeyId``; not bookkeeping such as ``requestId`` or
  an ``ownerId``, which is an account); and of keys ending in ``Name``/``Names`` (``functionName``,
  ``roleName``, ``bucketName``), which Terraform uses as the id of many resources. A qualified
  Lambda ARN (``...:function:name:alias``) also names the function.
* **Ids and ARNs of the managed resources** (:func:`managed_resources`): ``id``, ``arn`` and
  ``name`` of every ``managed`` resource (not data sources) in ``prior_state`` (Terraform's JSON
  output format, "Plan Representation"), modules included; without a prior state, the ``before``
  of ``resource_changes``.
* **Matches** (:func:`changed_resources`): an ARN matches a resource's ARN or id; an id that is
  globally unique by its form (``sg-0a1b...``, ``sgr-...``, a UUID, an access key id) matches a
  resource's id or ARN; any other id or name matches only resources of the call's own service
  (``lambda.amazonaws.com`` and ``aws_lambda_*``): ``prod`` named by an API Gateway call is not a
  Lambda function called prod.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Iterable, Iterator

from ..ports.cloudtrail import TrailEvent

READ_PREFIXES = ("Describe", "Get", "List", "Head", "Lookup", "Search", "Select", "BatchGet", "Query", "Scan",
                 "Check", "Test", "Filter", "Simulate", "Validate", "Estimate", "Preview")
# Keys that name no resource the call acts on: the request, the caller, accounts, tokens.
BOOKKEEPING = {"requestid", "ownerid", "accountid", "groupownerid", "principalid", "clienttoken", "locktoken",
               "nextlocktoken", "idempotencytoken", "eventid", "sessionid", "instanceownerid", "creatorid",
               "useridentityid", "awsaccountid", "recipientaccountid", "requesterid"}
# An id whose form makes it unique across services: EC2-style (sg-, sgr-, vpc-, subnet-, i-, eni-, ...),
# a UUID (a WAF IP set), an access key.
UNIQUE_ID = re.compile(r"^([a-z]{1,12}-[0-9a-f]{8,17}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                       r"[0-9a-fA-F]{12}|A[KS]IA[A-Z0-9]{12,124})$")
# The Terraform resource types of an API's service, where they do not read aws_<service>_*.
SERVICE_TYPES: dict[str, tuple[str, ...]] = {
    "ec2": ("aws_instance", "aws_security_group", "aws_vpc", "aws_subnet", "aws_eip", "aws_network_", "aws_route",
            "aws_internet_gateway", "aws_nat_gateway", "aws_ebs_", "aws_launch_template", "aws_key_pair",
            "aws_ami", "aws_default_", "aws_vpc_", "aws_ec2_", "aws_placement_group", "aws_volume_attachment"),
    "elasticloadbalancing": ("aws_lb", "aws_alb", "aws_elb"),
    "monitoring": ("aws_cloudwatch_metric_alarm", "aws_cloudwatch_composite_alarm", "aws_cloudwatch_dashboard"),
    "logs": ("aws_cloudwatch_log_",),
    "events": ("aws_cloudwatch_event_",),
    "rds": ("aws_db_", "aws_rds_"),
    "apigateway": ("aws_api_gateway_", "aws_apigatewayv2_"),
    "es": ("aws_elasticsearch_", "aws_opensearch_"),
    "elasticfilesystem": ("aws_efs_",),
    "kafka": ("aws_msk_",),
    "states": ("aws_sfn_",),
    "autoscaling": ("aws_autoscaling_", "aws_launch_configuration"),
}


@dataclass(frozen=True)
class Identifier:
    """A resource identifier a call names: its ``value``, where (``requestParameters.groupId``) and
    ``kind``: ``arn``, ``id`` or ``name``."""

    value: str
    where: str
    kind: str


@dataclass(frozen=True)
class ManagedResource:
    """A resource of the prior state: its address and type, and the ids, ARNs and names it goes by."""

    address: str
    type: str
    ids: frozenset[str]
    arns: frozenset[str]
    names: frozenset[str]


@dataclass(frozen=True)
class Match:
    """``call`` named the managed resource ``address`` by ``identifier``."""

    address: str
    call: TrailEvent
    identifier: Identifier


def service(call: TrailEvent) -> str:
    """The API's service: ``lambda`` for ``lambda.amazonaws.com``."""
    return call.event_source.split(".")[0]


def mutating(call: TrailEvent) -> bool:
    """A call that changed something (see the module docstring)."""
    if call.failed or call.sign_in:
        return False
    if call.read_only is not None:
        return not call.read_only
    return bool(call.event_name) and not call.event_name.startswith(READ_PREFIXES)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str) and value:
        yield value
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str) and item:
                yield item


def _kind(key: str) -> str | None:
    bare = key.lower()
    if bare in BOOKKEEPING:
        return None
    if bare.endswith(("id", "ids")):
        return "id"
    if bare.endswith(("arn", "arns")):
        return "arn"
    if bare.endswith(("name", "names")):
        return "name"
    return None


def _walk(node: Any, where: str) -> Iterator[Identifier]:
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}"
            kind = _kind(str(key))
            for text in _strings(value):
                if text.startswith("arn:"):
                    yield Identifier(text, path, "arn")
                elif kind is not None:
                    yield Identifier(text, path, "id" if kind == "arn" else kind)
            if isinstance(value, (dict, list)):
                yield from _walk(value, path)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, (dict, list)):
                yield from _walk(item, where)


def _lambda_function(arn: str) -> str | None:
    """``arn:...:function:name`` for a qualified Lambda ARN (``...:function:name:alias``), else None."""
    parts = arn.split(":")
    return ":".join(parts[:7]) if len(parts) == 8 and parts[2] == "lambda" and parts[5] == "function" else None


def identifiers(call: TrailEvent) -> frozenset[Identifier]:
    """The resource identifiers ``call`` names (see the module docstring)."""
    found = set(_walk(call.request, "requestParameters")) | set(_walk(call.response, "responseElements"))
    found |= {Identifier(arn, "resources", "arn") for arn in call.resources}
    for ident in list(found):
        unqualified = _lambda_function(ident.value) if ident.kind == "arn" else None
        if unqualified:
            found.add(Identifier(unqualified, ident.where, "arn"))
    return frozenset(found)


def _values(values: dict[str, Any], key: str) -> set[str]:
    value = values.get(key)
    return {value} if isinstance(value, str) and value else set()


def _resources(module: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from module.get("resources") or []
    for child in module.get("child_modules") or []:
        yield from _resources(child)


def managed_resources(plan: dict[str, Any]) -> list[ManagedResource]:
    """The managed resources of ``plan`` (``terraform show -json`` of a saved plan) with their ids,
    ARNs and names, from its prior state (else the ``before`` of its resource changes)."""
    found: list[ManagedResource] = []
    root = (((plan.get("prior_state") or {}).get("values") or {}).get("root_module")) or {}
    entries = [(r.get("address", ""), r.get("type", ""), r.get("mode"), r.get("values") or {})
               for r in _resources(root)]
    if not entries:
        entries = [(r.get("address", ""), r.get("type", ""), r.get("mode"), (r.get("change") or {}).get("before") or {})
                   for r in plan.get("resource_changes") or []]
    for address, type_, mode, values in entries:
        if mode != "managed" or not isinstance(values, dict) or not values:  # a create has no before
            continue
        ids, arns = _values(values, "id"), _values(values, "arn")
        arns |= {i for i in ids if i.startswith("arn:")}
        found.append(ManagedResource(address, type_, frozenset(ids), frozenset(arns),
                                     frozenset(_values(values, "name"))))
    return found


def owns(call_service: str, resource_type: str) -> bool:
    """True when ``resource_type`` (``aws_lambda_function``) is a resource of the API ``call_service`` (``lambda``)."""
    prefixes = SERVICE_TYPES.get(call_service) or (f"aws_{call_service}_",)
    return resource_type == f"aws_{call_service}" or resource_type.startswith(prefixes)


def _matches(ident: Identifier, resource: ManagedResource, call_service: str) -> bool:
    value = ident.value
    if ident.kind == "arn":
        return value in resource.arns or value in resource.ids
    if ident.kind == "id" and UNIQUE_ID.match(value):
        return value in resource.ids or value in resource.arns
    return owns(call_service, resource.type) and (value in resource.ids or value in resource.names)


def changed_resources(calls: Iterable[TrailEvent], resources: list[ManagedResource]) -> list[Match]:
    """Each managed resource a mutating call named, with the call and the identifier, in call order
    (one match per call and resource)."""
    out: list[Match] = []
    for call in calls:
        if not mutating(call):
            continue
        seen: set[str] = set()
        for ident in sorted(identifiers(call), key=lambda i: (i.kind != "arn", i.where, i.value)):
            for resource in resources:
                if resource.address not in seen and _matches(ident, resource, service(call)):
                    seen.add(resource.address)
                    out.append(Match(resource.address, call, ident))
    return out


# -- what a DriftCheck keeps of them ------------------------------------------------------------
# The managed resources of a DriftCheck's last plan, as its report ConfigMap carries them for the
# event intake (``managed.json``): [[address, type, [ids], [arns], [names]], ...].
MANAGED_KEY = "managed.json"


def managed_json(resources: list[ManagedResource]) -> str:
    """``resources`` as the report's :data:`MANAGED_KEY` value (compact JSON)."""
    return json.dumps([[r.address, r.type, sorted(r.ids), sorted(r.arns), sorted(r.names)] for r in resources],
                      separators=(",", ":"))


def managed_from_json(text: str | None) -> list[ManagedResource]:
    """The resources of a :data:`MANAGED_KEY` value; [] for anything else (never raises)."""
    try:
        rows = json.loads(text or "[]")
    except ValueError:
        return []
    out = []
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, list) and len(row) == 5 and all(isinstance(v, str) for v in row[:2]):
            sets = [frozenset(str(v) for v in part) if isinstance(part, list) else frozenset() for part in row[2:]]
            out.append(ManagedResource(row[0], row[1], *sets))
    return out


def change_record(call: TrailEvent, addresses: list[str], received: dt.datetime) -> dict[str, Any]:
    """One entry of the DriftCheck's changes annotation (``api.driftcheck.CHANGES_ANNOTATION``): who
    called what, on which managed ``addresses``, and when the intake ``received`` it."""
    return {"eventId": call.event_id or "", "eventName": call.event_name, "principal": call.principal or "",
            "issuer": call.session_issuer, "time": call.time.isoformat() if call.time else None,
            "sourceAddress": call.source_ip, "userAgent": call.user_agent, "addresses": addresses[:50],
            "receivedAt": received.isoformat()}


def change_records(text: str | None) -> list[dict[str, Any]]:
    """The entries of a changes annotation, oldest first; [] for anything unreadable (never raises)."""
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [e for e in value if isinstance(e, dict) and isinstance(e.get("eventId"), str)
            and isinstance(e.get("addresses"), list)] if isinstance(value, list) else []


def with_change(text: str | None, entry: dict[str, Any], keep: int) -> str | None:
    """The annotation with ``entry`` added (newest last, the last ``keep``); None when an entry of the
    same CloudTrail event is there already (a redelivered event changes nothing)."""
    entries = change_records(text)
    if any(e["eventId"] == entry["eventId"] for e in entries):
        return None
    return json.dumps((entries + [entry])[-keep:], separators=(",", ":"))


def after(entries: list[dict[str, Any]], event_id: str | None) -> list[dict[str, Any]]:
    """The entries recorded after the one of CloudTrail event ``event_id`` (all of them when it is None
    or no longer among them: the annotation keeps the newest only)."""
    ids = [e["eventId"] for e in entries]
    return entries[ids.index(event_id) + 1:] if event_id in ids else list(entries)


def pending(entries: list[dict[str, Any]], answered: str | None) -> list[dict[str, Any]]:
    """The entries after ``answered`` (the newest one a run started for): each still owes a run."""
    return after(entries, answered)


ASSUMED_ROLE = re.compile(r"^arn:(?P<partition>aws[a-z-]*):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/")


def is_deployer(entry: dict[str, Any], deployers: Iterable[str]) -> bool:
    """The call's principal, or the role behind its session, is one of ``deployers`` (ARNs; a
    ``*`` glob allowed). An assumed-role session ``arn:aws:sts::<acct>:assumed-role/<role>/<session>``
    also matches the role ``arn:aws:iam::<acct>:role/<role>`` (path-less, as IAM names it in sessions)."""
    names = {entry.get("principal") or "", entry.get("issuer") or ""}
    m = ASSUMED_ROLE.match(entry.get("principal") or "")
    if m:
        names.add(f"arn:{m['partition']}:iam::{m['account']}:role/{m['role']}")
    return any(fnmatchcase(n, pattern) for n in names if n for pattern in deployers)


def attributed(entries: list[dict[str, Any]], drifted: Iterable[str], deployers: Iterable[str], limit: int,
               settled: str | None = None) -> list[dict[str, Any]]:
    """Per drifted resource address, the entries naming it: ``{address, entry, deployer}``, newest
    call first, at most ``limit``. Entries up to ``settled`` (the newest recorded when the last run
    that found no drift started) are left out: what they changed was gone, or never differed, when
    that run looked."""
    drifted, deployers = set(drifted), list(deployers)
    recent = after(entries, settled) if settled else entries
    out = [{"address": a, "entry": e, "deployer": is_deployer(e, deployers)}
           for e in reversed(recent) for a in e["addresses"] if a in drifted]
    return out[:limit]
