"""The contract between the Incident controller and its step executors (``incident_steps``)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from ..api.incident import IncidentSpec, Step
from ..kube import ObjectRef
from ..policy import Policy
from ..ports import AwsPorts, Objects, Workspaces
from ..runbooks.steps import Params


@dataclass
class Outcome:
    """What one call of an executor achieved. ``done`` False: still in progress (ask again after
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
    """The step being run, its incident, and the ports an executor may use. ``resumed``: the step was
    already Running when this pass began (an earlier attempt's call may have gone through);
    ``labels``: the Incident's labels (a child object carries its shard)."""

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


Executor = Callable[[StepContext, Any], Awaitable[Outcome]]
"""An executor: ``(context, the step's typed params) -> Outcome``. It checks the current state
first and acts only when needed, so calling it again for a Running step never acts twice.
Raises AwsError (the caller records it on the step) and nothing else it can foresee."""
