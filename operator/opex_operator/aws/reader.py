"""The initial assessment's AWS reads (the runbook's "Initial Assessment" commands), as facts.

Every method is read-only and bounded (pages, lines, characters). Errors propagate as
:class:`~.errors.AwsError`; the assessment turns them into findings.
"""
from __future__ import annotations

import datetime as dt
import shlex
from typing import Any, Iterable, Iterator, Sequence

from ..api.common import parse_time
from ..ports.cloudtrail import MAX_TRAIL_RECORDS, TrailRead, read_records
from ..ports.facts import (ActionState, ApiStage, BuildFacts, BuildPhase, Execution, LambdaFacts, LambdaVersion,
                              LogLine, PhaseContext, PipelineFacts, RdsFacts, SecurityGroupFacts, TrailEvent,
                              trail_events)
from .clients import AwsClients
from ..errors import AwsError

# CloudWatch Logs filter syntax: "?a ?b" matches events containing any term (case-sensitive).
ERROR_FILTER = "?ERROR ?Error ?error ?Exception ?FATAL ?Fatal ?FAILED ?Failed ?failed ?Traceback ?denied ?Denied"
# A Lambda function also fails without the word: "Task timed out after 6.00 seconds", a REPORT line
# with "Status: timeout" or "Status: error", a runtime killed for memory (Lambda docs, "Lambda
# function logging" and "Troubleshoot invocation issues").
LAMBDA_ERROR_FILTER = ERROR_FILTER + ' ?"Task timed out" ?"Status: timeout" ?"Status: error" ?"signal: killed"'
# One REPORT line (or JSON platform.report record) per invocation: which versions ran, and their memory.
REPORT_FILTER = '?REPORT ?"platform.report"'
MAX_REPORTS = 500
TRAIL_FILTER = "?errorCode"
MAX_LOG_EVENTS = 2000
MAX_LOG_PAGES = 5
# CloudWatch Logs filter patterns are at most 1,024 characters: terms go in patterns this long at most.
PATTERN_CHARS = 1000
MAX_BUILDS = 5
RECENT_EXECUTIONS = 10
LINE_CHARS = 500


