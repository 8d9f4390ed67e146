"""A SecurityIncident through the Incident controller on fakes of every port: investigation and
classification, containment in Auto, approvals in Manual, recovery, restart safety and faults."""
from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from opex_operator.api.incident import IncidentStatus, StepState
from opex_operator.controllers.incident import IncidentController
from opex_operator.policy import Policy
from opex_operator.ports.facts import LogLine, TrailEvent
from opex_operator.playbooks.security.investigation import IngressRule
from opex_operator.steps import request_token
from support.fakes import (T0, Clock, FakeAws, FakeObjects, FakeReader, FakeWorkspaces, IncidentWorld, aws_error,
                           condition, observed, sink_of)

USER, KEY, OTHER_KEY = "ci-deployer", "AKIAIOSFODNN7LEAKED1", "AKIAIOSFODNN7OTHER01"
HOSTILE, CI_NAT = "203.0.113.66", "198.51.100.10"
SET_ID, GROUP = "5f3c1a9e-7b2d-4e8f-9a6b-0c1d2e3f4a5b", "sg-0b7a5e1d2c3f4a5b6"
TOPIC = "arn:aws:sns:us-east-1:123456789012:security-oncall"
CONTAINMENT = [f"deactivate-access-key-{KEY.lower()}", f"remove-login-profile-{USER}", "block-ips-blocked-ips",
               f"revoke-ingress-{GROUP}-tcp-22"]
RECOVERY = ["rotate-secret-prod-checkout-db", "redeploy-checkout-pipeline"]
SSH_WORLD = [IngressRule(protocol="tcp", from_port=22, to_port=22, cidr="0.0.0.0/0", description="debugging"),
             IngressRule(protocol="tcp", from_port=22, to_port=22, cidr="::/0", description="debugging")]
SSH_VPN = IngressRule(protocol="tcp", from_port=22, to_port=22, cidr="10.0.0.0/8", description="VPN")
HTTPS = IngressRule(protocol="tcp", from_port=443, to_port=443, cidr="0.0.0.0/0")


def policy(*actions: str) -> Policy:
    return Policy.model_validate({"rules": [{"namespaces": ["*"], "actions": list(actions)}]})


CONTAINMENT_ACTIONS = ("iam:UpdateAccessKey", "iam:DeleteAccessKey", "iam:DeleteLoginProfile", "wafv2:UpdateIPSet",
                       "ec2:RevokeSecurityGroupIngress")
ALL_ACTIONS = CONTAINMENT_ACTIONS + ("secretsmanager:RotateSecret", "codepipeline:StartPipelineExecution")


def incident(mode: str = "Auto", severity: str = "high", secrets=("prod/checkout/db",), **remediation) -> dict:
    return {"type": "SecurityIncident", "severity": severity, "title": "CI deploy key leaked",
            "environment": "production", "remediation": {"mode": mode, **remediation},
            "notify": {"snsTopicArns": [TOPIC]},
            "targets": {"cloudTrail": {"logGroupName": "CloudTrail/management-events"},
                        "security": {"iamUsers": [{"userName": USER, "accessKeyIds": [KEY]}],
                                     "sourceIps": [f"{HOSTILE}/32"], "knownCidrs": [f"{CI_NAT}/32"],
                                     "wafIpSets": [{"name": "blocked-ips", "id": SET_ID, "scope": "REGIONAL"}],
                                     "securityGroups": [{"groupId": GROUP, "protocol": "tcp", "fromPort": 22,
                                                         "toPort": 22}],
                                     "secrets": list(secrets), "redeployPipeline": "checkout-pipeline",
                                     "apiAccessLogGroup": "/aws/apigateway/checkout-prod"}}}


def call(minutes: int, name: str, source: str, ip: str, error: str | None = None) -> TrailEvent:
    return TrailEvent(time=T0 - dt.timedelta(minutes=minutes), event_name=name, event_source=f"{source}.amazonaws.com",
                      error_code=error, source_ip=ip, user_agent="python-requests/2.31.0", access_key_id=KEY,
                      user_name=USER, event_id=f"ev-{minutes}")


