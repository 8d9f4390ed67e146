"""The guard rails of automation in the API: the bake window of a reversible step
(``spec.remediation.verify`` in, ``status.steps[].verification`` out), and the names the circuit
breaker shares between the operator and the ``opex`` CLI.

Bake window: after a step that changed something reversible (Lambda code or configuration, an
alias, stage settings), CloudWatch alarms that must not go to ALARM and/or a PromQL condition that
must stay true are watched for ``window``; a breach undoes the step once (its recorded undo), or,
for security containment, only pages. The pattern of CodeDeploy's alarm-based automatic rollback
and Argo Rollouts' analysis (the issue's sources). The decisions are ``guardrails.bake``'s.

Circuit breaker (``guardrails.breaker``): an object whose automated change it holds carries the
condition ``CircuitOpen``; ``opex breaker reset`` annotates each such object with
``opex.dev/breaker-reset`` (a new value each time), so its reconcile loop asks the breaker again at
once instead of at its next requeue.
"""
from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from .common import DURATION, DURATION_RULE, Bounded512, Bounded1024, Model, Status, duration_seconds

CIRCUIT_OPEN = "CircuitOpen"
BREAKER_RESET_ANNOTATION = "opex.dev/breaker-reset"

MIN_BAKE_SECONDS, MAX_BAKE_SECONDS = 30, 3600
# A comparison with the bool modifier returns a sample (0 or 1) whether it holds or not, so as a
# condition that "holds while it returns a sample" it would always hold.
BOOL_COMPARISON = r"(==|!=|>=|<=|>|<)\s*bool\b"


def _bake_bounds(value: str) -> str:
    if not MIN_BAKE_SECONDS <= duration_seconds(value) <= MAX_BAKE_SECONDS:
        raise ValueError(f"must be between {MIN_BAKE_SECONDS}s and {MAX_BAKE_SECONDS // 60}m")
    return value


BakeWindow = Annotated[str, Field(max_length=32, json_schema_extra={"x-kubernetes-validations": [
    DURATION_RULE,
    {"rule": f"!self.matches(r'{DURATION}') || (duration(self) >= duration('{MIN_BAKE_SECONDS}s') && "
             f"duration(self) <= duration('{MAX_BAKE_SECONDS}s'))",
     "message": f"must be between {MIN_BAKE_SECONDS}s and {MAX_BAKE_SECONDS // 60}m"}]}), AfterValidator(_bake_bounds)]
AlarmName = Annotated[str, Field(max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]


class BakeVerification(Model):
    """What must hold for ``window`` after a reversible step before it counts as safe."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "(has(self.alarms) && size(self.alarms) > 0) || has(self.promql)",
         "message": "verify needs alarms, promql or both: what must hold during the window"}]}}

    window: BakeWindow = Field(description=f"How long the change is watched after the step, e.g. 5m "
                                           f"({MIN_BAKE_SECONDS}s to {MAX_BAKE_SECONDS // 60}m; not longer than the "
                                           f"incident's escalation window).")
    alarms: list[AlarmName] = Field(
        default_factory=list, max_length=20, json_schema_extra={"x-kubernetes-list-type": "set"},
        description="CloudWatch alarms (names, in the incident's region and role) that must not go to ALARM during "
                    "the window (DescribeAlarms, and the alarm's history for a flip between two looks). An alarm "
                    "already in ALARM before the step does not count.")
    promql: str | None = Field(
        default=None, min_length=1, max_length=4096,
        description="A PromQL condition that must stay true: it holds while it returns a sample, as an alert rule "
                    "fires while its expression does, e.g. sum(rate(errors_total[1m])) / sum(rate(requests_total[1m])) "
                    "< 0.05; no sample (or a scalar 0) is a breach. Evaluated on the operator's Prometheus "
                    "(OPEX_PROMETHEUS_URL).",
        json_schema_extra={"x-kubernetes-validations": [
            {"rule": f"!self.matches(r'{BOOL_COMPARISON}')",
             "message": "write the condition as a filter (x < 0.05), not with bool: a bool comparison returns a "
                        "sample whether it holds or not"}]})


def verify_rules() -> list[Any]:
    """The IncidentSpec rule refusing a bake window longer than the incident's escalation window, as
    far as admission can tell: the latest ``afterSeconds`` of the ``spec.escalation.levels`` that
    apply to its severity (when none waits, there is no window; the window is compared in seconds: a
    duration parsed from a string built at run time is over the API server's CEL cost budget).
    Without levels in the spec the operator policy's matrix applies, which CEL cannot see, and
    environments are not compared here: the operator cuts the window to what is left of the
    escalation window of the incident's own levels (``guardrails.bake.effective_window``)."""
    applies = "(!has(l.severities) || size(l.severities) == 0 || self.severity in l.severities)"
    return [{
        "rule": "!has(self.remediation) || !has(self.remediation.verify) || !has(self.escalation) || "
                "!has(self.escalation.levels) || !self.remediation.verify.window.matches(r'" + DURATION + "') || "
                f"!self.escalation.levels.exists(l, {applies} && l.afterSeconds > 0) || "
                f"self.escalation.levels.exists(l, {applies} && "
                "duration(self.remediation.verify.window).getSeconds() <= l.afterSeconds)",
        "message": "spec.remediation.verify.window is longer than the incident's escalation window (the latest "
                   "afterSeconds of spec.escalation.levels for its severity): the last level would be paged while the "
                   "change is still being watched; shorten the window"}]


class BakeOutcome(StrEnum):
    BAKING = "Baking"          # the window is running
    PASSED = "Passed"          # the window ended and nothing breached
    BREACHED = "Breached"      # an alarm went to ALARM or the condition failed (see breach)
    UNVERIFIED = "Unverified"  # what was to be watched could not be read (a missing alarm, Prometheus down)


class BreachSource(StrEnum):
    ALARM = "CloudWatchAlarm"
    PROMQL = "PromQL"


class Breach(Status):
    """What broke during the bake window: the alarm or the query, and what was seen."""

    source: BreachSource = Field(description="CloudWatchAlarm or PromQL.")
    name: Bounded512 = Field(description="The alarm's name, or the PromQL condition.")
    value: Bounded1024 = Field(description="What was seen: the alarm's state, since when and why, or the query's result.")
    time: dt.datetime = Field(description="When it was seen (the alarm's transition to ALARM when known).")


class StepVerification(Status):
    """The bake window of one step, checkpointed: a restart resumes it, and an undo started is
    never started again."""

    started_at: dt.datetime = Field(description="When the window began (the step's end).")
    ends_at: dt.datetime = Field(description="When the window ends.")
    outcome: BakeOutcome = Field(description="Baking, Passed, Breached or Unverified.")
    checks: int = Field(default=0, ge=0, description="Looks taken at the alarms and the condition.")
    failed_checks: int = Field(default=0, ge=0, description="Looks that could not read everything.")
    breach: Breach | None = Field(default=None, description="What breached, when it did.")
    message: Bounded1024 | None = Field(default=None, description="What the window found and what was done about it.")
    last_error: Bounded512 | None = Field(default=None, description="The last read that failed.")
    undo_started_at: dt.datetime | None = Field(default=None, description="Recorded before the step's undo runs: "
                                                "found set without undoneAt, the undo is checked, never run again.")
    undone_at: dt.datetime | None = Field(default=None, description="When the undo was confirmed (the step is then "
                                          "RolledBack).")
