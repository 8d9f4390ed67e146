"""What a page says: one text for SNS and the webhook (no secret values, bounded), and the facts
PagerDuty's and Slack's messages are built from (:func:`waiting_steps`, :func:`acknowledgement_line`,
:func:`affected`)."""
from __future__ import annotations

from typing import Any

from ..api.incident import EscalationLevel, IncidentSpec, IncidentStatus, RemediationMode, StepState, effective_severity

SUBJECT_MAX = 100  # SNS Subject limit


def waiting_steps(spec: IncidentSpec, status: IncidentStatus) -> list[str]:
    """Ids of the mutating steps that wait for a person's approval (Manual mode, or a step that
    requires approval in any mode), in plan order."""
    return [s.id for s in status.steps if s.mutating and s.state in (StepState.PENDING, StepState.AWAITING_APPROVAL)
            and s.id not in spec.remediation.approved_steps
            and (spec.remediation.mode == RemediationMode.MANUAL or s.requires_approval)]


def acknowledgement_line(spec: IncidentSpec, status: IncidentStatus) -> str | None:
    """``Acknowledged by alice at 2026-12-01 10:04 UTC: rolling back`` from ``spec.acknowledgement``
    (the time from the operator's record of it, once written); None when nobody acknowledged."""
    ack = spec.acknowledgement
    if ack is None:
        return None
    record = status.acknowledgement
    when = (f" at {record.acknowledged_at:%Y-%m-%d %H:%M} UTC"
            if record is not None and (record.by, record.note) == (ack.by, ack.note) else "")
    return f"Acknowledged by {ack.by}{when}" + (f": {ack.note}" if ack.note else ".")


def affected(namespace: str, name: str, spec: IncidentSpec) -> str:
    """The affected system, for PagerDuty's ``source``: the first target named (a pipeline, a Lambda
    function, a CodeBuild project, an API, a database), else the Incident itself."""
    t = spec.targets
    for kind, value in (("pipeline", t.pipeline.name if t.pipeline else None),
                        ("lambda", t.lambda_.function_names[0] if t.lambda_ else None),
                        ("codebuild", t.code_build.project if t.code_build else None),
                        ("apigateway", t.api_gateway.rest_api_id if t.api_gateway else None),
                        ("rds", t.rds.instance_id if t.rds else None)):
        if value:
            return f"{kind}:{value}"
    return f"incident:{namespace}/{name}"


def escalation(namespace: str, name: str, spec: IncidentSpec, status: IncidentStatus,
               level: EscalationLevel) -> tuple[str, str, dict[str, Any]]:
    """(subject, body, webhook payload) for notifying ``level`` about an unresolved incident."""
    severity = effective_severity(spec, status)
    subject = f"[{severity.value.upper()}] L{level.level} {spec.title}"[:SUBJECT_MAX]
    cause = status.root_cause
    waiting = waiting_steps(spec, status)
    ack = acknowledgement_line(spec, status)
    lines = [
        f"Incident {namespace}/{name}: {spec.title}",
        f"Type {spec.type.value}, severity {severity.value}, environment {spec.environment}.",
        f"Escalation level {level.level}: {level.contact}.",
        f"Phase: {status.phase.value if status.phase else 'Detected'}.",
    ]
    if ack is not None:
        lines.append(ack)
    if status.classification is not None and status.classification.raised:
        lines.append(status.classification.reason)
    if cause is not None:
        lines.append(f"Root cause ({cause.category.value}): {cause.summary}")
    if waiting:
        lines.append(f"Waiting for approval of {', '.join(waiting)}: "
                     f"opex approve incident {name} -n {namespace} {' '.join(waiting)}")
    body = "\n".join(lines)
    payload = {"kind": "Escalation", "namespace": namespace, "incident": name, "level": level.level,
               "contact": level.contact, "severity": severity.value, "type": spec.type.value,
               "environment": spec.environment, "title": spec.title,
               "phase": status.phase.value if status.phase else None,
               "rootCause": cause.category.value if cause else None,
               "acknowledgedBy": spec.acknowledgement.by if spec.acknowledgement else None, "text": body}
    return subject, body, payload


def resolution(namespace: str, name: str, spec: IncidentSpec, status: IncidentStatus) -> tuple[str, str, dict[str, Any]]:
    """(subject, body, webhook payload) announcing that the incident is resolved and verified."""
    subject = f"[RESOLVED] {spec.title}"[:SUBJECT_MAX]
    done = [f"{s.id}: {s.outputs}" for s in status.steps if s.mutating and s.state == "Succeeded"]
    cause = status.root_cause
    lines = [f"Incident {namespace}/{name} is resolved and verified: {spec.title}"]
    if cause is not None:
        lines.append(f"Root cause ({cause.category.value}): {cause.summary}")
    lines += [f"Done: {d}" for d in done] or ["No automated remediation ran."]
    body = "\n".join(lines)
    payload = {"kind": "Resolved", "namespace": namespace, "incident": name,
               "severity": effective_severity(spec, status).value,
               "type": spec.type.value, "rootCause": cause.category.value if cause else None, "text": body}
    return subject, body, payload