def access_line(minutes: int, ip: str, path: str) -> LogLine:
    return LogLine(time=T0 - dt.timedelta(minutes=minutes), group="/aws/apigateway/checkout-prod", stream="access",
                   message=f'{{"ip": "{ip}", "httpMethod": "GET", "resourcePath": "{path}", "status": "200"}}')


class World(IncidentWorld):
    """A SecurityIncident, its controller, and the fake estate it acts on."""

    def __init__(self, spec: dict, allowed=CONTAINMENT_ACTIONS, trail=None):
        trail = trail if trail is not None else [
            call(600, "UpdateFunctionCode20150331v2", "lambda", CI_NAT), call(85, "ListBuckets", "s3", HOSTILE),
            call(80, "GetSecretValue", "secretsmanager", HOSTILE),
            call(75, "CreateUser", "iam", HOSTILE, "AccessDenied")]
        self.reader = FakeReader(trail=trail, errors_after=[access_line(88, HOSTILE, "/admin"),
                                                            access_line(60, "127.0.0.1", "/health")])
        self.aws = FakeAws(self.reader)
        self.aws.the_iam.add_user(USER, KEY, OTHER_KEY)
        self.aws.the_iam.add_user("release-bot", "AKIAIOSFODNN7BYSTAND")
        self.aws.the_waf.add("blocked-ips", SET_ID, addresses=["192.0.2.0/24"])
        self.aws.the_ec2.add(GROUP, *SSH_WORLD, SSH_VPN, HTTPS)
        self.aws.the_secrets.add("prod/checkout/db")
        self.aws.the_secrets.add("prod/checkout/api-token", rotation=False)
        self.aws.the_pipeline.executions = [["e-0", "Succeeded", T0 - dt.timedelta(days=1)]]
        self.clock, self.allowed = Clock(), allowed
        self.status = IncidentStatus()
        self.obj = observed(self.status, spec, "incidents", name="ci-key-leaked")
        self.ctl = self.controller()

    def controller(self) -> IncidentController:
        return IncidentController(self.aws, FakeObjects(), FakeWorkspaces(), policy(*self.allowed), webhook=None,
                                  clock=self.clock)

    def approve(self, *ids: str) -> None:
        self.change_spec(approvedSteps=list(ids))

    def restart(self) -> IncidentStatus:
        """A new operator process: status as the API server has it, a new controller."""
        saved = IncidentStatus.model_validate(self.obj.recorder.saved)
        self.status = saved
        self.obj = observed(saved, self.obj.spec, "incidents", name="ci-key-leaked")
        self.obj.recorder.saved = saved.model_dump(mode="json", by_alias=True, exclude_none=True)
        self.ctl = self.controller()
        return saved

    def redeployed(self) -> None:
        """The redeploy approved and its execution succeeded: verification runs."""
        self.approve(RECOVERY[1])
        self.drive()
        self.aws.the_pipeline.executions[0][1] = "Succeeded"
        self.drive()


