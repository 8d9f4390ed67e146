"""AWS events as AWS publishes them, for the local stack, the demo and the tests.

Each builder returns one :class:`Published`: the ``detail-type``, ``source``, ``resources`` and
``detail`` of the documented EventBridge event (CodePipeline User Guide, "Monitoring CodePipeline
events"; CodeBuild User Guide, "Build notifications input format reference"; CloudWatch User Guide,
"Alarm events and EventBridge"; GuardDuty User Guide, "Finding format"). :func:`publish` hands them
to EventBridge's ``PutEvents`` (moto's delivers them to the rules' SQS targets, as EventBridge
does); :meth:`Published.event` is the event a rule's target receives, for tests that write it to a
queue themselves or call the intake directly.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3

ACCOUNT, REGION = "123456789012", "us-east-1"


def stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def alarm_stamp(at: dt.datetime) -> str:
    """CloudWatch's own timestamp format in alarm events: milliseconds and ``+0000``."""
    return at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


@dataclass
class Published:
    detail_type: str
    source: str
    detail: dict[str, Any]
    resources: list[str] = field(default_factory=list)
    time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def entry(self) -> dict[str, Any]:
        """A PutEvents entry."""
        return {"Source": self.source, "DetailType": self.detail_type, "Detail": json.dumps(self.detail),
                "Resources": self.resources, "Time": self.time}

    def event(self, account: str = ACCOUNT, region: str = REGION) -> dict[str, Any]:
        """The event as an EventBridge rule's target receives it."""
        return {"version": "0", "id": self.id, "detail-type": self.detail_type, "source": self.source,
                "account": account, "time": stamp(self.time), "region": region, "resources": self.resources,
                "detail": self.detail}


def pipeline_failed(pipeline: str, execution_id: str, level: str = "pipeline", stage: str | None = None,
                    action: str | None = None, build_id: str | None = None, state: str = "FAILED",
                    category: str = "Build", summary: str = "Build terminated with state: FAILED",
                    account: str = ACCOUNT, region: str = REGION) -> Published:
    """A CodePipeline ``level`` (pipeline, stage or action) execution state change."""
    detail: dict[str, Any] = {"pipeline": pipeline, "execution-id": execution_id, "state": state, "version": 1}
    if level in ("stage", "action"):
        detail["stage"] = stage
    if level == "action":
        detail.update(action=action, region=region,
                      type={"owner": "AWS", "provider": "CodeBuild" if build_id else "Manual", "category": category,
                            "version": "1"})
        if state == "FAILED":
            detail["execution-result"] = {"external-execution-summary": summary, "error-code": "JobFailed",
                                          **({"external-execution-id": build_id} if build_id else {})}
    return Published(f"CodePipeline {level.capitalize()} Execution State Change", "aws.codepipeline", detail,
                     [f"arn:aws:codepipeline:{region}:{account}:{pipeline}"])


def build_failed(project: str, build_id: str, initiator: str, status: str = "FAILED", phase: str = "BUILD",
                 context: str = "COMMAND_EXECUTION_ERROR: Error while executing command: npm ci. Reason: exit status 1",
                 variables: dict[str, str] | None = None, account: str = ACCOUNT, region: str = REGION) -> Published:
    """A CodeBuild build state change (``build_id`` is ``project:uuid``)."""
    arn = f"arn:aws:codebuild:{region}:{account}:build/{build_id}"
    stream = build_id.split(":", 1)[1]
    info = {"build-complete": True, "initiator": initiator,
            "environment": {"type": "LINUX_CONTAINER", "environment-variables": [
                {"name": k, "value": v, "type": "PLAINTEXT"} for k, v in (variables or {}).items()]},
            "logs": {"group-name": f"/aws/codebuild/{project}", "stream-name": stream,
                     "deep-link": f"https://console.aws.amazon.com/cloudwatch/home?region={region}#logEvent:"
                                  f"group=/aws/codebuild/{project};stream={stream}"},
            "phases": [{"phase-type": "SUBMITTED", "phase-status": "SUCCEEDED", "phase-context": []},
                       {"phase-type": phase, "phase-status": "FAILED", "phase-context": [context]},
                       {"phase-type": "COMPLETED"}]}
    return Published("CodeBuild Build State Change", "aws.codebuild",
                     {"build-status": status, "project-name": project, "build-id": arn, "additional-information": info,
                      "current-phase": "COMPLETED", "current-phase-context": "[]", "version": "1"}, [arn])


