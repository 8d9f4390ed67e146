"""Findings from the initial assessment, and the root cause they point to.

Source: the runbook, "Identify Root Cause (10 minutes)" and "Pipeline Failure Runbook": build-phase
failures (dependency install, tests, lint), deploy-phase failures (IAM permission denied, seen in
CloudTrail as AccessDenied; naming conflicts and quotas; network), Terraform failures (state lock,
validation), Lambda failures, database connectivity.

Each rule scores the evidence it found; the highest score wins (ties: the earlier rule), and the
root cause cites the findings (F1, F2, ...) that carried it. Causes found by the performance
runbook and the endpoint probes (``playbooks.performance.assess``) join on the same scale. Evidence is read from the failure's
own context, never from every line of a log:

1. explicit signals: the failed command's state-lock error (held: TerraformStateLock; the lock
   refused to the caller: DeployPermissionDenied, never retried nor force-unlocked; the backend
   failed: TerraformBackend, or DeployNetwork when the network did), AccessDenied records in
   CloudTrail, a Lambda whose update failed;
2. the failed phase (CodeBuild ``BuildPhase``): its status (``TIMED_OUT``: the build hit its own
   timeout, BuildTimedOut, which is not retried blindly) and its contexts (``statusCode`` and
   ``message``: ``COMMAND_EXECUTION_ERROR`` names the failed command, ``YAML_FILE_ERROR`` a broken
   buildspec), and the failed pipeline action's error;
3. the failed command's lines: CodeBuild logs ``Running command X`` before a command's output and
   ``Command did not exit successfully X exit status N`` after it. The command the phase context
   names (else the first that failed, else the one running when the log ended) is read, and
   only its output, with patterns that mean failure (``3 failed``, ``✖ 2 problems (2 errors``,
   ``EntityAlreadyExists``) rather than words (``0 failed``, ``Layer already exists``,
   ``Collecting pylint``). The command itself also tells: ``npm run lint`` failing is a lint failure.
   A registry's rate limit (``toomanyrequests``, HTTP 429 from a package index) is RegistryRateLimited
   with the registry named and when a retry can work; network failures in Go's words too (``dial
   tcp ... no such host``, ``i/o timeout``, ``request send failed``) are DeployNetwork;
4. Lambda logs: database drivers and ORMs that cannot connect (DatabaseConnectivity), out of memory
   (``Runtime exited with error: signal: killed``, Max Memory Used reaching Memory Size), timeouts
   (``Task timed out after``, REPORT ``Status: timeout``), a package that cannot start
   (``Runtime.ImportModuleError``, ``Runtime.HandlerNotFound``, ``Runtime.UserCodeSyntaxError``: the
   deployment's fault, LambdaDeployment, even when only ``$LATEST`` exists), and other errors. Other
   errors are the release's fault (LambdaDeployment, which gets a code rollback) only when
   :func:`release_evidence` ties them to it; otherwise they are LambdaFunctionError, for a human.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, Sequence

from ..api.common import StateLock, truncate
from ..api.incident import Finding, FindingSeverity, RootCause, RootCauseCategory as Cat
from .. import denials
from ..terraform.locks import LockError, LockProblem
from ..ports.facts import BuildFacts, BuildPhase, LambdaFacts, LogLine, Observations, stream_version

log = logging.getLogger(__name__)

MAX_EVIDENCE = 2000
MAX_LINES = 12
MAX_COMMAND_LINES = 200

ERROR_LINE = re.compile(r"\b(ERROR|Error|error|Exception|FATAL|Fatal|Traceback|FAILED|Failed|failed|denied|Denied)\b|"
                        r"npm ERR!|--- FAIL")
DENIED = denials.DENIED
TF_VALIDATION = re.compile(r"Error: (Invalid|Unsupported (argument|attribute|block type)|Missing required argument|"
                           r"Reference to undeclared|Unsupported Terraform Core version|Incorrect attribute value)")
NAMING = re.compile(r"\b(?:EntityAlreadyExists|ResourceAlreadyExists|\w+AlreadyExistsException|BucketAlreadyExists|"
                    r"BucketAlreadyOwnedByYou|ResourceInUseException|DuplicateResource|InvalidGroup\.Duplicate|"
                    r"InvalidPermission\.Duplicate)\b|\((?:AlreadyExists)\)|"
                    r"\b(?:Error|ERROR|error|Exception|FAILED|failed)\b[^\n]*\b(?:already exists|is already in use)\b")
QUOTA = re.compile(r"\b(?:\w*LimitExceeded\w*|ServiceQuotaExceeded\w*|QuotaExceeded\w*|CodeStorageExceeded\w*|"
                   r"TooManyRequestsException|ThrottlingException|RequestLimitExceeded)\b|Rate exceeded")
# A package index or image registry refusing for its rate limit (the OCI distribution spec's TOOMANYREQUESTS,
# HTTP 429 from PyPI, npm, Maven Central, GitHub); an AWS API's own 429 (TooManyRequestsException) is QUOTA.
RATE_LIMITED = re.compile(r"\btoomanyrequests\b|\bTOOMANYREQUESTS\b|HTTPTooManyRequests|pull rate limit|"
                          r"\b429 Too Many Requests\b|\b429 Client Error\b|Too Many Requests for url|"
                          r"\bnpm (?:ERR!|error) code E429\b|status code:? 429\b|\bHTTP(?: Error)? 429\b|"
                          r"API rate limit exceeded for|\b429\b[^\n]*\brate limit")
_AWS_THROTTLE = re.compile(r"TooManyRequestsException|ThrottlingException|operation error \w+")
_HOST = re.compile(r"\b(?:[a-z0-9-]+\.)+(?:io|org|com|net|aws|dev)\b")
# Registries by host, and how long their rate-limit window is when the answer does not say (Docker Hub's
# documented window is six hours; the others reset within the hour).
REGISTRIES = (("docker.io", "Docker Hub", 6 * 3600), ("docker.com", "Docker Hub", 6 * 3600),
              ("public.ecr.aws", "Amazon ECR Public", 3600), ("ghcr.io", "GitHub Container Registry", 3600),
              ("quay.io", "Quay", 3600), ("gcr.io", "Google Container Registry", 3600),
              ("registry.k8s.io", "registry.k8s.io", 3600), ("pypi.org", "PyPI", 3600),
              ("pythonhosted.org", "PyPI", 3600), ("registry.npmjs.org", "the npm registry", 3600),
              ("yarnpkg.com", "the Yarn registry", 3600), ("maven.apache.org", "Maven Central", 3600),
              ("maven.org", "Maven Central", 3600), ("api.github.com", "the GitHub API", 3600),
              ("github.com", "GitHub", 3600), ("registry.terraform.io", "the Terraform Registry", 3600),
              ("registry.opentofu.org", "the OpenTofu Registry", 3600),
              ("proxy.golang.org", "the Go module proxy", 3600),
              ("rubygems.org", "RubyGems", 3600), ("nuget.org", "NuGet", 3600))
_RETRY_AFTER = re.compile(r"[Rr]etry[- ][Aa]fter:?\s*(?P<n>[\d.]+)\s*(?P<unit>µs|us|ms|s|m|h|seconds?|minutes?)?|"
                          r"(?:try again|retry|[Ll]imit may reset) in (?P<n2>\d+)\s*"
                          r"(?P<unit2>seconds?|minutes?|hours?)")
# The registry a refusal names only by its client's words, when no host is given.
_CLIENT_REGISTRY = (("npm ", "the npm registry"), ("yarn ", "the Yarn registry"), ("pip", "PyPI"), ("PyPI", "PyPI"))
DB_CONNECT = re.compile("|".join([
    r"could not connect to server",                                            # libpq before 14
    r"connection to server (?:at|on) [^\n]* failed",                           # libpq 14+: "... port 5432 failed: ..."
    r"could not translate host name [^\n]* to address",
    r"(?:OperationalError|PSQLException)\b[^\n]*(?:timeout expired|connect|refused|timed out)",
    r"^\s*(?:\S+: )?timeout expired\s*$",                                      # psycopg's connect_timeout
    r"password authentication failed for user|no pg_hba\.conf entry|too many clients already|"
    r"remaining connection slots are reserved|the database system is (?:starting up|shutting down)",
    r"Can't reach database server|PrismaClientInitializationError|Error code: P100[0-2]\b",
    r"Can't connect to (?:local )?MySQL server|Lost connection to MySQL server|\bER_ACCESS_DENIED\w*|"
    r"\bER_CON_COUNT_ERROR\b|Access denied for user '|\bPROTOCOL_CONNECTION_LOST\b",
    r"Communications link failure|Connection to \S+ refused\. Check that the hostname and port",
    r"\bSequelize(?:Connection\w*|HostNotFound|AccessDenied)Error\b|KnexTimeoutError|Timeout acquiring a connection|"
    r"MongoServerSelectionError|MongoNetworkError|Connection terminated (?:due to connection timeout|unexpectedly)|"
    r"timeout exceeded when trying to connect",
    r"(?:ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|[Cc]onnection refused|i/o timeout|timed out)[^\n]*[:\s]"
    r"(?:5432|3306|1433|1521|27017|6432)\b",
    r"dial tcp [^\s]*:(?:5432|3306|1433|1521|27017|6432)\b",
]), re.M)
# Network failures in the words of Node, curl, Python and Go (Terraform, its providers, aws-sdk-go-v2: "dial tcp:
# lookup sts.us-east-1.amazonaws.com on 10.0.0.2:53: no such host", "request send failed", "i/o timeout").
NETWORK = re.compile(r"\b(?:ETIMEDOUT|EAI_AGAIN|ENOTFOUND|ECONNRESET|ECONNREFUSED|EHOSTUNREACH|ENETUNREACH)\b|"
                     r"Could not resolve host|Temporary failure in name resolution|[Nn]etwork is unreachable|"
                     r"i/o timeout|[Cc]onnection reset by peer|TLS handshake timeout|"
                     r"(?:Connection|Connect|Read|connection) timed out|Name or service not known|"
                     r"\bdial tcp\b|: no such host\b|server misbehaving|[Cc]onnection refused|request send failed|"
                     r"send request failed|Client\.Timeout exceeded|write: broken pipe|"
                     r"net/http: request canceled|proxyconnect tcp")
_GO_WRAPPERS = ("request send failed", "send request failed", "dial tcp")
DEPENDENCY = re.compile(r"npm ERR! (?:code E[A-Z0-9_]+|404|notarget|network)|\bERESOLVE\b|Could not find a version "
                        r"that satisfies|No matching distribution found|ResolutionImpossible|Could not resolve "
                        r"dependencies|go: [^\n]*: (?:reading|verifying|unknown revision)|error An unexpected error "
                        r"occurred: \"https?://|Failed to download|E: Unable to locate package|ERROR: Failed building "
                        r"wheel|Couldn't find any versions for")
TESTS = re.compile(r"(?<![\w.])[1-9]\d* (?:failed|failing|failures?)\b|^FAILED\b|--- FAIL:|^FAIL\s+\S+|"
                   r"Tests run: \d+, Failures: (?:[1-9]|\d+, Errors: [1-9])|npm ERR! Test failed|"
                   r"There (?:was|were|are) (?:\d+ )?(?:test )?failures?|AssertionError|Test Suites: [1-9]\d* failed",
                   re.M)
LINT = re.compile(r"\b\d+ problems? \([1-9]\d* errors?|^\s*\d+:\d+\s+error\s|^\S+\.py:\d+:\d+: [A-Z]{1,3}\d{3,4}\b|"
                  r"^Found [1-9]\d* errors?|^\S+\.(?:go|js|jsx|ts|tsx|rb):\d+:\d+: .*\(\w+\)$|Your code has been rated "
                  r"at|^would reformat |\d+ issue\(s\) found|npm ERR! [^\n]*\blint\b", re.M)
TEST_COMMAND = re.compile(r"\b(?:pytest|py\.test|jest|mocha|vitest|karma|go test|mvnw? (?:\S+ )*(?:test|verify)|"
                          r"gradlew? (?:\S+ )*test|(?:npm|yarn|pnpm)(?: run)? test|rspec|phpunit|tox|nox|make test|"
                          r"dotnet test|cargo test)\b")
LINT_COMMAND = re.compile(r"\b(?:eslint|flake8|pylint|ruff|golangci-lint|stylelint|tslint|tflint|prettier --check|"
                          r"black --check|isort --check|rubocop|hadolint|shellcheck|(?:npm|yarn|pnpm)(?: run)? lint|"
                          r"make lint|terraform fmt -check)\b")
INSTALL_COMMAND = re.compile(r"\b(?:npm (?:ci|install|i)|yarn install|pnpm install|pip3? install|-m pip install|"
                             r"poetry install|pipenv install|bundle install|go mod download|composer install|"
                             r"gem install|apt-get install|yum install|dnf install|apk add)\b|^yarn$")
LAMBDA_CONFLICT = re.compile(r"An update is in progress|ResourceConflictException|CodeVerificationFailed|"
                             r"InvalidParameterValueException.*(Runtime|Handler)|when calling the UpdateFunctionCode "
                             r"operation|operation error Lambda: UpdateFunctionCode")
BUILD_PHASES_BEFORE_DEPLOY = {"SUBMITTED", "QUEUED", "PROVISIONING", "DOWNLOAD_SOURCE", "INSTALL", "PRE_BUILD", "BUILD"}
FAILED_PHASE = ("FAILED", "FAULT", "TIMED_OUT", "CLIENT_ERROR")

# CodeBuild's own log lines ("[Container] 2026/11/29 08:41:02.123456 Running command npm test").
_AGENT = re.compile(r"^\[Container\] \d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? (?P<msg>.*)$")
_RUNNING = re.compile(r"^Running command (?P<cmd>.*)$")
_DID_NOT_EXIT = re.compile(r"^Command did not exit successfully (?P<cmd>.*) exit status (?P<status>\d+)$")
_ENTERING = re.compile(r"^Entering phase (?P<phase>\w+)")
_CONTEXT_COMMAND = re.compile(r"Error while executing command: (?P<cmd>.*?)\. Reason: (?P<reason>.*)$")

# Lambda's own lines (Lambda docs, "Lambda function logs"; JSON log format: platform.report records).
TIMEOUT = re.compile(r"Task timed out after [\d.]+ seconds|\bStatus: timeout\b|\"status\"\s*:\s*\"timeout\"")
OUT_OF_MEMORY = re.compile(r"Runtime exited with error: signal: killed|Runtime\.OutOfMemory|\bMemoryError\b|"
                           r"JavaScript heap out of memory|java\.lang\.OutOfMemoryError|runtime: out of memory")
REPORT_MEMORY = re.compile(r"Memory Size: (?P<size>\d+) MB\s+Max Memory Used: (?P<used>\d+) MB|"
                           r"\"memorySizeMB\"\s*:\s*(?P<jsize>\d+)[^}]*\"maxMemoryUsedMB\"\s*:\s*(?P<jused>\d+)")
# The deployed package cannot start: the runtime could not load the handler (Lambda docs, "Troubleshoot
# deployment issues" and "Troubleshoot invocation issues"; the runtimes' error types).
PACKAGING = re.compile(r"\bRuntime\.(?:ImportModuleError|HandlerNotFound|UserCodeSyntaxError|MalformedHandlerName|"
                       r"InvalidEntrypoint)\b|Unable to import module '|Handler '[^']+' missing on module|"
                       r"\bis undefined or not exported\b|Couldn't find valid bootstrap|\bClass not found: |"
                       r"Unable to load type '|Could not find the specified handler assembly|"
                       r"fork/exec /var/task/\S+: no such file or directory")
REQUEST_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def error_lines(lines: list[LogLine], limit: int = MAX_LINES) -> list[LogLine]:
    """The last ``limit`` lines matching the runbook's ERROR/Exception patterns."""
    return [line for line in lines if ERROR_LINE.search(line.message)][-limit:]