def test_auto_contains_investigates_and_leaves_recovery_to_a_person():
    w = World(incident("Auto"))
    w.drive()
    st, aws = w.status, w.aws
    assert st.phase == "AwaitingApproval"
    assert [s.id for s in st.steps] == ["assess", "classify", *CONTAINMENT, *RECOVERY, "verify", "notify-resolved"]
    assert [w.step(i).state for i in CONTAINMENT] == [StepState.SUCCEEDED] * 4
    assert w.step(RECOVERY[0]).state == StepState.AWAITING_APPROVAL and w.step(RECOVERY[1]).state == StepState.PENDING
    # contained: only the leaked key, only this user's console password, the address beside the others,
    # exactly the world-open SSH rules
    assert aws.the_iam.keys == {USER: {KEY: "Inactive", OTHER_KEY: "Active"}, "release-bot":
                                {"AKIAIOSFODNN7BYSTAND": "Active"}}
    assert aws.the_iam.login_profiles == {"release-bot"}
    assert aws.the_waf.sets[SET_ID]["addresses"] == ["192.0.2.0/24", f"{HOSTILE}/32"]
    assert aws.the_ec2.groups[GROUP] == [SSH_VPN, HTTPS]
    assert aws.the_secrets.calls == [] and len(aws.the_pipeline.calls) == 0
    # each step says what it changed and how to undo it
    key = w.step(CONTAINMENT[0])
    assert key.outputs == f"access key {KEY} of IAM user {USER}: Active -> Inactive"
    assert key.undo == f"aws iam update-access-key --user-name {USER} --access-key-id {KEY} --status Active"
    assert f"remove {HOSTILE}/32 from WAF IP set blocked-ips" in w.step("block-ips-blocked-ips").undo
    assert "authorize-security-group-ingress" in w.step(CONTAINMENT[3]).undo
    assert '"CidrIp":"0.0.0.0/0"' in w.step(CONTAINMENT[3]).undo and "10.0.0.0/8" not in w.step(CONTAINMENT[3]).undo
    # investigated: CloudTrail use from the hostile address, its access-log requests, the open group
    trail = next(f for f in st.findings if f.source == "CloudTrail")
    assert f"succeeded from unknown addresses {HOSTILE}" in trail.observed and "s3:ListBuckets ×1" in trail.evidence
    access = next(f for f in st.findings if f.source == "APIGateway")
    assert access.observed.startswith(f"1 requests from suspicious addresses: {HOSTILE} ×1")
    assert any(f.source == "EC2" and GROUP in f.observed for f in st.findings)
    assert st.root_cause.category == "CompromisedCredentials" and HOSTILE in st.root_cause.summary
    assert trail.id in st.root_cause.evidence
    # classified critical on evidence (declared high), recorded, and Level 3 paged at once
    c = st.classification
    assert (c.declared_severity, c.severity, c.raised) == ("high", "critical", True)
    assert "unknown address 203.0.113.66" in c.reason and "in production" in c.reason
    raised = next(e for e in sink_of(w.obj).events if e[1] == "SeverityRaised")
    assert raised[0] == "Warning" and raised[2] == c.reason
    assert [p[2] for p in aws.the_sns.published] == [
        {"severity": "critical", "level": str(n), "type": "SecurityIncident"} for n in (1, 2, 3)]
    assert st.escalation.current_level == 3 and st.escalation.next_escalation_at is None
    waiting = next(e for e in sink_of(w.obj).events if e[1] == "AwaitingApproval")
    assert "a person approves it even in Auto mode" in waiting[2]


def test_manual_changes_nothing_until_each_step_is_approved():
    w = World(incident("Manual"))
    w.drive()
    assert w.status.phase == "AwaitingApproval" and w.step(CONTAINMENT[0]).state == StepState.AWAITING_APPROVAL
    assert w.aws.security_calls() == []
    assert condition(w.status, "Remediated").reason == "AwaitingApproval"
    w.approve(CONTAINMENT[0], CONTAINMENT[2])
    w.drive()
    assert w.step(CONTAINMENT[0]).state == StepState.SUCCEEDED
    assert w.step(CONTAINMENT[1]).state == StepState.AWAITING_APPROVAL
    assert [c[0] for c in w.aws.security_calls()] == ["UpdateAccessKey"]
    assert w.aws.the_waf.sets[SET_ID]["addresses"] == ["192.0.2.0/24"]


class Killed(BaseException):
    """The operator process died (SIGKILL): nothing after the call was recorded."""


def dies_after(call):
    """``call``, after which the operator dies: the call reached AWS, its outcome was never recorded."""
    def wrapped(*args):
        call(*args)
        raise Killed()
    return wrapped


def test_restart_mid_containment_runs_no_call_twice():
    w = World(incident("Auto"))
    waf = w.aws.the_waf
    block = waf.block_addresses
    waf.block_addresses = dies_after(block)
    with pytest.raises(Killed):
        w.drive()
    waf.block_addresses = block
    saved = w.restart()
    assert saved.steps[4].id == "block-ips-blocked-ips" and saved.steps[4].state == StepState.RUNNING
    w.drive()
    assert [w.step(i).state for i in CONTAINMENT] == [StepState.SUCCEEDED] * 4
    assert [w.step(i).attempts for i in CONTAINMENT] == [1, 1, 1, 1]
    assert [c[0] for c in w.aws.security_calls()] == ["UpdateAccessKey", "DeleteLoginProfile", "UpdateIPSet",
                                                      "RevokeSecurityGroupIngress"]
    assert w.step("block-ips-blocked-ips").outputs == (f"nothing added to WAF IP set blocked-ips (REGIONAL, IPV4); "
                                                       f"already there: {HOSTILE}/32")


