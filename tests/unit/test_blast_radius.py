"""Following what compromised credentials did (``playbooks.security.blast_radius``): sessions, credentials and
principals made, rules opened, and the lookups that find more.

Records are built in the shapes AWS documents them: the IAM User Guide's "Logging IAM and AWS STS
API calls with AWS CloudTrail" (AssumeRole and its session's records, GetFederationToken's
federatedUser), the CloudTrail User Guide's "CloudTrail userIdentity element" (sessionContext,
sessionIssuer, creationDate), the IAM API reference's CreateAccessKey/CreateLoginProfile response
elements and the EC2 API reference's IpPermission and SecurityGroupRuleRequest.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid

from opex_operator.playbooks.security.blast_radius import follow, ingress_rules
from opex_operator.ports.cloudtrail import read_records
from support.trail_samples import ASSUME_ROLE

NOW = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.timezone.utc)
SINCE = NOW - dt.timedelta(hours=24)
ACCOUNT, USER, KEY = "111122223333", "ci-deployer", "AKIAIOSFODNN7LEAKED1"
HOSTILE = "203.0.113.66"


def ago(minutes: float) -> str:
    return (NOW - dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def iam_user(name: str = USER, key: str | None = KEY) -> dict:
    identity = {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
                "accountId": ACCOUNT, "userName": name}
    if key:
        identity["accessKeyId"] = key
    return identity


def role_session(role: str, session: str, created: float, key: str = "ASIAEXAMPLESESSION01") -> dict:
    return {"type": "AssumedRole", "principalId": f"AROAEXAMPLE:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}", "accountId": ACCOUNT, "accessKeyId": key,
            "sessionContext": {"attributes": {"mfaAuthenticated": "false", "creationDate": ago(created)},
                               "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE",
                                                 "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}", "accountId": ACCOUNT,
                                                 "userName": role}}}


def rec(minutes: float, identity: dict, source: str, name: str, request: dict | None = None,
        response: dict | None = None, error: str | None = None, agent: str = "python-requests/2.31.0",
        ip: str = HOSTILE) -> dict:
    r = {"eventVersion": "1.09", "userIdentity": identity, "eventTime": ago(minutes),
         "eventSource": f"{source}.amazonaws.com", "eventName": name, "awsRegion": "us-east-1",
         "sourceIPAddress": ip, "userAgent": agent, "requestParameters": request, "responseElements": response,
         "eventID": str(uuid.uuid4()), "eventType": "AwsApiCall", "recipientAccountId": ACCOUNT}
    if error:
        r["errorCode"], r["errorMessage"] = error, "not authorized"
    return r


def assume(minutes: float, role: str, session: str, key: str | None = "ASIAEXAMPLESESSION01",
           identity: dict | None = None) -> dict:
    return rec(minutes, identity or iam_user(), "sts", "AssumeRole",
               {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/{role}", "roleSessionName": session, "durationSeconds": 3600},
               {"credentials": {"accessKeyId": key or "HIDDEN_DUE_TO_SECURITY_REASONS", "sessionToken": "<blob>"},
                "assumedRoleUser": {"assumedRoleId": f"AROAEXAMPLE:{session}",
                                    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}"}})


def compromise(*records: dict, users: dict | None = None):
    events = read_records([json.dumps(r) for r in records]).events
    return follow(events, users or {USER: [KEY]}, SINCE, NOW)


def names(c) -> list[tuple[str, str]]:
    return [(e.event_name, h.root) for e, h in c.attributed]


# ---- sessions ---------------------------------------------------------------------------------

def test_a_role_session_opened_by_the_leaked_key_is_followed_by_its_arn_even_with_the_key_id_redacted():
    c = compromise(assume(60, "deploy", "s1", key=None),
                   rec(55, role_session("deploy", "s1", 60, key=""), "secretsmanager", "GetSecretValue"),
                   rec(54, role_session("deploy", "s1", 60), "s3", "ListBuckets"))
    assert names(c) == [("AssumeRole", USER), ("GetSecretValue", USER), ("ListBuckets", USER)]
    [s] = c.sessions
    assert s.key_id is None and s.name == "s1" and "AssumeRole at" in c.attributed[1][1].via


def test_someone_elses_session_of_the_same_name_is_not_the_compromise():
    routine = role_session("deploy", "s1", 600, key="ASIAROUTINEEXAMPLE01")   # ten hours earlier, by the CI system
    later = role_session("deploy", "s1", 30, key="ASIAROUTINEEXAMPLE02")      # after the compromise's one expired
    c = compromise(assume(120, "deploy", "s1"), rec(500, routine, "s3", "PutObject", ip="198.51.100.10"),
                   rec(20, later, "s3", "PutObject", ip="198.51.100.10"))
    assert names(c) == [("AssumeRole", USER)]


def test_a_session_of_the_doc_sample_shape_is_followed_through_role_chaining():
    """IAM User Guide samples: AssumeRole by an IAM user, then role chaining from that session."""
    first = json.loads(json.dumps(ASSUME_ROLE))
    first.update(eventTime=ago(90))
    first["responseElements"]["credentials"]["accessKeyId"] = "ASIAQRSTUVWXYZEXAMP1"
    session = role_session("EC2-dev", "JohnDoe-EC2-dev", 90, key="ASIAQRSTUVWXYZEXAMP1")
    chained = rec(80, session, "sts", "AssumeRole",
                  {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/JohnRole2", "roleSessionName": "Role2WithTags"},
                  {"credentials": {"accessKeyId": "ASIAWHOJDLGPOEXAMPLE"},
                   "assumedRoleUser": {"arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/JohnRole2/Role2WithTags"}})
    deep = rec(70, role_session("JohnRole2", "Role2WithTags", 80, key="ASIAWHOJDLGPOEXAMPLE"), "s3", "DeleteBucket")
    c = compromise(first, chained, deep, users={"JohnDoe": ["AKIAQRSTUVWXYZEXAMPLE"]})
    assert names(c) == [("AssumeRole", "JohnDoe")] * 2 + [("DeleteBucket", "JohnDoe")]
    assert [f.value for f in c.follow_ups()] == ["ASIAQRSTUVWXYZEXAMP1", "ASIAWHOJDLGPOEXAMPLE", "JohnDoe-EC2-dev",
                                                 "Role2WithTags"]


def test_a_federation_token_session_is_followed_by_its_issuer():
    token = rec(60, iam_user(), "sts", "GetFederationToken", {"name": "svc"},
                {"credentials": {"accessKeyId": "ASIAFEDERATEDEXAMPLE"},
                 "federatedUser": {"arn": f"arn:aws:sts::{ACCOUNT}:federated-user/svc",
                                   "federatedUserId": f"{ACCOUNT}:svc"}})
    federated = {"type": "FederatedUser", "principalId": f"{ACCOUNT}:svc",
                 "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/svc", "accountId": ACCOUNT, "accessKeyId": "",
                 "sessionContext": {"attributes": {"creationDate": ago(60)},
                                    "sessionIssuer": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/{USER}",
                                                      "userName": USER}}}
    c = compromise(token, rec(50, federated, "sts", "GetCallerIdentity"))
    assert names(c) == [("GetFederationToken", USER), ("GetCallerIdentity", USER)]


def test_records_of_equal_seconds_in_any_order_are_followed():
    session_call = rec(60, role_session("deploy", "s1", 60), "organizations", "LeaveOrganization",
                       error="AccessDenied")
    c = compromise(session_call, assume(60, "deploy", "s1"))
    assert sorted(names(c)) == [("AssumeRole", USER), ("LeaveOrganization", USER)]


# ---- credentials and principals made ---------------------------------------------------------

def test_a_key_the_leaked_key_created_is_followed_and_its_user_is_a_change():
    made = rec(50, iam_user(), "iam", "CreateAccessKey", {"userName": "svc-backup"},
               {"accessKey": {"userName": "svc-backup", "accessKeyId": "AKIANEWKEYEXAMPLE001", "status": "Active"}})
    used = rec(40, iam_user("svc-backup", "AKIANEWKEYEXAMPLE001"), "s3", "ListBuckets", ip="192.0.2.77")
    c = compromise(made, used)
    assert names(c) == [("CreateAccessKey", USER), ("ListBuckets", USER)]
    [change] = c.changes
    assert (change.what, change.principal, change.key_id) == ("CreateAccessKey", "svc-backup", "AKIANEWKEYEXAMPLE001")
    assert c.attributed[1][1].via.startswith("key AKIANEWKEYEXAMPLE001 (created at")


def test_a_denied_call_teaches_nothing():
    c = compromise(rec(50, iam_user(), "iam", "CreateAccessKey", {"userName": "svc-backup"}, error="AccessDenied"),
                   rec(50, iam_user(), "iam", "CreateUser", {"userName": "x"}, error="AccessDeniedException"))
    assert c.changes == [] and c.keys == {KEY: c.keys[KEY]} and c.follow_ups() == []


def test_a_password_the_compromise_set_makes_that_users_later_sign_ins_the_compromise():
    console = {"type": "IAMUser", "principalId": "AIDAOPS", "accountId": ACCOUNT, "accessKeyId": "",
               "userName": "ops-admin", "arn": f"arn:aws:iam::{ACCOUNT}:user/ops-admin"}
    sign_in = rec(30, console, "signin", "ConsoleLogin", response={"ConsoleLogin": "Success"})
    earlier = rec(300, console, "signin", "ConsoleLogin", response={"ConsoleLogin": "Success"},
                  ip="198.51.100.10")
    c = compromise(earlier, rec(60, iam_user(), "iam", "UpdateLoginProfile", {"userName": "ops-admin"}), sign_in)
    assert names(c) == [("UpdateLoginProfile", USER), ("ConsoleLogin", USER)]
    assert c.attributed[1][0].address.ip == HOSTILE


def test_a_role_the_compromise_made_is_followed_when_anyone_assumes_it():
    made = rec(60, iam_user(), "iam", "CreateRole", {"roleName": "backdoor", "assumeRolePolicyDocument": "{...}"})
    outside = {"type": "AWSAccount", "principalId": "AIDAOUTSIDE", "accountId": "444455556666"}
    c = compromise(made, assume(30, "backdoor", "x", identity=outside))
    assert names(c) == [("CreateRole", USER), ("AssumeRole", USER)]
    assert ("ResourceName", "backdoor") in [(f.attribute, f.value) for f in c.follow_ups()]


def test_policies_attached_and_put_are_changes_of_their_principal():
    c = compromise(rec(50, iam_user(), "iam", "AttachRolePolicy",
                       {"roleName": "deploy", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
                   rec(49, iam_user(), "iam", "PutGroupPolicy", {"groupName": "ops", "policyName": "all",
                                                                   "policyDocument": "{}"}),
                   rec(48, iam_user(), "iam", "AttachUserPolicy",    # its own user: no userName in the request
                       {"policyArn": "arn:aws:iam::aws:policy/IAMFullAccess"}))
    assert [(x.what, x.principal_type, x.principal, x.policy_arn or x.policy_name) for x in c.changes] == [
        ("AttachRolePolicy", "role", "deploy", "arn:aws:iam::aws:policy/AdministratorAccess"),
        ("PutGroupPolicy", "group", "ops", "all"),
        ("AttachUserPolicy", "user", USER, "arn:aws:iam::aws:policy/IAMFullAccess")]


def test_aws_quarantining_the_key_is_recorded_and_is_not_a_change():
    """Panther's AWS.IAM.AccessKeyCompromised test record: AWS puts AWSCompromisedKeyQuarantineV3 in the
    leaked user's own name, signed aws-internal/3."""
    quarantine = rec(20, iam_user(), "iam", "PutUserPolicy",
                     {"userName": USER, "policyName": "AWSCompromisedKeyQuarantineV3", "policyDocument": "{}"},
                     agent="aws-internal/3 aws-sdk-java/1.11.706", ip="72.21.217.97")
    c = compromise(quarantine)
    assert c.quarantines and c.changes == [] and c.attributed[0][0].aws_acting


