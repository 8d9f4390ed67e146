"""The security incident's AWS estate, seeded into the in-process moto server (demo and tests).

A CI user's access key leaked: CloudTrail (delivered to a CloudWatch Logs group, as the runbook
reads it) shows it used from the CI system's address as usual, then from a hostile address
that lists buckets, reads a secret and is denied creating a user and running instances; some
records arrive wrapped in EventBridge events. The hostile address also hits the production
API (its access log), a WAF IP set already blocks other addresses, a bastion security group
has SSH open to 0.0.0.0/0 and ::/0 beside a VPN-only rule, and two secrets exist: one with a
rotation function configured, one without.

Everything goes through boto3 except the rotation itself, which ``moto_security`` models on
moto's backend (see there for what is not exercised). Call these in the process that runs the
server, with boto3 pointed at it (fakeaws.aws_env).
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

import boto3

import moto_security  # RotateSecret modelled on moto's backend
from estate import ACCOUNT, GOOD, REGION, pipeline as create_pipeline, put_logs, role

HOSTILE_IP = "203.0.113.66"           # RFC 5737 TEST-NET-3: the attacker
HOSTILE_IPV6 = "2001:db8:bad:1::7"     # RFC 3849 documentation range
CI_NAT_IP = "198.51.100.10"            # RFC 5737 TEST-NET-2: the CI system's NAT gateway (known)
CI_AGENT = "aws-cli/2.15.30 Python/3.11.8 Linux/5.10 exec-env/AWS_ECS_EC2 command/lambda.update-function-code"
HOSTILE_AGENT = "python-requests/2.31.0"
# The ids examples/incident-security.yaml names (moto draws its own; ``pinned`` uses these).
EXAMPLE_KEY_ID = "AKIAIOSFODNN7LEAKED1"
EXAMPLE_IP_SET_ID = "5f3c1a9e-7b2d-4e8f-9a6b-0c1d2e3f4a5b"
EXAMPLE_GROUP_ID = "sg-0b7a5e1d2c3f4a5b6"


def _put_records(group: str, stream: str, records: list[tuple[dt.datetime, dict]]) -> None:
    """Log events whose timestamps are their records' times (CloudTrail's delivery), oldest first."""
    records = sorted(records, key=lambda r: r[0])
    put_logs(group, stream, [json.dumps(r) for _, r in records], times_ms=[int(t.timestamp() * 1000) for t, _ in records])


def trail_record(when: dt.datetime, user: str, key_id: str | None, source: str, name: str, ip: str, agent: str,
                 error: tuple[str, str] | None = None) -> dict:
    """A CloudTrail record of an IAM user's call (CloudTrail "Record contents")."""
    identity = {"type": "IAMUser", "principalId": f"AIDA{user.upper()[:12]:X<12}", "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/{user}", "userName": user}
    if key_id:
        identity["accessKeyId"] = key_id
    record = {"eventVersion": "1.09", "userIdentity": identity, "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "eventSource": f"{source}.amazonaws.com", "eventName": name, "awsRegion": REGION,
              "sourceIPAddress": ip, "userAgent": agent, "requestParameters": None, "responseElements": None,
              "requestID": str(uuid.uuid4()), "eventID": str(uuid.uuid4()), "readOnly": name.startswith(("List", "Get", "Describe")),
              "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": ACCOUNT}
    if error:
        record["errorCode"], record["errorMessage"] = error
    return record


