"""The post-incident record: root cause, timeline and action items, and its Markdown report.

Source: the runbook, Deployment Failure Runbook, "4. Post-Incident Actions" — document root cause
and timeline, find monitoring gaps, update the runbook, and hold a post-mortem for critical and
high severity incidents.
"""
from __future__ import annotations

import datetime as dt

from ..api.common import LocalObjectReference
from ..api.incident import (IncidentSpec, IncidentStatus, PostIncident, RootCauseCategory as Cat, Severity,
                            SourceKind, StepState, effective_severity)

FOLLOW_UP = {
    Cat.LAMBDA_DEPLOYMENT: "Fix the release that was rolled back and redeploy it through the pipeline; add a "
                           "CloudWatch alarm on the function's Errors with automatic rollback (CodeDeploy traffic shifting).",
    Cat.DEPLOY_PERMISSION_DENIED: "Grant the denied permission in the pipeline role's IAM policy (as code) and re-run.",
    Cat.TERRAFORM_STATE_LOCK: "Find why the run that held the state lock died; give CI Terraform runs a timeout "
                              "and -lock-timeout.",
    Cat.TERRAFORM_BACKEND: "Find why the state backend failed (its server's health, a lost session, the network "
                           "to it); alarm on its errors and give CI Terraform runs a retry with backoff.",
    Cat.REGISTRY_RATE_LIMITED: "Authenticate registry pulls in CI and pull through a mirror or cache (ECR "
                               "pull-through cache, a package proxy); cache dependencies between builds.",
    Cat.TERRAFORM_VALIDATION: "Run terraform validate in a pre-merge check.",
    Cat.DEPLOY_NAMING_CONFLICT: "Import or rename the conflicting resource; derive names from the environment.",
    Cat.DEPLOY_QUOTA_EXCEEDED: "Request a Service Quotas increase or clean up unused resources; alarm on usage.",
    Cat.DEPLOY_NETWORK: "Check VPC endpoints / NAT for the build environment; add retries to network steps.",
    Cat.BUILD_DEPENDENCY_INSTALL: "Pin dependencies and cache them (CodeBuild local cache or a package mirror).",
    Cat.BUILD_TEST_FAILURE: "Fix the failing tests; run them before merge.",
    Cat.BUILD_LINT: "Fix the lint errors; run the linter before merge.",
    Cat.BUILD_TIMED_OUT: "Find the step that hung (the last lines before the timeout) and give it its own timeout; "
                         "raise the project's timeoutInMinutes only if the work really grew.",
    Cat.BUILD_FAILURE: "Fix the build; reproduce it locally with the CodeBuild agent.",
    Cat.LAMBDA_TIMEOUT: "Find what the function waits on (X-Ray, its downstream calls) and give those calls "
                        "timeouts shorter than the function's; alarm on Duration near the timeout.",
    Cat.LAMBDA_OUT_OF_MEMORY: "Raise the function's memory size (the runbook's High Lambda Duration) or cut its "
                              "memory use; alarm on Max Memory Used near Memory Size.",
    Cat.LAMBDA_FUNCTION_ERROR: "Fix the errors the function logs; they were not tied to a release, so a rollback "
                               "would not help. Alarm on the function's Errors metric.",
    Cat.DATABASE_CONNECTIVITY: "Check the database status and its security groups; alarm on connection errors.",
    Cat.LAMBDA_NEAR_TIMEOUT: "Find what made the function slow (a dependency, a cold path) and alarm on Duration "
                             "Maximum at 80% of its timeout.",
    Cat.LAMBDA_MEMORY_BOUND: "Right-size the function's memory from its REPORT lines (Lambda Power Tuning) and keep "
                             "it in the Terraform configuration, not only in the console.",
    Cat.LAMBDA_THROTTLED: "Review reserved concurrency and the account's concurrency quota; alarm on Throttles.",
    Cat.API_INTEGRATION_LATENCY: "Profile the API's backend integration; alarm on IntegrationLatency p99.",
    Cat.API_GATEWAY_LATENCY: "Review the stage's authorizers, mapping templates and throttling; alarm on Latency p99.",
    Cat.API_CACHING_OFF: "Decide which methods may be cached and enable stage caching for them as code.",
    Cat.CLOUD_FRONT_LOW_HIT_RATIO: "Review the cache policy (TTLs, forwarded headers, cookies, query strings); keep "
                                   "additional metrics on and alarm on CacheHitRate.",
    Cat.DATABASE_CPU: "Find the expensive queries in Performance Insights; consider a larger instance class.",
    Cat.DATABASE_CONNECTIONS: "Pool connections (RDS Proxy) and alarm on DatabaseConnections near max_connections.",
    Cat.PERFORMANCE_INSIGHTS_OFF: "Keep Performance Insights enabled on every production database (as code).",
    Cat.COMPROMISED_CREDENTIALS: "Find how the credentials leaked (repositories, CI logs, laptops) and replace "
                                 "long-lived access keys with roles and short-lived credentials; review every call "
                                 "the findings list and what it touched (data read, resources created).",
    Cat.EXPOSED_ADMIN_PORT: "Reach admin ports through a VPN, bastion or SSM Session Manager only; enable the AWS "
                            "Config rule restricted-ssh (or Security Hub EC2.19) to catch a world-open rule.",
    Cat.UNKNOWN: "Extend the runbook: no known failure signal matched this incident.",
}


