"""Which managed resources a CloudTrail call changed: mutating calls read into resource identifiers (real
records from tests/realworld/cloudtrail, and EventBridge's "AWS API Call via CloudTrail" events), matched
against the ids and ARNs of a plan's prior state."""
from __future__ import annotations

import json
from pathlib import Path

from opex_operator.ports.cloudtrail import read_records
from opex_operator.runbooks.trail_changes import (Identifier, changed_resources, identifiers, managed_resources,
                                                  mutating)

CORPUS = Path(__file__).resolve().parent.parent / "realworld" / "cloudtrail"
IP_SET = "3f2b6a8e-9c1d-4e5f-a7b8-0c1d2e3f4a5b"


def calls(name: str):
    return read_records([(CORPUS / name).read_text()]).events


def resource(address: str, values: dict, mode: str = "managed") -> dict:
    type_, name = address.rsplit(".", 1)[0].split(".")[-1], address.rsplit(".", 1)[1]
    return {"address": address, "mode": mode, "type": type_, "name": name, "values": values}


def plan(*resources: dict, children: list[dict] = ()) -> dict:
    return {"format_version": "1.2", "prior_state": {"values": {"root_module": {
        "resources": list(resources), "child_modules": list(children)}}}}


def cloudtrail_event(name: str, source: str, request: dict, response: dict | None = None, error: str | None = None,
                     read_only: bool | None = False) -> str:
    """An EventBridge "AWS API Call via CloudTrail" event (CloudTrail User Guide, "CloudTrail record contents")."""
    detail = {"eventVersion": "1.09", "eventTime": "2026-11-29T10:02:11Z", "eventSource": source, "eventName": name,
              "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9", "userAgent": "aws-cli/2.17.0",
              "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/ops/jane"},
              "requestParameters": request, "responseElements": response, "eventID": f"e-{name}",
              "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": "123456789012"}
    if read_only is not None:
        detail["readOnly"] = read_only
    if error:
        detail.update(errorCode=error, errorMessage="not allowed")
    return json.dumps({"version": "0", "id": f"ev-{name}", "detail-type": "AWS API Call via CloudTrail",
                       "source": f"aws.{source.split('.')[0]}", "account": "123456789012",
                       "time": "2026-11-29T10:02:11Z", "region": "us-east-1", "resources": [], "detail": detail})


def test_a_world_open_ssh_rule_names_its_group_and_rule_but_not_the_account_that_owns_them():
    [call] = calls("stratus-sg-open-port-22.json")
    assert mutating(call)
    named = {(i.value, i.kind) for i in identifiers(call)}
    assert {("sg-003dc7f1f1c686164", "id"), ("sgr-09b3e3d2ca1edf2a2", "id")} <= named
    assert not any(v == "111122223333" for v, _ in named)  # groupOwnerId is an account, not a resource
    state = plan(resource("aws_security_group.app", {"id": "sg-003dc7f1f1c686164", "name": "app",
                                                     "arn": "arn:aws:ec2:us-east-1:111122223333:security-group/"
                                                            "sg-003dc7f1f1c686164"}),
                 resource("aws_vpc_security_group_ingress_rule.ssh", {"id": "sgr-09b3e3d2ca1edf2a2"}),
                 resource("aws_security_group.db", {"id": "sg-0aaaaaaaaaaaaaaaa", "name": "db"}))
    matches = changed_resources([call], managed_resources(state))
    assert sorted(m.address for m in matches) == ["aws_security_group.app", "aws_vpc_security_group_ingress_rule.ssh"]
    assert {m.call.principal for m in matches} == {call.principal}


def test_a_name_matches_only_resources_of_the_calls_own_service():
    [call] = [c for c in calls("stratus-cloudtrail-stop.json") if c.event_name == "StopLogging"]
    trail = "stratus-red-team-ct-stop-trail-buykxbqejv"
    state = plan(resource("aws_cloudtrail.audit", {"id": trail, "name": trail}),
                 resource("aws_lambda_function.same_name", {"id": trail, "function_name": trail}))
    assert [m.address for m in changed_resources([call], managed_resources(state))] == ["aws_cloudtrail.audit"]


def test_a_role_given_a_policy_is_matched_and_the_aws_managed_policy_read_by_a_data_source_is_not():
    attach = [c for c in calls("stratus-iam-create-backdoor-role.json") if c.event_name == "AttachRolePolicy"]
    admin = "arn:aws:iam::aws:policy/AdministratorAccess"
    state = plan(resource("aws_iam_role.malicious", {"id": "stratus-red-team-malicious-iam-role",
                                                     "name": "stratus-red-team-malicious-iam-role",
                                                     "arn": "arn:aws:iam::111122223333:role/"
                                                            "stratus-red-team-malicious-iam-role"}),
                 resource("data.aws_iam_policy.admin", {"id": admin, "arn": admin}, mode="data"))
    assert [m.address for m in changed_resources(attach, managed_resources(state))] == ["aws_iam_role.malicious"]