def eventbridge(record: dict) -> dict:
    """``record`` as EventBridge delivers it ("AWS API Call via CloudTrail")."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "AWS API Call via CloudTrail",
            "source": f"aws.{record['eventSource'].split('.')[0]}", "account": ACCOUNT, "time": record["eventTime"],
            "region": REGION, "resources": [], "detail": record}


@dataclass
class LeakedKey:
    user: str
    key_id: str                       # the leaked key (Active)
    other_key_id: str                 # the user's second key (not leaked)
    log_group: str
    hostile_calls: int                # records from HOSTILE_IP in the last 24 h
    hostile_denied: int
    ci_calls: int


def leaked_key(user: str = "ci-deployer", log_group: str = "CloudTrail/management-events",
               now: dt.datetime | None = None, key_id: str | None = None) -> LeakedKey:
    """An IAM user with a console password and two access keys, one of which leaked (``key_id``
    when given), and the CloudTrail records of the last day in ``log_group``."""
    iam = boto3.client("iam")
    iam.create_user(UserName=user)
    iam.create_login_profile(UserName=user, Password="Initial-Passw0rd!", PasswordResetRequired=False)
    with moto_security.next_ids(access_key=key_id):
        key = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    other = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    iam.create_user(UserName="release-bot")  # a bystander: nothing may touch it
    bystander = iam.create_access_key(UserName="release-bot")["AccessKey"]["AccessKeyId"]
    now = now or dt.datetime.now(dt.timezone.utc)
    ago = lambda minutes: now - dt.timedelta(minutes=minutes)  # noqa: E731
    ci = [trail_record(ago(m), user, key, "lambda", "UpdateFunctionCode20150331v2", CI_NAT_IP, CI_AGENT)
          for m in (600, 420, 300)]
    hostile = [trail_record(ago(90), user, key, "sts", "GetCallerIdentity", HOSTILE_IP, HOSTILE_AGENT),
               trail_record(ago(85), user, key, "s3", "ListBuckets", HOSTILE_IP, HOSTILE_AGENT),
               trail_record(ago(80), user, key, "secretsmanager", "GetSecretValue", HOSTILE_IP, HOSTILE_AGENT),
               trail_record(ago(75), user, key, "iam", "CreateUser", HOSTILE_IP, HOSTILE_AGENT,
                            ("AccessDenied", f"User: arn:aws:iam::{ACCOUNT}:user/{user} is not authorized to "
                                             f"perform: iam:CreateUser")),
               trail_record(ago(70), user, key, "ec2", "RunInstances", HOSTILE_IPV6, HOSTILE_AGENT,
                            ("Client.UnauthorizedOperation", "You are not authorized to perform this operation."))]
    records = [(ago(m), r) for m, r in zip((600, 420, 300), ci)]
    # Two of the hostile records arrive as EventBridge events, the rest raw.
    records += [(ago(m), eventbridge(r) if i % 2 else r) for i, (m, r) in enumerate(zip((90, 85, 80, 75, 70), hostile))]
    records += [(ago(60), trail_record(ago(60), "release-bot", bystander, "s3", "PutObject", CI_NAT_IP, CI_AGENT)),
                (ago(30 * 60), trail_record(ago(30 * 60), user, key, "s3", "ListBuckets", HOSTILE_IP, HOSTILE_AGENT))]
    _put_records(log_group, f"{ACCOUNT}_CloudTrail_{REGION}", records)
    return LeakedKey(user, key, other, log_group, hostile_calls=len(hostile), hostile_denied=2, ci_calls=len(ci))


@dataclass
class IpSet:
    name: str
    id: str
    scope: str
    addresses: list[str]


def waf_ip_set(name: str = "blocked-ips", scope: str = "REGIONAL", version: str = "IPV4",
               addresses: list[str] | None = None, ip_set_id: str | None = None) -> IpSet:
    """A WAFv2 IP set that already blocks some addresses (CLOUDFRONT sets live in us-east-1)."""
    addresses = addresses if addresses is not None else (
        ["192.0.2.0/24", "203.0.113.200/32"] if version == "IPV4" else ["2001:db8:dead::/48"])
    waf = boto3.client("wafv2", region_name="us-east-1" if scope == "CLOUDFRONT" else REGION)
    with moto_security.next_ids(ip_set=ip_set_id):
        summary = waf.create_ip_set(Name=name, Scope=scope, IPAddressVersion=version, Addresses=addresses,
                                    Description="addresses blocked by the web ACL")["Summary"]
    return IpSet(name, summary["Id"], scope, list(addresses))


@dataclass
class OpenGroup:
    group_id: str
    vpn_cidr: str = "10.0.0.0/8"


def world_open_ssh_group(name: str = "bastion", group_id: str | None = None) -> OpenGroup:
    """A security group with tcp/22 open to 0.0.0.0/0 and ::/0, tcp/22 from the VPN (10.0.0.0/8)
    and tcp/443 from the world (not an admin port)."""
    ec2 = boto3.client("ec2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    with moto_security.next_ids(security_group=group_id):
        group = ec2.create_security_group(GroupName=name, Description=f"{name} hosts", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
         "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "temporary debugging"},
                      {"CidrIp": "10.0.0.0/8", "Description": "VPN"}],
         "Ipv6Ranges": [{"CidrIpv6": "::/0", "Description": "temporary debugging"}]},
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    return OpenGroup(group)


@dataclass
class Secrets:
    rotating: str                     # name of the secret with a rotation function
    rotating_arn: str
    plain: str                        # name of the secret without rotation
    rotation_function_arn: str


def secrets(prefix: str = "prod/checkout") -> Secrets:
    """A database secret with a rotation function configured (RotateImmediately=False, as a
    deployment sets it up) and an API token without rotation."""
    sm, lam = boto3.client("secretsmanager"), boto3.client("lambda")
    fn = lam.create_function(FunctionName=f"{prefix.replace('/', '-')}-db-rotation", Runtime="python3.12",
                             Role=role("secrets-rotation-role", "lambda.amazonaws.com"), Handler="app.handler",
                             Code={"ZipFile": GOOD})["FunctionArn"]
    db = sm.create_secret(Name=f"{prefix}/db", SecretString=json.dumps(
        {"engine": "postgres", "host": "checkout-db.internal", "username": "app", "password": "leaked-Passw0rd"}))
    sm.rotate_secret(SecretId=db["ARN"], RotationLambdaARN=fn, RotationRules={"AutomaticallyAfterDays": 30},
                     RotateImmediately=False)
    token = sm.create_secret(Name=f"{prefix}/api-token", SecretString="tok-leaked-0123456789")
    return Secrets(f"{prefix}/db", db["ARN"], token["Name"], fn)


def access_log(group: str = "/aws/apigateway/checkout-prod", now: dt.datetime | None = None) -> int:
    """API Gateway access-log lines in the console's JSON format: health checks from 127.0.0.1,
    customers, and the hostile address probing the API. Returns how many lines are hostile."""
    now = now or dt.datetime.now(dt.timezone.utc)
    lines: list[tuple[dt.datetime, dict]] = []

    def line(minutes: int, ip: str, method: str, path: str, status: int) -> None:
        when = now - dt.timedelta(minutes=minutes)
        lines.append((when, {"requestId": str(uuid.uuid4()), "ip": ip, "caller": "-", "user": "-",
                             "requestTime": when.strftime("%d/%b/%Y:%H:%M:%S +0000"), "httpMethod": method,
                             "resourcePath": path, "status": str(status), "protocol": "HTTP/1.1",
                             "responseLength": "512"}))

    for m in range(120, 0, -10):
        line(m, "127.0.0.1", "GET", "/health", 200)
    for m, ip in ((115, "198.51.100.23"), (64, "192.0.2.145"), (12, "198.51.100.23")):
        line(m, ip, "GET", "/orders", 200)
    hostile = [(88, "GET", "/orders", 200), (87, "GET", "/admin", 403), (86, "GET", "/orders?limit=10000", 200),
               (84, "POST", "/orders/export", 200)]
    for m, method, path, status in hostile:
        line(m, HOSTILE_IP, method, path, status)
    _put_records(group, "access", lines)
    return len(hostile)


@dataclass
class SecurityIncident:
    """Names and ids of the whole security scenario."""

    key: LeakedKey
    ip_set: IpSet
    group: OpenGroup
    secrets: Secrets
    access_log_group: str
    hostile_requests: int
    pipeline: str


def security_incident(access_log_group: str = "/aws/apigateway/checkout-prod", pinned: bool = False,
                      pipeline: str | None = "checkout-pipeline") -> SecurityIncident:
    """The whole scenario: leaked key with its CloudTrail records, a WAF IP set, a world-open SSH
    rule, secrets (one rotatable), the production API's access log, and the pipeline that
    redeploys it (created unless None: the demo's checkout estate has it already). With
    ``pinned`` the key, IP set and group get the ids examples/incident-security.yaml names."""
    key = leaked_key(key_id=EXAMPLE_KEY_ID if pinned else None)
    ip_set = waf_ip_set(ip_set_id=EXAMPLE_IP_SET_ID if pinned else None)
    group = world_open_ssh_group(group_id=EXAMPLE_GROUP_ID if pinned else None)
    if pipeline is not None:
        create_pipeline(pipeline, "checkout-build", "checkout-deploy", "checkout-artifacts")
    return SecurityIncident(key, ip_set, group, secrets(), access_log_group, access_log(access_log_group),
                            pipeline or "checkout-pipeline")


# ---- the leaked key makes itself at home (blast radius) -------------------------------------------

PERSISTENCE_KEY_ID = "AKIAIOSFODNN7DEPLOY1"   # the leaked key examples/incident-security-persistence.yaml names
BACKDOOR_USER = "svc-backup"                  # the user the leaked key created
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
DEPLOY_ROLE = "deploy-role"
SESSION_NAME = "botocore-session-1764912345"


def call_record(when: dt.datetime, identity: dict, source: str, name: str, ip: str, agent: str,
                request: dict | None = None, response: dict | None = None,
                error: tuple[str, str] | None = None) -> dict:
    """A CloudTrail record of a call by ``identity`` (a ``userIdentity`` element), with its request
    parameters and response elements (CloudTrail "Record contents")."""
    record = {"eventVersion": "1.09", "userIdentity": identity, "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "eventSource": f"{source}.amazonaws.com", "eventName": name, "awsRegion": REGION,
              "sourceIPAddress": ip, "userAgent": agent, "requestParameters": request, "responseElements": response,
              "requestID": str(uuid.uuid4()), "eventID": str(uuid.uuid4()), "readOnly": False,
              "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": ACCOUNT}
    if error:
        record["errorCode"], record["errorMessage"] = error
    return record


def user_identity(user: str, key_id: str | None) -> dict:
    identity = {"type": "IAMUser", "principalId": f"AIDA{user.upper().replace('-', '')[:12]:X<12}",
                "accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/{user}", "userName": user}
    if key_id:
        identity["accessKeyId"] = key_id
    return identity


@dataclass
class Persistence:
    """Names and ids of the blast-radius scenario (what the leaked key made, on moto and in CloudTrail)."""

    user: str                         # the leaked key's user
    key_id: str                       # the leaked key
    created_user: str
    created_key_id: str
    policy_arn: str
    group_id: str
    rule_id: str
    session_arn: str
    log_group: str


def persistence(user: str = "deploy-bot", log_group: str = "CloudTrail/management-events",
                now: dt.datetime | None = None, key_id: str | None = PERSISTENCE_KEY_ID) -> Persistence:
    """A deploy key leaked and its holder made itself at home, from HOSTILE_IP: it created IAM user
    svc-backup with an access key and AdministratorAccess attached, opened tcp/22 of the app
    servers' group to ::/0, assumed ``deploy-role`` and read a secret through that session, and
    used the new key once, all over an hour ago (so the deployment incidents of the demo, which read
    the last hour's CloudTrail errors of the same group, do not see its denied call). The changes are made on moto through boto3 (so the state is real) and
    recorded in ``log_group`` as CloudTrail records of the leaked key, its session and the new key
    (their request and response elements as AWS writes them: CloudTrail User Guide; the Stratus
    Red Team detonation logs of aws.persistence.iam-create-admin-user and
    aws.exfiltration.ec2-security-group-open-port-22-ingress)."""
    iam, ec2 = boto3.client("iam"), boto3.client("ec2")
    iam.create_user(UserName=user)
    iam.create_login_profile(UserName=user, Password="Initial-Passw0rd!", PasswordResetRequired=False)
    with moto_security.next_ids(access_key=key_id):
        leaked_id = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    role_arn = role(DEPLOY_ROLE, "codebuild.amazonaws.com")
    # what the attacker did, for real
    iam.create_user(UserName=BACKDOOR_USER)
    new_key = iam.create_access_key(UserName=BACKDOOR_USER)["AccessKey"]
    iam.attach_user_policy(UserName=BACKDOOR_USER, PolicyArn=ADMIN_POLICY)
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    group = ec2.create_security_group(GroupName="app-servers", Description="app servers", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    [rule] = ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}])["SecurityGroupRules"]

    now = now or dt.datetime.now(dt.timezone.utc)
    ago = lambda minutes: now - dt.timedelta(minutes=minutes)  # noqa: E731
    me, agent = user_identity(user, leaked_id), HOSTILE_AGENT
    session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{DEPLOY_ROLE}/{SESSION_NAME}"
    session_key = "ASIAIOSFODNN7SESSION"
    session = {"type": "AssumedRole", "principalId": f"AROADEPLOYROLEEXAMPLE:{SESSION_NAME}", "arn": session_arn,
               "accountId": ACCOUNT, "accessKeyId": session_key,
               "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROADEPLOYROLEEXAMPLE",
                                                    "arn": role_arn, "accountId": ACCOUNT, "userName": DEPLOY_ROLE},
                                  "attributes": {"creationDate": ago(110).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                                 "mfaAuthenticated": "false"}}}
    created = dt.datetime.now(dt.timezone.utc).strftime("%b %-d, %Y %-I:%M:%S %p")
    records = [
        (ago(400), call_record(ago(400), me, "lambda", "UpdateFunctionCode20150331v2", CI_NAT_IP, CI_AGENT)),
        (ago(120), call_record(ago(120), me, "sts", "GetCallerIdentity", HOSTILE_IP, agent)),
        (ago(118), call_record(ago(118), me, "iam", "CreateUser", HOSTILE_IP, agent, {"userName": BACKDOOR_USER},
                              {"user": {"path": "/", "userName": BACKDOOR_USER, "userId": "AIDASVCBACKUPEXAMPLE",
                                        "arn": f"arn:aws:iam::{ACCOUNT}:user/{BACKDOOR_USER}", "createDate": created}})),
        (ago(117), call_record(ago(117), me, "iam", "CreateAccessKey", HOSTILE_IP, agent, {"userName": BACKDOOR_USER},
                              {"accessKey": {"userName": BACKDOOR_USER, "accessKeyId": new_key["AccessKeyId"],
                                             "status": "Active", "createDate": created}})),
        (ago(116), call_record(ago(116), me, "iam", "AttachUserPolicy", HOSTILE_IP, agent,
                              {"userName": BACKDOOR_USER, "policyArn": ADMIN_POLICY})),
        (ago(115), call_record(ago(115), me, "ec2", "AuthorizeSecurityGroupIngress", HOSTILE_IPV6, agent,
                              {"groupId": group, "ipPermissions": {"items": [
                                  {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "groups": {}, "ipRanges": {},
                                   "ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}, "prefixListIds": {}}]}},
                              {"requestId": str(uuid.uuid4()), "_return": True, "securityGroupRuleSet": {"items": [
                                  {"groupOwnerId": ACCOUNT, "groupId": group, "securityGroupRuleId":
                                   rule["SecurityGroupRuleId"], "isEgress": False, "ipProtocol": "tcp",
                                   "fromPort": 22, "toPort": 22, "cidrIpv6": "::/0"}]}})),
        (ago(110), call_record(ago(110), me, "sts", "AssumeRole", HOSTILE_IP, agent,
                              {"roleArn": role_arn, "roleSessionName": SESSION_NAME, "durationSeconds": 3600},
                              {"credentials": {"accessKeyId": session_key, "sessionToken": "HIDDEN_DUE_TO_SECURITY_REASONS",
                                               "expiration": "in an hour"},
                               "assumedRoleUser": {"assumedRoleId": f"AROADEPLOYROLEEXAMPLE:{SESSION_NAME}",
                                                   "arn": session_arn}})),
        (ago(108), call_record(ago(108), session, "secretsmanager", "GetSecretValue", HOSTILE_IP, agent,
                              {"secretId": "prod/deploy/token"})),
        (ago(107), call_record(ago(107), session, "iam", "CreateUser", HOSTILE_IP, agent, {"userName": "svc-backup-2"},
                              error=("AccessDenied", f"User: {session_arn} is not authorized to perform: "
                                                     f"iam:CreateUser"))),
        (ago(100), call_record(ago(100), user_identity(BACKDOOR_USER, new_key["AccessKeyId"]), "s3", "ListBuckets",
                              "192.0.2.77", agent)),
        # a bystander's call and the deploy role's own routine session: neither is the attacker
        (ago(105), call_record(ago(105), user_identity("release-bot", "AKIAIOSFODNN7BYSTND2"), "s3", "PutObject",
                              CI_NAT_IP, CI_AGENT)),
    ]
    _put_records(log_group, f"{ACCOUNT}_CloudTrail_{REGION}", records)
    return Persistence(user, leaked_id, BACKDOOR_USER, new_key["AccessKeyId"], ADMIN_POLICY, group,
                       rule["SecurityGroupRuleId"], session_arn, log_group)


def failed_sign_ins(user: str = "ops-admin", log_group: str = "CloudTrail/management-events",
                    attempts: int = 8, now: dt.datetime | None = None) -> str:
    """An IAM user with a console password whose sign-in someone tried ``attempts`` times from
    HOSTILE_IP and failed every time, plus one failed attempt at a user name that does not exist
    (CloudTrail hides it as HIDDEN_DUE_TO_SECURITY_REASONS): the records as the CloudTrail User
    Guide's "AWS Management Console sign-in events" shows them (no errorCode; the outcome in
    responseElements.ConsoleLogin). Returns the user name."""
    iam = boto3.client("iam")
    iam.create_user(UserName=user)
    iam.create_login_profile(UserName=user, Password="Initial-Passw0rd!", PasswordResetRequired=False)
    now = now or dt.datetime.now(dt.timezone.utc)

    def attempt(minutes: float, name: str) -> tuple[dt.datetime, dict]:
        when = now - dt.timedelta(minutes=minutes)
        identity = {"type": "IAMUser", "accountId": ACCOUNT, "accessKeyId": "", "userName": name}
        if name != "HIDDEN_DUE_TO_SECURITY_REASONS":
            identity["principalId"] = f"AIDA{name.upper().replace('-', '')[:12]:X<12}"
        return when, {"eventVersion": "1.08", "userIdentity": identity, "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin", "awsRegion": REGION,
                      "sourceIPAddress": HOSTILE_IP, "userAgent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) "
                                                                  "Gecko/20100101 Firefox/128.0",
                      "errorMessage": "Failed authentication" if name != "HIDDEN_DUE_TO_SECURITY_REASONS"
                      else "No username found in supplied account",
                      "requestParameters": None, "responseElements": {"ConsoleLogin": "Failure"},
                      "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home",
                                              "MobileVersion": "No", "MFAUsed": "No"},
                      "eventID": str(uuid.uuid4()), "eventType": "AwsConsoleSignIn", "recipientAccountId": ACCOUNT}

    records = [attempt(30 - i * 0.5, user) for i in range(attempts)]
    records.append(attempt(20, "HIDDEN_DUE_TO_SECURITY_REASONS"))
    _put_records(log_group, f"{ACCOUNT}_CloudTrail_{REGION}", records)
    return user
