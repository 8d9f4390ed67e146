"""What a playbook is: the room of one incident type. It gathers that type's facts through the
ports, assesses and classifies them, plans the gated steps and judges a fix made by hand; the
Incident controller keeps the lifecycle (detect, assess, approve, remediate, escalate, resolve)
and asks the playbook of the incident's ``spec.type`` (``playbooks.playbook_for``) for each of these.

This base class is the runbook's "Initial Assessment (5 minutes)" every type starts with (the
targets the spec names, read concurrently; the endpoint probes it names; findings and the root
cause on the deployment classifier's scale, ``playbooks.diagnose``). A type overrides what differs:

* ``trail_errors`` / ``metrics``: which of the shared reads it wants;
* :meth:`gather_more` and :meth:`assess_more`: its own reads (through the ports, I/O) and their
  judgement (pure): findings, a classification, a root cause of its own;
* :meth:`plan`: the gated steps for the root cause (each a registered ``steps`` action);
* :meth:`observe_fix` and :meth:`judge_fix`: how a fix made by a person is seen when no step ran;
* :meth:`pages_every_level_at_once`: whether its worst cases skip the escalation windows.

A new type copies ``playbooks/deployment/__init__.py``'s shape: a subclass, then
``register(MyPlaybook())`` for its types in ``playbooks/__init__.py`` (or from the module itself).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from ..api.incident import IncidentSpec, IncidentStatus, IncidentType, RootCause, Severity, Step
from ..api.performance import MetricsQuery
from ..ports import AwsPorts, LockSource, Objects, Reader
from ..ports.facts import Observations
from ..ports.performance import PerformanceFacts
from ..probes.http import Guard
from ..runbooks.engine import VerifyOutcome
from .assessment import TrailErrors, assess, measure
from .diagnose import Diagnosis, findings
from .performance.assess import Analysis, analyse, root_cause


@dataclass
class Context:
    """What a playbook's reads get: the incident, where it lives, the ports and the operator's
    settings for it (``sources``: the CIDRs and groups the operator connects from; ``guard``: the
    policy's check of the addresses probes connect to)."""

    spec: IncidentSpec
    namespace: str
    aws: AwsPorts
    reader: Reader
    objects: Objects
    clock: Callable[[], dt.datetime]
    drift_lock: LockSource
    sources: tuple[str, ...] = ()
    guard: Guard | None = None


@dataclass
class Gathered:
    """What :meth:`Playbook.gather` read: the initial assessment's observations, the metrics and
    probes (None when neither was wanted) and the type's own facts (``own``; see ``gather_more``)."""

    obs: Observations
    performance: PerformanceFacts | None = None
    own: Any = None


@dataclass
class Classification:
    """The severity the evidence supports: the declared one, raised (never lowered), and why."""

    declared: Severity
    severity: Severity
    raised: bool
    reason: str
    evidence: list[str] = field(default_factory=list)


@dataclass
class Assessment:
    """What :meth:`Playbook.assess` concluded: the findings (``diagnosis``), the root cause, the
    classification when the type raises severity on evidence, the gated steps planned, and the
    changes wanted but not planned (``notes``, each an Event)."""

    diagnosis: Diagnosis
    root_cause: RootCause
    steps: list[Step] = field(default_factory=list)
    classification: Classification | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Limits:
    """The operator policy's limits for the incident's namespace that planning honours."""

    lambda_memory_mb: int | None = None


class Playbook:
    """The contract and the shared initial assessment (see the module docstring)."""

    types: ClassVar[tuple[IncidentType | str, ...]] = ()
    trail_errors: ClassVar[TrailErrors] = TrailErrors.ALWAYS
    metrics: ClassVar[bool] = False

    # -- gather (I/O through the ports) ------------------------------------------------------------
    async def gather(self, ctx: Context) -> Gathered:
        """The initial assessment's reads, the metrics and probes wanted, then :meth:`gather_more`."""
        obs = await assess(ctx.spec, ctx.reader, ctx.clock(), ctx.drift_lock, self.trail_errors)
        g = Gathered(obs)
        g.own = await self.gather_more(ctx, obs)
        if self.metrics or ctx.spec.targets.probes is not None:
            g.performance = await measure(ctx.spec, ctx.aws, ctx.objects, ctx.namespace, obs, ctx.clock(),
                                          ctx.sources, ctx.guard, metrics=self.metrics)
        return g

    async def gather_more(self, ctx: Context, obs: Observations) -> Any:
        """The type's own reads (unreadable sources go to ``obs.problems``); None by default."""
        return None

    # -- assess, classify, plan (pure) -----------------------------------------------------------
    def assess(self, spec: IncidentSpec, g: Gathered, now: dt.datetime, limits: Limits) -> Assessment:
        """Findings, root cause and the steps planned for them (see :class:`Assessment`)."""
        d = findings(g.obs)
        analysis = (analyse(g.performance, (spec.targets.metrics or MetricsQuery()).thresholds, d,
                            spec.remediation.performance, limits.lambda_memory_mb)
                    if g.performance is not None else None)
        a = self.assess_more(spec, g, d, now)
        if a is None:
            a = Assessment(d, root_cause(g.obs, d, now, analysis))
        a.steps = self.plan(spec, a, g) + a.steps
        if analysis is not None:
            a.steps += [change.step() for change in analysis.plan.changes]
            a.notes += analysis.plan.notes
        return a

    def assess_more(self, spec: IncidentSpec, g: Gathered, d: Diagnosis, now: dt.datetime) -> Assessment | None:
        """The type's own judgement of ``g.own`` (findings go into ``d``): an Assessment with its root
        cause (its ``steps`` come after :meth:`plan`'s), or None to take the shared classifier's."""
        return None

    def plan(self, spec: IncidentSpec, a: Assessment, g: Gathered) -> list[Step]:
        """The gated steps for ``a.root_cause``, in runbook order (may be empty: a person acts)."""
        return []

    # -- a fix made by hand (no step ran) --------------------------------------------------------
    async def observe_fix(self, ctx: Context) -> Any:
        """What shows a fix made by a person (I/O); None when nothing does."""
        return None

    def judge_fix(self, spec: IncidentSpec, status: IncidentStatus, seen: Any) -> tuple[VerifyOutcome, str]:
        """Whether ``seen`` (:meth:`observe_fix`'s) shows the incident fixed."""
        return VerifyOutcome.PENDING, "nothing to observe automatically"

    # -- escalation ------------------------------------------------------------------------------
    def pages_every_level_at_once(self, severity: Severity, environment: str) -> bool:
        """True when an incident of this type, severity and environment pages every level at
        detection instead of waiting for each level's window."""
        return False