def _excerpt(lines: list[str]) -> str:
    return truncate("\n".join(lines), MAX_EVIDENCE)


# ---- the failure's own context -------------------------------------------------------------------

@dataclass
class FailureContext:
    """Where the failure is told: the failed phase, the failed action's error, the failed command's output."""

    build: BuildFacts | None = None
    phase: BuildPhase | None = None
    timed_out: bool = False
    command: str | None = None
    exit_status: str | None = None
    lines: list[str] = field(default_factory=list)      # the failed command's output (CodeBuild's own lines left out)
    messages: list[str] = field(default_factory=list)   # phase contexts, the failed action's error

    @property
    def text(self) -> str:
        return "\n".join(self.messages + self.lines)

    @property
    def codes(self) -> set[str]:
        return {c.status_code for c in (self.phase.contexts if self.phase else []) if c.status_code}


@dataclass
class _Segment:
    command: str | None
    phase: str | None
    lines: list[str] = field(default_factory=list)
    failed: bool = False
    status: str | None = None


def failure_context(obs: Observations) -> FailureContext:
    """The failed build's phase and contexts, the failed action's error and the failed command's lines."""
    ctx = FailureContext(build=obs.failed_build)
    build = ctx.build
    if build is not None:
        ctx.phase = build.failed_phase
        ctx.timed_out = build.status == "TIMED_OUT" or (ctx.phase is not None and ctx.phase.status == "TIMED_OUT") \
            or "BUILD_TIMED_OUT" in ctx.codes
        ctx.messages += [f"{c.status_code}: {c.message}" if c.status_code else c.message
                         for c in (ctx.phase.contexts if ctx.phase else [])]
    action = obs.pipeline.failed_action if obs.pipeline else None
    if action is not None and action.error_message:
        ctx.messages.append(action.error_message)
    named = next((m for c in (ctx.phase.contexts if ctx.phase else [])
                  if (m := _CONTEXT_COMMAND.search(c.message))), None)
    segment = _failed_segment([line.message for line in obs.build_log_lines], named.group("cmd") if named else None,
                              ctx.phase.phase_type if ctx.phase else None)
    if segment is not None:
        ctx.command, ctx.lines = segment.command, segment.lines[-MAX_COMMAND_LINES:]
        ctx.exit_status = segment.status or (named.group("reason") if named else None)
    return ctx


