"""Findings from the initial assessment, and the root cause they point to.

Source: the seed's "Identify Root Cause" step and its failure categories — build-phase failures
(dependency install, test failures, lint), deploy-phase failures (IAM permission denied seen in
CloudTrail as AccessDenied; naming conflicts and quota errors; network), Terraform failures
(state lock held, validation errors), Lambda deployment failures, database connectivity.

Each rule scores the evidence it found; the highest score wins, and the root cause cites the
findings (F1, F2, ...) that carried it. Scores rank specificity: an explicit signal (a held
lock, an AccessDenied record, a failed Lambda update) beats a pattern in a log line, which
beats a bare failed phase.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field

from ..api.common import StateLock
from ..api.incident import Finding, FindingSeverity, RootCause, RootCauseCategory as Cat
from .facts import LambdaFacts, LogLine, Observations

log = logging.getLogger(__name__)

MAX_EVIDENCE = 2000
MAX_LINES = 12

ERROR_LINE = re.compile(r"\b(ERROR|Error|error|Exception|FATAL|Fatal|Traceback|FAILED|Failed|failed|denied|Denied)\b|"
                        r"npm ERR!|--- FAIL")
DENIED = re.compile(r"AccessDenied(?:Exception)?|UnauthorizedOperation|not authorized to perform")
DENIED_ACTION = re.compile(r"(?:User: (?P<principal>\S+) )?is not authorized to perform:? (?P<action>[\w-]+:[\w*]+)")
TF_VALIDATION = re.compile(r"Error: (Invalid|Unsupported (argument|attribute|block type)|Missing required argument|"
                           r"Reference to undeclared|Unsupported Terraform Core version|Incorrect attribute value)")
NAMING = re.compile(r"already exists|AlreadyExists|EntityAlreadyExists|BucketAlreadyOwnedByYou|ResourceInUseException|"
                    r"DuplicateResource|name is already in use")
QUOTA = re.compile(r"LimitExceeded|ServiceQuotaExceeded|QuotaExceeded|CodeStorageExceeded|Rate exceeded|"
                   r"TooManyRequests|limit (of|exceeded)")
DB_CONNECT = re.compile(r"(ECONNREFUSED|ETIMEDOUT|Connection refused|timed out)[^\n]*:(5432|3306|1433|1521|27017)\b|"
                        r"could not connect to server|connection to server at .* failed|Can't connect to MySQL|"
                        r"Communications link failure|SequelizeConnection|OperationalError: .*connect", re.I)
NETWORK = re.compile(r"ETIMEDOUT|EAI_AGAIN|ENOTFOUND|ECONNRESET|timed out|Could not resolve host|Temporary failure in "
                     r"name resolution|network is unreachable|dial tcp|i/o timeout|Connection reset", re.I)
DEPENDENCY = re.compile(r"npm ERR!|ERESOLVE|Could not find a version that satisfies|No matching distribution found|"
                        r"Could not resolve dependencies|go: .*: (reading|verifying)|pip .* error|yarn install .*error|"
                        r"Failed to download|404 Not Found.*(registry|pypi|npm)", re.I)
TESTS = re.compile(r"Tests? failed|tests? failed|\d+ failed|FAILED .*::|AssertionError|--- FAIL:|npm ERR! Test failed|"
                   r"Tests run: .*Failures: [1-9]|failing tests?")
LINT = re.compile(r"\b(eslint|flake8|pylint|ruff|golangci-lint|stylelint|tslint|lint)\b", re.I)
LAMBDA_CONFLICT = re.compile(r"An update is in progress|ResourceConflictException|CodeVerificationFailed|"
                             r"InvalidParameterValueException.*(Runtime|Handler)|UpdateFunctionCode")
BUILD_PHASES_BEFORE_DEPLOY = {"SUBMITTED", "QUEUED", "PROVISIONING", "DOWNLOAD_SOURCE", "INSTALL", "PRE_BUILD", "BUILD"}


def error_lines(lines: list[LogLine], limit: int = MAX_LINES) -> list[LogLine]:
    """The last ``limit`` lines matching the runbook's ERROR/Exception patterns."""
    return [line for line in lines if ERROR_LINE.search(line.message)][-limit:]


def _excerpt(lines: list[str]) -> str:
    text = "\n".join(lines)
    return text if len(text) <= MAX_EVIDENCE else text[: MAX_EVIDENCE - 20] + "\n... (truncated)"


