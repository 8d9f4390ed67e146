"""A SecurityIncident on the local stack: a leaked CI key contained, investigated and recovered from.

The estate (hack/estate_security.py) is seeded with the ids examples/incident-security.yaml
names, so the example is applied as a user would apply it; AWS state is read back through boto3
and mutating calls are counted on moto's backend in this process (what AWS received).
"""
from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
import yaml
from moto.ec2.responses.security_groups import SecurityGroups
from moto.iam.models import IAMBackend
from moto.codepipeline.models import CodePipelineBackend
from moto.secretsmanager.models import SecretsManagerBackend
from moto.wafv2.models import WAFV2Backend

import estate
import estate_security as es
from helpers import bump, reconciled, wait_for
from support.counters import CallCounter

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "incident-security.yaml"
NAME = "ci-key-leaked"
KEY_STEP, LOGIN_STEP = "deactivate-access-key-akiaiosfodnn7leaked1", "remove-login-profile-ci-deployer"
BLOCK_STEP, REVOKE_STEP = "block-ips-blocked-ips", f"revoke-ingress-{es.EXAMPLE_GROUP_ID}-tcp-22"
CONTAINMENT = [KEY_STEP, LOGIN_STEP, BLOCK_STEP, REVOKE_STEP]
RECOVERY = ["rotate-secret-prod-checkout-db", "redeploy-checkout-pipeline"]
# The mutating calls of the security runbook, on moto's backends; EC2's on its request handler,
# which calls the backend once per IpPermission of one RevokeSecurityGroupIngress request.
MUTATING = {IAMBackend: ["update_access_key", "delete_access_key", "delete_login_profile"],
            WAFV2Backend: ["update_ip_set"], SecurityGroups: ["revoke_security_group_ingress"],
            SecretsManagerBackend: ["rotate_secret"], CodePipelineBackend: ["start_pipeline_execution"]}


def manifest(mode: str) -> str:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["remediation"]["mode"] = mode
    return yaml.safe_dump(doc)


def status_of(kubectl, namespace) -> dict:
    return kubectl.get("incident", NAME, namespace).get("status") or {}


def steps_of(status: dict) -> dict:
    return {s["id"]: s for s in status.get("steps", [])}


def key_status(user: str, key_id: str) -> str | None:
    keys = boto3.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
    return next((k["Status"] for k in keys if k["AccessKeyId"] == key_id), None)


def has_login(user: str) -> bool:
    try:
        boto3.client("iam").get_login_profile(UserName=user)
    except boto3.client("iam").exceptions.NoSuchEntityException:
        return False
    return True


def ip_set_addresses(ip_set: es.IpSet) -> list[str]:
    return boto3.client("wafv2").get_ip_set(Name=ip_set.name, Scope=ip_set.scope, Id=ip_set.id)["IPSet"]["Addresses"]


def ssh_sources(group_id: str) -> set[str]:
    [group] = boto3.client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    return {r.get("CidrIp") or r.get("CidrIpv6") for p in group["IpPermissions"] if p.get("FromPort") == 22
            for r in p.get("IpRanges", []) + p.get("Ipv6Ranges", [])}


def current_version(secret: str) -> str:
    stages = boto3.client("secretsmanager").describe_secret(SecretId=secret)["VersionIdsToStages"]
    return next(v for v, labels in stages.items() if "AWSCURRENT" in labels)


def executions(pipeline: str) -> int:
    return len(boto3.client("codepipeline").list_pipeline_executions(pipelineName=pipeline)
               ["pipelineExecutionSummaries"])


def sqs_messages(queue_url: str) -> list[dict]:
    sqs = boto3.client("sqs")
    out = []
    while got := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        out += [json.loads(m["Body"]) for m in got]
    return out


