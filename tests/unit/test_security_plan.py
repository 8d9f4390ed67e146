"""The security runbook's steps from the spec (ids, actions, params, gating) and what "holds" means."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from opex_operator.api.incident import IncidentSpec, IncidentStatus, StepState
from opex_operator.aws import ec2, iam, pipeline, secrets, waf
from opex_operator.runbooks import engine
from opex_operator.runbooks.engine import ASSESS, CLASSIFY, Move, Situation, VerifyOutcome, read_step
from opex_operator.ports.cloudtrail import trail_events
from opex_operator.playbooks.security.investigation import IngressRule, SecurityFacts, investigate
from opex_operator.playbooks.security.response import steps
from opex_operator.steps import action_of, params_of, request_token
from opex_operator.steps.access_keys import AccessKeyParams
from opex_operator.steps.iam_policies import DetachPolicyParams, InlinePolicyParams, QuarantineParams
from opex_operator.steps.revoke_ingress import RevokeIngressParams
from opex_operator.steps.secret_rotation import RotateSecretParams
from opex_operator.steps.waf_block import BlockIpsParams
from opex_operator.api.incident import Step

# The action of each params model, to ask it whether what it changed holds.
ACTIONS = {AccessKeyParams: "iam:UpdateAccessKey", BlockIpsParams: "wafv2:UpdateIPSet",
           RevokeIngressParams: "ec2:RevokeSecurityGroupIngress", DetachPolicyParams: "iam:DetachUserPolicy",
           InlinePolicyParams: "iam:DeleteRolePolicy", QuarantineParams: "iam:AttachUserPolicy",
           RotateSecretParams: "secretsmanager:RotateSecret"}


def holds(p, seen):
    """(ok, seen) as the step's action judges what verification observed."""
    step = Step(id="x", action=ACTIONS[type(p)], mutating=True)
    [held] = action_of(step.action).holds(step, p, seen)
    return held.ok, held.seen
from support.builders import NOW

SET_ID = "5f3c1a9e-7b2d-4e8f-9a6b-0c1d2e3f4a5b"


def security_spec(targets: dict, mode: str = "Auto", **remediation) -> IncidentSpec:
    return IncidentSpec.model_validate({
        "type": "SecurityIncident", "severity": "high", "title": "key leaked", "environment": "production",
        "targets": {"region": "eu-west-1", "security": targets},
        "remediation": {"mode": mode, **remediation}})


FULL = {"iamUsers": [{"userName": "ci.deployer@corp", "accessKeyIds": ["AKIAIOSFODNN7LEAKED1", "AKIAIOSFODNN7LEAKED2"]}],
        "sourceIps": ["203.0.113.66/32", "2001:db8:bad:1::7/128"],
        "wafIpSets": [{"name": "edge-blocks", "id": SET_ID, "scope": "CLOUDFRONT"},
                      {"name": "api-blocks", "id": "00000000-7b2d-4e8f-9a6b-0c1d2e3f4a5b", "scope": "REGIONAL"}],
        "securityGroups": [{"groupId": "sg-0b7a5e1d2c3f4a5b6", "fromPort": 22, "toPort": 22},
                           {"groupId": "sg-0b7a5e1d2c3f4a5b6", "fromPort": 22, "toPort": 22, "cidrs": ["::/0"]},
                           {"groupId": "sg-0b7a5e1d2c3f4a5b6", "protocol": "-1"}],
        "secrets": ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"],
        "redeployPipeline": "checkout-pipeline"}


def test_containment_then_recovery_in_runbook_order_with_stable_ids():
    planned = steps(security_spec(FULL))
    assert [(s.id, s.action, s.requires_approval) for s in planned] == [
        ("deactivate-access-key-akiaiosfodnn7leaked1", "iam:UpdateAccessKey", False),
        ("deactivate-access-key-akiaiosfodnn7leaked2", "iam:UpdateAccessKey", False),
        ("remove-login-profile-ci-deployer-corp", "iam:DeleteLoginProfile", False),
        ("block-ips-edge-blocks", "wafv2:UpdateIPSet", False),
        ("block-ips-api-blocks", "wafv2:UpdateIPSet", False),
        ("revoke-ingress-sg-0b7a5e1d2c3f4a5b6-tcp-22", "ec2:RevokeSecurityGroupIngress", False),
        ("revoke-ingress-sg-0b7a5e1d2c3f4a5b6-tcp-22-2", "ec2:RevokeSecurityGroupIngress", False),
        ("revoke-ingress-sg-0b7a5e1d2c3f4a5b6-all", "ec2:RevokeSecurityGroupIngress", False),
        ("rotate-secret-prod-db-abcdef", "secretsmanager:RotateSecret", True),
        ("redeploy-checkout-pipeline", "codepipeline:StartPipelineExecution", True)]
    assert [s.id for s in steps(security_spec(FULL))] == [s.id for s in planned]  # stable
    assert all(s.mutating and s.state == StepState.PENDING for s in planned)