def alarm_changed(name: str, namespace: str, metric: str, dimensions: dict[str, str], went_to: str,
                  since: dt.datetime, at: dt.datetime | None = None, description: str = "",
                  account: str = ACCOUNT, region: str = REGION) -> Published:
    """A CloudWatch metric alarm's state change: to ALARM at ``since``, or back to OK at ``at``
    (then ``since`` is when it went to ALARM, the previous state's timestamp)."""
    arn = f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"
    alarm = {"value": "ALARM", "reason": f"Threshold Crossed: 1 out of the last 1 datapoints of {metric} was greater "
                                         f"than the threshold", "timestamp": alarm_stamp(since)}
    if went_to == "ALARM":
        state, previous = alarm, {"value": "OK", "reason": "Threshold Crossed", "timestamp": alarm_stamp(
            since - dt.timedelta(hours=1))}
    else:
        state, previous = {"value": went_to, "reason": "Threshold Crossed: back within the threshold",
                           "timestamp": alarm_stamp(at or since)}, alarm
    detail = {"alarmName": name, "state": state, "previousState": previous,
              "configuration": {"description": description, "metrics": [
                  {"id": "m1", "returnData": True, "metricStat": {
                      "metric": {"namespace": namespace, "name": metric, "dimensions": dimensions},
                      "period": 60, "stat": "Sum"}}]}}
    return Published("CloudWatch Alarm State Change", "aws.cloudwatch", detail, [arn], time=at or since)


def guardduty_finding(finding_id: str, finding_type: str, severity: float, user: str, access_key: str,
                      remote_ip: str, updated: dt.datetime, count: int = 1, user_type: str = "IAMUser",
                      account: str = ACCOUNT, region: str = REGION) -> Published:
    """A GuardDuty finding about an access key used from ``remote_ip``."""
    detail = {"schemaVersion": "2.0", "accountId": account, "region": region, "partition": "aws", "id": finding_id,
              "arn": f"arn:aws:guardduty:{region}:{account}:detector/0123456789abcdef/finding/{finding_id}",
              "type": finding_type, "severity": severity,
              "title": f"Credentials of {user} used from {remote_ip}",
              "description": f"API calls were made with access key {access_key} of {user} from {remote_ip}.",
              "createdAt": updated.isoformat(), "updatedAt": updated.isoformat(),
              "resource": {"resourceType": "AccessKey", "accessKeyDetails": {
                  "accessKeyId": access_key, "principalId": "AIDAEXAMPLEPRINCIPAL", "userType": user_type,
                  "userName": user}},
              "service": {"serviceName": "guardduty", "count": count, "archived": False,
                          "action": {"actionType": "AWS_API_CALL", "awsApiCallAction": {
                              "api": "ListBuckets", "serviceName": "s3.amazonaws.com", "callerType": "Remote IP",
                              "remoteIpDetails": {"ipAddressV4": remote_ip}}}}}
    return Published("GuardDuty Finding", "aws.guardduty", detail, [], time=updated)


def publish(events: list[Published], bus: str = "default") -> list[str]:
    """PutEvents (at most 10 per call, as EventBridge takes them); returns the event ids."""
    client, ids = boto3.client("events"), []
    for start in range(0, len(events), 10):
        entries = [{**e.entry(), "EventBusName": bus} for e in events[start:start + 10]]
        answer = client.put_events(Entries=entries)
        failed = [r for r in answer["Entries"] if "ErrorCode" in r]
        if failed:
            raise RuntimeError(f"PutEvents refused {failed}")
        ids += [r["EventId"] for r in answer["Entries"]]
    return ids


def api_call(event_name: str, event_source: str, principal: str, request: dict[str, Any],
             response: dict[str, Any] | None = None, source_ip: str = "203.0.113.77",
             user_agent: str = "aws-cli/2.17.0 Python/3.11.8 Linux/6.1 exe/x86_64 command/wafv2.update-ip-set",
             session_issuer: str | None = None, at: dt.datetime | None = None,
             account: str = ACCOUNT, region: str = REGION) -> Published:
    """An ``AWS API Call via CloudTrail`` event of a mutating call by ``principal`` (a user ARN, or an
    assumed-role session ARN with its role as ``session_issuer``): the record's fields as CloudTrail
    writes them (CloudTrail User Guide, "CloudTrail record contents" and "userIdentity element"; the
    layout of a real wafv2 UpdateIPSet record: aws-solutions/aws-waf-security-automations,
    source/ip_retention_handler/test/test_set_ip_retention.py)."""
    at = at or dt.datetime.now(dt.timezone.utc)
    identity: dict[str, Any] = {"type": "AssumedRole" if session_issuer else "IAMUser", "arn": principal,
                                "accountId": account, "principalId": "AIDAEXAMPLEPRINCIPAL"}
    if session_issuer:
        identity["sessionContext"] = {"sessionIssuer": {"type": "Role", "arn": session_issuer, "accountId": account},
                                      "attributes": {"creationDate": stamp(at), "mfaAuthenticated": "false"}}
    else:
        identity["userName"] = principal.rsplit("/", 1)[-1]
    detail = {"eventVersion": "1.08", "userIdentity": identity, "eventTime": stamp(at), "eventSource": event_source,
              "eventName": event_name, "awsRegion": region, "sourceIPAddress": source_ip, "userAgent": user_agent,
              "requestParameters": request, "responseElements": response, "requestID": str(uuid.uuid4()),
              "eventID": str(uuid.uuid4()), "readOnly": False, "eventType": "AwsApiCall", "managementEvent": True,
              "recipientAccountId": account, "eventCategory": "Management"}
    return Published("AWS API Call via CloudTrail", f"aws.{event_source.split('.')[0]}", detail, time=at)