def test_auto_contains_investigates_and_leaves_recovery_awaiting_approval(kubectl, namespace, aws, operator):
    scenario = es.security_incident(pinned=True)
    _, queue = estate.oncall_topic("checkout-oncall")
    secret_before = current_version(scenario.secrets.rotating)
    runs_before = executions(scenario.pipeline)
    kubectl.apply(manifest("Auto"), namespace)

    status = wait_for(lambda: (s := status_of(kubectl, namespace)).get("phase") == "AwaitingApproval" and s,
                      timeout=90, what="containment done and recovery awaiting approval")
    steps = steps_of(status)
    assert list(steps) == ["assess", "classify", *CONTAINMENT, *RECOVERY, "verify", "notify-resolved"]
    assert [steps[i]["state"] for i in CONTAINMENT] == ["Succeeded"] * 4
    assert steps[RECOVERY[0]]["state"] == "AwaitingApproval" and steps[RECOVERY[0]]["requiresApproval"] is True
    # contained, exactly: the leaked key only, this user's console password, the address beside the others,
    # the world-open SSH rule (IPv4 and IPv6) while the VPN rule stays
    key = scenario.key
    assert key_status(key.user, key.key_id) == "Inactive" and key_status(key.user, key.other_key_id) == "Active"
    assert [k["Status"] for k in boto3.client("iam").list_access_keys(UserName="release-bot")["AccessKeyMetadata"]] \
        == ["Active"]
    assert not has_login(key.user)
    assert ip_set_addresses(scenario.ip_set) == scenario.ip_set.addresses + [f"{es.HOSTILE_IP}/32"]
    assert ssh_sources(scenario.group.group_id) == {"10.0.0.0/8"}
    assert "2001:db8:bad:1::7/128" in steps[BLOCK_STEP]["outputs"] and "IP version" in steps[BLOCK_STEP]["outputs"]
    assert steps[KEY_STEP]["undo"].endswith("--status Active")
    # recovery untouched
    assert current_version(scenario.secrets.rotating) == secret_before and executions(scenario.pipeline) == runs_before
    # investigated: CloudTrail use of the key, the access log, the open group; severity raised on evidence
    findings = {f["source"]: f for f in status["findings"]}
    trail = findings["CloudTrail"]
    assert f"succeeded from unknown addresses {es.HOSTILE_IP}" in trail["observed"]
    assert es.HOSTILE_AGENT in trail["evidence"] and "iam:CreateUser (AccessDenied)" in trail["evidence"]
    assert findings["APIGateway"]["observed"].startswith(f"{scenario.hostile_requests} requests from suspicious")
    assert findings["EC2"]["resource"] == f"security-group/{scenario.group.group_id}"
    assert status["rootCause"]["category"] == "CompromisedCredentials"
    c = status["classification"]
    assert (c["declaredSeverity"], c["severity"], c["raised"]) == ("high", "critical", True)
    assert status["escalation"]["currentLevel"] == 3
    pages = wait_for(lambda: len(m := sqs_messages(queue)) >= 3 and m, what="three pages")
    assert sorted(m["MessageAttributes"]["level"]["Value"] for m in pages) == ["1", "2", "3"]
    assert {m["MessageAttributes"]["severity"]["Value"] for m in pages} == {"critical"}
    reasons = [e["reason"] for e in kubectl.events(namespace, NAME)]
    for reason in ("SeverityRaised", "Escalated", "StepSucceeded", "AwaitingApproval"):
        assert reason in reasons, f"no {reason} event in {reasons}"
    assert operator.metric("opex_incidents", phase="AwaitingApproval", severity="critical",
                           type="SecurityIncident") >= 1

    bump(kubectl, "incident", NAME, namespace, json.dumps({"spec": {"remediation": {"approvedSteps": RECOVERY}}}))
    status = wait_for(lambda: (s := status_of(kubectl, namespace)).get("phase") == "Resolved" and s, timeout=90,
                      what="recovered and verified")
    steps = steps_of(status)
    assert current_version(scenario.secrets.rotating) == steps[RECOVERY[0]]["params"]["versionId"] != secret_before
    assert executions(scenario.pipeline) == runs_before + 1
    assert steps[RECOVERY[1]]["outputs"].endswith("is Succeeded")
    assert "still" not in steps["verify"]["outputs"] and f"access key {key.key_id} is Inactive" in steps["verify"]["outputs"]
    report = kubectl.get("configmap", status["postIncident"]["reportRef"]["name"], namespace)["data"]["report.md"]
    undo = report.split("## Undo")[1]
    for step_id in CONTAINMENT + RECOVERY:
        assert f"`{step_id}`" in undo


def test_manual_changes_nothing_until_the_steps_are_approved(kubectl, namespace, aws, operator):
    scenario = es.security_incident(pinned=True)
    key = scenario.key
    kubectl.apply(manifest("Manual"), namespace)
    wait_for(lambda: status_of(kubectl, namespace).get("phase") == "AwaitingApproval", timeout=90,
             what="AwaitingApproval")
    status = reconciled(kubectl, "incident", NAME, namespace)
    assert steps_of(status)[KEY_STEP]["state"] == "AwaitingApproval"
    assert status["classification"]["severity"] == "critical"
    assert key_status(key.user, key.key_id) == "Active" and has_login(key.user)
    assert ip_set_addresses(scenario.ip_set) == scenario.ip_set.addresses
    assert ssh_sources(scenario.group.group_id) == {"0.0.0.0/0", "::/0", "10.0.0.0/8"}

    bump(kubectl, "incident", NAME, namespace, json.dumps({"spec": {"remediation": {"approvedSteps": CONTAINMENT}}}))
    status = wait_for(lambda: (s := status_of(kubectl, namespace)) and steps_of(s)[RECOVERY[0]]["state"]
                      == "AwaitingApproval" and s, timeout=60, what="containment done")
    assert [steps_of(status)[i]["state"] for i in CONTAINMENT] == ["Succeeded"] * 4
    assert key_status(key.user, key.key_id) == "Inactive" and not has_login(key.user)
    assert f"{es.HOSTILE_IP}/32" in ip_set_addresses(scenario.ip_set)
    assert ssh_sources(scenario.group.group_id) == {"10.0.0.0/8"}