def _failed_segment(lines: list[str], named: str | None, phase: str | None) -> _Segment | None:
    """The failed command's part of a CodeBuild log (see the module docstring)."""
    segments: list[_Segment] = []
    current_phase = None
    for line in lines:
        agent = _AGENT.match(line)
        if agent is None:
            if not segments:
                segments.append(_Segment(None, current_phase))
            segments[-1].lines.append(line)
            continue
        msg = agent.group("msg")
        if (m := _ENTERING.match(msg)):
            current_phase = m.group("phase")
        elif (m := _RUNNING.match(msg)):
            segments.append(_Segment(m.group("cmd").strip(), current_phase))
        elif (m := _DID_NOT_EXIT.match(msg)):
            done = next((s for s in reversed(segments) if s.command == m.group("cmd").strip()), None)
            if done is not None:
                done.failed, done.status = True, f"exit status {m.group('status')}"
    if not segments:
        return None
    if named:
        match = [s for s in segments if s.command == named.strip()]
        if match:
            return next((s for s in match if s.failed), match[-1])
    failed = [s for s in segments if s.failed]
    in_phase = [s for s in failed if phase is None or s.phase in (None, phase)]
    return (in_phase or failed or segments)[0] if failed else segments[-1]


# ---- findings ------------------------------------------------------------------------------------