def test_recovery_rotates_once_redeploys_follows_the_execution_and_resolves():
    w = World(incident("Auto"), allowed=ALL_ACTIONS)
    w.drive()
    w.aws.the_secrets.hold = True  # the rotation function is still running
    w.approve(*RECOVERY)
    assert w.drive() == 10.0
    rotate = w.step(RECOVERY[0])
    token = request_token("uid-ci-key-leaked", RECOVERY[0])
    assert rotate.state == StepState.RUNNING and rotate.params["versionId"] == token
    assert rotate.outputs == f"secret prod/checkout/db: rotation in progress, version v1 -> {token}"
    assert w.drive() == 10.0  # still running: followed, not started again
    w.aws.the_secrets.finish("prod/checkout/db")
    assert w.drive() == 10.0  # the redeploy started and is followed
    redeploy = w.step(RECOVERY[1])
    assert rotate.state == StepState.SUCCEEDED and "rotated" in rotate.outputs
    assert "update-secret-version-stage" in rotate.undo and "--move-to-version-id v1" in rotate.undo
    assert w.aws.the_secrets.calls == [("RotateSecret", "prod/checkout/db", token)]
    assert w.aws.the_pipeline.calls == [("StartPipelineExecution", "checkout-pipeline",
                                         request_token("uid-ci-key-leaked", RECOVERY[1]))]
    assert redeploy.state == StepState.RUNNING and redeploy.params["executionId"] == "e-2"
    assert redeploy.outputs == "execution e-2 of checkout-pipeline is InProgress"
    w.aws.the_pipeline.executions[0][1] = "Succeeded"
    w.drive()
    st = w.status
    assert redeploy.state == StepState.SUCCEEDED and st.phase == "Resolved"
    verify = w.step("verify")
    assert f"access key {KEY} is Inactive" in verify.outputs and "secret prod/checkout/db rotated" in verify.outputs
    assert "execution e-2 of checkout-pipeline is Succeeded" in verify.outputs
    assert len(w.aws.the_pipeline.calls) == 1 and len(w.aws.the_secrets.calls) == 1
    report = next(iter(w.ctl.objects.config_maps.values()))["data"]["report.md"]
    assert "severity **critical**" in report and "severity raised from high to critical" in report
    undo = report.split("## Undo")[1].split("## Timeline")[0]
    for step_id in CONTAINMENT + RECOVERY:
        assert f"`{step_id}`" in undo
    assert st.post_incident.post_mortem_required


def test_a_reactivated_key_fails_verification():
    w = World(incident("Auto", secrets=()), allowed=ALL_ACTIONS)
    w.drive()
    w.aws.the_iam.keys[USER][KEY] = "Active"  # someone switched it back on
    w.redeployed()
    assert w.status.phase == "Failed"
    assert w.step("verify").error == f"access key {KEY} of {USER} is Active again"


def test_a_key_that_is_not_the_users_fails_its_step_naming_it_and_nothing_else_changes():
    spec = incident("Auto")
    spec["targets"]["security"]["iamUsers"][0]["accessKeyIds"] = ["AKIAIOSFODNN7BYSTAND"]
    w = World(spec)
    w.drive()
    step = w.step("deactivate-access-key-akiaiosfodnn7bystand")
    assert step.state == StepState.FAILED and step.attempts == 1
    assert step.error.startswith(f"access key AKIAIOSFODNN7BYSTAND is not a key of IAM user {USER}")
    assert w.status.phase == "Failed" and w.aws.security_calls() == []
    assert w.aws.the_iam.keys["release-bot"] == {"AKIAIOSFODNN7BYSTAND": "Active"}
    assert "AKIAIOSFODNN7BYSTAND" in condition(w.status, "Remediated").message


