"""The deployment and pipeline playbook (the runbook's "Deployment Failure Runbook" and "Pipeline
Failure Runbook"): the initial assessment of the targets, the root cause on the classifier's
scale (``playbooks.diagnose``), the resolution steps of ``plan`` and, when none can run, a fix
made by hand seen as a new successful execution of the target pipeline after detection.

The shape a new type copies: a :class:`~opex_operator.playbooks.base.Playbook` subclass naming
its ``types``, overriding only what its runbook section does differently.
"""
from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from ...api.incident import IncidentSpec, IncidentStatus, IncidentType, Step
from ...ports.facts import Execution
from ...runbooks.engine import VerifyOutcome
from ..base import Assessment, Context, Gathered, Playbook
from .plan import remediation_steps


class DeploymentPlaybook(Playbook):
    """DeploymentFailure and PipelineFailure."""

    types: ClassVar[tuple[IncidentType | str, ...]] = (IncidentType.DEPLOYMENT_FAILURE, IncidentType.PIPELINE_FAILURE)

    def plan(self, spec: IncidentSpec, a: Assessment, g: Gathered) -> list[Step]:
        return remediation_steps(spec, a.root_cause, g.obs)

    async def observe_fix(self, ctx: Context) -> Execution | None:
        """The target pipeline's newest execution, or None. Read through the incident's shared
        reader: the watch's first look, just after the assessment, is the assessment's read."""
        t = ctx.spec.targets
        if t.pipeline is None:
            return None
        recent = await asyncio.to_thread(ctx.reader.executions, t.pipeline.name)
        return recent[0] if recent else None

    def judge_fix(self, spec: IncidentSpec, status: IncidentStatus, seen: Any) -> tuple[VerifyOutcome, str]:
        pipeline = spec.targets.pipeline.name if spec.targets.pipeline else None
        if pipeline is None:
            return VerifyOutcome.PENDING, "nothing to observe automatically"
        if seen and seen[1] == "Succeeded" and seen[2] and status.detected_at and seen[2] > status.detected_at:
            return VerifyOutcome.VERIFIED, f"a new execution {seen[0]} of {pipeline} succeeded"
        return VerifyOutcome.PENDING, f"waiting for a new successful execution of {pipeline}"
