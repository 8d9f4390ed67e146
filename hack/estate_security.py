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