def record(spec: IncidentSpec, status: IncidentStatus, now: dt.datetime, report_name: str) -> PostIncident:
    """The post-incident record for a Resolved or Failed incident."""
    cause = status.root_cause
    severity = effective_severity(spec, status)
    serious = severity in (Severity.CRITICAL, Severity.HIGH)
    items = []
    if serious:
        items.append(f"Hold a blameless post-mortem (severity {severity.value}).")
    if cause is not None:
        items.append(FOLLOW_UP[cause.category])
    if spec.source is None or spec.source.kind == SourceKind.MANUAL:
        items.append("Monitoring gap: this incident was opened by hand; add an alert that would have opened it.")
    manual = [s.id for s in status.steps if s.state == StepState.FAILED]
    if manual or not any(s.mutating for s in status.steps):
        items.append("Update the runbook: " + (f"steps {', '.join(manual)} failed" if manual else
                                               "no automated remediation applied to this root cause") + ".")
    end = status.resolved_at or now
    return PostIncident(
        written_at=now,
        duration_seconds=int((end - status.detected_at).total_seconds()) if status.detected_at else None,
        time_to_assess_seconds=int((status.assessed_at - status.detected_at).total_seconds())
        if status.assessed_at and status.detected_at else None,
        time_to_acknowledge_seconds=int(max(0.0, (status.acknowledgement.acknowledged_at - status.detected_at)
                                            .total_seconds())) if status.acknowledgement and status.detected_at else None,
        acknowledged_by=status.acknowledgement.by if status.acknowledgement else None,
        approvals=[a for a in status.approvals if any(s.id == a.step and s.mutating and s.state != StepState.PENDING
                                                          for s in status.steps)],
        root_cause=f"{cause.category.value}: {cause.summary}" if cause else None,
        action_items=items, post_mortem_required=serious,
        report_ref=LocalObjectReference(name=report_name))


def markdown(namespace: str, name: str, spec: IncidentSpec, status: IncidentStatus, rec: PostIncident) -> str:
    """The post-incident report as Markdown (for the ConfigMap the Incident owns)."""
    severity = effective_severity(spec, status)
    out = [f"# Post-incident report: {spec.title}", "",
           f"- Incident: `{namespace}/{name}` ({spec.type.value}, severity **{severity.value}**, "
           f"environment {spec.environment})",
           f"- Outcome: **{status.phase.value if status.phase else '-'}**",
           f"- Detected: {status.detected_at}; assessed: {status.assessed_at}; resolved: {status.resolved_at}",
           f"- Time to assess: {rec.time_to_assess_seconds} s; duration: {rec.duration_seconds} s",
           f"- Acknowledged: " + (f"by {rec.acknowledged_by} after {rec.time_to_acknowledge_seconds} s (MTTA sample)"
                                  if rec.acknowledged_by else "nobody acknowledged it"),
           *[f"- Step {a.step} approved by {a.by or '(no name: approvedSteps)'} at {a.approved_at}"
             for a in rec.approvals],
           f"- Post-mortem required: {'yes' if rec.post_mortem_required else 'no'}"]
    if status.classification is not None and status.classification.raised:
        out.append(f"- Classification: {status.classification.reason}")
    out.append("")
    if spec.summary:
        out += ["## Summary", "", spec.summary, ""]
    out += ["## Root cause", "", rec.root_cause or "not identified", ""]
    if status.findings:
        out += ["## Findings", "", "| id | source | resource | observed |", "|---|---|---|---|"]
        out += [f"| {f.id} | {f.source} | {f.resource} | {f.observed.replace('|', '/')} |" for f in status.findings]
        out.append("")
    out += ["## Steps", "", "| step | action | state | attempts | outputs / error |", "|---|---|---|---|---|"]
    out += [f"| {s.id} | {s.action} | {s.state.value} | {s.attempts} | {(s.error or s.outputs or '').replace('|', '/')} |"
            for s in status.steps]
    undo = [s for s in status.steps if s.undo]
    if undo:
        out += ["", "## Undo", "", "What the steps changed, and how to reverse it once it is safe:", ""]
        out += [f"- `{s.id}`: {s.undo}" for s in undo]
    out += ["", "## Timeline", "", "| time | event | message |", "|---|---|---|"]
    out += [f"| {t.time} | {t.reason} | {t.message.replace('|', '/')} |" for t in status.timeline]
    out += ["", "## Action items", ""] + [f"- [ ] {item}" for item in rec.action_items]
    return "\n".join(out) + "\n"
