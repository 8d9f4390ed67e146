"""What every step action is: one object holding its params model, ``execute``, ``observe`` and
``holds`` (its verification) and ``undo``, and the registry the Incident controller looks actions up in.

A step's ``action`` names what it does the way the operator policy names it (IAM-style
``service:Operation``); mutating actions are gated (DESIGN.md §3). ``status.steps[].params`` is a
string map on the wire; :func:`params_of` reads it back into the action's model, the only way
code reads parameters.

A new action is one module defining a :class:`StepAction` subclass and one
``register(MyAction())`` (``steps/__init__.py`` imports the built-in modules, so theirs run at
import). Nothing else changes: the controller runs it, verifies it and reports its undo through
the object.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar


from ..api.incident import IncidentSpec, Step
from ..policy import Policy
from ..ports.params import CommaList, NoParams, Params

if TYPE_CHECKING:  # the ports' own imports are types only; an action reaches AWS through them at run time
    from ..ports.objects import ObjectRef
    from ..ports import AwsPorts, Objects, Workspaces

# The runbook's read-only steps: the Incident lifecycle runs them itself (never through the registry).
ASSESS, CLASSIFY, VERIFY, NOTIFY = "runbook:Assess", "runbook:Classify", "runbook:Verify", "sns:Publish"
READS = frozenset({ASSESS, CLASSIFY, VERIFY, NOTIFY})


@dataclass
class Outcome:
    """What one call of an action achieved. ``done`` False: still in progress (ask again after
    ``requeue`` seconds). ``params``: parameters to record on the step (e.g. the execution it started).
    ``undo``: how to reverse what it changed, recorded on the step for the post-incident report."""

    done: bool
    ok: bool = True
    outputs: str | None = None
    error: str | None = None
    retryable: bool = False
    requeue: float = 2.0
    rollback_ref: str | None = None
    params: Params | None = None
    undo: str | None = None


@dataclass
class StepContext:
    """The step being run (or verified), its incident, and the ports an action may use. ``resumed``:
    the step was already Running when this pass began (an earlier attempt's call may have gone
    through); ``labels``: the Incident's labels (a child object carries its shard)."""

    ref: ObjectRef
    spec: IncidentSpec
    step: Step
    now: dt.datetime
    aws: AwsPorts
    objects: Objects
    workspaces: Workspaces
    resumed: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)   # the operator policy: Terraform's grant comes from it

    def region_role(self) -> tuple[str | None, str | None]:
        return self.spec.targets.region, self.spec.targets.role_key


@dataclass(frozen=True)
class Held:
    """Whether what a step changed still holds: ``ok`` True (it holds), None (not yet: a change
    still settling, a metric period not over) or False (it was undone, or it did not work); ``seen``
    says what was observed, for the Verify step's outputs and the Remediated condition."""

    ok: bool | None
    seen: str


P = TypeVar("P", bound=Params)


class StepAction(Generic[P]):
    """One remediation action. Subclasses set:

    * ``names``: the action names it carries out (``lambda:UpdateAlias``; the operator policy
      checks them, a step's ``action`` is one of them);
    * ``params``: the model of its parameters;
    * :meth:`execute`: check the current state first, act only when needed, say whether the step
      is done; safe to call again for a step already Running (a restart, an interrupted call);
    * :meth:`observe` and :meth:`holds`: what verification reads of the current state (I/O through
      the ports) and whether the change holds on it (pure), the runbook's "verify";
    * :meth:`undo`: reverse the change when a verification decides to (None: not automated; the
      step's recorded ``undo`` text says how a person does it).
    """

    names: ClassVar[tuple[str, ...]] = ()
    params: type[P]
    mutating: ClassVar[bool] = True

    async def execute(self, ctx: StepContext, p: P) -> Outcome:
        """Carry out the step (see the class docstring). Raises AwsError (recorded on the step,
        retried when transient) or LookupError naming a target that does not exist."""
        raise NotImplementedError

    def observe(self, ctx: StepContext, p: P) -> Any:
        """The current state of what the step changed (blocking: run in a thread). Raises AwsError
        when it cannot be read (verification then waits and looks again)."""
        return None

    def holds(self, step: Step, p: P, seen: Any) -> list[Held]:
        """Whether the change holds on ``seen`` (what :meth:`observe` returned); [] when nothing
        about this action is checked."""
        return []

    def settles_at(self, ctx: StepContext, p: P) -> dt.datetime | None:
        """The earliest time verification can answer for this step (e.g. the end of the first whole
        metrics period after a change); None: at once. The Verify step's timeout counts from it."""
        return None

    def undoable(self, p: P) -> bool:
        """Whether :meth:`undo` can reverse this step's change (it recorded what was there before)."""
        return False

    async def undo(self, ctx: StepContext, p: P) -> Outcome | None:
        """Reverse what the step did (extension point for a verification that rolls a change back):
        None when this action has no automated undo."""
        return None


_REGISTRY: dict[str, StepAction[Any]] = {}


def register(action: StepAction[Any]) -> StepAction[Any]:
    """Make ``action`` the one that carries out each of its ``names``; returns it. Raises
    ValueError when a name is taken by another action."""
    for name in action.names:
        other = _REGISTRY.get(name)
        if other is not None and type(other) is not type(action):
            raise ValueError(f"step action {name} is already {type(other).__name__}'s")
        _REGISTRY[name] = action
    return action


def unregister(action: StepAction[Any]) -> None:
    """Remove ``action``'s names (a test's own action)."""
    for name in action.names:
        if _REGISTRY.get(name) is action:
            del _REGISTRY[name]


def action_of(name: str) -> StepAction[Any] | None:
    """The registered action carrying out ``name``, or None."""
    return _REGISTRY.get(name)


def params_of(s: Step) -> Params:
    """The step's parameters as its action's model. Raises ValueError for an unknown action."""
    if s.action in READS:
        return NoParams.model_validate(s.params)
    action = _REGISTRY.get(s.action)
    if action is None:
        raise ValueError(f"no step action is registered for {s.action}")
    return action.params.model_validate(s.params)


def step(step_id: str, name: str, params: Params | None = None, inputs: str | None = None,
         requires_approval: bool = False) -> Step:
    """A new Pending step of action ``name``; mutating unless it is one of the runbook's reads. With
    ``requires_approval`` it waits for approval even in Auto mode. Raises TypeError when ``params``
    is not the action's model, ValueError for an action nobody registered."""
    params = params or NoParams()
    if name not in READS:
        action = _REGISTRY.get(name)
        if action is None:
            raise ValueError(f"no step action is registered for {name}")
        if not isinstance(params, action.params):
            raise TypeError(f"{name} takes {action.params.__name__}, not {type(params).__name__}")
    return Step(id=step_id, action=name, mutating=name not in READS, params=params.wire(), inputs=inputs,
                requires_approval=requires_approval)


def slug(name: str) -> str:
    """A step-id-safe form of an AWS name: lowercase, [a-z0-9-], at most 60 characters."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:60] or "x"


# Idempotency tokens live in this namespace: uuid5(TOKENS, "<incident uid>/<step id>").
TOKENS = uuid.UUID("5b1f0d3e-8f3c-4a51-9d0e-6f7c1e2a4b90")


def request_token(incident_uid: str, step_id: str) -> str:
    """The idempotency token of one step of one incident (a UUID, 36 characters): the same on every
    attempt and after a restart, so AWS treats a repeated call as the one already made (Secrets
    Manager's ClientRequestToken, CodePipeline's clientRequestToken)."""
    return str(uuid.uuid5(TOKENS, f"{incident_uid}/{step_id}"))