def test_params_carry_what_each_step_needs():
    planned = {s.id: params_of(s) for s in steps(security_spec(FULL, security={"allowPrivateRanges": True}))}
    edge, api = planned["block-ips-edge-blocks"], planned["block-ips-api-blocks"]
    assert isinstance(edge, BlockIpsParams) and edge.addresses == ["203.0.113.66/32", "2001:db8:bad:1::7/128"]
    assert (edge.region, api.region) == ("us-east-1", "eu-west-1")  # CLOUDFRONT lives in us-east-1
    assert edge.target_region() == "us-east-1" and edge.allow_private_ranges and not edge.allow_world_ranges
    world = planned["revoke-ingress-sg-0b7a5e1d2c3f4a5b6-tcp-22"]
    assert isinstance(world, RevokeIngressParams) and world.cidrs == ["0.0.0.0/0", "::/0"]
    assert (world.protocol, world.from_port, world.to_port) == ("tcp", 22, 22)
    assert planned["revoke-ingress-sg-0b7a5e1d2c3f4a5b6-all"].from_port is None


def test_delete_replaces_deactivate_only_when_the_spec_says_so():
    planned = steps(security_spec(FULL, security={"accessKeyAction": "Delete"}))
    keys = [s for s in planned if s.action.startswith("iam:") and "AccessKey" in s.action]
    assert [s.id for s in keys] == ["delete-access-key-akiaiosfodnn7leaked1", "delete-access-key-akiaiosfodnn7leaked2"]
    assert all(s.action == "iam:DeleteAccessKey" and "irreversible" in s.inputs for s in keys)


def test_no_block_without_source_ips_and_nothing_without_security_targets():
    assert not any(s.action == "wafv2:UpdateIPSet" for s in steps(security_spec({**FULL, "sourceIps": []})))
    assert steps(security_spec({})) == []


def test_step_actions_are_the_adapters_iam_actions():
    pairs = {"iam:UpdateAccessKey": iam.AccessKeyParams, "iam:DeleteAccessKey":
             iam.DeleteAccessKeyParams, "iam:DeleteLoginProfile": iam.LoginProfileParams,
             "wafv2:UpdateIPSet": waf.BlockAddressesParams,
             "ec2:RevokeSecurityGroupIngress": ec2.RevokeIngressParams,
             "secretsmanager:RotateSecret": secrets.RotateSecretParams,
             "codepipeline:StartPipelineExecution": pipeline.StartPipelineParams}
    for action, adapter in pairs.items():
        assert adapter.action == action and action_of(action) is not None


def test_request_tokens_are_stable_per_incident_and_step_and_fit_aws():
    token = request_token("6f1c0000-aaaa-4bbb-8ccc-0123456789ab", "rotate-secret-prod-db")
    assert token == request_token("6f1c0000-aaaa-4bbb-8ccc-0123456789ab", "rotate-secret-prod-db")
    assert token != request_token("6f1c0000-aaaa-4bbb-8ccc-0123456789ab", "redeploy-checkout-pipeline")
    assert token != request_token("another-incident-uid", "rotate-secret-prod-db")
    secrets.RotateSecretParams(secret_id="prod/db", client_request_token=token)  # 32-64 chars, [A-Za-z0-9-]
    pipeline.StartPipelineParams(name="checkout-pipeline", client_request_token=token)


def planned_status(spec: IncidentSpec) -> IncidentStatus:
    done = [read_step(ASSESS), read_step(CLASSIFY)]
    for s in done:
        s.state = StepState.SUCCEEDED
    return IncidentStatus(phase="Diagnosing", detected_at=NOW, steps=done + steps(spec) + [read_step("verify")])


