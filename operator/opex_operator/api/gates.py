"""Plan gates: limits an automatic apply of a Terraform plan must stay within (``PlanGates``).

A DriftCheck's ``spec.resolution.gates``, an Incident's ``spec.remediation.gates`` (for its
Terraform steps) and the operator policy's defaults per namespace and environment all have this
shape; the policy's can only be narrowed by a resource, never widened
(``guardrails.gates.merge``). A plan that fails a gate is not applied automatically: it waits for
a person, as with approval ``Manual``. What users asked of automation tools ("auto-apply only safe
plans: no destroy, no replace"; Spacelift's plan policies; Terraform's and OpenTofu's trackers)
is what the gates say.

Actions are Terraform's (``terraform show -json``, ``resource_changes[].change.actions``) plus
what else applying does: ``replace`` (``["delete", "create"]`` or ``["create", "delete"]``),
``import``, ``move`` (a ``moved`` block), ``invoke`` (an action invocation, Terraform 1.14).
``delete`` also covers both replace orders, since a replacement destroys the object too.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field

from .common import Bounded256, Bounded512, Model, Status

# A resource type or address pattern: ``*`` matches any characters (dots and brackets included),
# every other character itself (terraform.plan.address_matches), e.g. aws_iam_* or module.legacy.*.
GATE_PATTERN = r"^[^\x00-\x1f\x7f]+$"
MAX_CHANGED_RESOURCES = 10000
Pattern = Annotated[str, Field(max_length=512, pattern=GATE_PATTERN)]


class GateAction(StrEnum):
    """What applying a plan does to one resource (invoke: to an action block)."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"      # every destruction: delete, and both replace orders
    REPLACE = "replace"    # delete-create or create-delete
    READ = "read"          # a data source read at apply time
    FORGET = "forget"      # removed from the state, the object left alone (a `removed` block)
    IMPORT = "import"      # an existing object brought under Terraform (an `import` block)
    MOVE = "move"          # a new address for an object in the state (a `moved` block)
    INVOKE = "invoke"      # an action invocation (Terraform 1.14 `action` blocks)


class PlanGates(Model):
    """Gates a plan must pass before it is applied without a person: each one set narrows what an
    automatic apply may do. Unset (or empty) gates do not apply. Unknown keys are refused (a
    misspelt gate would otherwise silently allow everything)."""

    model_config = Model.model_config | ConfigDict(extra="forbid")

    deny_actions: list[GateAction] = Field(
        default_factory=list, max_length=len(GateAction), json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Actions that stop an automatic apply: create, update, delete (also catches replace: a "
                    "replacement destroys the object), replace, read, forget, import, move, invoke.")
    max_changed_resources: int | None = Field(
        default=None, ge=0, le=MAX_CHANGED_RESOURCES,
        description="The most resources one automatic apply may change (reads are not changes; moves, imports "
                    "and forgets are; resources left out of the report by ignore count too).")
    allowed_resource_types: list[Pattern] = Field(
        default_factory=list, max_length=50,
        description="When set, every resource the plan changes must be of one of these types (* matches any "
                    "characters, e.g. aws_lambda_* or terraform_data).")
    denied_resource_types: list[Pattern] = Field(
        default_factory=list, max_length=50,
        description="Resource types no automatic apply may change, e.g. aws_iam_* or aws_db_instance.")
    allowed_addresses: list[Pattern] = Field(
        default_factory=list, max_length=50,
        description="When set, every resource the plan changes must match one of these addresses (* matches any "
                    "characters, dots and brackets included, e.g. module.app.*).")
    denied_addresses: list[Pattern] = Field(
        default_factory=list, max_length=50,
        description="Addresses no automatic apply may change, e.g. module.network.* or aws_db_instance.main.")
    deny_changes_to_ignored: bool = Field(
        default=False,
        description="true: a plan that would change a resource the report leaves out (spec.ignore) is not applied "
                    "automatically; an apply changes those too, and nobody was shown them.")

    def empty(self) -> bool:
        """True when no gate is set."""
        return self == PlanGates()


MAX_GATE_FAILURES = 10


class GateFailureRecord(Status):
    """A gate the last plan failed (``guardrails.gates.GateFailure``): an automatic apply of that plan
    is held until a person approves its checksum."""

    gate: str = Field(max_length=32, description="The gate, by its field name, e.g. denyActions.")
    source: Bounded256 = Field(description="Whose gate: the operator policy rule (and environment) or spec.resolution.gates.")
    detail: Bounded512 = Field(description="What failed it: the action, the count, the pattern.")
    resources: list[Bounded512] = Field(default_factory=list, max_length=10,
                                          description="The resources that failed it, in plan order (the first 10).")