@dataclass
class Diagnosis:
    findings: list[Finding] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)   # fact key -> finding id

    def add(self, key: str, source: str, resource: str, severity: FindingSeverity, observed: str,
            evidence: str | None = None, time: dt.datetime | None = None) -> str:
        fid = f"F{len(self.findings) + 1}"
        self.findings.append(Finding(id=fid, source=source, resource=resource[:512], severity=severity,
                                     observed=observed[:1024], evidence=evidence[:MAX_EVIDENCE] if evidence else None,
                                     time=time))
        self.refs[key] = fid
        return fid


def findings(obs: Observations) -> Diagnosis:
    """Turn the observations into findings (bounded; evidence excerpts, never whole logs)."""
    d = Diagnosis()
    p = obs.pipeline
    if p is not None:
        if p.status == "Failed":
            where = f" at stage {p.failed_stage}" if p.failed_stage else ""
            action = p.failed_action
            detail = f", action {action.action}: {action.error_code}: {action.error_message}" if action else ""
            d.add("pipeline", "CodePipeline", f"pipeline/{p.name}", FindingSeverity.ERROR,
                  f"execution {p.execution_id} Failed{where}{detail}",
                  evidence=p.status_summary, time=p.started_at)
        else:
            d.add("pipeline", "CodePipeline", f"pipeline/{p.name}", FindingSeverity.INFO,
                  f"execution {p.execution_id} is {p.status}", time=p.started_at)
    if obs.builds:
        summary = ", ".join(f"{b.id.split(':')[-1][:8]} {b.status}" for b in obs.builds)
        d.add("builds", "CodeBuild", f"project/{obs.builds[0].project}", FindingSeverity.INFO,
              f"recent builds, newest first: {summary}")
    build = obs.failed_build
    if build is not None:
        phase = build.failed_phase
        observed = f"build {build.id} {build.status}" + (f" in phase {phase.phase_type}" if phase else "")
        d.add("build", "CodeBuild", f"build/{build.id}", FindingSeverity.ERROR, observed,
              evidence=_excerpt(phase.contexts) if phase and phase.contexts else None, time=build.started_at)
    errors = error_lines(obs.build_log_lines)
    if errors:
        d.add("build-log", "CloudWatchLogs", f"{errors[0].group}/{errors[0].stream}", FindingSeverity.ERROR,
              f"{len(errors)} error lines in the build log", evidence=_excerpt([e.message for e in errors]))
    for fn in obs.lambdas:
        _lambda_findings(d, fn)
    if obs.api_id is not None:
        stages = ", ".join(f"{s.name} (deployment {s.deployment_id})" for s in obs.api_stages) or "none"
        d.add("api", "APIGateway", f"restapi/{obs.api_id}", FindingSeverity.INFO, f"stages: {stages}")
    if obs.rds is not None:
        db = obs.rds
        groups = "; ".join(f"{g.id}: {', '.join(g.ingress_ports) or 'no ingress'}" for g in db.security_groups)
        bad = db.status != "available"
        d.add("rds", "RDS", f"db/{db.instance_id}", FindingSeverity.ERROR if bad else FindingSeverity.INFO,
              f"instance {db.instance_id} ({db.engine}) is {db.status}; endpoint {db.endpoint}:{db.port}; "
              f"security groups {groups or 'none'}")
    denied = [e for e in obs.trail_events if e.error_code and DENIED.search(f"{e.error_code} {e.error_message or ''}")]
    if denied:
        lines = [f"{e.time:%H:%M:%S} {e.event_source} {e.event_name} {e.error_code} by {e.principal}: {e.error_message}"
                 if e.time else f"{e.event_name} {e.error_code}" for e in denied[:MAX_LINES]]
        d.add("trail", "CloudTrail", obs.trail_source or "cloudtrail", FindingSeverity.ERROR,
              f"{len(denied)} AccessDenied events in the last hour, e.g. {denied[0].event_name} "
              f"on {denied[0].event_source}", evidence=_excerpt(lines))
    if obs.terraform_lock is not None:
        lock = obs.terraform_lock
        d.add("lock", "Terraform", lock.path or "state", FindingSeverity.ERROR,
              f"state lock {lock.id} is held by {lock.who} ({lock.operation}) since {lock.created}")
    for i, problem in enumerate(obs.problems):
        severity = FindingSeverity.WARNING
        what = "not found" if problem.not_found else ("access denied" if problem.denied else "could not be read")
        d.add(f"problem:{i}", problem.source, problem.resource, severity, f"{problem.resource} {what}: {problem.message}")
    return d


