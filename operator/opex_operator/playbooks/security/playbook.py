"""The security playbook (the runbook's "Security Incident Response"): the investigation of the
leaked credentials in CloudTrail and what they reached (``gather``, ``investigation``,
``blast_radius``), the classification that may raise the declared severity, the containment and
recovery steps (``response``), and every level paged at once for a critical one in production.
"""
from __future__ import annotations

from typing import Any

from ...api.incident import IncidentSpec, IncidentType, Severity
from ...environments import is_production
from ...ports.facts import Observations
from ..assessment import TrailErrors
from ..base import Assessment, Classification, Context, Gathered
from ..deployment.playbook import DeploymentPlaybook
from ..diagnose import Diagnosis
from . import investigation as security
from .gather import investigate
from .response import steps as response_steps


class SecurityPlaybook(DeploymentPlaybook):
    """SecurityIncident."""

    types = (IncidentType.SECURITY_INCIDENT,)
    trail_errors = TrailErrors.NEVER   # the investigation reads CloudTrail for its users and keys itself

    async def gather_more(self, ctx: Context, obs: Observations) -> Any:
        t = ctx.spec.targets
        if t.security is None:
            return None
        return await investigate(ctx.spec, ctx.reader, ctx.aws.ec2(t.region, t.role_key), ctx.clock(), obs)

    def assess_more(self, spec: IncidentSpec, g: Gathered, d: Diagnosis, now: Any) -> Assessment | None:
        if g.own is None or spec.targets.security is None:
            return None
        inv = security.investigate(spec.targets.security, spec.environment, spec.severity, g.own, now, d)
        c = inv.classification
        classification = Classification(c.declared, c.severity, c.raised, c.reason,
                                        [f"{e.severity.value}: {e.reason}" for e in c.evidence])
        return Assessment(d, security.root_cause(inv, spec.targets.security, now),
                          steps=response_steps(spec, inv), classification=classification)

    def pages_every_level_at_once(self, severity: Severity, environment: str) -> bool:
        """A critical security incident in production pages every level at once: the matrix's Level 3
        is for critical production issues, and the runbook contains one within 15 minutes."""
        return severity == Severity.CRITICAL and is_production(environment)