def test_in_auto_containment_runs_and_recovery_waits_for_its_approval():
    spec = security_spec(FULL)
    st = planned_status(spec)
    assert engine.decide(spec, st, Situation(now=NOW)).move == Move.ESCALATE
    st.escalation = {"currentLevel": 1}
    for s in st.steps:
        if not s.requires_approval and s.mutating:
            s.state = StepState.SUCCEEDED
    d = engine.decide(spec, st, Situation(now=NOW))
    assert (d.move, d.step.id) == (Move.AWAIT_APPROVAL, "rotate-secret-prod-db-abcdef")
    approved = security_spec(FULL, approvedSteps=["rotate-secret-prod-db-abcdef"])
    d = engine.decide(approved, st, Situation(now=NOW))
    assert (d.move, d.step.id) == (Move.RUN, "rotate-secret-prod-db-abcdef")
    dry = security_spec(FULL, mode="DryRun")
    assert engine.decide(dry, st, Situation(now=NOW)).move == Move.DRY_RUN


KEY = "AKIAIOSFODNN7LEAKED1"


@pytest.mark.parametrize("facts, outcome, seen", [
    ("Inactive", True, f"access key {KEY} is Inactive"),
    (None, True, f"access key {KEY} is deleted"),
    ("Active", False, f"access key {KEY} of u is Active again"),
])
def test_a_key_holds_while_it_is_not_active(facts, outcome, seen):
    assert holds(AccessKeyParams(user_name="u", access_key_id=KEY), facts) == (outcome, seen)


def test_blocks_hold_per_ip_version_and_a_revoked_rule_must_stay_gone():
    block = BlockIpsParams(name="s", id="i", scope="REGIONAL", addresses=["203.0.113.66/32", "2001:db8::7/128"])
    assert holds(block, ("IPV4", ["192.0.2.0/24", "203.0.113.66/32"]))[0] is True
    assert holds(block, ("IPV4", ["192.0.2.0/24"])) == (
        False, "WAF IP set s no longer blocks 203.0.113.66/32")
    revoke = RevokeIngressParams(group_id="sg-1", protocol="tcp", from_port=22, to_port=22, cidrs=["0.0.0.0/0"])
    vpn = IngressRule(protocol="tcp", from_port=22, to_port=22, cidr="10.0.0.0/8")
    back = IngressRule(protocol="tcp", from_port=22, to_port=22, cidr="0.0.0.0/0")
    assert holds(revoke, [vpn])[0] is True
    assert holds(revoke, [vpn, back]) == (
        False, "sg-1 has tcp/22 from 0.0.0.0/0 again")


def test_verification_waits_for_a_rotation_and_fails_when_its_version_is_gone():
    spec = security_spec({"secrets": ["prod/db"]})
    st = planned_status(spec)
    rotate = next(s for s in st.steps if s.action == "secretsmanager:RotateSecret")
    rotate.state, rotate.params = StepState.SUCCEEDED, {**rotate.params, "versionId": "v2"}
    action, p = action_of(rotate.action), params_of(rotate)

    def verified(seen: str):
        return engine.verify(st, action.holds(rotate, p, seen), [], False, (VerifyOutcome.PENDING, "-"))

    assert verified("InProgress") == (VerifyOutcome.PENDING, "secret prod/db: rotation in progress")
    assert verified("missing")[0] == VerifyOutcome.FAILED
    assert verified("Rotated") == (VerifyOutcome.VERIFIED, "secret prod/db rotated")


# ---- containment of what the compromise made, changed and opened ---------------------------------

LEAKED = "AKIAIOSFODNN7LEAKED1"
NEW_KEY = "AKIANEWKEYEXAMPLE001"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"


def by_leaked_key(minutes: int, source: str, name: str, request: dict, response: dict | None = None) -> dict:
    """A successful call of the leaked key (CloudTrail "Record contents"; request and response
    elements as the IAM and EC2 API references name them)."""
    return {"eventVersion": "1.09", "eventTime": (NOW - dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/ci-deployer",
                             "userName": "ci-deployer", "accessKeyId": LEAKED},
            "eventSource": f"{source}.amazonaws.com", "eventName": name, "sourceIPAddress": "203.0.113.66",
            "userAgent": "python-requests/2.31.0", "requestParameters": request, "responseElements": response,
            "eventID": f"ev-{minutes}-{name}"}