@dataclass
class Diagnosis:
    findings: list[Finding] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)   # fact key -> finding id

    def add(self, key: str, source: str, resource: str, severity: FindingSeverity, observed: str,
            evidence: str | None = None, time: dt.datetime | None = None) -> str:
        fid = f"F{len(self.findings) + 1}"
        self.findings.append(Finding(id=fid, source=source, resource=resource, severity=severity,
                                     observed=observed, evidence=evidence or None,
                                     time=time))
        self.refs[key] = fid
        return fid


def bounded(found: list[Finding], cited: Iterable[str], limit: int) -> list[Finding]:
    """At most ``limit`` of ``found``, in their order: those ``cited`` (the root cause's evidence)
    first, then Errors, Warnings and Info; the rest are left out of status."""
    if len(found) <= limit:
        return found
    keep, rank = set(cited), {FindingSeverity.ERROR: 1, FindingSeverity.WARNING: 2, FindingSeverity.INFO: 3}
    chosen = sorted(range(len(found)), key=lambda i: (0 if found[i].id in keep else rank[found[i].severity], i))
    return [found[i] for i in sorted(chosen[:limit])]


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
    ctx = failure_context(obs)
    build = ctx.build
    if build is not None:
        phase = ctx.phase
        observed = f"build {build.id} {build.status}" + (f" in phase {phase.phase_type} ({phase.status})" if phase else "")
        d.add("build", "CodeBuild", f"build/{build.id}", FindingSeverity.ERROR, observed,
              evidence=_excerpt(ctx.messages) if ctx.messages else None, time=build.started_at)
    log = obs.build_log_lines
    if ctx.command and log:
        ended = ctx.exit_status or ("the build timed out while it ran" if ctx.timed_out else "the log ends")
        d.add("build-log", "CloudWatchLogs", f"{log[0].group}/{log[0].stream}", FindingSeverity.ERROR,
              f"command `{ctx.command[:300]}` failed ({ended}); its last lines are the evidence",
              evidence=_excerpt(ctx.lines[-MAX_LINES:]))
    elif (errors := error_lines(log)):
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
    denied = _trail_denied(obs)
    if denied:
        lines = [f"{e.time:%H:%M:%S} {e.event_source} {e.event_name} {e.error_code} by {e.principal}: {e.error_message}"
                 if e.time else f"{e.event_name} {e.error_code}" for e in denied[:MAX_LINES]]
        d.add("trail", "CloudTrail", obs.trail_source or "cloudtrail", FindingSeverity.ERROR,
              f"{len(denied)} AccessDenied events in the last hour, e.g. {denied[0].event_name} "
              f"on {denied[0].event_source}", evidence=_excerpt(lines))
    if obs.lock_error is not None or obs.terraform_lock is not None:
        lock = obs.terraform_lock
        d.add("lock", "Terraform", (lock.path if lock else None) or "state", FindingSeverity.ERROR, _held(obs),
              evidence=obs.lock_error.message if obs.lock_error else None)
    for i, problem in enumerate(obs.problems):
        severity = FindingSeverity.WARNING
        what = "not found" if problem.not_found else ("access denied" if problem.denied else "could not be read")
        d.add(f"problem:{i}", problem.source, problem.resource, severity, f"{problem.resource} {what}: {problem.message}")
    return d


