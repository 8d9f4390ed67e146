"""The runbook's API and database checks judged: findings from the probe results, and the
DatabaseConnectivity root cause when the database cannot be reached (pure; no I/O).

Source: the runbook, "Deployment Failure Runbook": "For API Gateway Issues" (``curl -X POST``)
and "Database Connection Issues" (``psql ... -c "SELECT 1;"``, then ``aws ec2
describe-security-groups``): a refused or unanswered connection is checked against the
database's security groups.
"""
from __future__ import annotations

from ..api.incident import Finding, FindingSeverity, RootCauseCategory as Cat
from .diagnose import Diagnosis
from ..ports.performance import ProbeFailure, DbProbeResult, GroupIngress, HttpProbeResult
from .performance.metrics import Cause

UNREACHABLE = {ProbeFailure.REFUSED, ProbeFailure.TIMEOUT, ProbeFailure.NETWORK}
HTTP, DATABASE = "HTTP", "Database"   # the probes' finding sources


def add_http_finding(d: Diagnosis, r: HttpProbeResult) -> str:
    """One finding for the HTTP probe (key ``probe:http``); returns its id."""
    took = f" in {r.latency_seconds:.3f} s" if r.latency_seconds is not None else ""
    if r.failure:
        why = f": {r.detail}" if r.detail else ""
        observed = f"{r.method} {r.url} failed: {r.failure}{why}{took} (expected {r.expected_status})"
    else:
        observed = f"{r.method} {r.url} answered {r.status}{took} (expected {r.expected_status})"
    return d.add("probe:http", HTTP, r.url, FindingSeverity.INFO if r.ok else FindingSeverity.ERROR, observed,
                 evidence=r.body_head or None)


def add_database_finding(d: Diagnosis, r: DbProbeResult) -> str:
    """One finding for the database probe (key ``probe:database``); returns its id."""
    who = f" as {r.user}" if r.user else ""
    if r.ok:
        extra = f"; max_connections {r.max_connections}" if r.max_connections is not None else ""
        observed = f"SELECT 1 on {r.target}{who} answered in {r.latency_seconds:.3f} s{extra}"
    else:
        observed = f"SELECT 1 on {r.target}{who} failed: {r.failure or 'unknown'}: {r.detail}"
    return d.add("probe:database", DATABASE, r.target, FindingSeverity.INFO if r.ok else FindingSeverity.ERROR,
                 observed)


def database_cause(r: DbProbeResult, groups: list[GroupIngress], operator_sources: list[str]) -> Cause | None:
    """DatabaseConnectivity when the probe failed, with the most specific reason the facts give.

    A refused or unanswered connection while no security group of the database admits one of
    ``operator_sources`` (CIDRs or group ids the operator connects from) on the port names
    those groups: that is what blocks it. ``None`` when the probe passed.
    """
    if r.ok:
        return None
    evidence = ["probe:database", "rds", "rds-config"]
    what = f"{r.failure.value}: {r.detail}" if r.failure else r.detail
    if r.failure in UNREACHABLE and groups and operator_sources and not any(
            g.admits(r.port, operator_sources) for g in groups):
        names = ", ".join(f"{g.id}" + (f" ({g.name})" if g.name else "") for g in groups)
        return Cause(Cat.DATABASE_CONNECTIVITY,
                     f"database {r.target} is unreachable ({what}); security group {names} does not admit the "
                     f"operator's source {', '.join(operator_sources)} on port {r.port}",
                     evidence, f"db/{r.host}", 76)
    advice = {ProbeFailure.AUTH: "check the user name and password in the credentials secret",
              ProbeFailure.DATABASE_MISSING: f"database {r.database} does not exist on the server",
              ProbeFailure.DNS: "check the endpoint name",
              ProbeFailure.TLS: "check the server's TLS support and the probe's tls setting"}.get(r.failure, "") \
        if r.failure else ""
    return Cause(Cat.DATABASE_CONNECTIVITY, f"database {r.target} cannot be used: {what}"
                 + (f" ({advice})" if advice else ""), evidence, f"db/{r.host}", 73)


def unreachable(r: DbProbeResult | None) -> bool:
    """True when the database probe got no connection (refused, unanswered, network): the case
    the runbook checks the security groups for."""
    return r is not None and r.failure in UNREACHABLE


def results(http: HttpProbeResult | None, database: DbProbeResult | None) -> list[tuple[bool, str]]:
    """Each probe that ran as (passed, what it saw in one line), for verification."""
    out: list[tuple[bool, str]] = []
    if http is not None:
        seen = f"answered {http.status}" if http.failure is None else f"failed: {http.failure}"
        out.append((http.ok, f"{http.method} {http.url} {seen} (expected {http.expected_status})"))
    if database is not None:
        out.append((database.ok, f"SELECT 1 on {database.target} " + (
            "answered" if database.ok else f"failed: {database.failure or 'unknown'}: {database.detail}")))
    return out


def failed_at_assessment(findings: list[Finding]) -> bool:
    """True when a probe failed when the incident was assessed (its finding is an Error)."""
    return any(f.source in (HTTP, DATABASE) and f.severity == FindingSeverity.ERROR for f in findings)