BLAST = [
    by_leaked_key(60, "iam", "CreateUser", {"userName": "svc-backup"}),
    by_leaked_key(59, "iam", "CreateAccessKey", {"userName": "svc-backup"},
                  {"accessKey": {"userName": "svc-backup", "accessKeyId": NEW_KEY, "status": "Active"}}),
    by_leaked_key(58, "iam", "AttachUserPolicy", {"userName": "svc-backup", "policyArn": ADMIN}),
    by_leaked_key(57, "iam", "PutRolePolicy", {"roleName": "deploy", "policyName": "all", "policyDocument": "{}"}),
    by_leaked_key(56, "iam", "UpdateAssumeRolePolicy", {"roleName": "deploy", "policyDocument": "{}"}),
    by_leaked_key(55, "iam", "CreateRole", {"roleName": "backdoor", "assumeRolePolicyDocument": "{}"}),
    by_leaked_key(54, "iam", "UpdateLoginProfile", {"userName": "ci-deployer"}),
    by_leaked_key(53, "ec2", "AuthorizeSecurityGroupIngress",
                  {"groupId": "sg-0b7a5e1d2c3f4a5b6", "ipPermissions": {"items": [
                      {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                       "ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}}]}}),
    by_leaked_key(52, "ec2", "AuthorizeSecurityGroupIngress",
                  {"groupId": "sg-0c0ffee0c0ffee000", "ipPermissions": {"items": [
                      {"ipProtocol": "tcp", "fromPort": 3389, "toPort": 3389,
                       "ipRanges": {"items": [{"cidrIp": "10.1.2.3/0"}]}}]}}),
]


def found_by(spec: IncidentSpec, records: list[dict]):
    facts = SecurityFacts(trail_events=trail_events(json.dumps(r) for r in records), trail_sources=["x"])
    return investigate(spec.targets.security, spec.environment, spec.severity, facts, NOW)


def test_what_the_compromise_made_is_contained_after_what_the_spec_names_and_before_recovery():
    targets = {"iamUsers": [{"userName": "ci-deployer", "accessKeyIds": [LEAKED]}],
               "securityGroups": [{"groupId": "sg-0b7a5e1d2c3f4a5b6", "fromPort": 22, "toPort": 22}],
               "secrets": ["prod/db"]}
    spec = security_spec(targets)
    planned = steps(spec, found_by(spec, BLAST))
    assert [(s.id, s.action, s.requires_approval) for s in planned] == [
        (f"deactivate-access-key-{LEAKED.lower()}", "iam:UpdateAccessKey", False),
        ("remove-login-profile-ci-deployer", "iam:DeleteLoginProfile", False),
        ("revoke-ingress-sg-0b7a5e1d2c3f4a5b6-tcp-22", "ec2:RevokeSecurityGroupIngress", False),
        (f"deactivate-access-key-{NEW_KEY.lower()}", "iam:UpdateAccessKey", False),
        ("detach-user-policy-svc-backup-administratoraccess", "iam:DetachUserPolicy", False),
        ("delete-role-policy-deploy-all", "iam:DeleteRolePolicy", False),
        ("quarantine-user-svc-backup", "iam:AttachUserPolicy", False),
        ("quarantine-role-deploy", "iam:AttachRolePolicy", True),       # its own callers: a person decides
        ("quarantine-role-backdoor", "iam:AttachRolePolicy", False),
        ("revoke-ingress-sg-0c0ffee0c0ffee000-tcp-3389", "ec2:RevokeSecurityGroupIngress", False),
        ("rotate-secret-prod-db", "secretsmanager:RotateSecret", True)]
    p = {s.id: params_of(s) for s in planned}
    assert p["detach-user-policy-svc-backup-administratoraccess"].model_dump() == {
        "principal_type": "user", "principal_name": "svc-backup", "policy_arn": ADMIN, "event_id": "ev-58-AttachUserPolicy"}
    assert p["revoke-ingress-sg-0c0ffee0c0ffee000-tcp-3389"].cidrs == ["0.0.0.0/0"]   # 10.1.2.3/0 is the world
    assert "(created by the compromise at 2026-11-29T08:01:00Z, event ev-59-CreateAccessKey)" in planned[3].inputs
    assert [s.id for s in steps(spec, found_by(spec, BLAST))] == [s.id for s in planned]  # stable


def test_delete_applies_to_the_keys_the_compromise_made_too():
    spec = security_spec({"iamUsers": [{"userName": "ci-deployer", "accessKeyIds": [LEAKED]}]},
                         security={"accessKeyAction": "Delete"})
    ids = [s.id for s in steps(spec, found_by(spec, BLAST[:2]))]
    assert f"delete-access-key-{NEW_KEY.lower()}" in ids


def test_an_exposure_a_named_rule_covers_gets_no_second_step_and_an_uncovered_one_its_own():
    spec = security_spec({"iamUsers": [{"userName": "ci-deployer", "accessKeyIds": [LEAKED]}],
                          "securityGroups": [{"groupId": "sg-0b7a5e1d2c3f4a5b6", "fromPort": 22, "toPort": 22,
                                              "cidrs": ["0.0.0.0/0"]}]})
    ids = [s.id for s in steps(spec, found_by(spec, [BLAST[7]]))]
    assert ids == [f"deactivate-access-key-{LEAKED.lower()}", "remove-login-profile-ci-deployer",
                   "revoke-ingress-sg-0b7a5e1d2c3f4a5b6-tcp-22", "revoke-ingress-sg-0b7a5e1d2c3f4a5b6-tcp-22-ipv6"]


def test_the_new_step_actions_are_what_their_adapters_may_do():
    from fnmatch import fnmatchcase

    pairs = {iam.DetachPolicyParams: ("iam:DetachUserPolicy", "iam:DetachRolePolicy",
                                      "iam:DetachGroupPolicy"),
             iam.InlinePolicyParams: ("iam:DeleteUserPolicy", "iam:DeleteRolePolicy",
                                      "iam:DeleteGroupPolicy"),
             iam.QuarantineParams: ("iam:AttachUserPolicy", "iam:AttachRolePolicy")}
    for adapter, actions in pairs.items():
        assert all(fnmatchcase(a, adapter.action) and action_of(a) is not None for a in actions)


@pytest.mark.parametrize("p, facts, outcome", [
    (QuarantineParams(principal_type="user", principal_name="svc-backup"),
     ["arn:aws:iam::aws:policy/AWSDenyAll"],
     (True, "IAM user svc-backup is quarantined (AWSDenyAll attached)")),
    (QuarantineParams(principal_type="user", principal_name="svc-backup"),
     [], (False, "AWSDenyAll is no longer attached to IAM user svc-backup")),
    (DetachPolicyParams(principal_type="user", principal_name="svc-backup", policy_arn=ADMIN),
     [ADMIN], (False, "IAM user svc-backup has AdministratorAccess again")),
    (DetachPolicyParams(principal_type="role", principal_name="deploy", policy_arn=ADMIN),
     None, (True, "IAM role deploy no longer exists")),
    (InlinePolicyParams(principal_type="role", principal_name="deploy", policy_name="all"),
     ["other"], (True, "IAM role deploy does not have all")),
])
def test_what_the_compromise_made_holds_while_it_stays_contained(p, facts, outcome):
    assert holds(p, facts) == outcome


def test_a_quarantine_is_never_undone_and_a_rule_ec2_could_not_revoke_is_a_finding_only():
    spec = security_spec({"iamUsers": [{"userName": "ci-deployer", "accessKeyIds": [LEAKED]}]})
    records = [by_leaked_key(50, "iam", "AttachUserPolicy", {"userName": "svc",
                                                              "policyArn": "arn:aws:iam::aws:policy/AWSDenyAll"}),
               by_leaked_key(49, "iam", "AttachUserPolicy", {"userName": "svc", "policyArn":
                                                              "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3"}),
               by_leaked_key(48, "ec2", "AuthorizeSecurityGroupIngress",
                             {"groupId": "sg-NOT-AN-ID", "ipPermissions": {"items": [
                                 {"ipProtocol": "-1", "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}})]
    found = found_by(spec, records)
    assert len(found.compromise.changes) == 2 and [x.group_id for x in found.exposures] == ["sg-NOT-AN-ID"]
    assert [s.id for s in steps(spec, found)] == [f"deactivate-access-key-{LEAKED.lower()}",
                                                  "remove-login-profile-ci-deployer"]