def _held(obs: Observations) -> str:
    """The held lock in one line: the failed command's lock error, or the lock its DriftCheck saw when the error
    names none."""
    if obs.lock_error is not None and (obs.lock_error.lock is not None or obs.terraform_lock is None):
        return obs.lock_error.describe()
    return LockError(message="seen by the DriftCheck", lock=obs.terraform_lock).describe()


def _trail_denied(obs: Observations) -> list:
    return [e for e in obs.trail_events if e.error_code and DENIED.search(f"{e.error_code} {e.error_message or ''}")]


@dataclass(frozen=True)
class LambdaFailures:
    """What a function's logs say went wrong (counts of distinct invocations where request ids show)."""

    timeouts: int = 0
    out_of_memory: int = 0
    database: str | None = None                                 # the first database error line
    invocations: dict[str, int] = field(default_factory=dict)   # version -> REPORT lines seen


def lambda_failures(fn: LambdaFacts) -> LambdaFailures:
    """Timeouts, out-of-memory kills and database errors among ``fn``'s error lines and REPORT lines.

    Worked out once per distinct log content: an assessment asks twice (its findings and its
    candidates), and the Incidents of an alert storm read the same lines (shared reads); the
    regular expressions over up to 2,500 lines were 5 % of the operator's CPU in a burst (py-spy)."""
    return _failures(tuple(line.message for line in fn.error_lines),
                     tuple((line.message, line.stream) for line in fn.reports))


@functools.lru_cache(maxsize=16)
def _failures(errors: tuple[str, ...], reports: tuple[tuple[str, str], ...]) -> LambdaFailures:
    timeouts: set[str] = set()
    oom: set[str] = set()
    database = None
    for i, message in enumerate(errors + tuple(m for m, _ in reports)):
        key = (m.group(0) if (m := REQUEST_ID.search(message)) else f"line-{i}")
        if TIMEOUT.search(message):
            timeouts.add(key)
        memory = REPORT_MEMORY.search(message)
        full = memory and int(memory.group("used") or memory.group("jused")) >= int(memory.group("size") or
                                                                                    memory.group("jsize"))
        if OUT_OF_MEMORY.search(message) or full:
            oom.add(key)
        if database is None and i < len(errors) and (m := DB_CONNECT.search(message)):
            database = _line(message, m)
    invocations: dict[str, int] = {}
    for _, stream in reports:
        version = stream_version(stream) or "?"
        invocations[version] = invocations.get(version, 0) + 1
    return LambdaFailures(len(timeouts), len(oom - timeouts), database, invocations)


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
    failures = lambda_failures(fn)
    if fn.error_lines:
        extra = [f"{n} {what}" for n, what in ((failures.timeouts, "timed out"),
                                               (failures.out_of_memory, "ran out of memory")) if n]
        runs = ", ".join(f"version {v}: {n}" for v, n in sorted(failures.invocations.items()))
        d.add(f"lambda-errors:{fn.name}", "CloudWatchLogs", f"/aws/lambda/{fn.name}", FindingSeverity.ERROR,
              f"{len(fn.error_lines)} ERROR events in the last hour" + (f" ({', '.join(extra)})" if extra else "")
              + (f"; invocations (REPORT lines) by version: {runs}" if runs else ""),
              evidence=_excerpt([line.message for line in fn.error_lines[-MAX_LINES:]]))


def packaging_error(fn: LambdaFacts) -> str | None:
    """The first of ``fn``'s error lines saying its deployed package cannot start (:data:`PACKAGING`:
    ``Runtime.ImportModuleError``, ``Runtime.HandlerNotFound``, ``Runtime.UserCodeSyntaxError``, ...),
    or None. Such an error is the deployment's fault whatever ran before: the code cannot load."""
    for line in fn.error_lines:
        if (m := PACKAGING.search(line.message)):
            return _line(line.message, m)
    return None


@dataclass(frozen=True)
class RateLimit:
    """A registry's refusal for its rate limit: ``registry`` named from its host (or its words),
    ``line`` the refusal, ``wait`` how long until a retry can work (``stated``: the answer said so)."""

    registry: str
    line: str
    wait: dt.timedelta
    stated: bool

    def describe(self, now: dt.datetime) -> str:
        when = now + self.wait
        why = ("as the registry asked" if self.stated else
               f"{self.registry}'s rate-limit window; it did not say when" if self.registry != "a package registry"
               else "the registry did not say when")
        return truncate(f"{self.registry} refused with its rate limit: {self.line}; a retry before {when:%Y-%m-%d %H:%M} UTC "
                f"({why}) fails the same way: retry then, or authenticate the pulls or use a mirror or cache", 1024)