def test_a_waf_ip_set_updated_through_eventbridge_is_matched_by_its_id_in_a_module():
    event = cloudtrail_event("UpdateIPSet", "wafv2.amazonaws.com",
                             {"name": "production-blocklist", "scope": "REGIONAL", "id": IP_SET,
                              "addresses": ["192.0.2.66/32"], "lockToken": "0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e"},
                             {"nextLockToken": "1c2d3e4f-5a6b-7c8d-9e0f-1a2b3c4d5e6f"})
    state = plan(children=[{"address": "module.network", "resources": [resource(
        "module.network.aws_wafv2_ip_set.blocklist",
        {"id": IP_SET, "name": "production-blocklist",
         "arn": f"arn:aws:wafv2:us-east-1:123456789012:regional/ipset/production-blocklist/{IP_SET}"})]}])
    [match] = changed_resources(read_records([event]).events, managed_resources(state))
    assert match.address == "module.network.aws_wafv2_ip_set.blocklist"
    assert match.identifier == Identifier(IP_SET, "requestParameters.id", "id")
    assert (match.call.principal, match.call.source_ip, match.call.event_id) == (
        "arn:aws:sts::123456789012:assumed-role/ops/jane", "203.0.113.9", "e-UpdateIPSet")
    assert not any(i.value.startswith("0b1c2d3e") for i in identifiers(match.call))  # a lock token is no resource


def test_reads_and_failed_calls_changed_nothing():
    state = managed_resources(plan(resource("aws_security_group.app", {"id": "sg-003dc7f1f1c686164"})))
    read = cloudtrail_event("DescribeSecurityGroups", "ec2.amazonaws.com", {"groupId": "sg-003dc7f1f1c686164"},
                            read_only=True)
    denied = cloudtrail_event("RevokeSecurityGroupIngress", "ec2.amazonaws.com", {"groupId": "sg-003dc7f1f1c686164"},
                              error="Client.UnauthorizedOperation")
    assert changed_resources(read_records([read, denied]).events, state) == []


def test_without_read_only_the_operation_name_says_whether_it_changed_something():
    put = cloudtrail_event("PutBucketPolicy", "s3.amazonaws.com", {"bucketName": "www-checkout"}, read_only=None)
    get = cloudtrail_event("GetBucketPolicy", "s3.amazonaws.com", {"bucketName": "www-checkout"}, read_only=None)
    [put_call], [get_call] = read_records([put]).events, read_records([get]).events
    assert mutating(put_call) and not mutating(get_call)
    state = managed_resources(plan(resource("aws_s3_bucket.site", {"id": "www-checkout",
                                                                   "arn": "arn:aws:s3:::www-checkout"})))
    assert [m.address for m in changed_resources([put_call, get_call], state)] == ["aws_s3_bucket.site"]


def test_a_qualified_lambda_arn_names_the_function():
    fn = "arn:aws:lambda:us-east-1:123456789012:function:checkout-api"
    event = cloudtrail_event("UpdateFunctionConfiguration20150331v2", "lambda.amazonaws.com",
                             {"functionName": f"{fn}:prod", "memorySize": 1024})
    state = managed_resources(plan(resource("aws_lambda_function.checkout", {"id": "checkout-api", "arn": fn,
                                                                            "function_name": "checkout-api"})))
    [match] = changed_resources(read_records([event]).events, state)
    assert (match.address, match.identifier.value) == ("aws_lambda_function.checkout", fn)


def test_a_plan_without_prior_state_is_read_from_its_changes_before_values():
    changes = {"resource_changes": [
        {"address": "aws_iam_user.ci", "mode": "managed", "type": "aws_iam_user",
         "change": {"actions": ["update"], "before": {"id": "ci-deployer", "name": "ci-deployer",
                                                      "arn": "arn:aws:iam::123456789012:user/ci-deployer"}}},
        {"address": "aws_iam_user.new", "mode": "managed", "type": "aws_iam_user",
         "change": {"actions": ["create"], "before": None}}]}
    [found] = managed_resources(changes)
    assert (found.address, found.ids, found.names) == ("aws_iam_user.ci", frozenset({"ci-deployer"}),
                                                       frozenset({"ci-deployer"}))