@pytest.fixture
def backend_calls(monkeypatch):
    """The security runbook's mutating calls; the first UpdateIPSet holds for 3 s."""
    return CallCounter(monkeypatch, MUTATING, hold="update_ip_set")


def test_operator_killed_between_containment_steps_runs_no_call_twice(kubectl, solo_namespace, aws, solo_operator,
                                                                       backend_calls):
    ns = solo_namespace
    scenario = es.security_incident(pinned=True)
    backend_calls.arm()  # after seeding: count only the operator's calls
    solo_operator.start()
    kubectl.apply(manifest("Auto"), ns)

    assert backend_calls.in_flight.wait(90), "the operator never called UpdateIPSet"
    solo_operator.kill()  # the key and login steps are done; the WAF call is in flight
    steps = steps_of(status_of(kubectl, ns))
    assert [steps[i]["state"] for i in CONTAINMENT] == ["Succeeded", "Succeeded", "Running", "Pending"]
    assert backend_calls.completed.wait(10), "the call never completed on the AWS side"

    solo_operator.start()
    status = wait_for(lambda: (s := status_of(kubectl, ns)).get("phase") == "AwaitingApproval" and s, timeout=90,
                      what="containment finished after the restart")
    assert dict(backend_calls) == {"update_access_key": 1, "delete_login_profile": 1, "update_ip_set": 1,
                                   "revoke_security_group_ingress": 1}
    steps = steps_of(status)
    assert [steps[i]["state"] for i in CONTAINMENT] == ["Succeeded"] * 4
    assert [steps[i]["attempts"] for i in CONTAINMENT] == [1] * 4
    assert "already there" in steps[BLOCK_STEP]["outputs"]
    assert ip_set_addresses(scenario.ip_set) == scenario.ip_set.addresses + [f"{es.HOSTILE_IP}/32"]


# ---- the leaked key made itself at home: found, contained once, reported with the undo -------------

PERSISTENCE = Path(__file__).resolve().parents[2] / "examples" / "incident-security-persistence.yaml"
DENY_ALL = "arn:aws:iam::aws:policy/AWSDenyAll"
# Every mutating call the blast radius's containment makes; the first DetachUserPolicy holds for 3 s.
BLAST_CALLS = {IAMBackend: ["update_access_key", "delete_login_profile", "detach_user_policy", "attach_user_policy"],
               SecurityGroups: ["revoke_security_group_ingress"]}


def attached(user: str) -> list[str]:
    return [p["PolicyArn"] for p in boto3.client("iam").list_attached_user_policies(UserName=user)["AttachedPolicies"]]


def ingress(group_id: str) -> set[str]:
    [group] = boto3.client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    return {f"{p.get('FromPort')}:{r.get('CidrIp') or r.get('CidrIpv6')}" for p in group["IpPermissions"]
            for r in p.get("IpRanges", []) + p.get("Ipv6Ranges", [])}


@pytest.fixture
def blast_calls(monkeypatch):
    return CallCounter(monkeypatch, BLAST_CALLS, hold="detach_user_policy")