def test_a_missing_security_group_fails_its_step_naming_it():
    spec = incident("Auto")
    spec["targets"]["security"]["securityGroups"][0]["groupId"] = "sg-00000000deadbeef0"
    w = World(spec)
    w.drive()
    step = w.step("revoke-ingress-sg-00000000deadbeef0-tcp-22")
    assert step.state == StepState.FAILED
    assert "InvalidGroup.NotFound" in step.error and "sg-00000000deadbeef0" in step.error
    assert any(f.source == "EC2" and "not found" in f.observed for f in w.status.findings)
    assert w.aws.the_ec2.groups[GROUP] == [*SSH_WORLD, SSH_VPN, HTTPS]


def test_access_denied_stops_with_a_condition_naming_the_iam_action():
    w = World(incident("Auto"))
    w.aws.the_iam.fail("UpdateAccessKey", aws_error(
        "iam", "AccessDenied", "UpdateAccessKey", 403,
        "User: arn:aws:sts::123456789012:assumed-role/opex/x is not authorized to perform: iam:UpdateAccessKey"))
    w.drive()
    remediated = condition(w.status, "Remediated")
    assert remediated.status == "False" and "AccessDenied on iam:UpdateAccessKey" in remediated.message
    assert w.step(CONTAINMENT[0]).attempts == 1 and w.aws.the_iam.keys[USER][KEY] == "Active"
    assert w.aws.security_calls() == []


def test_throttling_is_retried_and_then_contains():
    w = World(incident("Auto"))
    w.aws.the_iam.fail("UpdateAccessKey", aws_error("iam", "Throttling", "UpdateAccessKey", 400, "Rate exceeded"))
    assert w.drive() == 5.0
    assert "StepRetrying" in w.reasons() and w.step(CONTAINMENT[0]).state == StepState.PENDING
    w.clock.advance(5)
    w.drive()
    assert w.step(CONTAINMENT[0]).state == StepState.SUCCEEDED and w.step(CONTAINMENT[0]).attempts == 2
    assert w.aws.the_iam.count("UpdateAccessKey") == 1


def test_a_secret_without_rotation_fails_saying_what_to_configure():
    w = World(incident("Auto", secrets=("prod/checkout/api-token",)), allowed=ALL_ACTIONS)
    w.drive()
    w.approve("rotate-secret-prod-checkout-api-token")
    w.drive()
    step = w.step("rotate-secret-prod-checkout-api-token")
    assert step.state == StepState.FAILED and "has no rotation configured" in step.error
    assert "Configure a rotation function" in step.error and w.aws.the_secrets.calls == []
    assert w.aws.the_secrets.secrets["prod/checkout/api-token"]["versions"] == {"v1": ["AWSCURRENT"]}


def test_delete_when_the_spec_says_so_and_a_resumed_delete_is_a_no_op():
    w = World(incident("Auto", security={"accessKeyAction": "Delete"}))
    w.drive()
    step = w.step(f"delete-access-key-{KEY.lower()}")
    assert step.state == StepState.SUCCEEDED and w.aws.the_iam.keys[USER] == {OTHER_KEY: "Active"}
    assert "cannot be restored" in step.undo
    # the operator died after the call, before recording it: the step is resumed
    outcome = asyncio.run(_run(w, step, resumed=True))
    assert outcome.ok and "already deleted" in outcome.outputs and w.aws.the_iam.count("DeleteAccessKey") == 1


async def _run(w: World, step, resumed: bool):
    from opex_operator.api.incident import IncidentSpec
    from opex_operator.controllers.incident import run_step
    from opex_operator.steps import StepContext

    return await run_step(StepContext(w.obj.ref, IncidentSpec.model_validate(w.obj.spec), step, w.clock(), w.aws,
                                      FakeObjects(), FakeWorkspaces(), resumed))


def test_without_cloudtrail_group_lookup_events_failure_is_a_finding_and_containment_still_runs():
    spec = incident("Auto")
    del spec["targets"]["cloudTrail"]
    w = World(spec)
    w.drive()
    assessed = condition(w.status, "Assessed")
    assert assessed.reason == "PartiallyAssessed" and "cloudtrail:LookupEvents" in assessed.message
    finding = next(f for f in w.status.findings if f.resource == "cloudtrail:LookupEvents")
    assert "could not be read" in finding.observed
    assert w.status.classification.severity == "high" and not w.status.classification.raised
    assert [w.step(i).state for i in CONTAINMENT] == [StepState.SUCCEEDED] * 4


