"""Plan gates (pure): the gates in force for one apply, and whether a plan passes them.

* :func:`merge` combines the operator policy's gates (per namespace, then per environment) with a
  resource's own (``spec.resolution.gates``, ``spec.remediation.gates``) into the gates in force.
  Every layer only adds constraints: a denied action stays denied, the lowest maximum wins, each
  allow-list must be satisfied on its own, deny-lists add up. So a resource can never widen what
  the policy allows, whatever it sets (DESIGN.md §3: policy is never taken from a resource).
* :func:`evaluate` checks a plan's changes against them and returns a :class:`GateResult`
  naming each gate that failed, where it came from and the resources that failed it.

The changes are those of :mod:`opex_operator.terraform.plan` (``show -json`` or a ``plan -json``
stream, action invocations included): a plan is read once, without ``ignore`` (the gate
``denyChangesToIgnored`` must see the resources the report leaves out; an apply changes them too).
Source of the action kinds: Terraform's JSON output format (``change.actions``, ``importing``,
``previous_address``, ``action_invocations``); see :mod:`opex_operator.api.gates`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Iterable, Sequence

from ..api.gates import GateAction, PlanGates
from ..terraform.plan import ActionInvocation, PlanSummary, ResourceChange, address_matches

# Terraform's actions -> the gate actions they are (a replacement destroys the object, so it is a delete too).
_KINDS: dict[tuple[str, ...], frozenset[GateAction]] = {
    ("create",): frozenset({GateAction.CREATE}),
    ("update",): frozenset({GateAction.UPDATE}),
    ("delete",): frozenset({GateAction.DELETE}),
    ("delete", "create"): frozenset({GateAction.REPLACE, GateAction.DELETE}),
    ("create", "delete"): frozenset({GateAction.REPLACE, GateAction.DELETE}),
    ("read",): frozenset({GateAction.READ}),
    ("forget",): frozenset({GateAction.FORGET}),
    ("no-op",): frozenset(),
    (): frozenset(),
}
MAX_LISTED = 10  # resources named per failed gate in a message


class Gate(StrEnum):
    """The gates, by their field names in ``PlanGates``."""

    DENY_ACTIONS = "denyActions"
    MAX_CHANGED_RESOURCES = "maxChangedResources"
    ALLOWED_RESOURCE_TYPES = "allowedResourceTypes"
    DENIED_RESOURCE_TYPES = "deniedResourceTypes"
    ALLOWED_ADDRESSES = "allowedAddresses"
    DENIED_ADDRESSES = "deniedAddresses"
    DENY_CHANGES_TO_IGNORED = "denyChangesToIgnored"


@dataclass(frozen=True)
class Layer:
    """Gates and where they come from, e.g. ``operator policy rule 2 (namespaces ['payments-*'])`` or
    ``spec.resolution.gates``: failures name it, so a person knows whom to ask."""

    source: str
    gates: PlanGates | None


@dataclass(frozen=True)
class EffectiveGates:
    """The gates in force for one apply (:func:`merge`); each constraint keeps its source."""

    denied_actions: tuple[tuple[GateAction, str], ...] = ()
    max_changed: tuple[int, str] | None = None
    allowed_types: tuple[tuple[tuple[str, ...], str], ...] = ()     # each list must be satisfied
    denied_types: tuple[tuple[str, str], ...] = ()
    allowed_addresses: tuple[tuple[tuple[str, ...], str], ...] = ()  # each list must be satisfied
    denied_addresses: tuple[tuple[str, str], ...] = ()
    deny_ignored: str | None = None                                 # the source that set it

    def empty(self) -> bool:
        """True when nothing is gated."""
        return self == EffectiveGates()


def merge(*layers: Layer) -> EffectiveGates:
    """The gates in force when every layer applies, operator policy first (its source is named when
    a constraint appears in several layers). Never wider than any one layer: see the module docstring."""
    denied: dict[GateAction, str] = {}
    max_changed: tuple[int, str] | None = None
    allowed_types: list[tuple[tuple[str, ...], str]] = []
    denied_types: list[tuple[str, str]] = []
    allowed_addresses: list[tuple[tuple[str, ...], str]] = []
    denied_addresses: list[tuple[str, str]] = []
    deny_ignored: str | None = None
    for layer in layers:
        g = layer.gates
        if g is None:
            continue
        for action in g.deny_actions:
            denied.setdefault(GateAction(action), layer.source)
        if g.max_changed_resources is not None and (max_changed is None or g.max_changed_resources < max_changed[0]):
            max_changed = (g.max_changed_resources, layer.source)
        if g.allowed_resource_types:
            allowed_types.append((tuple(g.allowed_resource_types), layer.source))
        if g.allowed_addresses:
            allowed_addresses.append((tuple(g.allowed_addresses), layer.source))
        denied_types += [(p, layer.source) for p in g.denied_resource_types if p not in dict(denied_types)]
        denied_addresses += [(p, layer.source) for p in g.denied_addresses if p not in dict(denied_addresses)]
        if g.deny_changes_to_ignored and deny_ignored is None:
            deny_ignored = layer.source
    order = list(GateAction)
    return EffectiveGates(tuple(sorted(denied.items(), key=lambda item: order.index(item[0]))), max_changed,
                          tuple(allowed_types), tuple(denied_types), tuple(allowed_addresses),
                          tuple(denied_addresses), deny_ignored)


# -- what a plan does --------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlannedChange:
    """One thing applying the plan does: a resource instance (or an action block, ``invoke``), its
    type and the gate actions it is (empty for a plain no-op)."""

    address: str
    type: str
    actions: frozenset[GateAction]

    @property
    def changes(self) -> bool:
        """True when it changes something: anything but a read (a data source read changes nothing)."""
        return bool(self.actions - {GateAction.READ})

    def describe(self) -> str:
        """``aws_instance.web (delete, replace)``."""
        order = list(GateAction)
        return f"{self.address} ({', '.join(a.value for a in sorted(self.actions, key=order.index))})"


def resource_type(address: str) -> str:
    """The resource (or action) type of a Terraform address: ``aws_instance`` for
    ``module.app["eu.west"].aws_instance.web[0]``, ``aws_ami`` for ``data.aws_ami.ubuntu``,
    ``aws_lambda_invoke`` for ``action.aws_lambda_invoke.notify`` (Terraform docs, "Resource
    Addressing": module path, then ``[data.|ephemeral.|action.]TYPE.NAME[KEY]``). Instance keys may
    hold dots and brackets inside their quotes."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted, escaped = 0, False, False
    for char in address:
        if quoted:
            quoted = not (char == '"' and not escaped)
            escaped = char == "\\" and not escaped
        elif char == '"':
            quoted = True
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "." and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        if depth == 0 and not quoted and char not in "[]":
            current.append(char)
    parts.append("".join(current))
    while len(parts) > 2 and parts[0] == "module":
        parts = parts[2:]
    if len(parts) > 2 and parts[0] in ("data", "ephemeral", "action"):
        parts = parts[1:]
    return parts[0] if len(parts) >= 2 else address


def kinds(change: ResourceChange) -> frozenset[GateAction]:
    """The gate actions of one resource change (see the module docstring of :mod:`..api.gates`)."""
    found = set(_KINDS.get(tuple(change.actions), frozenset({GateAction.UPDATE})))
    if change.importing:
        found.add(GateAction.IMPORT)
    if change.moved:
        found.add(GateAction.MOVE)
    return frozenset(found)


def planned_changes(summary: PlanSummary) -> list[PlannedChange]:
    """What applying ``summary``'s plan does, in plan order: resource changes, then action invocations."""
    found = [PlannedChange(c.address, resource_type(c.address), kinds(c)) for c in summary.changes]
    found += [invocation(i) for i in summary.action_invocations]
    return [c for c in found if c.actions]


def invocation(inv: ActionInvocation) -> PlannedChange:
    """An action invocation as a planned change (``invoke``)."""
    return PlannedChange(inv.address, resource_type(inv.address), frozenset({GateAction.INVOKE}))


def import_change(address: str) -> PlannedChange:
    """What ``terraform import ADDRESS ID`` does, as a planned change: an Incident's import step
    imports without a plan, and its gates are checked on this."""
    return PlannedChange(address, resource_type(address), frozenset({GateAction.IMPORT}))


# -- the verdict -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class GateFailure:
    """One gate a plan failed: which gate, whose (``source``), the resources that failed it (plan
    order) and what about them (``detail``: the action, the count, the pattern)."""

    gate: Gate
    source: str
    detail: str
    resources: tuple[str, ...] = ()

    def describe(self) -> str:
        """``denyActions of operator policy rule 1 (...): delete of aws_db_instance.main, aws_instance.web``."""
        shown = ", ".join(self.resources[:MAX_LISTED])
        more = f" and {len(self.resources) - MAX_LISTED} more" if len(self.resources) > MAX_LISTED else ""
        joint = " of " if self.gate == Gate.DENY_ACTIONS else ": "
        return f"{self.gate.value} of {self.source}: {self.detail}" + (f"{joint}{shown}{more}" if shown else "")


@dataclass(frozen=True)
class GateResult:
    """Whether a plan passes the gates in force: ``failures`` (none: it passes), and how many
    resources it changes (``changed``, the count ``maxChangedResources`` limits)."""

    failures: tuple[GateFailure, ...] = ()
    changed: int = 0
    checked: tuple[PlannedChange, ...] = field(default=(), repr=False)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def gates(self) -> list[Gate]:
        """The gates that failed, each once, in the order checked."""
        return list(dict.fromkeys(f.gate for f in self.failures))

    def message(self) -> str:
        """One paragraph for a condition or an Event: every failed gate with its resources, or that all passed."""
        if self.passed:
            return f"the plan passes every gate ({self.changed} resource(s) changed)"
        return describe(self.failures)


def describe(failures: Sequence[GateFailure]) -> str:
    """The failures for a condition or an Event, ``; ``-joined (:meth:`GateFailure.describe`), a
    source's denied actions on the same resources said once: a replacement that both ``delete``
    and ``replace`` deny is ``delete, replace of aws_instance.web``, not the address twice."""
    merged: dict[tuple, GateFailure] = {}
    for f in failures:
        key = (f.gate, f.source, f.resources) if f.gate == Gate.DENY_ACTIONS else (f,)
        seen = merged.get(key)
        merged[key] = f if seen is None else GateFailure(f.gate, f.source, f"{seen.detail}, {f.detail}", f.resources)
    return "; ".join(f.describe() for f in merged.values())


def evaluate(changes: Iterable[PlannedChange], gates: EffectiveGates, ignore: Iterable[str] = ()) -> GateResult:
    """Check ``changes`` (:func:`planned_changes`, or :func:`import_change`) against ``gates``;
    ``ignore`` is the resource's ``spec.ignore`` (for ``denyChangesToIgnored``). Pure."""
    changes = tuple(changes)
    ignore = list(ignore)
    changing = [c for c in changes if c.changes]
    resources = [c for c in changing if GateAction.INVOKE not in c.actions]
    failures: list[GateFailure] = []
    for action, source in gates.denied_actions:
        hit = tuple(c.address for c in changes if action in c.actions)
        if hit:
            failures.append(GateFailure(Gate.DENY_ACTIONS, source, action.value, hit))
    if gates.max_changed is not None and len(resources) > gates.max_changed[0]:
        limit, source = gates.max_changed
        failures.append(GateFailure(Gate.MAX_CHANGED_RESOURCES, source,
                                    f"{len(resources)} resources changed, at most {limit} allowed"))
    for patterns, source in gates.allowed_types:
        hit = tuple(c.address for c in changing if not any(address_matches(p, c.type) for p in patterns))
        if hit:
            failures.append(GateFailure(Gate.ALLOWED_RESOURCE_TYPES, source,
                                        f"types outside {list(patterns)}", hit))
    for pattern, source in gates.denied_types:
        hit = tuple(c.address for c in changing if address_matches(pattern, c.type))
        if hit:
            failures.append(GateFailure(Gate.DENIED_RESOURCE_TYPES, source, f"type {pattern}", hit))
    for patterns, source in gates.allowed_addresses:
        hit = tuple(c.address for c in changing if not any(address_matches(p, c.address) for p in patterns))
        if hit:
            failures.append(GateFailure(Gate.ALLOWED_ADDRESSES, source, f"addresses outside {list(patterns)}", hit))
    for pattern, source in gates.denied_addresses:
        hit = tuple(c.address for c in changing if address_matches(pattern, c.address))
        if hit:
            failures.append(GateFailure(Gate.DENIED_ADDRESSES, source, f"address {pattern}", hit))
    if gates.deny_ignored is not None:
        hit = tuple(c.address for c in changing if any(address_matches(p, c.address) for p in ignore))
        if hit:
            failures.append(GateFailure(Gate.DENY_CHANGES_TO_IGNORED, gates.deny_ignored,
                                        f"changes to resources spec.ignore leaves out of the report ({ignore})", hit))
    return GateResult(tuple(failures), len(resources), changes)


def evaluate_plan(summary: PlanSummary, gates: EffectiveGates, ignore: Iterable[str] = ()) -> GateResult:
    """:func:`evaluate` on a plan read without ``ignore`` (``parse_show_json(doc)``, ``parse_any(text)``).

    Raises ValueError when ``summary`` was read with ``ignore``: the changes it left out would
    escape every gate, and an apply makes them all the same.
    """
    if summary.ignored:
        raise ValueError("the plan was read with ignore patterns; read it without them for the gates "
                         "(they must see every change an apply makes)")
    return evaluate(planned_changes(summary), gates, ignore)
