"""What a page says: one text for SNS and the webhook (no secret values, bounded)."""
from __future__ import annotations

from typing import Any

from ..api.incident import EscalationLevel, IncidentSpec, IncidentStatus, effective_severity

SUBJECT_MAX = 100  # SNS Subject limit


def escalation(namespace: str, name: str, spec: IncidentSpec, status: IncidentStatus,
               level: EscalationLevel) -> tuple[str, str, dict[str, Any]]:
    """(subject, body, webhook payload) for notifying ``level`` about an unresolved incident."""
    severity = effective_severity(spec, status)
    subject = f"[{severity.value.upper()}] L{level.level} {spec.title}"[:SUBJECT_MAX]
    cause = status.root_cause
    waiting = [s.id for s in status.steps if s.mutating and s.state in ("Pending", "AwaitingApproval")
               and s.id not in spec.remediation.approved_steps
               and (spec.remediation.mode == "Manual" or s.requires_approval)]
    lines = [
        f"Incident {namespace}/{name}: {spec.title}",
        f"Type {spec.type.value}, severity {severity.value}, environment {spec.environment}.",
        f"Escalation level {level.level}: {level.contact}.",
        f"Phase: {status.phase.value if status.phase else 'Detected'}.",
    ]
    if status.classification is not None and status.classification.raised:
        lines.append(status.classification.reason)
    if cause is not None:
        lines.append(f"Root cause ({cause.category.value}): {cause.summary}")
    if waiting:
        patch = '{"spec":{"remediation":{"approvedSteps":[%s]}}}' % ",".join(f'"{w}"' for w in waiting)
        lines.append(f"Waiting for approval of {', '.join(waiting)}: "
                     f"kubectl patch incident {name} -n {namespace} --type merge -p '{patch}'")
    body = "\n".join(lines)
    payload = {"kind": "Escalation", "namespace": namespace, "incident": name, "level": level.level,
               "contact": level.contact, "severity": severity.value, "type": spec.type.value,
               "environment": spec.environment, "title": spec.title,
               "phase": status.phase.value if status.phase else None,
               "rootCause": cause.category.value if cause else None, "text": body}
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
