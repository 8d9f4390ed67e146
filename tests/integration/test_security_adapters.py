"""The security runbook's adapters against moto's server (real boto3 over HTTP) on the seeded estate:
IAM keys and login profiles, WAFv2 IP sets, security groups, Secrets Manager, CloudTrail in Logs."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import boto3
import pytest
from moto.core.exceptions import ServiceException

import estate
import estate_security as es
import moto_security
from opex_operator.api.incident import Severity
from opex_operator.api.security import SecurityTargets
from opex_operator.aws.clients import AwsClients
from opex_operator.aws.ec2 import Ec2Actions, RevokeIngressParams, ip_permissions
from opex_operator.aws.iam import (AccessKeyParams, DeleteAccessKeyParams, DetachPolicyParams, IamActions,
                                   InlinePolicyParams, LoginProfileParams, PrincipalType, QuarantineParams)
from opex_operator.aws.pipeline import FINISHED, PipelineActions, StartPipelineParams
from opex_operator.aws.reader import AwsReader
from opex_operator.aws.secrets import (RotateSecretParams, RotationInProgress, RotationNotConfigured, RotationState,
                                       SecretsActions)
from opex_operator.aws.waf import BlockAddressesParams, WafActions
from opex_operator.errors import AwsError
from opex_operator.ports.facts import ReadProblem
from opex_operator.playbooks.security.investigation import (SecurityFacts, access_log_pattern, follow_ups, investigate,
                                             lookup_attributes, trail_terms, window_start)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "incident-security.yaml"
# moto warns when a test makes it answer with an error code its service model does not list.
pytestmark = pytest.mark.filterwarnings("ignore:Exception.*does not match an error shape")


@pytest.fixture
def clients(aws):
    yield AwsClients("us-east-1")
    moto_security.reset()


@pytest.fixture
def leaked(aws):
    return es.leaked_key()


def key_status(user: str, key_id: str) -> str | None:
    keys = boto3.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
    return next((k["Status"] for k in keys if k["AccessKeyId"] == key_id), None)


def fail_with(monkeypatch, response_cls, method: str, error: type[ServiceException], code: str, message: str,
              times: int = 10**6) -> list[int]:
    """Make moto answer ``method`` with the AWS error ``code`` ``times`` times, then normally; returns the calls.

    ``error`` is the service's own moto exception base: moto serializes it with that service's model."""
    original, calls = getattr(response_cls, method), []

    def failing(self):
        calls.append(1)
        if len(calls) <= times:
            raise error(code, message)
        return original(self)

    monkeypatch.setattr(response_cls, method, failing)
    return calls


# ---- IAM --------------------------------------------------------------------------------------

def test_leaked_key_is_deactivated_once_and_the_other_keys_stay_active(clients, leaked):
    iam = IamActions(clients, None, None)
    params = AccessKeyParams(user_name=leaked.user, access_key_id=leaked.key_id)
    change = iam.deactivate_access_key(params)
    assert (change.changed, change.previous_status, change.status) == (True, "Active", "Inactive")
    assert change.undo() == (f"aws iam update-access-key --user-name {leaked.user} --access-key-id {leaked.key_id} "
                             f"--status Active")
    assert key_status(leaked.user, leaked.key_id) == "Inactive"
    assert key_status(leaked.user, leaked.other_key_id) == "Active"
    bystander = boto3.client("iam").list_access_keys(UserName="release-bot")["AccessKeyMetadata"]
    assert [k["Status"] for k in bystander] == ["Active"]
    again = iam.deactivate_access_key(params)
    assert not again.changed and again.undo() is None
    assert again.describe() == f"access key {leaked.key_id} of IAM user {leaked.user} was already Inactive: nothing changed"


def test_a_key_of_another_user_is_refused_and_left_alone(clients, leaked):
    bystander = boto3.client("iam").list_access_keys(UserName="release-bot")["AccessKeyMetadata"][0]["AccessKeyId"]
    with pytest.raises(LookupError, match=f"access key {bystander} is not a key of IAM user {leaked.user}"):
        IamActions(clients, None, None).deactivate_access_key(
            AccessKeyParams(user_name=leaked.user, access_key_id=bystander))
    assert key_status("release-bot", bystander) == "Active"


def test_a_user_that_does_not_exist_fails_naming_it(clients, aws):
    with pytest.raises(AwsError) as err:
        IamActions(clients, None, None).deactivate_access_key(
            AccessKeyParams(user_name="ghost", access_key_id="AKIAIOSFODNN7EXAMPLE"))
    assert err.value.not_found and "iam:ListAccessKeys" in str(err.value) and "ghost" in str(err.value)


def test_delete_removes_only_that_key_and_a_resumed_delete_is_a_no_op(clients, leaked):
    iam = IamActions(clients, None, None)
    params = DeleteAccessKeyParams(user_name=leaked.user, access_key_id=leaked.key_id)
    change = iam.delete_access_key(params)
    assert (change.changed, change.previous_status, change.status) == (True, "Active", "Deleted")
    assert "cannot be restored" in change.undo()
    assert key_status(leaked.user, leaked.key_id) is None and key_status(leaked.user, leaked.other_key_id) == "Active"
    with pytest.raises(LookupError, match=f"access key {leaked.key_id} is not a key of IAM user {leaked.user}"):
        iam.delete_access_key(params)
    resumed = iam.delete_access_key(params.model_copy(update={"missing_ok": True}))
    assert not resumed.changed and resumed.describe().endswith("was already deleted: nothing changed")


def test_console_login_is_removed_for_the_compromised_user_only(clients, leaked):
    boto3.client("iam").create_login_profile(UserName="release-bot", Password="Bystander-Passw0rd!")
    iam = IamActions(clients, None, None)
    change = iam.remove_login_profile(LoginProfileParams(user_name=leaked.user))
    assert change.changed and change.created_at is not None and "create-login-profile" in change.undo()
    raw = boto3.client("iam")
    with pytest.raises(raw.exceptions.NoSuchEntityException):
        raw.get_login_profile(UserName=leaked.user)
    assert boto3.client("iam").get_login_profile(UserName="release-bot")["LoginProfile"]["UserName"] == "release-bot"
    again = iam.remove_login_profile(LoginProfileParams(user_name=leaked.user))
    assert not again.changed and "has no console password" in again.describe()
    with pytest.raises(AwsError) as err:
        iam.remove_login_profile(LoginProfileParams(user_name="ghost"))
    assert err.value.not_found and err.value.action == "iam:GetUser"


def test_access_denied_names_the_iam_action_and_changes_nothing(clients, leaked, monkeypatch):
    from moto.iam.exceptions import IAMException
    from moto.iam.responses import IamResponse

    fail_with(monkeypatch, IamResponse, "update_access_key", IAMException, "AccessDenied",
              "User: arn:aws:iam::123456789012:user/opex is not authorized to perform: iam:UpdateAccessKey")
    with pytest.raises(AwsError) as err:
        IamActions(clients, None, None).deactivate_access_key(
            AccessKeyParams(user_name=leaked.user, access_key_id=leaked.key_id))
    assert err.value.denied and str(err.value).startswith("AccessDenied on iam:UpdateAccessKey: User:")
    assert key_status(leaked.user, leaked.key_id) == "Active"


def test_throttling_is_retried_then_the_key_is_deactivated(clients, leaked, monkeypatch):
    from moto.iam.exceptions import IAMException
    from moto.iam.responses import IamResponse

    calls = fail_with(monkeypatch, IamResponse, "update_access_key", IAMException, "Throttling", "Rate exceeded",
                      times=2)
    change = IamActions(clients, None, None).deactivate_access_key(
        AccessKeyParams(user_name=leaked.user, access_key_id=leaked.key_id))
    assert change.changed and len(calls) == 3 and key_status(leaked.user, leaked.key_id) == "Inactive"


# ---- WAFv2 ------------------------------------------------------------------------------------

def ip_set_now(s: es.IpSet) -> dict:
    region = "us-east-1" if s.scope == "CLOUDFRONT" else estate.REGION
    return boto3.client("wafv2", region_name=region).get_ip_set(Name=s.name, Scope=s.scope, Id=s.id)["IPSet"]


def block(s: es.IpSet, *addresses: str, **kw) -> BlockAddressesParams:
    return BlockAddressesParams(name=s.name, id=s.id, scope=s.scope, addresses=list(addresses), **kw)


def test_addresses_are_merged_beside_the_existing_ones_and_a_second_block_is_a_no_op(clients, aws):
    s = es.waf_ip_set()
    waf = WafActions(clients, None, None)
    change = waf.block_addresses(block(s, f"{es.HOSTILE_IP}/32", "203.0.113.200/32", "2001:db8:bad::/48"))
    assert change.added == [f"{es.HOSTILE_IP}/32"] and change.already_present == ["203.0.113.200/32"]
    assert change.other_version == ["2001:db8:bad::/48"] and change.writes == 1
    now = ip_set_now(s)
    assert now["Addresses"] == s.addresses + [f"{es.HOSTILE_IP}/32"]
    assert now["Description"] == "addresses blocked by the web ACL"
    again = waf.block_addresses(block(s, f"{es.HOSTILE_IP}/32"))
    assert not again.changed and again.writes == 0 and again.undo() is None
    assert again.describe() == (f"nothing added to WAF IP set blocked-ips (REGIONAL, IPV4); already there: "
                                f"{es.HOSTILE_IP}/32")


def test_a_concurrent_change_between_read_and_write_is_kept(clients, aws, monkeypatch):
    from moto.wafv2.models import wafv2_backends
    from moto.wafv2.responses import WAFV2Response

    s = es.waf_ip_set()
    original, reads = WAFV2Response.get_ip_set, []

    def read_then_someone_else_writes(self):
        answer = original(self)  # carries the LockToken of this read
        reads.append(1)
        if len(reads) == 1:
            backend = wafv2_backends[estate.ACCOUNT][estate.REGION]
            [ip_set] = [x for x in backend.ip_sets.values() if x.ip_set_id == s.id]
            ip_set.update(None, ip_set.addresses + ["198.18.0.0/15"])  # a new LockToken
        return answer

    monkeypatch.setattr(WAFV2Response, "get_ip_set", read_then_someone_else_writes)
    change = WafActions(clients, None, None).block_addresses(block(s, f"{es.HOSTILE_IP}/32"))
    assert change.writes == 2 and len(reads) == 2 and "changed concurrently" in change.describe()
    assert ip_set_now(s)["Addresses"] == s.addresses + ["198.18.0.0/15", f"{es.HOSTILE_IP}/32"]


def test_an_id_that_does_not_match_the_name_fails_naming_both_and_changes_nothing(clients, aws):
    s, other = es.waf_ip_set(), es.waf_ip_set("allowed-partners", addresses=["198.51.100.0/24"])
    with pytest.raises(LookupError, match=f"WAF IP set blocked-ips with id {other.id} .* does not exist"):
        WafActions(clients, None, None).block_addresses(
            BlockAddressesParams(name=s.name, id=other.id, scope="REGIONAL", addresses=[f"{es.HOSTILE_IP}/32"]))
    assert ip_set_now(s)["Addresses"] == s.addresses and ip_set_now(other)["Addresses"] == other.addresses


def test_a_cloudfront_ip_set_is_managed_in_us_east_1_whatever_the_incident_region(clients, aws):
    s = es.waf_ip_set("edge-blocked", scope="CLOUDFRONT", version="IPV6")
    change = WafActions(clients, "eu-west-1", None).block_addresses(block(s, "2001:db8:bad::/48"))
    assert change.region == "us-east-1" and change.added == ["2001:db8:bad::/48"]
    assert ip_set_now(s)["Addresses"] == s.addresses + ["2001:db8:bad::/48"]


# ---- security groups --------------------------------------------------------------------------

def rules_of(group_id: str) -> list[str]:
    [group] = Ec2Actions(AwsClients("us-east-1"), None, None).security_groups([group_id])
    return sorted(r.label() for r in group.ingress)


def test_the_world_open_ssh_rule_is_revoked_for_ipv4_and_ipv6_and_the_vpn_rule_stays(clients, aws):
    g = es.world_open_ssh_group()
    ec2 = Ec2Actions(clients, None, None)
    params = RevokeIngressParams(group_id=g.group_id, protocol="tcp", from_port=22, to_port=22,
                                 cidrs=["0.0.0.0/0", "::/0"])
    change = ec2.revoke_ingress(params)
    assert [r.label() for r in change.revoked] == ["tcp/22 from 0.0.0.0/0", "tcp/22 from ::/0"]
    assert change.absent == [] and change.still_open_by == []
    assert rules_of(g.group_id) == ["tcp/22 from 10.0.0.0/8", "tcp/443 from 0.0.0.0/0"]
    again = ec2.revoke_ingress(params)
    assert not again.changed and again.absent == ["0.0.0.0/0", "::/0"] and "already gone" in again.describe()
    # The undo record is exact: authorizing it brings back both rules with their descriptions.
    boto3.client("ec2").authorize_security_group_ingress(GroupId=g.group_id, IpPermissions=ip_permissions(change.revoked))
    [group] = ec2.security_groups([g.group_id])
    assert {(r.label(), r.description) for r in group.ingress} >= {("tcp/22 from 0.0.0.0/0", "temporary debugging"),
                                                                   ("tcp/22 from ::/0", "temporary debugging")}


def test_a_wider_rule_is_not_revoked_but_reported_as_still_open(clients, aws):
    ec2c = boto3.client("ec2")
    vpc = ec2c.describe_vpcs()["Vpcs"][0]["VpcId"]
    gid = ec2c.create_security_group(GroupName="legacy", Description="legacy", VpcId=vpc)["GroupId"]
    ec2c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    change = Ec2Actions(clients, None, None).revoke_ingress(
        RevokeIngressParams(group_id=gid, from_port=22, to_port=22, cidrs=["0.0.0.0/0"]))
    assert not change.changed and [r.label() for r in change.still_open_by] == ["tcp/0-65535 from 0.0.0.0/0"]
    assert rules_of(gid) == ["tcp/0-65535 from 0.0.0.0/0"]


def test_a_group_that_does_not_exist_fails_naming_it(clients, aws):
    with pytest.raises(AwsError) as err:
        Ec2Actions(clients, None, None).revoke_ingress(
            RevokeIngressParams(group_id="sg-0123456789abcdef0", from_port=22, to_port=22, cidrs=["0.0.0.0/0"]))
    assert err.value.not_found and "sg-0123456789abcdef0" in str(err.value)


def test_unauthorized_revoke_names_the_ec2_action_and_the_rule_stays(clients, aws, monkeypatch):
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.responses.security_groups import SecurityGroups

    g = es.world_open_ssh_group()
    fail_with(monkeypatch, SecurityGroups, "revoke_security_group_ingress", EC2ClientError, "UnauthorizedOperation",
              "You are not authorized to perform this operation.")
    with pytest.raises(AwsError) as err:
        Ec2Actions(clients, None, None).revoke_ingress(
            RevokeIngressParams(group_id=g.group_id, from_port=22, to_port=22, cidrs=["0.0.0.0/0"]))
    assert err.value.denied and err.value.action == "ec2:RevokeSecurityGroupIngress"
    assert "tcp/22 from 0.0.0.0/0" in rules_of(g.group_id)


# ---- Secrets Manager --------------------------------------------------------------------------

def token() -> str:
    return str(uuid.uuid4())


def stages(name: str) -> dict[str, list[str]]:
    return boto3.client("secretsmanager").describe_secret(SecretId=name)["VersionIdsToStages"]


def value(name: str, stage: str = "AWSCURRENT") -> str:
    return boto3.client("secretsmanager").get_secret_value(SecretId=name, VersionStage=stage)["SecretString"]


def test_a_secret_with_rotation_is_rotated_once_per_token(clients, aws):
    s = es.secrets()
    before, old_value = stages(s.rotating), value(s.rotating)
    sm, t = SecretsActions(clients, None, None), token()
    rotation = sm.rotate(RotateSecretParams(secret_id=s.rotating_arn, client_request_token=t))
    [old] = before
    assert (rotation.changed, rotation.state, rotation.version_id, rotation.previous_version_id) == (
        True, RotationState.ROTATED, t, old)
    assert value(s.rotating) != old_value and value(s.rotating, "AWSPREVIOUS") == old_value
    again = sm.rotate(RotateSecretParams(secret_id=s.rotating, client_request_token=t))
    assert not again.changed and again.state == RotationState.ROTATED and "not started again" in again.describe()
    assert len(stages(s.rotating)) == 2
    assert "update-secret-version-stage" in rotation.undo() and old in rotation.undo()


def test_a_secret_without_rotation_is_refused_saying_what_to_configure_and_stays_intact(clients, aws):
    s = es.secrets()
    before = stages(s.plain)
    with pytest.raises(RotationNotConfigured, match=f"secret {s.plain} has no rotation configured.*--rotation-lambda-arn"):
        SecretsActions(clients, None, None).rotate(RotateSecretParams(secret_id=s.plain, client_request_token=token()))
    assert stages(s.plain) == before and value(s.plain) == "tok-leaked-0123456789"


def test_a_rotation_in_progress_is_followed_not_restarted(clients, aws):
    s = es.secrets()
    moto_security.hold_rotations(estate.ACCOUNT, estate.REGION, s.rotating)
    sm, t = SecretsActions(clients, None, None), token()
    old_value = value(s.rotating)
    started = sm.rotate(RotateSecretParams(secret_id=s.rotating, client_request_token=t))
    assert started.changed and started.state == RotationState.IN_PROGRESS and value(s.rotating) == old_value
    resumed = sm.rotate(RotateSecretParams(secret_id=s.rotating, client_request_token=t))
    assert not resumed.changed and resumed.state == RotationState.IN_PROGRESS and len(stages(s.rotating)) == 2
    with pytest.raises(RotationInProgress, match=f"an earlier rotation \\(version {t}\\) has not finished"):
        sm.rotate(RotateSecretParams(secret_id=s.rotating, client_request_token=token()))
    moto_security.finish_rotation(estate.ACCOUNT, estate.REGION, s.rotating)
    assert sm.rotation(s.rotating, t).state == RotationState.ROTATED and value(s.rotating) != old_value


def test_a_missing_secret_fails_naming_it(clients, aws):
    with pytest.raises(AwsError) as err:
        SecretsActions(clients, None, None).rotate(RotateSecretParams(secret_id="prod/ghost", client_request_token=token()))
    assert err.value.not_found and err.value.action == "secretsmanager:DescribeSecret"


# ---- redeploy ---------------------------------------------------------------------------------

def test_redeploy_starts_an_execution_and_follows_it_to_its_end(clients, aws):
    estate.pipeline("checkout-pipeline", "checkout-build", "checkout-deploy", "checkout-artifacts")
    cp = PipelineActions(clients, None, None)
    started = cp.start_execution(StartPipelineParams(name="checkout-pipeline", client_request_token=token()))
    assert started.changed and started.execution_id
    assert cp.execution_status("checkout-pipeline", started.execution_id) in FINISHED  # moto: Succeeded at once


# ---- investigation reads ----------------------------------------------------------------------

def test_cloudtrail_records_of_the_leaked_key_from_the_log_group_raw_and_wrapped(clients, leaked):
    now = dt.datetime.now(dt.timezone.utc)
    t = SecurityTargets.model_validate({"iamUsers": [{"userName": leaked.user, "accessKeyIds": [leaked.key_id]}],
                                        "sourceIps": [f"{es.HOSTILE_IP}/32"], "knownCidrs": ["198.51.100.0/24"]})
    reader = AwsReader(clients, None, None)
    read = reader.trail_records_from_logs(leaked.log_group, window_start(t, now), trail_terms(t))
    events = read.events
    assert read.calls == 1 and not read.truncated and not read.skipped
    assert len(events) == leaked.ci_calls + leaked.hostile_calls  # neither the bystander's nor the old record
    inv = investigate(t, "production", Severity.HIGH,
                      SecurityFacts(trail_events=events, trail_sources=[f"logs:{leaked.log_group}"]), now)
    [u] = inv.usages
    assert (u.calls, u.denied) == (leaked.ci_calls + leaked.hostile_calls, leaked.hostile_denied)
    assert u.source_ips[es.HOSTILE_IP] == 4 and u.source_ips[es.CI_NAT_IP] == leaked.ci_calls
    assert set(u.unknown_success) == {es.HOSTILE_IP}
    assert inv.classification.severity == Severity.CRITICAL and inv.classification.raised


def test_lookup_events_unavailable_is_a_read_problem_naming_the_action(clients, leaked):
    t = SecurityTargets.model_validate({"iamUsers": [{"userName": leaked.user, "accessKeyIds": [leaked.key_id]}]})
    with pytest.raises(AwsError) as err:
        AwsReader(clients, None, None).trail_records_lookup(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=24),
                                                            lookup_attributes(t))
    problem = ReadProblem.of("CloudTrail", "cloudtrail:LookupEvents", err.value)
    assert "cloudtrail:LookupEvents" in problem.message and not problem.denied


def test_access_log_requests_of_the_hostile_address_without_health_checks(clients, aws):
    group = "/aws/apigateway/checkout-prod"
    hostile = es.access_log(group)
    now = dt.datetime.now(dt.timezone.utc)
    cidrs = [f"{es.HOSTILE_IP}/32"]
    lines = AwsReader(clients, None, None).filtered_lines(group, now - dt.timedelta(hours=24), access_log_pattern(cidrs))
    t = SecurityTargets.model_validate({"sourceIps": cidrs})
    inv = investigate(t, "production", Severity.HIGH, SecurityFacts(access_lines=lines, access_group=group), now)
    assert inv.access.by_ip == {es.HOSTILE_IP: hostile} and inv.access.by_status == {"200": 3, "403": 1}
    [finding] = inv.findings.findings
    assert finding.observed.startswith(f"{hostile} requests from suspicious addresses")


def test_the_example_manifest_names_the_pinned_estate_and_its_reads_work(clients, aws):
    import yaml

    from opex_operator.api.incident import IncidentSpec
    from opex_operator.api.security import WafScope

    spec = IncidentSpec.model_validate(yaml.safe_load(EXAMPLE.read_text())["spec"])
    scenario = es.security_incident(pinned=True)
    s = spec.targets.security
    [user] = s.iam_users
    assert (user.user_name, user.access_key_ids) == (scenario.key.user, [scenario.key.key_id])
    assert IamActions(clients, None, None).access_key(user.user_name, user.access_key_ids[0])["Status"] == "Active"
    [ip_set] = s.waf_ip_sets
    assert (ip_set.name, ip_set.id) == (scenario.ip_set.name, scenario.ip_set.id)
    assert WafActions(clients, None, None).addresses(ip_set.name, ip_set.id, WafScope(ip_set.scope)) == (
        "IPV4", scenario.ip_set.addresses)
    [group] = Ec2Actions(clients, None, None).security_groups([s.security_groups[0].group_id])
    assert group.group_id == scenario.group.group_id and len(group.ingress) == 4
    assert s.secrets == [scenario.secrets.rotating] and s.redeploy_pipeline == scenario.pipeline
    assert spec.targets.cloud_trail.log_group_name == scenario.key.log_group
    assert s.api_access_log_group == scenario.access_log_group
    assert boto3.client("codepipeline").get_pipeline(name=scenario.pipeline)["pipeline"]["name"] == scenario.pipeline
    # the next ones are moto's own again
    assert es.waf_ip_set(name="other").id != ip_set.id


# ---- what the compromise made: its policies, its users, the port it opened -----------------------

def attached(kind: str, name: str) -> list[str]:
    iam = boto3.client("iam")
    return [p["PolicyArn"] for p in getattr(iam, f"list_attached_{kind}_policies")(**{f"{kind.capitalize()}Name": name})
            ["AttachedPolicies"]]


def test_a_policy_the_compromise_attached_is_detached_once_and_its_undo_attaches_it_again(clients, aws):
    boto3.client("iam").create_user(UserName="svc-backup")
    boto3.client("iam").attach_user_policy(UserName="svc-backup", PolicyArn=es.ADMIN_POLICY)
    iam = IamActions(clients, None, None)
    params = DetachPolicyParams(principal_type="user", principal_name="svc-backup", policy_arn=es.ADMIN_POLICY)
    change = iam.detach_policy(params)
    assert change.changed and change.describe() == "detached AdministratorAccess from IAM user svc-backup"
    assert attached("user", "svc-backup") == []
    assert change.undo() == ("aws iam attach-user-policy --user-name svc-backup --policy-arn "
                             "arn:aws:iam::aws:policy/AdministratorAccess")
    again = iam.detach_policy(params)
    assert not again.changed and again.undo() is None and "nothing changed" in again.describe()


def test_a_role_or_group_policy_is_detached_from_that_principal_only(clients, aws):
    iam_client = boto3.client("iam")
    estate.role("backdoor-role", "ec2.amazonaws.com")
    iam_client.attach_role_policy(RoleName="backdoor-role", PolicyArn=es.ADMIN_POLICY)
    iam_client.create_group(GroupName="admins")
    iam_client.attach_group_policy(GroupName="admins", PolicyArn=es.ADMIN_POLICY)
    IamActions(clients, None, None).detach_policy(DetachPolicyParams(principal_type="role",
                                                                     principal_name="backdoor-role",
                                                                     policy_arn=es.ADMIN_POLICY))
    assert attached("role", "backdoor-role") == [] and attached("group", "admins") == [es.ADMIN_POLICY]


def test_an_inline_policy_is_deleted_and_its_undo_puts_the_same_document_back(clients, aws):
    iam_client = boto3.client("iam")
    iam_client.create_user(UserName="svc-backup")
    document = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
    iam_client.put_user_policy(UserName="svc-backup", PolicyName="backup-all", PolicyDocument=document)
    params = InlinePolicyParams(principal_type="user", principal_name="svc-backup", policy_name="backup-all",
                                event_id="ev-1")
    change = IamActions(clients, None, None).delete_inline_policy(params)
    assert change.changed and iam_client.list_user_policies(UserName="svc-backup")["PolicyNames"] == []
    assert change.undo() == (f"aws iam put-user-policy --user-name svc-backup --policy-name backup-all "
                             f"--policy-document '{document}'")
    assert not IamActions(clients, None, None).delete_inline_policy(params).changed


def test_a_long_inline_policy_undo_points_at_the_cloudtrail_record_holding_it(clients, aws):
    iam_client = boto3.client("iam")
    iam_client.create_user(UserName="svc-backup")
    statements = [{"Effect": "Allow", "Action": f"service{i}:*", "Resource": "*"} for i in range(40)]
    iam_client.put_user_policy(UserName="svc-backup", PolicyName="wide", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": statements}))
    change = IamActions(clients, None, None).delete_inline_policy(InlinePolicyParams(
        principal_type="user", principal_name="svc-backup", policy_name="wide", event_id="8f1e-ev"))
    assert change.changed and len(change.document) > 700
    assert change.undo().endswith("file://policy.json, with the document of CloudTrail event 8f1e-ev "
                                  "(requestParameters.policyDocument)")


def test_a_user_or_role_the_compromise_made_is_quarantined_with_aws_deny_all_once(clients, aws):
    boto3.client("iam").create_user(UserName="svc-backup")
    estate.role("backdoor-role", "ec2.amazonaws.com")
    iam = IamActions(clients, None, None)
    for kind, name in (("user", "svc-backup"), ("role", "backdoor-role")):
        change = iam.quarantine(QuarantineParams(principal_type=kind, principal_name=name))
        assert change.changed and attached(kind, name) == ["arn:aws:iam::aws:policy/AWSDenyAll"]
        assert change.undo() == (f"aws iam detach-{kind}-policy --{kind}-name {name} --policy-arn "
                                 f"arn:aws:iam::aws:policy/AWSDenyAll")
        assert not iam.quarantine(QuarantineParams(principal_type=kind, principal_name=name)).changed
    with pytest.raises(ValueError, match="AWSDenyAll"):
        QuarantineParams(principal_type="user", principal_name="svc-backup", policy_arn=es.ADMIN_POLICY)


def test_a_principal_deleted_since_is_contained_already(clients, aws):
    iam = IamActions(clients, None, None)
    for change in (iam.quarantine(QuarantineParams(principal_type="user", principal_name="gone")),
                   iam.detach_policy(DetachPolicyParams(principal_type="user", principal_name="gone",
                                                        policy_arn=es.ADMIN_POLICY)),
                   iam.delete_inline_policy(InlinePolicyParams(principal_type="role", principal_name="gone",
                                                               policy_name="p"))):
        assert change.gone and not change.changed and "no longer exists" in change.describe()
    assert iam.attached_policies(PrincipalType.USER, "gone") is None


def test_the_leaked_keys_blast_radius_is_read_from_the_log_group_and_contained(clients, aws):
    """The persistence scenario end to end on moto: CloudTrail read in follow-up rounds, every change
    found, and each containment step run through its executor's adapter once; a second run is a no-op."""
    p = es.persistence()
    now = dt.datetime.now(dt.timezone.utc)
    t = SecurityTargets.model_validate({"iamUsers": [{"userName": p.user, "accessKeyIds": [p.key_id]}],
                                        "knownCidrs": [f"{es.CI_NAT_IP}/32"]})
    reader, since = AwsReader(clients, None, None), window_start(t, now)
    first = reader.trail_records_from_logs(p.log_group, since, trail_terms(t))
    more = reader.trail_records_from_logs(p.log_group, since, [v for _, v in follow_ups(first.events, t, since, now)])
    events = first.merge(more).events
    found = investigate(t, "production", Severity.HIGH, SecurityFacts(trail_events=events, trail_sources=["logs"]), now)
    assert [x.what for x in found.compromise.changes] == ["CreateUser", "CreateAccessKey", "AttachUserPolicy"]
    [exposure] = found.exposures
    assert (exposure.group_id, exposure.opened.rule_id, exposure.cidr) == (p.group_id, p.rule_id, "::/0")
    [session] = found.compromise.sessions
    assert session.arn == p.session_arn
    [u] = found.usages
    assert u.apis["secretsmanager:GetSecretValue"] == 1 and u.apis["s3:ListBuckets"] == 1   # the session, the new key
    assert u.apis["s3:PutObject"] == 0                                                      # the bystander's
    iam, ec2 = IamActions(clients, None, None), Ec2Actions(clients, None, None)
    changes = [iam.deactivate_access_key(AccessKeyParams(user_name=p.created_user, access_key_id=p.created_key_id)),
               iam.detach_policy(DetachPolicyParams(principal_type="user", principal_name=p.created_user,
                                                    policy_arn=p.policy_arn)),
               iam.quarantine(QuarantineParams(principal_type="user", principal_name=p.created_user)),
               ec2.revoke_ingress(RevokeIngressParams(group_id=p.group_id, protocol="tcp", from_port=22, to_port=22,
                                                      cidrs=[exposure.cidr]))]
    assert [c.changed for c in changes] == [True] * 4
    assert key_status(p.created_user, p.created_key_id) == "Inactive"
    assert attached("user", p.created_user) == ["arn:aws:iam::aws:policy/AWSDenyAll"]
    [group] = ec2.security_groups([p.group_id])
    assert [r.label() for r in group.ingress] == ["tcp/443 from 0.0.0.0/0"]
    assert not iam.detach_policy(DetachPolicyParams(principal_type="user", principal_name=p.created_user,
                                                    policy_arn=p.policy_arn)).changed