def test_what_the_leaked_key_made_is_found_contained_once_across_a_sigkill_and_reported_with_its_undo(
        kubectl, solo_namespace, aws, solo_operator, blast_calls):
    ns = solo_namespace
    p = es.persistence()
    name = yaml.safe_load(PERSISTENCE.read_text())["metadata"]["name"]
    found_steps = [f"deactivate-access-key-{p.created_key_id.lower()}", f"detach-user-policy-{p.created_user}-administratoraccess",
                   f"quarantine-user-{p.created_user}", f"revoke-ingress-{p.group_id}-tcp-22"]
    named_steps = [f"deactivate-access-key-{p.key_id.lower()}", f"remove-login-profile-{p.user}"]
    blast_calls.arm()
    solo_operator.start()
    kubectl.apply(PERSISTENCE.read_text(), ns)

    assert blast_calls.in_flight.wait(90), "the operator never called DetachUserPolicy"
    solo_operator.kill()   # the keys and the password are contained; the detach is in flight
    steps = {s["id"]: s for s in (kubectl.get("incident", name, ns).get("status") or {}).get("steps", [])}
    assert [steps[i]["state"] for i in named_steps + found_steps] == ["Succeeded"] * 3 + ["Running", "Pending", "Pending"]
    assert blast_calls.completed.wait(10), "the call never completed on the AWS side"

    solo_operator.start()
    status = wait_for(lambda: (s := kubectl.get("incident", name, ns).get("status") or {}).get("phase") == "Resolved"
                      and s, timeout=120, what="contained, verified and resolved after the restart")
    assert dict(blast_calls) == {"update_access_key": 2, "delete_login_profile": 1, "detach_user_policy": 1,
                                 "attach_user_policy": 1, "revoke_security_group_ingress": 1}
    steps = {s["id"]: s for s in status["steps"]}
    assert [steps[i]["state"] for i in named_steps + found_steps] == ["Succeeded"] * 6
    assert [steps[i]["attempts"] for i in named_steps + found_steps] == [1] * 6
    assert "nothing changed" in steps[found_steps[1]]["outputs"]    # resumed: already detached, not detached twice
    # contained in AWS: the leaked key and the one it made, the admin policy, the user, the SSH rule (HTTPS stays)
    assert key_status(p.user, p.key_id) == "Inactive" and not has_login(p.user)
    assert key_status(p.created_user, p.created_key_id) == "Inactive"
    assert attached(p.created_user) == [DENY_ALL]
    assert ingress(p.group_id) == {"443:0.0.0.0/0"}
    # all four found, each with the record that shows it
    observed = [f["observed"] for f in status["findings"]]
    for what in (f"IAM user {p.created_user} created by key {p.key_id}",
                 f"access key {p.created_key_id} created for IAM user {p.created_user}",
                 f"managed policy {p.policy_arn} attached to IAM user {p.created_user}",
                 f"{p.group_id} opened to the world by key {p.key_id}"):
        assert any(o.startswith(what) for o in observed), f"no finding {what!r} in {observed}"
    assert any(f"(rule {p.rule_id})" in o for o in observed)
    trail = next(f for f in status["findings"] if f["resource"] == f"user/{p.user}" and f["source"] == "CloudTrail")
    assert "1 sessions opened and followed" in trail["observed"] and p.session_arn in trail["evidence"]
    assert status["rootCause"]["category"] == "CompromisedCredentials"
    assert status["classification"]["severity"] == "critical"
    # listed with their undo in the post-incident report
    report = kubectl.get("configmap", status["postIncident"]["reportRef"]["name"], ns)["data"]["report.md"]
    undo = report.split("## Undo")[1].split("## Timeline")[0]
    for step_id in named_steps + found_steps:
        assert f"`{step_id}`" in undo
    assert f"aws iam attach-user-policy --user-name {p.created_user} --policy-arn {p.policy_arn}" in undo
    assert f"aws iam detach-user-policy --user-name {p.created_user} --policy-arn {DENY_ALL}" in undo
    assert "authorize-security-group-ingress" in undo and '"CidrIpv6":"::/0"' in undo


def test_an_incident_of_failed_sign_ins_only_stays_at_its_declared_severity(kubectl, namespace, aws, operator):
    user = es.failed_sign_ins()
    doc = {"apiVersion": "opex.dev/v1alpha1", "kind": "Incident", "metadata": {"name": "console-guessing"},
           "spec": {"type": "SecurityIncident", "severity": "medium", "environment": "production",
                    "title": "Failed console sign-ins for ops-admin",
                    "targets": {"region": "us-east-1", "cloudTrail": {"logGroupName": "CloudTrail/management-events"},
                                "security": {"iamUsers": [{"userName": user}], "knownCidrs": ["198.51.100.10/32"]}},
                    "remediation": {"mode": "DryRun"}}}
    kubectl.apply(yaml.safe_dump(doc), namespace)
    status = wait_for(lambda: (s := kubectl.get("incident", "console-guessing", namespace).get("status") or {})
                      .get("classification") and s.get("rootCause") and s, timeout=90, what="classified")
    c = status["classification"]
    assert (c["declaredSeverity"], c["severity"], c["raised"]) == ("medium", "medium", False)
    attempts = next(f for f in status["findings"] if f["observed"].startswith("8 failed console sign-ins"))
    assert attempts["severity"] == "Warning" and f"8 from {es.HOSTILE_IP} alone: password guessing" in attempts["observed"]
    assert status["rootCause"]["category"] == "Unknown"
    assert "SeverityRaised" not in [e["reason"] for e in kubectl.events(namespace, "console-guessing")]
    assert has_login(user)   # a dry run changed nothing