def _millis(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def _event_time(event: dict[str, Any]) -> dt.datetime:
    """A log event's time (its ``timestamp``, Unix milliseconds: always present in CloudWatch Logs)."""
    return dt.datetime.fromtimestamp(event["timestamp"] / 1000, dt.timezone.utc)


class AwsReader:
    """Reads for one incident: ``region`` and ``role_key`` as its spec.targets name them."""

    def __init__(self, clients: AwsClients, region: str | None, role_key: str | None):
        self.clients, self.region, self.role_key = clients, region, role_key

    def _c(self, service: str) -> Any:
        return self.clients.client(service, self.region, self.role_key)


    # -- CodePipeline: list-pipeline-executions, get-pipeline-execution, get-pipeline-state -----------
    def executions(self, name: str) -> list[Execution]:
        """The pipeline's newest executions, newest first (at most RECENT_EXECUTIONS): one
        ListPipelineExecutions, which the assessment and the manual-fix watch share."""
        summaries = self._c("codepipeline").list_pipeline_executions(
            pipelineName=name, maxResults=RECENT_EXECUTIONS)["pipelineExecutionSummaries"]
        return [Execution(s["pipelineExecutionId"], s["status"], parse_time(s.get("startTime"))) for s in summaries]

    def pipeline(self, name: str, execution_id: str | None,
                 recent: Sequence[Execution] | None = None) -> PipelineFacts:
        """The execution (newest when ``execution_id`` is None) and its failed stage/action;
        ``recent``: :meth:`executions`' answer when already read (else it is read here). Raises
        AwsError, or LookupError when the pipeline has no execution."""
        cp = self._c("codepipeline")
        recent = self.executions(name) if recent is None else recent
        latest_id = recent[0].id if recent else None
        if execution_id is None:
            if latest_id is None:
                raise LookupError(f"pipeline {name} has no executions")
            execution_id = latest_id
        execution = cp.get_pipeline_execution(pipelineName=name, pipelineExecutionId=execution_id)["pipelineExecution"]
        summary = next((e for e in recent if e.id == execution_id), None)
        facts = PipelineFacts(name=name, execution_id=execution_id, status=execution["status"],
                              status_summary=execution.get("statusSummary"), is_latest=execution_id == latest_id,
                              started_at=summary.started_at if summary else None)
        state = cp.get_pipeline_state(name=name)
        for stage in state.get("stageStates", []):
            latest = stage.get("latestExecution") or {}
            if latest.get("pipelineExecutionId") != execution_id or latest.get("status") != "Failed":
                continue
            facts.failed_stage = stage["stageName"]
            for action in stage.get("actionStates", []):
                run = action.get("latestExecution") or {}
                if run.get("status") == "Failed":
                    err = run.get("errorDetails") or {}
                    facts.failed_action = ActionState(
                        stage=stage["stageName"], action=action["actionName"], status="Failed",
                        error_code=err.get("code"), error_message=(err.get("message") or "")[:LINE_CHARS] or None,
                        external_execution_id=run.get("externalExecutionId"), summary=run.get("summary"))
                    break
            break
        return facts

    # -- CodeBuild: list-builds-for-project, batch-get-builds ------------------------------
    def builds(self, project: str | None, ids: Sequence[str] = ()) -> list[BuildFacts]:
        """Recent builds of ``project``, newest first (at most 5), plus the builds ``ids`` names."""
        cb = self._c("codebuild")
        wanted = list(ids)
        if project:
            wanted += cb.list_builds_for_project(projectName=project, sortOrder="DESCENDING")["ids"][:MAX_BUILDS]
        wanted = list(dict.fromkeys(wanted))
        if not wanted:
            return []
        found = {b["id"]: b for b in cb.batch_get_builds(ids=wanted)["builds"]}
        return [self._build(found[i]) for i in wanted if i in found]

    @staticmethod
    def _build(raw: dict[str, Any]) -> BuildFacts:
        phases = [BuildPhase(phase_type=p["phaseType"], status=p.get("phaseStatus"),
                             contexts=[PhaseContext(c.get("statusCode") or None, (c.get("message") or "")[:LINE_CHARS])
                                       for c in p.get("contexts", []) if c.get("message") or c.get("statusCode")])
                  for p in raw.get("phases", [])]
        logs = raw.get("logs") or {}
        return BuildFacts(id=raw["id"], project=raw.get("projectName", ""), status=raw.get("buildStatus", ""),
                          phases=phases, log_group=logs.get("groupName"), log_stream=logs.get("streamName"),
                          started_at=parse_time(raw.get("startTime")))

    # -- CloudWatch Logs ---------------------------------------------------------------------
    def stream_lines(self, group: str, stream: str) -> list[LogLine]:
        """The whole log stream from its head (at most 2000 events), e.g. a build's log."""
        logs = self._c("logs")
        lines: list[LogLine] = []
        token = None
        while len(lines) < MAX_LOG_EVENTS:
            kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True,
                                      "limit": min(1000, MAX_LOG_EVENTS - len(lines))}
            if token:
                kwargs["nextToken"] = token
            page = logs.get_log_events(**kwargs)
            lines += [LogLine(time=_event_time(e), message=e["message"].rstrip("\n")[:LINE_CHARS],
                              group=group, stream=stream) for e in page["events"]]
            if not page["events"] or page.get("nextForwardToken") == token:
                break
            token = page.get("nextForwardToken")
        return lines

    def filtered_lines(self, group: str, since: dt.datetime, pattern: str = ERROR_FILTER,
                       limit: int = MAX_LOG_EVENTS) -> list[LogLine]:
        """Events of ``group`` since ``since`` matching the CloudWatch filter ``pattern`` (oldest first).

        The "?a ?b" (any term) semantics are applied again here: a backend that does not
        implement them (moto returns every event) then answers like CloudWatch Logs does.
        """
        return self._filtered(group, since, pattern, limit, MAX_LOG_PAGES)[0]

    def _filtered(self, group: str, since: dt.datetime, pattern: str, limit: int,
                  max_pages: int) -> tuple[list[LogLine], int, bool]:
        """:meth:`filtered_lines`, and how many pages it read and whether a bound stopped it."""
        logs = self._c("logs")
        terms = any_terms(pattern)
        lines: list[LogLine] = []
        pages, token = 0, None
        for page in self._pages(logs, "filter_log_events", max_pages, logGroupName=group, startTime=_millis(since),
                                filterPattern=pattern):
            pages, token = pages + 1, page.get("nextToken")
            lines += [LogLine(time=_event_time(e), message=e["message"].rstrip("\n"),
                              group=group, stream=e.get("logStreamName", "")) for e in page["events"]
                      if not terms or any(t in e["message"] for t in terms)]
            if len(lines) >= limit:
                break
        more = bool(token) and (pages >= max_pages or len(lines) >= limit)
        return lines[:limit], pages, more or len(lines) > limit

    @staticmethod
    def _pages(client: Any, method: str, max_pages: int = 5, **kwargs: Any) -> Iterator[dict[str, Any]]:
        paginator = client.get_paginator(method)
        for i, page in enumerate(paginator.paginate(**kwargs)):
            if i >= max_pages:
                return
            yield page

    # -- Lambda: get-function, list-versions-by-function, list-aliases, its log group ---------
    def lambda_function(self, name: str, since: dt.datetime) -> LambdaFacts:
        lam = self._c("lambda")
        config = lam.get_function(FunctionName=name)["Configuration"]
        facts = LambdaFacts(name=name, state=config.get("State"), state_reason=config.get("StateReason"),
                            last_update_status=config.get("LastUpdateStatus"),
                            last_update_reason=config.get("LastUpdateStatusReason"),
                            code_sha256=config.get("CodeSha256"), last_modified=config.get("LastModified"))
        for page in self._pages(lam, "list_versions_by_function", FunctionName=name):
            facts.versions += [LambdaVersion(v["Version"], v["CodeSha256"], v.get("LastModified"))
                               for v in page["Versions"] if v["Version"] != "$LATEST"]
        facts.versions.sort(key=lambda v: int(v.version))
        for page in self._pages(lam, "list_aliases", FunctionName=name):
            facts.aliases.update({a["Name"]: a["FunctionVersion"] for a in page["Aliases"]})
        try:
            facts.error_lines = self.filtered_lines(f"/aws/lambda/{name}", since, LAMBDA_ERROR_FILTER)
            facts.reports = self.filtered_lines(f"/aws/lambda/{name}", since, REPORT_FILTER, MAX_REPORTS)
        except AwsError as err:
            if not err.not_found:  # no log group yet is normal for a function never invoked
                raise
        return facts

    # -- API Gateway: get-stages -------------------------------------------------------------
    def api_stages(self, rest_api_id: str) -> list[ApiStage]:
        items = self._c("apigateway").get_stages(restApiId=rest_api_id).get("item", [])
        return [ApiStage(name=s["stageName"], deployment_id=s.get("deploymentId"),
                         last_updated=parse_time(s.get("lastUpdatedDate"))) for s in items]

    # -- RDS: describe-db-instances, EC2 describe-security-groups ------------------------------
    def rds(self, instance_id: str) -> RdsFacts:
        db = self._c("rds").describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"][0]
        endpoint = db.get("Endpoint") or {}
        facts = RdsFacts(instance_id=instance_id, status=db.get("DBInstanceStatus", ""), engine=db.get("Engine"),
                         endpoint=endpoint.get("Address"), port=endpoint.get("Port"))
        group_ids = [g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups", [])]
        if group_ids:
            for sg in self._c("ec2").describe_security_groups(GroupIds=group_ids)["SecurityGroups"]:
                facts.security_groups.append(SecurityGroupFacts(
                    id=sg["GroupId"], name=sg.get("GroupName"),
                    ingress_ports=[_permission(p) for p in sg.get("IpPermissions", [])]))
        return facts

    # -- CloudTrail ----------------------------------------------------------------------------
    def trail_errors_from_logs(self, group: str, since: dt.datetime) -> list[TrailEvent]:
        """Error records of the CloudTrail log group (the runbook's ``aws logs filter-log-events``).

        Records are parsed here: Logs' JSON filter patterns are not relied on.
        """
        return _error_events(line.message for line in self.filtered_lines(group, since, TRAIL_FILTER, limit=500))

    def trail_errors_lookup(self, since: dt.datetime) -> list[TrailEvent]:
        """Error events from CloudTrail LookupEvents (management events of the last 90 days)."""
        ct = self._c("cloudtrail")
        return _error_events(e.get("CloudTrailEvent") or "{}"
                             for page in self._pages(ct, "lookup_events", max_pages=3, StartTime=since)
                             for e in page.get("Events", []))

    def trail_records_from_logs(self, group: str, since: dt.datetime, terms: list[str],
                                limit: int = MAX_TRAIL_RECORDS, max_calls: int = MAX_LOG_PAGES) -> TrailRead:
        """Every CloudTrail record of the log group since ``since`` that mentions one of ``terms``
        (access key ids, user and session names), oldest first: the runbook's "Investigation"
        ``aws logs filter-log-events --log-group-name CloudTrail/...``. At most ``limit`` records
        and ``max_calls`` pages; ``truncated`` says a bound stopped it, ``unread`` lists the terms
        no call was left for (as ``("Term", term)``).

        Records in every delivery format are read (``cloudtrail.read_records``); callers match the
        parsed records to their principals (a term may occur elsewhere in a record).
        """
        read = TrailRead()
        for chunk in _chunks([t for t in dict.fromkeys(terms) if t]):
            if read.calls >= max_calls or len(read.events) >= limit:
                read.truncated = True
                read.unread += [("Term", t) for t in chunk]
                continue
            pattern = " ".join(f'?"{t}"' for t in chunk)
            lines, pages, more = self._filtered(group, since, pattern, limit - len(read.events),
                                                max_calls - read.calls)
            read.merge(read_records(line.message for line in lines))
            read.calls += pages
            read.truncated = read.truncated or more
        return read

    def trail_records_lookup(self, since: dt.datetime, attributes: list[tuple[str, str]],
                             max_pages: int = 3, max_calls: int = 20) -> TrailRead:
        """CloudTrail LookupEvents since ``since`` for each (AttributeKey, value) pair, e.g.
        ("AccessKeyId", "AKIA...") or ("Username", "ci-deployer"); LookupEvents takes one
        attribute per call (CloudTrail API reference). At most ``max_pages`` pages of 50 each per
        attribute and ``max_calls`` calls in all: ``truncated`` says a bound stopped it, ``unread``
        lists the attributes no call was left for. Raises AwsError where LookupEvents is
        unavailable (moto has none)."""
        ct = self._c("cloudtrail")
        read = TrailRead()
        for key, value in dict.fromkeys(attributes):
            if read.calls >= max_calls:
                read.truncated = True
                read.unread.append((key, value))
                continue
            pages = ct.get_paginator("lookup_events").paginate(
                StartTime=since, LookupAttributes=[{"AttributeKey": key, "AttributeValue": value}])
            for i, page in enumerate(pages):
                read.calls += 1
                read.merge(read_records(e.get("CloudTrailEvent") or "{}" for e in page.get("Events", [])))
                if page.get("NextToken") and (i + 1 >= max_pages or read.calls >= max_calls):
                    read.truncated = True
                    break
        return read


def _chunks(terms: list[str]) -> list[list[str]]:
    """``terms`` in groups whose ``?"term"`` pattern fits CloudWatch Logs' pattern length."""
    out: list[list[str]] = [[]]
    size = 0
    for t in terms:
        cost = len(t) + 4
        if out[-1] and size + cost > PATTERN_CHARS:
            out.append([])
            size = 0
        out[-1].append(t)
        size += cost
    return [c for c in out if c]


def any_terms(pattern: str) -> list[str]:
    """The terms of a CloudWatch Logs ``?term ?"quoted term"`` pattern ([] for any other pattern)."""
    try:
        tokens = shlex.split(pattern)
    except ValueError:
        return []
    if not tokens or not all(t.startswith("?") and len(t) > 1 for t in tokens):
        return []
    return [t[1:] for t in tokens]


def _permission(p: dict[str, Any]) -> str:
    ports = "all" if p.get("IpProtocol") == "-1" else f"{p.get('FromPort')}-{p.get('ToPort')}/{p.get('IpProtocol')}"
    sources = [r["CidrIp"] for r in p.get("IpRanges", [])] + [g["GroupId"] for g in p.get("UserIdGroupPairs", [])]
    return f"{ports} from {', '.join(sources) or 'nowhere'}"


def _error_events(records: Iterable[str]) -> list[TrailEvent]:
    """The CloudTrail records (JSON text) that carry an errorCode; other text is skipped."""
    return [e for e in trail_events(records) if e.error_code]
