"""Plan JSON as Terraform has written it (documented format), each variant the DriftCheck meets."""
from __future__ import annotations

import json

import pytest

from opex_operator.terraform.plan import (SENSITIVE, PlanFormatError, checksum, parse_any, parse_show_json,
                                          parse_stream, redact)


def rc(address, actions, before=None, after=None, **extra):
    entry = {"address": address, "mode": "managed", "type": address.split(".")[-2].split("]")[-1],
             "name": address.split(".")[-1], "provider_name": "registry.terraform.io/hashicorp/aws",
             "change": {"actions": actions, "before": before, "after": after, "after_unknown": {},
                        "before_sensitive": {}, "after_sensitive": {}}}
    entry.update(extra)
    return entry


MODERN = {
    "format_version": "1.2", "terraform_version": "1.11.4",
    "resource_drift": [rc("aws_security_group.web", ["update"], {"ingress": []}, {"ingress": [{"from_port": 22}]})],
    "resource_changes": [
        rc("aws_security_group.web", ["update"], {"ingress": [{"from_port": 22}]}, {"ingress": []}),
        rc("aws_s3_bucket.logs", ["create"], None, {"bucket": "logs"}),
        rc("aws_instance.api", ["delete", "create"], {"ami": "a"}, {"ami": "b"}, action_reason="replace_because_cannot_update"),
        rc("aws_iam_role.old", ["delete"], {"name": "old"}, None),
        rc("aws_vpc.main", ["no-op"], {"cidr": "10.0.0.0/16"}, {"cidr": "10.0.0.0/16"}),
        rc("data.aws_caller_identity.me", ["read"]),
        {**rc("aws_s3_bucket.imported", ["no-op"], {"bucket": "x"}, {"bucket": "x"}),
         "change": {"actions": ["no-op"], "before": {}, "after": {}, "importing": {"id": "x"}}},
        rc("module.legacy.aws_instance.old", ["update"], {"t": 1}, {"t": 2}),
    ],
    "output_changes": {"url": {"actions": ["update"], "before": "a", "after": "b"},
                       "same": {"actions": ["no-op"], "before": 1, "after": 1}},
    "errored": False, "applyable": True, "complete": True,
}


def test_modern_plan_separates_drift_changes_and_counts_like_terraform():
    s = parse_show_json(MODERN)
    assert [d.address for d in s.drift] == ["aws_security_group.web"]
    assert [c.address for c in s.changes] == ["aws_security_group.web", "aws_s3_bucket.logs", "aws_instance.api",
                                              "aws_iam_role.old", "aws_s3_bucket.imported",
                                              "module.legacy.aws_instance.old"]
    assert (s.add, s.change, s.import_, s.remove) == (2, 2, 1, 2)  # a replace is an add and a remove
    assert s.changes[2].action_reason == "replace_because_cannot_update"
    assert s.output_changes == ["url"] and s.drifted


def test_ignore_globs_drop_resources_and_their_counts():
    s = parse_show_json(MODERN, ignore=["module.legacy.*", "aws_s3_bucket.*"])
    assert "module.legacy.aws_instance.old" in s.ignored and "aws_s3_bucket.logs" in s.ignored
    assert [c.address for c in s.changes] == ["aws_security_group.web", "aws_instance.api", "aws_iam_role.old"]
    assert (s.add, s.change, s.import_, s.remove) == (1, 1, 0, 2)


def test_terraform_1_0_drift_without_address_and_with_unchanged_entries():
    old = {"format_version": "1.0", "terraform_version": "1.0.11", "resource_changes": [],
           "resource_drift": [
               {"module_address": "module.net", "mode": "managed", "type": "aws_subnet", "name": "a", "index": 0,
                "change": {"actions": ["update"], "before": {"cidr": "10.0.1.0/24"}, "after": {"cidr": "10.0.9.0/24"}}},
               {"mode": "managed", "type": "aws_vpc", "name": "main",
                "change": {"actions": ["update"], "before": {"cidr": "x"}, "after": {"cidr": "x"}}},
               {"mode": "data", "type": "aws_ami", "name": "ubuntu", "index": "eu",
                "change": {"actions": ["update"], "before": {"id": "1"}, "after": {"id": "2"}}},
           ]}
    s = parse_show_json(old)
    assert [d.address for d in s.drift] == ["module.net.aws_subnet.a[0]", 'data.aws_ami.ubuntu["eu"]']
    assert s.drifted and s.changes == []


def test_plan_without_resource_drift_key_and_only_output_changes_is_not_drift():
    doc = {"format_version": "1.1", "resource_changes": [rc("aws_vpc.main", ["no-op"])],
           "output_changes": {"region": {"actions": ["create"], "after": "us-east-1"}}}
    s = parse_show_json(doc)
    assert not s.drifted and s.output_changes == ["region"] and (s.add, s.change, s.remove) == (0, 0, 0)