def test_declared_critical_is_never_lowered_by_quiet_evidence():
    w = World(incident("Manual", severity="critical"), trail=[])
    w.drive()
    c = w.status.classification
    assert (c.declared_severity, c.severity, c.raised) == ("critical", "critical", False)
    assert "SeverityRaised" not in w.reasons()
    assert [p[2]["level"] for p in w.aws.the_sns.published] == ["1", "2", "3"]


def test_a_waf_block_outside_the_policy_region_is_refused():
    spec = incident("Auto")
    spec["targets"]["security"]["wafIpSets"][0].update(scope="REGIONAL", region="eu-west-1")
    w = World(spec)
    w.ctl.policy = Policy.model_validate({"rules": [{"namespaces": ["*"], "regions": ["us-east-1"],
                                                     "actions": list(CONTAINMENT_ACTIONS)}]})
    w.drive()
    step = w.step("block-ips-blocked-ips")
    assert step.state == StepState.FAILED and "region eu-west-1 is not allowed" in step.error
    assert w.aws.the_waf.calls == []


# ---- what the leaked key did with itself -------------------------------------------------------

BACKDOOR, NEW_KEY, APP_GROUP = "svc-backup", "AKIANEWKEYEXAMPLE001", "sg-0a11ce5a11ce5a11c"
SESSION, SESSION_KEY = "botocore-session-1764912345", "ASIAIOSFODNN7SESSION"
ADMIN, DENY_ALL = "arn:aws:iam::aws:policy/AdministratorAccess", "arn:aws:iam::aws:policy/AWSDenyAll"
POLICY_ACTIONS = ("iam:DetachUserPolicy", "iam:AttachUserPolicy", "iam:DeleteUserPolicy")
SSH6_WORLD = IngressRule(protocol="tcp", from_port=22, to_port=22, cidr="::/0")