def _lambda_findings(d: Diagnosis, fn: LambdaFacts) -> None:
    current = fn.current_version
    previous = fn.previous_version
    bad = fn.state == "Failed" or fn.last_update_status == "Failed"
    observed = (f"State {fn.state}, LastUpdateStatus {fn.last_update_status}"
                + (f" ({fn.last_update_reason})" if fn.last_update_reason else "")
                + f"; $LATEST runs {'version ' + current if current else 'unpublished code'}"
                + (f"; previous version {previous.version}" if previous else "; no previous version"))
    d.add(f"lambda:{fn.name}", "Lambda", f"function/{fn.name}", FindingSeverity.ERROR if bad else FindingSeverity.INFO,
          observed, evidence=fn.state_reason)
    if fn.error_lines:
        d.add(f"lambda-errors:{fn.name}", "CloudWatchLogs", f"/aws/lambda/{fn.name}", FindingSeverity.ERROR,
              f"{len(fn.error_lines)} ERROR events in the last hour",
              evidence=_excerpt([line.message for line in fn.error_lines[-MAX_LINES:]]))


@dataclass
class _Candidate:
    score: int
    category: Cat
    summary: str
    evidence: list[str]
    lock: StateLock | None = None


def classify(obs: Observations, d: Diagnosis, now: dt.datetime) -> RootCause:
    """The root cause the observations support best, citing its findings (Unknown when none does)."""
    ref = d.refs.get
    build = obs.failed_build
    build_text = "\n".join(line.message for line in obs.build_log_lines)
    action = obs.pipeline.failed_action if obs.pipeline else None
    failure_text = "\n".join(filter(None, [build_text, action.error_message if action else None,
                                          obs.pipeline.status_summary if obs.pipeline else None,
                                          *(c for p in (build.phases if build else []) for c in p.contexts)]))
    failure_refs = [r for r in (ref("pipeline"), ref("build"), ref("build-log")) if r]
    phase = build.failed_phase.phase_type if build and build.failed_phase else None
    before_deploy = phase in BUILD_PHASES_BEFORE_DEPLOY
    c: list[_Candidate] = []

    if obs.terraform_lock is not None:
        lock = obs.terraform_lock
        c.append(_Candidate(100, Cat.TERRAFORM_STATE_LOCK,
                            f"Terraform state lock {lock.id} on {lock.path} is held by {lock.who} "
                            f"({lock.operation}, since {lock.created})", [ref("lock")] + failure_refs, lock))
    trail_denied = [e for e in obs.trail_events if e.error_code and DENIED.search(f"{e.error_code} {e.error_message or ''}")]
    if trail_denied or DENIED.search(failure_text):
        if trail_denied:
            e = trail_denied[0]
            what = f"{e.event_source.split('.')[0]}:{e.event_name} denied to {e.principal}"
        elif (m := DENIED_ACTION.search(failure_text)):
            what = f"{m.group('action')} denied" + (f" to {m.group('principal')}" if m.group("principal") else "")
        else:
            what = f"access denied: {_line(failure_text, DENIED.search(failure_text))}"
        c.append(_Candidate(90, Cat.DEPLOY_PERMISSION_DENIED, f"IAM permission denied: {what}",
                            [r for r in [ref("trail")] if r] + failure_refs))
    for fn in obs.lambdas:
        if fn.state == "Failed" or fn.last_update_status == "Failed":
            reason = fn.last_update_reason or fn.state_reason or "no reason given"
            c.append(_Candidate(85, Cat.LAMBDA_DEPLOYMENT, f"deployment of Lambda {fn.name} failed: {reason}",
                                [ref(f"lambda:{fn.name}")] + failure_refs))
    if (m := TF_VALIDATION.search(failure_text)):
        c.append(_Candidate(80, Cat.TERRAFORM_VALIDATION, f"Terraform configuration is invalid: {_line(failure_text, m)}",
                            failure_refs))
    if LAMBDA_CONFLICT.search(failure_text) and obs.lambdas:
        c.append(_Candidate(78, Cat.LAMBDA_DEPLOYMENT, f"Lambda deployment failed: {_line(failure_text, LAMBDA_CONFLICT.search(failure_text))}",
                            failure_refs + [ref(f"lambda:{f.name}") for f in obs.lambdas]))
    if (m := NAMING.search(failure_text)):
        c.append(_Candidate(75, Cat.DEPLOY_NAMING_CONFLICT, f"a resource name is already taken: {_line(failure_text, m)}",
                            failure_refs))
    if (m := QUOTA.search(failure_text)):
        c.append(_Candidate(74, Cat.DEPLOY_QUOTA_EXCEEDED, f"an AWS quota or rate limit was hit: {_line(failure_text, m)}",
                            failure_refs))
    lambda_text = "\n".join(line.message for fn in obs.lambdas for line in fn.error_lines)
    db_text = failure_text + "\n" + lambda_text
    db_down = obs.rds is not None and obs.rds.status != "available"
    m = DB_CONNECT.search(db_text)
    if db_down or m:
        why = f"database {obs.rds.instance_id} is {obs.rds.status}" if db_down else _line(db_text, m)
        refs = [r for r in [ref("rds")] + [ref(f"lambda-errors:{f.name}") for f in obs.lambdas] + failure_refs if r]
        c.append(_Candidate(72 if db_down else 70, Cat.DATABASE_CONNECTIVITY, f"database connectivity: {why}", refs))
    for fn in obs.lambdas:
        if fn.error_lines and not before_deploy:
            top = _top_error(fn.error_lines)
            since = f"version {fn.current_version}" if fn.current_version else "its current code"
            c.append(_Candidate(68, Cat.LAMBDA_DEPLOYMENT,
                                f"Lambda {fn.name} fails since {since} was deployed: {len(fn.error_lines)} ERROR "
                                f"events in the last hour, e.g. {top}",
                                [ref(f"lambda-errors:{fn.name}"), ref(f"lambda:{fn.name}")] + failure_refs))
    m = DEPENDENCY.search(failure_text)
    if phase == "INSTALL" or m:
        why = _line(failure_text, m) if m else "the INSTALL phase failed"
        c.append(_Candidate(66 if m else 60, Cat.BUILD_DEPENDENCY_INSTALL, f"installing dependencies failed: {why}",
                            failure_refs))
    if (m := TESTS.search(failure_text)):
        c.append(_Candidate(65, Cat.BUILD_TEST_FAILURE, f"tests failed: {_line(failure_text, m)}", failure_refs))
    if (m := LINT.search(failure_text)) and phase in ("PRE_BUILD", "BUILD", "INSTALL", None):
        c.append(_Candidate(64, Cat.BUILD_LINT, f"lint failed: {_line(failure_text, m)}", failure_refs))
    if (m := NETWORK.search(failure_text)):
        c.append(_Candidate(50, Cat.DEPLOY_NETWORK, f"network failure during the deployment: {_line(failure_text, m)}",
                            failure_refs))
    if build is not None and build.failed_phase is not None:
        c.append(_Candidate(40, Cat.BUILD_FAILURE, f"build {build.id} failed in phase {phase}", failure_refs))
    if not c:
        read = [name for name, seen in (("the pipeline", obs.pipeline), ("the builds", obs.builds),
                                         ("the build log", obs.build_log_lines), ("Lambda", obs.lambdas),
                                         ("API Gateway", obs.api_id), ("RDS", obs.rds),
                                         ("CloudTrail", obs.trail_source and not any(
                                             p.source == "CloudTrail" for p in obs.problems))) if seen]
        what = ("no failure signal was found in " + ", ".join(read)) if read else "no target could be read"
        if obs.problems:
            what += f"; {len(obs.problems)} sources could not be read (see findings)"
        return RootCause(category=Cat.UNKNOWN, summary=what, evidence=[], identified_at=now)
    best = max(c, key=lambda x: x.score)  # max keeps the first of equal scores: rule order breaks ties
    log.debug("root-cause candidates: %s; chosen %s", [(x.category.value, x.score) for x in c], best.category.value)
    evidence = list(dict.fromkeys(e for e in best.evidence if e))[:10]
    return RootCause(category=best.category, summary=best.summary[:1024], evidence=evidence, identified_at=now,
                     lock=best.lock)


def _line(text: str, m: re.Match | None) -> str:
    """The whole line of ``text`` that ``m`` matched, trimmed for a summary."""
    if m is None:
        return ""
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.end())
    return text[start: end if end >= 0 else len(text)].strip()[:300]


_VOLATILE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d+")


def _top_error(lines: list[LogLine]) -> str:
    """The most frequent error (request ids and numbers ignored), as one of its lines."""
    counts: dict[str, int] = {}
    example: dict[str, str] = {}
    for line in lines:
        key = _VOLATILE.sub("#", line.message.strip())[:160]
        counts[key] = counts.get(key, 0) + 1
        example.setdefault(key, line.message.strip()[:200])
    return example[max(counts, key=counts.get)]