def rate_limit(text: str) -> RateLimit | None:
    """The first registry rate-limit refusal in ``text`` (:data:`RATE_LIMITED`), or None; an AWS API's
    throttling is not one (it is an AWS quota)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not RATE_LIMITED.search(line) or _AWS_THROTTLE.search(line):
            continue
        near = [line] + lines[max(0, i - 3):i][::-1] + lines[i + 1:i + 3]
        hosts = [h for candidate in near for h in _HOST.findall(candidate)]
        known = next(((name, window) for host in hosts for key, name, window in REGISTRIES
                      if host == key or host.endswith("." + key)), None)
        if known is None and "pull rate limit" in line:
            known = ("Docker Hub", 6 * 3600)  # its own words ("You have reached your pull rate limit")
        if known is None and not hosts:
            known = next(((name, 3600) for words, name in _CLIENT_REGISTRY if any(words in c for c in near)), None)
        name, window = known or (hosts[0] if hosts else "a package registry", 3600)
        stated = _retry_after(" ".join(near))
        return RateLimit(name, line.strip()[:300], stated or dt.timedelta(seconds=window), stated is not None)
    return None


def _retry_after(text: str) -> dt.timedelta | None:
    m = _RETRY_AFTER.search(text)
    if m is None:
        return None
    n, unit = (m.group("n"), m.group("unit")) if m.group("n") else (m.group("n2"), m.group("unit2"))
    unit = unit or "s"
    scale = (1e-6 if unit in ("µs", "us") else 1e-3 if unit == "ms" else 60 if unit[0] == "m" else
             3600 if unit[0] == "h" else 1)
    return dt.timedelta(seconds=max(1.0, float(n) * scale))


def release_evidence(fn: LambdaFacts) -> tuple[bool, str]:
    """(whether ``fn``'s errors are the release's fault, why or why not).

    The errors are tied to a release when they began after the running version went live and the
    version before it ran clean, shown either by version (Lambda names log streams
    ``2026/11/29/[3]abcdef``: errors only in the running version's streams while REPORT lines show
    the previous version ran in the same window without errors) or by time (the first error after
    the version's LastModified, and invocations before it without errors).
    """
    errors = fn.error_lines
    if not errors:
        return False, "no errors"
    versions = {stream_version(e.stream) for e in errors}
    live = next(iter(versions)) if len(versions) == 1 and None not in versions else fn.current_version
    previous = fn.previous_version.version if fn.previous_version else None
    if previous is not None and previous in versions:
        return False, f"version {previous} logs errors too"
    if (broken := packaging_error(fn)) is not None:
        return True, f"the deployed package cannot start ({broken[:120]})"
    if previous is not None and live not in (None, "$LATEST") and versions == {live}:
        clean = [r for r in fn.reports if stream_version(r.stream) == previous]
        if clean:
            return True, (f"errors only in version {live}'s log streams, while version {previous} ran "
                          f"{len(clean)} invocations in the same hour without one")
    went_live = fn.went_live(live)
    if went_live is None:
        return False, "when the running version went live is unknown"
    first = min(e.time for e in errors)
    before = [r for r in fn.reports if r.time < went_live]
    if first < went_live:
        return False, f"errors began at {first:%H:%M:%S} UTC, before version {live or '$LATEST'} went live"
    if not before:
        return False, "no invocation of the previous code was seen, so it is not known to have run clean"
    return True, (f"errors began at {first:%H:%M:%S} UTC, after version {live or '$LATEST'} went live at "
                  f"{went_live:%H:%M:%S} UTC; the {len(before)} invocations before it ran without errors")


def release_broke(fn: LambdaFacts) -> bool:
    """True when ``fn``'s errors are tied to its release (:func:`release_evidence`): a rollback can help."""
    return release_evidence(fn)[0]


# ---- classification ------------------------------------------------------------------------------

@dataclass
class _Candidate:
    score: int
    category: Cat
    summary: str
    evidence: list[str]
    lock: StateLock | None = None


class ScoredCause(Protocol):
    """A cause found outside this module (``playbooks.performance.metrics.Cause``) with a score on this
    module's scale and the keys of its findings in the Diagnosis."""

    category: Cat
    summary: str
    evidence: list[str]
    score: int


def classify(obs: Observations, d: Diagnosis, now: dt.datetime, extra: Sequence[ScoredCause] = ()) -> RootCause:
    """The root cause the observations and the ``extra`` causes support best, citing its findings
    (Unknown when none does). An extra cause loses a tie to this module's rules.

    Each rule group proposes candidates with a score; the highest wins and, among equal scores, the
    first proposed (the groups run in a fixed order: the state lock, the deployment's own signals,
    each function's logs, then the build's steps)."""
    ref = d.refs.get
    ctx = failure_context(obs)
    failure_refs: list[str | None] = [r for r in (ref("pipeline"), ref("build"), ref("build-log")) if r]
    c: list[_Candidate] = []

    def add(score: int, category: Cat, summary: str, evidence: list[str | None] | None = None,
            lock: StateLock | None = None) -> None:
        c.append(_Candidate(score, category, summary, [e for e in (evidence or failure_refs) if e], lock))

    _lock_candidates(obs, add, ref, failure_refs)
    _deployment_candidates(obs, ctx, add, ref, failure_refs, now)
    if (ctx.phase.phase_type if ctx.phase else None) not in BUILD_PHASES_BEFORE_DEPLOY:
        for fn in obs.lambdas:
            _lambda_candidates(fn, add, ref, failure_refs)
    _build_step_candidates(ctx, add)
    for x in extra:
        add(x.score, x.category, x.summary, [ref(k) for k in x.evidence])
    if not c:
        return RootCause(category=Cat.UNKNOWN, summary=_nothing_found(obs), evidence=[], identified_at=now)
    best = max(c, key=lambda x: x.score)  # max keeps the first of equal scores: rule order breaks ties
    log.debug("root-cause candidates: %s; chosen %s", [(x.category.value, x.score) for x in c], best.category.value)
    evidence = list(dict.fromkeys(best.evidence))[:10]
    return RootCause(category=best.category, summary=best.summary, evidence=evidence, identified_at=now,
                     lock=best.lock)


def _nothing_found(obs: Observations) -> str:
    """What an Unknown root cause says: where the assessment looked, and what it could not read."""
    read = [name for name, seen in (("the pipeline", obs.pipeline), ("the builds", obs.builds),
                                     ("the build log", obs.build_log_lines), ("Lambda", obs.lambdas),
                                     ("API Gateway", obs.api_id), ("RDS", obs.rds),
                                     ("CloudTrail", obs.trail_source and not any(
                                         p.source == "CloudTrail" for p in obs.problems))) if seen]
    what = ("no failure signal was found in " + ", ".join(read)) if read else "no target could be read"
    if obs.problems:
        what += f"; {len(obs.problems)} sources could not be read (see findings)"
    return what


class _Add(Protocol):
    """How a rule proposes a root cause (``score``: higher wins; ``evidence``: finding refs)."""

    def __call__(self, score: int, category: Cat, summary: str, evidence: list[str | None] | None = None,
                 lock: StateLock | None = None) -> None: ...


def _lock_candidates(obs: Observations, add: _Add, ref: Callable[[str], str | None],
                     failure_refs: list[str | None]) -> None:
    """The Terraform state lock: a denial on it, a backend fault, or a lock held (score 100)."""
    lock_error = obs.lock_error
    problem = lock_error.problem if lock_error is not None else None
    if problem == LockProblem.DENIED and lock_error is not None:
        what = lock_error.denial.describe() if lock_error.denial else lock_error.message
        via = f" ({lock_error.backend} backend)" if lock_error.backend else ""
        add(100, Cat.DEPLOY_PERMISSION_DENIED, f"permission denied on the Terraform state lock{via}: {what}",
            [ref("lock")] + failure_refs)
    elif problem == LockProblem.BACKEND_FAULT and lock_error is not None:
        category = Cat.DEPLOY_NETWORK if NETWORK.search(lock_error.message) else Cat.TERRAFORM_BACKEND
        add(100, category, lock_error.describe(), [ref("lock")] + failure_refs)
    elif lock_error is not None or obs.terraform_lock is not None:
        add(100, Cat.TERRAFORM_STATE_LOCK, f"Terraform {_held(obs)}", [ref("lock")] + failure_refs, obs.terraform_lock)


def _deployment_candidates(obs: Observations, ctx: FailureContext, add: _Add, ref: Callable[[str], str | None],
                           failure_refs: list[str | None], now: dt.datetime) -> None:
    """The deployment's own signals (scores 95 to 70): the build's timeout, denials, failed Lambda
    deployments, invalid buildspec or configuration, name clashes, rate limits and quotas, the database."""
    text, command, build = ctx.text, ctx.command or "", ctx.build
    phase = ctx.phase.phase_type if ctx.phase else None
    if ctx.timed_out:
        where = f" in phase {phase}" if phase else ""
        running = f" while `{command[:200]}` ran" if command else ""
        last = f"; its last output: {ctx.lines[-1][:200]}" if ctx.lines else ""
        add(95, Cat.BUILD_TIMED_OUT, f"build {build.id if build else '?'} hit its own timeout{where}{running}{last}")
    trail_denied = _trail_denied(obs)
    if trail_denied or DENIED.search(text):
        add(90, Cat.DEPLOY_PERMISSION_DENIED, f"IAM permission denied: {_denied(trail_denied, text)}",
            [ref("trail")] + failure_refs)
    for fn in obs.lambdas:
        if fn.state == "Failed" or fn.last_update_status == "Failed":
            reason = fn.last_update_reason or fn.state_reason or "no reason given"
            add(85, Cat.LAMBDA_DEPLOYMENT, f"deployment of Lambda {fn.name} failed: {reason}",
                [ref(f"lambda:{fn.name}")] + failure_refs)
    if "YAML_FILE_ERROR" in ctx.codes:
        add(85, Cat.BUILD_FAILURE, f"the buildspec is invalid: {_first(ctx.messages, 'YAML_FILE_ERROR')}")
    if (m := TF_VALIDATION.search(text)):
        add(80, Cat.TERRAFORM_VALIDATION, f"Terraform configuration is invalid: {_line(text, m)}")
    if obs.lambdas and (m := LAMBDA_CONFLICT.search(text)):
        add(78, Cat.LAMBDA_DEPLOYMENT, f"Lambda deployment failed: {_line(text, m)}",
            failure_refs + [ref(f"lambda:{f.name}") for f in obs.lambdas])
    if (m := NAMING.search(text)):
        add(75, Cat.DEPLOY_NAMING_CONFLICT, f"a resource name is already taken: {_line(text, m)}")
    if (limited := rate_limit(text)) is not None:
        add(76, Cat.REGISTRY_RATE_LIMITED, limited.describe(now))
    if (m := QUOTA.search(text)):
        add(74, Cat.DEPLOY_QUOTA_EXCEEDED, f"an AWS quota or rate limit was hit: {_line(text, m)}")
    if obs.rds is not None and obs.rds.status != "available":
        add(72, Cat.DATABASE_CONNECTIVITY, f"database connectivity: database {obs.rds.instance_id} is {obs.rds.status}",
            [ref("rds")] + [ref(f"lambda-errors:{f.name}") for f in obs.lambdas] + failure_refs)
    if (m := DB_CONNECT.search(text)):
        add(70, Cat.DATABASE_CONNECTIVITY, f"database connectivity: {_line(text, m)}", [ref("rds")] + failure_refs)


def _build_step_candidates(ctx: FailureContext, add: _Add) -> None:
    """The build's own steps (scores 66 to 40): installing dependencies, tests, lint, the network,
    then the failed phase itself."""
    text, command, build = ctx.text, ctx.command or "", ctx.build
    phase = ctx.phase.phase_type if ctx.phase else None
    m = DEPENDENCY.search(text)
    if m or phase == "INSTALL" or INSTALL_COMMAND.search(command):
        why = _line(text, m) if m else f"`{command}` failed" if command else "the INSTALL phase failed"
        add(66 if m else 60, Cat.BUILD_DEPENDENCY_INSTALL, f"installing dependencies failed: {why}")
    m = TESTS.search(text)
    if m or TEST_COMMAND.search(command):
        add(65 if m else 62, Cat.BUILD_TEST_FAILURE, f"tests failed: {_line(text, m) if m else f'`{command}` failed'}")
    m = LINT.search(text)
    if m or LINT_COMMAND.search(command):
        add(64 if m else 61, Cat.BUILD_LINT, f"lint failed: {_line(text, m) if m else f'`{command}` failed'}")
    if (m := _network(text)):
        add(50, Cat.DEPLOY_NETWORK, f"network failure during the deployment: {_line(text, m)}")
    if build is not None and ctx.phase is not None:
        detail = f": {ctx.messages[0]}" if ctx.messages else ""
        add(40, Cat.BUILD_FAILURE, f"build {build.id} failed in phase {phase}{detail}")


def _lambda_candidates(fn: LambdaFacts, add: _Add, ref: Callable[[str], str | None],
                       failure_refs: list[str | None]) -> None:
    """Database, memory, timeout and code-error candidates from one function's logs."""
    if not fn.error_lines:
        return
    failures = lambda_failures(fn)
    refs = [ref(f"lambda-errors:{fn.name}"), ref(f"lambda:{fn.name}"), ref("rds")] + failure_refs
    if (broken := packaging_error(fn)) is not None:
        tied, why = release_evidence(fn)
        previous = fn.previous_version
        then = (f"version {previous.version} is the one to roll back to" if tied and previous else
                f"no rollback ({why}): deploy a fixed package" if previous else
                "no earlier version to roll back to: deploy a fixed package")
        add(71, Cat.LAMBDA_DEPLOYMENT, f"Lambda {fn.name}'s deployed package cannot start: {broken} "
                                       f"({len(fn.error_lines)} ERROR events in the last hour); {then}", refs)
    if failures.database is not None:
        add(70, Cat.DATABASE_CONNECTIVITY, f"database connectivity: Lambda {fn.name} cannot reach its database: "
                                           f"{failures.database}", refs)
    if failures.out_of_memory:
        add(69, Cat.LAMBDA_OUT_OF_MEMORY, f"Lambda {fn.name} ran out of memory in {failures.out_of_memory} "
                                          f"invocations (its memory size is too small for the work)", refs)
    tied, why = release_evidence(fn)
    others = [e for e in fn.error_lines if not TIMEOUT.search(e.message) and not OUT_OF_MEMORY.search(e.message)]
    if tied and others:
        live = stream_version(others[-1].stream) or fn.current_version or "$LATEST"
        add(68, Cat.LAMBDA_DEPLOYMENT, f"Lambda {fn.name} fails since version {live} went live: {len(fn.error_lines)} "
                                       f"ERROR events in the last hour, e.g. {_top_error(others)} ({why})", refs)
    if failures.timeouts:
        add(67, Cat.LAMBDA_TIMEOUT, f"Lambda {fn.name} timed out in {failures.timeouts} invocations (it waits on "
                                    f"something slower than its timeout)", refs)
    if others and not tied:
        add(55, Cat.LAMBDA_FUNCTION_ERROR, f"Lambda {fn.name} logs {len(others)} errors, e.g. {_top_error(others)}; "
                                           f"not tied to a release ({why}), so no code rollback", refs)


def _denied(trail: list, text: str) -> str:
    """"ACTION denied to PRINCIPAL", from a CloudTrail record or the failure's own words."""
    if trail:
        e = trail[0]
        return f"{e.event_source.split('.')[0]}:{e.event_name} denied to {e.principal or 'an unnamed principal'}"
    found = denials.find(text)
    return found.describe() if found else "access denied"


def _first(messages: list[str], prefix: str) -> str:
    return next((m for m in messages if m.startswith(prefix)), messages[0] if messages else "")[:300]


def _line(text: str, m: re.Match | None, width: int = 300) -> str:
    """The line of ``text`` that ``m`` matched, trimmed for a summary to ``width`` characters around the
    match (a diagnostic joined from a wrapped box can be long, and its cause is often near its end)."""
    if m is None:
        return ""
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.end())
    line = text[start: end if end >= 0 else len(text)]
    if len(line.strip()) <= width:
        return line.strip()
    first = max(0, min(m.start() - start - width // 2, len(line) - width))
    return ("…" if first else "") + line[first: first + width].strip() + ("…" if first + width < len(line) else "")


def _network(text: str) -> re.Match | None:
    """The most telling network failure in ``text``: Go's wrappers ("request send failed", "send request
    failed") say that a call failed, the words after them (``dial tcp``, ``no such host``, ``i/o
    timeout``) why; the first of those when there is one."""
    found = list(NETWORK.finditer(text))
    return next((m for m in found if m.group(0) not in _GO_WRAPPERS), found[0] if found else None)


_VOLATILE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d+")


def _top_error(lines: list[LogLine]) -> str:
    """The most frequent error (request ids and numbers ignored), as one of its lines."""
    counts: dict[str, int] = {}
    example: dict[str, str] = {}
    for line in lines:
        key = _VOLATILE.sub("#", line.message.strip())[:160]
        counts[key] = counts.get(key, 0) + 1
        example.setdefault(key, line.message.strip()[:200])
    return example[max(counts, key=counts.__getitem__)]