def trail_record(minutes: int, identity: dict, source: str, name: str, request=None, response=None, error=None,
                 ip: str = HOSTILE) -> dict:
    """A record as CloudTrail writes it ("Record contents"; request and response elements as the
    IAM, STS and EC2 API references name them)."""
    r = {"eventVersion": "1.09", "userIdentity": identity, "eventSource": f"{source}.amazonaws.com",
         "eventTime": (T0 - dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ"), "eventName": name,
         "sourceIPAddress": ip, "userAgent": "python-requests/2.31.0", "requestParameters": request,
         "responseElements": response, "eventID": f"ev-{minutes}-{name}"}
    if error:
        r["errorCode"] = error
    return r


def leaked_key() -> dict:
    return {"type": "IAMUser", "arn": f"arn:aws:iam::123456789012:user/{USER}", "userName": USER, "accessKeyId": KEY}


SESSION_IDENTITY = {"type": "AssumedRole", "arn": f"arn:aws:sts::123456789012:assumed-role/deploy-role/{SESSION}",
                    "principalId": f"AROAEXAMPLE:{SESSION}", "accessKeyId": SESSION_KEY,
                    "sessionContext": {"attributes": {"creationDate": (T0 - dt.timedelta(minutes=50)).strftime(
                        "%Y-%m-%dT%H:%M:%SZ")}, "sessionIssuer": {"type": "Role", "userName": "deploy-role",
                                                                 "arn": "arn:aws:iam::123456789012:role/deploy-role"}}}
BLAST_TRAIL = [
    trail_record(58, leaked_key(), "iam", "CreateUser", {"userName": BACKDOOR}),
    trail_record(57, leaked_key(), "iam", "CreateAccessKey", {"userName": BACKDOOR},
                 {"accessKey": {"userName": BACKDOOR, "accessKeyId": NEW_KEY, "status": "Active"}}),
    trail_record(56, leaked_key(), "iam", "AttachUserPolicy", {"userName": BACKDOOR, "policyArn": ADMIN}),
    trail_record(55, leaked_key(), "ec2", "AuthorizeSecurityGroupIngress", {"groupId": APP_GROUP},
                 {"_return": True, "securityGroupRuleSet": {"items": [
                     {"groupId": APP_GROUP, "securityGroupRuleId": "sgr-0a11ce", "ipProtocol": "tcp", "fromPort": 22,
                      "toPort": 22, "cidrIpv6": "::/0", "isEgress": False}]}}),
    trail_record(50, leaked_key(), "sts", "AssumeRole",
                 {"roleArn": "arn:aws:iam::123456789012:role/deploy-role", "roleSessionName": SESSION},
                 {"credentials": {"accessKeyId": SESSION_KEY},
                  "assumedRoleUser": {"arn": SESSION_IDENTITY["arn"], "assumedRoleId": SESSION_IDENTITY["principalId"]}}),
    trail_record(48, SESSION_IDENTITY, "secretsmanager", "GetSecretValue", {"secretId": "prod/deploy/token"}),
    trail_record(40, {"type": "IAMUser", "arn": f"arn:aws:iam::123456789012:user/{BACKDOOR}", "userName": BACKDOOR,
                      "accessKeyId": NEW_KEY}, "s3", "ListBuckets", ip="192.0.2.77"),
]


def blast_world(spec: dict, **kwargs) -> World:
    from opex_operator.ports.cloudtrail import trail_events

    w = World(spec, allowed=ALL_ACTIONS + POLICY_ACTIONS,
              trail=trail_events(json.dumps(r) for r in BLAST_TRAIL), **kwargs)
    w.aws.the_iam.add_principal("user", BACKDOOR, attached=[ADMIN])
    w.aws.the_iam.keys[BACKDOOR] = {NEW_KEY: "Active"}
    w.aws.the_ec2.add(APP_GROUP, SSH6_WORLD, HTTPS)
    return w


FOUND = [f"deactivate-access-key-{NEW_KEY.lower()}", f"detach-user-policy-{BACKDOOR}-administratoraccess",
         f"quarantine-user-{BACKDOOR}", f"revoke-ingress-{APP_GROUP}-tcp-22"]


def test_what_the_leaked_key_made_is_followed_found_and_contained_once_in_auto_with_its_undo():
    w = blast_world(incident("Auto", secrets=()))
    w.drive()
    st, iam = w.status, w.aws.the_iam
    # read in rounds: the leaked key and user, then what the records showed they reached
    assert w.reader.trail_reads == [[KEY, USER], [NEW_KEY, SESSION_KEY, SESSION, BACKDOOR]]
    assert [s.id for s in st.steps] == ["assess", "classify", *CONTAINMENT, *FOUND, RECOVERY[1], "verify",
                                        "notify-resolved"]
    assert [w.step(i).state for i in CONTAINMENT + FOUND] == [StepState.SUCCEEDED] * 8
    assert iam.keys[BACKDOOR] == {NEW_KEY: "Inactive"} and iam.attached[f"user/{BACKDOOR}"] == [DENY_ALL]
    assert w.aws.the_ec2.groups[APP_GROUP] == [HTTPS]
    assert [c for c in iam.calls if BACKDOOR in str(c)] == [("UpdateAccessKey", BACKDOOR, NEW_KEY),
                                                            ("DetachPolicy", f"user/{BACKDOOR}", ADMIN),
                                                            ("AttachPolicy", f"user/{BACKDOOR}", DENY_ALL)]
    # found: each change, the port opened, the session's and the new key's calls as the compromise's
    observed = [f.observed for f in st.findings]
    assert any(o.startswith(f"IAM user {BACKDOOR} created by key {KEY}") for o in observed)
    assert any(o.startswith(f"access key {NEW_KEY} created for IAM user {BACKDOOR}") for o in observed)
    assert any(o.startswith(f"managed policy {ADMIN} attached to IAM user {BACKDOOR}") for o in observed)
    assert any(o.startswith(f"{APP_GROUP} opened to the world") and "(rule sgr-0a11ce)" in o for o in observed)
    trail = next(f for f in st.findings if f.resource == f"user/{USER}" and f.source == "CloudTrail")
    assert f"reached through: session {SESSION_IDENTITY['arn']} (AssumeRole at" in trail.evidence
    assert "1 sessions opened and followed" in trail.observed and "192.0.2.77 ×1" in trail.evidence
    assert w.step(FOUND[1]).undo == (f"aws iam attach-user-policy --user-name {BACKDOOR} --policy-arn {ADMIN}")
    assert w.step(FOUND[2]).undo == (f"aws iam detach-user-policy --user-name {BACKDOOR} --policy-arn {DENY_ALL}")
    # recovered, verified (each still holds), reported with every undo
    w.redeployed()
    assert st.phase == "Resolved"
    verify = w.step("verify").outputs
    assert f"IAM user {BACKDOOR} is quarantined (AWSDenyAll attached)" in verify
    assert f"IAM user {BACKDOOR} does not have AdministratorAccess" in verify
    report = next(iter(w.ctl.objects.config_maps.values()))["data"]["report.md"]
    undo = report.split("## Undo")[1].split("## Timeline")[0]
    for step_id in CONTAINMENT + FOUND:
        assert f"`{step_id}`" in undo
    # a new operator process finds everything done and calls nothing again
    calls = list(iam.calls) + list(w.aws.the_ec2.calls)
    w.ctl = w.controller()
    w.drive()
    assert list(iam.calls) + list(w.aws.the_ec2.calls) == calls


def test_a_quarantine_undone_by_someone_fails_verification():
    w = blast_world(incident("Auto", secrets=()))
    w.drive()
    w.aws.the_iam.attached[f"user/{BACKDOOR}"] = []
    w.redeployed()
    assert w.status.phase == "Failed"
    assert w.step("verify").error == f"AWSDenyAll is no longer attached to IAM user {BACKDOOR}"


def test_when_the_call_budget_runs_out_the_finding_says_what_was_left_unread(monkeypatch):
    from opex_operator.playbooks.security import investigation as security

    monkeypatch.setattr(security, "TRAIL_CALLS", 1)
    w = blast_world(incident("Auto", secrets=()))
    w.drive()
    assert w.reader.trail_reads == [[KEY, USER]]
    trail = next(f for f in w.status.findings if f.resource == f"user/{USER}" and f.source == "CloudTrail")
    assert "the CloudTrail call budget (1 reads, 1 made) left 4 follow-up lookups unread" in trail.observed
    assert f"AccessKeyId={NEW_KEY}" in trail.observed
    # what the first round did show is contained all the same
    assert all(w.step(i).state == StepState.SUCCEEDED for i in FOUND)


def test_an_incident_of_failed_sign_ins_only_keeps_its_declared_severity():
    from opex_operator.ports.cloudtrail import trail_events

    attempt = {"type": "IAMUser", "accountId": "123456789012", "accessKeyId": "", "userName": USER}
    sign_ins = [trail_record(30 - i, attempt, "signin", "ConsoleLogin", response={"ConsoleLogin": "Failure"})
                for i in range(8)]
    for r in sign_ins:
        r.update(errorMessage="Failed authentication", eventType="AwsConsoleSignIn")
    w = World(incident("Auto", severity="medium"), trail=trail_events(json.dumps(r) for r in sign_ins))
    w.drive()
    c = w.status.classification
    assert (c.declared_severity, c.severity, c.raised) == ("medium", "medium", False)
    assert "SeverityRaised" not in w.reasons()
    assert {p[2]["severity"] for p in w.aws.the_sns.published} == {"medium"}
    attempts = next(f for f in w.status.findings if f.observed.startswith("8 failed console sign-ins"))
    assert attempts.severity == "Warning" and "password guessing" in attempts.observed
    assert w.status.root_cause.category == "ExposedAdminPort"     # the spec's open group; nobody got in


def test_a_detach_interrupted_after_its_call_is_not_repeated_and_keeps_its_undo():
    w = blast_world(incident("Auto", secrets=()))
    iam = w.aws.the_iam
    detach = iam.detach_policy
    iam.detach_policy = dies_after(detach)
    with pytest.raises(Killed):
        w.drive()
    iam.detach_policy = detach
    running = next(s for s in w.restart().steps if s.id == FOUND[1])
    assert running.state == StepState.RUNNING and running.undo is None
    w.drive()
    step = w.step(FOUND[1])
    assert step.state == StepState.SUCCEEDED and step.attempts == 1 and "nothing changed" in step.outputs
    assert iam.count("DetachPolicy") == 1
    assert step.undo == (f"if the interrupted attempt made the change: aws iam attach-user-policy --user-name "
                         f"{BACKDOOR} --policy-arn {ADMIN}")