# ---- rules opened -------------------------------------------------------------------------------

def test_rules_opened_are_read_from_the_response_rule_set_the_request_or_its_flat_form():
    """Shapes: the Stratus Red Team detonation log (flat cidrIp, response rule set with its id), the
    ipPermissions items of the EC2 API reference, ModifySecurityGroupRules' SecurityGroupRuleRequest."""
    flat = read_records([json.dumps(rec(10, iam_user(), "ec2", "AuthorizeSecurityGroupIngress",
                                        {"cidrIp": "208.236.235.254/0", "fromPort": 22, "groupId": "sg-1",
                                         "ipPermissions": {}, "ipProtocol": "tcp", "toPort": 22},
                                        {"_return": True, "securityGroupRuleSet": {"items": [
                                            {"cidrIpv4": "208.236.235.254/0", "fromPort": 22, "groupId": "sg-1",
                                             "ipProtocol": "tcp", "isEgress": False,
                                             "securityGroupRuleId": "sgr-09b3e3d2ca1edf2a2", "toPort": 22}]}}))])
    items = read_records([json.dumps(rec(10, iam_user(), "ec2", "AuthorizeSecurityGroupIngress", {
        "groupId": "sg-2", "ipPermissions": {"items": [
            {"ipProtocol": "6", "fromPort": 3389, "toPort": 3389, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
             "ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}},
            {"ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432, "groups": {"items": [{"groupId": "sg-9"}]}}]}}))])
    modify = read_records([json.dumps(rec(10, iam_user(), "ec2", "ModifySecurityGroupRules", {
        "ModifySecurityGroupRulesRequest": {"GroupId": "sg-3", "SecurityGroupRule": {
            "SecurityGroupRuleId": "sgr-0abc", "SecurityGroupRule": {"IpProtocol": "-1", "CidrIpv4": "0.0.0.0/0"}}}}))])
    rules = [r for read in (flat, items, modify) for e in read.events for r in ingress_rules(e, None)]
    assert [(r.group_id, r.rule_id, r.protocol, r.from_port, r.to_port, r.cidr) for r in rules] == [
        ("sg-1", "sgr-09b3e3d2ca1edf2a2", "tcp", 22, 22, "208.236.235.254/0"),
        ("sg-2", None, "tcp", 3389, 3389, "0.0.0.0/0"), ("sg-2", None, "tcp", 3389, 3389, "::/0"),
        ("sg-3", "sgr-0abc", "-1", None, None, "0.0.0.0/0")]