@pytest.mark.parametrize("doc,message", [
    ({"format_version": "2.0", "resource_changes": []}, "unsupported plan format_version 2.0"),
    ({"values": {}}, "no format_version"),
    ({"format_version": "1.0", "values": {"root_module": {}}}, "no resource_changes"),
    ([1, 2], "no format_version"),
])
def test_what_is_not_a_plan_is_refused_with_the_reason(doc, message):
    with pytest.raises(PlanFormatError, match=message):
        parse_show_json(doc)


STREAM = "\n".join([
    "Initializing plugins...",
    "Acquiring state lock. This may take a few moments...",
    json.dumps({"@level": "info", "@message": "Terraform 1.11.4", "type": "version", "terraform": "1.11.4", "ui": "1.2"}),
    json.dumps({"@level": "info", "@message": "aws_security_group.web: Drift detected (update)", "type": "resource_drift",
                "change": {"resource": {"addr": "aws_security_group.web"}, "action": "update"}}),
    json.dumps({"@level": "info", "@message": "aws_s3_bucket.logs: Plan to create", "type": "planned_change",
                "change": {"resource": {"addr": "aws_s3_bucket.logs"}, "action": "create"}}),
    json.dumps({"@level": "info", "@message": "aws_instance.api: Plan to replace", "type": "planned_change",
                "change": {"resource": {"addr": "aws_instance.api"}, "action": "replace",
                           "reason": "cannot_update"}}),
    json.dumps({"@level": "info", "@message": "Plan: 2 to add, 0 to change, 1 to destroy.", "type": "change_summary",
                "changes": {"add": 2, "change": 0, "import": 0, "remove": 1, "operation": "plan"}}),
])


def test_json_stream_after_plain_text_lines():
    s = parse_stream(STREAM)
    assert s.terraform_version == "1.11.4"
    assert [d.address for d in s.drift] == ["aws_security_group.web"]
    assert [(c.address, c.actions) for c in s.changes] == [("aws_s3_bucket.logs", ["create"]),
                                                           ("aws_instance.api", ["delete", "create"])]
    assert (s.add, s.change, s.remove) == (2, 0, 1)


def test_stream_errors_are_collected():
    text = json.dumps({"@level": "error", "@message": "Error: x", "type": "diagnostic",
                       "diagnostic": {"severity": "error", "summary": "Error acquiring the state lock",
                                      "detail": "ConditionalCheckFailed"}})
    s = parse_stream(text)
    assert s.errored and s.errors == ["Error acquiring the state lock: ConditionalCheckFailed"]


@pytest.mark.parametrize("text,message", [
    ("", "empty input"),
    ('{"format_version": "1.2", "resource_changes": [', "truncated or invalid JSON"),
    ("Plan: 1 to add\nApply complete!", "no line is a Terraform JSON message"),
])
def test_parse_any_refuses_what_is_not_a_plan(text, message):
    with pytest.raises(PlanFormatError, match=message):
        parse_any(text)


def test_parse_any_takes_both_inputs():
    assert parse_any(json.dumps(MODERN)).source == "show-json"
    assert parse_any(STREAM).source == "plan-json-stream"


def test_checksum_ignores_timestamps_but_not_changes():
    a = checksum({**MODERN, "timestamp": "2026-11-29T09:00:00Z"})
    b = checksum({**MODERN, "timestamp": "2026-11-29T18:00:00Z"})
    assert a == b and a.startswith("sha256:") and len(a) == 71
    changed = json.loads(json.dumps(MODERN))
    changed["resource_changes"][1]["change"]["after"]["bucket"] = "logs-2"
    assert checksum(changed) != a


def test_redact_masks_every_sensitive_value():
    doc = {
        "format_version": "1.2",
        "variables": {"db_password": {"value": "hunter2"}, "size": {"value": "small"}},
        "configuration": {"root_module": {
            "variables": {"db_password": {"sensitive": True, "default": "hunter2"}, "size": {"default": "small"}},
            "module_calls": {"db": {"module": {"variables": {"root_pw": {"sensitive": True, "default": "nested-pw"}}}}}}},
        "resource_changes": [{"address": "aws_db_instance.main", "change": {
            "actions": ["update"], "before": {"password": "old-secret", "size": "s"},
            "after": {"password": "hunter2", "tags": {"a": "1"}},
            "before_sensitive": {"password": True}, "after_sensitive": {"password": True}}}],
        "output_changes": {"dsn": {"actions": ["update"], "before": "pg://old", "after": "pg://new",
                                   "before_sensitive": True, "after_sensitive": True}},
        "prior_state": {"values": {"outputs": {"dsn": {"sensitive": True, "value": "pg://old"}},
                                   "root_module": {"resources": [{"values": {"password": "old-secret"},
                                                                  "sensitive_values": {"password": True}}]}}},
        "planned_values": {"outputs": {"dsn": {"sensitive": True, "value": "pg://new"}}, "root_module": {}},
    }
    text = json.dumps(redact(doc))
    for secret in ("hunter2", "old-secret", "pg://old", "pg://new", "nested-pw"):
        assert secret not in text
    assert SENSITIVE in text and '"small"' in text and '"s"' in text
    assert doc["variables"]["db_password"]["value"] == "hunter2"  # the input is not modified
