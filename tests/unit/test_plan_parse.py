"""Plans as Terraform and OpenTofu write them (documented formats), and the outcome Terraform gives each.

``terraform plan -detailed-exitcode`` is the reference: 2 when applying would change anything (moves,
imports, forgets and output changes included), 0 when not (drift nothing depends on is information),
1 when the plan errored. Stream lines marked "real" were written by Terraform 1.11.4 on this machine.
"""
from __future__ import annotations

import copy
import json

import pytest

from opex_operator.api.driftcheck import Outcome
from opex_operator.terraform.plan import (SENSITIVE, PlanFormatError, address_matches, checksum, configuration_file,
                                          parse_any, parse_input, parse_show_json, parse_stream, redact)


def rc(address, actions, before=None, after=None, **extra):
    entry = {"address": address, "mode": "managed", "type": address.split(".")[-2].split("]")[-1],
             "name": address.split(".")[-1].split("[")[0], "provider_name": "registry.terraform.io/hashicorp/aws",
             "change": {"actions": actions, "before": before, "after": after, "after_unknown": {},
                        "before_sensitive": {}, "after_sensitive": {}}}
    entry.update(extra)
    return entry


def plan(*, changes=(), drift=(), relevant=None, outputs=None, **top):
    doc = {"format_version": "1.2", "terraform_version": "1.11.4", "resource_changes": list(changes),
           "errored": False, "applyable": any((c["change"]["actions"] != ["no-op"]) for c in changes), "complete": True}
    if drift:
        doc["resource_drift"] = list(drift)
    if relevant is not None:
        doc["relevant_attributes"] = relevant
    if outputs:
        doc["output_changes"] = outputs
    doc.update(top)
    return doc


MODERN = {
    "format_version": "1.2", "terraform_version": "1.11.4",
    "resource_drift": [rc("aws_security_group.web", ["update"], {"ingress": []}, {"ingress": [{"from_port": 22}]})],
    "relevant_attributes": [{"resource": "aws_security_group.web", "attribute": ["ingress"]}],
    "resource_changes": [
        rc("aws_security_group.web", ["update"], {"ingress": [{"from_port": 22}]}, {"ingress": []}),
        rc("aws_s3_bucket.logs", ["create"], None, {"bucket": "logs"}),
        rc("aws_instance.api", ["delete", "create"], {"ami": "a"}, {"ami": "b"}, action_reason="replace_because_cannot_update"),
        rc("aws_iam_role.old", ["delete"], {"name": "old"}, None),
        rc("aws_vpc.main", ["no-op"], {"cidr": "10.0.0.0/16"}, {"cidr": "10.0.0.0/16"}),
        rc("data.aws_caller_identity.me", ["read"], mode="data"),
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
    assert [(d.address, d.relevant) for d in s.drift] == [("aws_security_group.web", True)]
    assert [c.address for c in s.changes] == ["aws_security_group.web", "aws_s3_bucket.logs", "aws_instance.api",
                                              "aws_iam_role.old", "data.aws_caller_identity.me",
                                              "aws_s3_bucket.imported", "module.legacy.aws_instance.old"]
    assert (s.add, s.change, s.import_, s.remove, s.read) == (2, 2, 1, 2, 1)  # a replace is an add and a remove
    assert s.changes[2].action_reason == "replace_because_cannot_update"
    assert s.output_changes == ["url"]
    assert (s.exit_code, s.outcome, s.drifted) == (2, Outcome.DRIFT_DETECTED, True)


# ---- 1. drift Terraform itself ignores --------------------------------------------------------------------
RDS_BEFORE = {"identifier": "orders", "instance_class": "db.t3.micro", "latest_restorable_time": "2026-11-29T08:55:00Z"}
RDS_AFTER = {**RDS_BEFORE, "latest_restorable_time": "2026-11-29T09:00:00Z"}


def rds_plan(after_time: str, relevant=()) -> dict:
    """No planned change; the refresh moved the RDS instance's latest_restorable_time (it does every 5 minutes)."""
    return plan(changes=[rc("aws_db_instance.orders", ["no-op"], RDS_BEFORE, RDS_BEFORE)],
                drift=[rc("aws_db_instance.orders", ["update"], RDS_BEFORE,
                          {**RDS_AFTER, "latest_restorable_time": after_time})],
                relevant=list(relevant), applyable=False)


def test_the_issues_rds_refresh_noise_is_information_and_exit_0():
    s = parse_show_json(rds_plan("2026-11-29T09:00:00Z"))
    assert (s.exit_code, s.outcome) == (0, Outcome.NO_DRIFT)
    assert s.drift == [] and [d.address for d in s.irrelevant_drift] == ["aws_db_instance.orders"]
    assert s.irrelevant_drift[0].relevant is False


def test_refresh_noise_leaves_the_checksum_the_same_from_run_to_run():
    nine, ten = rds_plan("2026-11-29T09:00:00Z"), rds_plan("2026-11-29T10:00:00Z")
    assert checksum(nine) == checksum(ten)
    # A real planned change with the same noise in its before/after does not move it either.
    change = rc("aws_db_instance.orders", ["update"], RDS_BEFORE, {**RDS_BEFORE, "instance_class": "db.t3.small"})
    with_change = [plan(changes=[copy.deepcopy(change)]) for _ in range(2)]
    with_change[1]["resource_changes"][0]["change"]["before"]["latest_restorable_time"] = "2026-11-29T10:00:00Z"
    with_change[1]["resource_changes"][0]["change"]["after"]["latest_restorable_time"] = "2026-11-29T10:00:00Z"
    assert checksum(with_change[0]) == checksum(with_change[1])


def test_drift_of_an_attribute_nothing_depends_on_is_irrelevant_even_if_another_is_relevant():
    sg_before = {"description": "web", "tags": {"Owner": "a"}, "ingress": [{"from_port": 443}]}
    sg_after = {**sg_before, "tags": {"Owner": "b"}}  # someone retagged it in the console
    doc = plan(changes=[rc("aws_security_group.web", ["no-op"], sg_after, sg_after)],
               drift=[rc("aws_security_group.web", ["update"], sg_before, sg_after)],
               relevant=[{"resource": "aws_security_group.web", "attribute": ["ingress", 0, "from_port"]}])
    s = parse_show_json(doc)
    assert s.exit_code == 0 and [d.address for d in s.irrelevant_drift] == ["aws_security_group.web"]


def test_drift_a_planned_change_depends_on_is_relevant_and_the_change_gives_exit_2():
    inst_before = {"instance_type": "t3.small", "tags": {}}
    inst_after = {"instance_type": "t3.large", "tags": {}}  # resized outside Terraform; the config says t3.small
    doc = plan(changes=[rc("aws_instance.api", ["update"], inst_after, inst_before)],
               drift=[rc("aws_instance.api", ["update"], inst_before, inst_after)],
               relevant=[{"resource": "aws_instance.api", "attribute": ["instance_type"]}])
    s = parse_show_json(doc)
    assert s.exit_code == 2 and [(d.address, d.relevant) for d in s.drift] == [("aws_instance.api", True)]
    assert s.irrelevant_drift == []


def test_a_drifted_object_deleted_outside_terraform_without_relevant_attributes_is_information():
    doc = plan(changes=[rc("aws_s3_bucket.tmp", ["create"], None, {"bucket": "tmp"})],
               drift=[rc("aws_s3_bucket.tmp", ["delete"], {"bucket": "tmp"}, None)], relevant=[])
    s = parse_show_json(doc)
    assert s.exit_code == 2 and [d.address for d in s.irrelevant_drift] == ["aws_s3_bucket.tmp"]


def test_applyable_false_means_no_changes_even_when_entries_look_like_changes():
    doc = plan(changes=[rc("aws_instance.api", ["update"], {"a": 1}, {"a": 2})], applyable=False)
    assert parse_show_json(doc).exit_code == 0


def test_applyable_true_with_only_drift_is_a_refresh_only_plan_with_changes():
    doc = plan(changes=[], drift=[rc("aws_instance.api", ["update"], {"a": 1}, {"a": 2})], applyable=True)
    assert parse_show_json(doc).exit_code == 2


def test_drift_in_plans_without_relevant_attributes_is_listed_with_relevance_unknown():
    doc = plan(changes=[], drift=[rc("aws_instance.api", ["update"], {"a": 1}, {"a": 2})], applyable=False)
    s = parse_show_json(doc)
    assert [(d.address, d.relevant) for d in s.drift] == [("aws_instance.api", None)] and s.exit_code == 0


# ---- 2. errored plans ------------------------------------------------------------------------------------
def test_an_errored_plan_json_is_a_failed_plan_even_with_changes():
    doc = plan(changes=[rc("aws_s3_bucket.logs", ["create"], None, {"bucket": "logs"})], errored=True,
               applyable=False)
    s = parse_show_json(doc)
    assert (s.exit_code, s.outcome, s.drifted) == (1, Outcome.PLAN_FAILED, False)
    assert s.errors and "errored" in s.errors[0]


def diagnostic(summary, detail, severity="error"):
    return json.dumps({"@level": severity, "@message": f"Error: {summary}", "@module": "terraform.ui",
                       "type": "diagnostic", "diagnostic": {"severity": severity, "summary": summary,
                                                            "detail": detail}})


def test_a_stream_with_an_error_diagnostic_is_a_failed_plan_with_its_diagnostics():
    text = "\n".join([VERSION, diagnostic("Reference to undeclared input variable",
                                          'An input variable with the name "nope" has not been declared.')])
    s = parse_stream(text)
    assert (s.exit_code, s.outcome) == (1, Outcome.PLAN_FAILED)
    assert s.errors == ['Reference to undeclared input variable: An input variable with the name "nope" has not '
                        'been declared.']


def test_a_stream_that_planned_changes_then_failed_is_still_failed():
    text = "\n".join([VERSION, CREATE_LOGS, diagnostic("Error acquiring the state lock", "ConditionalCheckFailed"),
                      SUMMARY_1_ADD])
    s = parse_stream(text)
    assert s.exit_code == 1 and [c.address for c in s.changes] == ["aws_s3_bucket.logs"]


def test_warnings_do_not_fail_a_plan():
    text = "\n".join([VERSION, REMOVE_B, diagnostic("Some objects will no longer be managed by Terraform", "...",
                                                    severity="warning")])
    assert parse_stream(text).exit_code == 2


# ---- 3. moves, imports, forgets are configuration-only changes ---------------------------------------------
# real: terraform 1.11.4 plan -json with a moved block and a removed block (lifecycle destroy = false)
VERSION = ('{"@level":"info","@message":"Terraform 1.11.4","@module":"terraform.ui","@timestamp":'
           '"2026-11-30T21:16:17.242318Z","terraform":"1.11.4","type":"version","ui":"1.2"}')
MOVE_A = ('{"@level":"info","@message":"terraform_data.a2: Plan to move","@module":"terraform.ui","@timestamp":'
          '"2026-11-30T21:16:17.251438Z","change":{"resource":{"addr":"terraform_data.a2","module":"","resource":'
          '"terraform_data.a2","implied_provider":"terraform","resource_type":"terraform_data","resource_name":"a2",'
          '"resource_key":null},"previous_resource":{"addr":"terraform_data.a","module":"","resource":'
          '"terraform_data.a","implied_provider":"terraform","resource_type":"terraform_data","resource_name":"a",'
          '"resource_key":null},"action":"move"},"type":"planned_change"}')
REMOVE_B = ('{"@level":"info","@message":"terraform_data.b: Plan to remove","@module":"terraform.ui","@timestamp":'
            '"2026-11-30T21:16:17.251518Z","change":{"resource":{"addr":"terraform_data.b","module":"","resource":'
            '"terraform_data.b","implied_provider":"terraform","resource_type":"terraform_data","resource_name":"b",'
            '"resource_key":null},"action":"remove","reason":"delete_because_no_resource_config"},'
            '"type":"planned_change"}')
SUMMARY_0 = ('{"@level":"info","@message":"Plan: 0 to add, 0 to change, 0 to destroy.","@module":"terraform.ui",'
             '"@timestamp":"2026-11-30T21:16:17.251532Z","changes":{"add":0,"change":0,"import":0,"remove":0,'
             '"operation":"plan"},"type":"change_summary"}')
CREATE_LOGS = json.dumps({"@level": "info", "@message": "aws_s3_bucket.logs: Plan to create", "type": "planned_change",
                          "change": {"resource": {"addr": "aws_s3_bucket.logs"}, "action": "create"}})
SUMMARY_1_ADD = json.dumps({"@level": "info", "@message": "Plan: 1 to add, 0 to change, 0 to destroy.",
                            "type": "change_summary", "changes": {"add": 1, "change": 0, "import": 0, "remove": 0,
                                                                  "operation": "plan"}})


def test_a_stream_of_a_move_and_a_forget_exits_2_as_terraform_did():
    s = parse_stream("\n".join([VERSION, MOVE_A, REMOVE_B, SUMMARY_0]))
    assert s.exit_code == 2  # terraform plan -detailed-exitcode exited 2 for this plan
    assert [(c.address, c.previous_address, c.actions) for c in s.changes] == [
        ("terraform_data.a2", "terraform_data.a", ["no-op"]), ("terraform_data.b", None, ["forget"])]
    assert (s.move, s.forget, s.add, s.change, s.remove) == (1, 1, 0, 0, 0)
    assert len(s.config_only) == 2


def test_show_json_with_a_move_and_a_forget_exits_2():
    # real: terraform show -json of the same plan (values shortened)
    doc = plan(changes=[
        {"address": "terraform_data.a2", "previous_address": "terraform_data.a", "mode": "managed",
         "type": "terraform_data", "name": "a2", "provider_name": "terraform.io/builtin/terraform",
         "change": {"actions": ["no-op"], "before": {"input": "x"}, "after": {"input": "x"}}},
        {"address": "terraform_data.b", "mode": "managed", "type": "terraform_data", "name": "b",
         "provider_name": "terraform.io/builtin/terraform", "action_reason": "delete_because_no_resource_config",
         "change": {"actions": ["forget"], "before": {"input": "y"}, "after": None}}], applyable=True)
    s = parse_show_json(doc)
    assert s.exit_code == 2 and (s.move, s.forget) == (1, 1) and len(s.config_only) == 2


def test_an_import_only_plan_exits_2_and_counts_the_import():
    doc = plan(changes=[{**rc("aws_route53_record.this[\"www A\"]", ["no-op"], {"name": "www"}, {"name": "www"}),
                         "change": {"actions": ["no-op"], "before": {"name": "www"}, "after": {"name": "www"},
                                    "importing": {"id": "Z123_www_A"}}}], applyable=True)
    s = parse_show_json(doc)
    assert s.exit_code == 2 and s.import_ == 1 and s.config_only[0].importing
    stream = json.dumps({"@level": "info", "@message": "aws_route53_record.this[\"www A\"]: Plan to import",
                         "type": "planned_change", "change": {"resource": {"addr": 'aws_route53_record.this["www A"]'},
                                                              "action": "import", "importing": {"id": "Z123_www_A"}}})
    assert parse_stream("\n".join([VERSION, stream])).exit_code == 2


def test_a_move_inside_a_module_with_an_update_counts_both():
    doc = plan(changes=[rc("module.app.aws_instance.web[0]", ["update"], {"t": 1}, {"t": 2},
                           previous_address="aws_instance.web[0]")])
    s = parse_show_json(doc)
    assert (s.move, s.change, s.exit_code) == (1, 1, 2) and s.config_only == []


def test_output_only_changes_exit_2_like_terraform():
    doc = plan(outputs={"region": {"actions": ["create"], "before": None, "after": "us-east-1"}}, applyable=True)
    s = parse_show_json(doc)
    assert s.exit_code == 2 and s.output_changes == ["region"] and (s.add, s.change, s.remove) == (0, 0, 0)


# ---- 4. older plan formats -------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["0.1", "0.2", "1.0", "1.1", "1.2", "1.9"])
def test_every_0_x_and_1_x_format_version_is_read(version):
    doc = {"format_version": version, "terraform_version": "0.12.31",
           "resource_changes": [rc("aws_s3_bucket.logs", ["create"], None, {"bucket": "logs"})]}
    assert parse_show_json(doc).exit_code == 2


@pytest.mark.parametrize("version", ["2.0", "10.1", "beta"])
def test_an_unknown_major_format_version_is_refused(version):
    with pytest.raises(PlanFormatError, match=f"unsupported plan format_version {version}"):
        parse_show_json({"format_version": version, "resource_changes": []})


TF_1_0_0 = {  # drift entries without address and index, and unchanged objects listed as drift
    "format_version": "0.2", "terraform_version": "1.0.0", "resource_changes": [],
    "resource_drift": [
        {"module_address": "module.net", "mode": "managed", "type": "aws_subnet", "name": "a",
         "change": {"actions": ["update"], "before": {"cidr": "10.0.1.0/24"}, "after": {"cidr": "10.0.9.0/24"}}},
        {"mode": "managed", "type": "aws_vpc", "name": "main",
         "change": {"actions": ["update"], "before": {"cidr": "x"}, "after": {"cidr": "x"}}},
        {"mode": "data", "type": "aws_ami", "name": "ubuntu", "index": "eu",
         "change": {"actions": ["update"], "before": {"id": "1"}, "after": {"id": "2"}}},
        {"mode": "managed", "type": "aws_eip", "name": "nat",
         "change": {"actions": ["update"], "before": {"tags": {}}, "after": {"tags": {"a": "b"}}}},
    ],
    "prior_state": {"values": {"root_module": {
        "resources": [{"address": "aws_eip.nat", "mode": "managed", "type": "aws_eip", "name": "nat"}],
        "child_modules": [{"address": "module.net", "resources": [
            {"address": "module.net.aws_subnet.a[0]", "mode": "managed", "type": "aws_subnet", "name": "a", "index": 0},
            {"address": "module.net.aws_subnet.a[1]", "mode": "managed", "type": "aws_subnet", "name": "a",
             "index": 1}]}]}}},
}


def test_terraform_1_0_0_drift_is_rebuilt_and_says_when_the_index_is_unknown():
    s = parse_show_json(TF_1_0_0)
    assert [(d.address, d.index_unknown) for d in s.drift] == [
        ("module.net.aws_subnet.a", True), ('data.aws_ami.ubuntu["eu"]', False), ("aws_eip.nat", False)]
    assert "aws_vpc.main" not in [d.address for d in s.drift]  # before == after: not drift
    assert s.exit_code == 0 and s.format_version == "0.2"


# ---- 5. OpenTofu ------------------------------------------------------------------------------------------
def test_an_opentofu_stream_is_named_opentofu_with_its_version():
    version = json.dumps({"@level": "info", "@message": "OpenTofu 1.10.7", "@module": "tofu.ui",
                          "@timestamp": "2026-11-29T09:00:00.000000Z", "tofu": "1.10.7", "type": "version",
                          "ui": "1.2"})
    s = parse_stream("\n".join([version, CREATE_LOGS, SUMMARY_1_ADD]))
    assert (s.program, s.terraform_version, s.program_version) == ("OpenTofu", "1.10.7", "OpenTofu 1.10.7")


def test_an_opentofu_show_json_is_known_by_its_provider_registry():
    doc = plan(changes=[{**rc("aws_s3_bucket.logs", ["create"], None, {"bucket": "logs"}),
                         "provider_name": "registry.opentofu.org/hashicorp/aws"}], terraform_version="1.9.1")
    assert parse_show_json(doc).program_version == "OpenTofu 1.9.1"


def test_terraform_is_still_terraform():
    assert parse_stream("\n".join([VERSION, CREATE_LOGS])).program_version == "Terraform 1.11.4"
    assert parse_show_json(MODERN).program_version == "Terraform 1.11.4"


def test_an_unknown_ui_major_version_is_refused():
    version = json.dumps({"@level": "info", "@message": "Terraform 9.0.0", "type": "version", "terraform": "9.0.0",
                          "ui": "2.0"})
    with pytest.raises(PlanFormatError, match="unsupported UI message version 2.0"):
        parse_stream(version)


# ---- ignore patterns: * only, everything else literal -------------------------------------------------------
@pytest.mark.parametrize("pattern,address,matches", [
    ("aws_instance.web[0]", "aws_instance.web[0]", True),           # [0] is the index, not a character class
    ("aws_instance.web[0]", "aws_instance.web0", False),
    ("aws_instance.web[*]", "aws_instance.web[12]", True),
    ("module.legacy.*", "module.legacy.module.db.aws_db_instance.main", True),
    ("module.legacy.*", "module.legacy2.aws_s3_bucket.x", False),
    ('aws_route53_record.this["www A"]', 'aws_route53_record.this["www A"]', True),
    ('aws_iam_user.u["*@example.com"]', 'aws_iam_user.u["ops@example.com"]', True),
    ('aws_s3_object.site["assets/*"]', 'aws_s3_object.site["assets/img/logo.png"]', True),
    ("aws_s3_object.site[?]", 'aws_s3_object.site["a"]', False),     # ? is itself
    ("*", 'module.x["a b"].aws_y.z["c"]', True),
])
def test_ignore_pattern_syntax(pattern, address, matches):
    assert address_matches(pattern, address) is matches


def test_ignore_drops_resources_and_their_counts():
    s = parse_show_json(MODERN, ignore=["module.legacy.*", "aws_s3_bucket.*", "aws_instance.api"])
    assert {"module.legacy.aws_instance.old", "aws_s3_bucket.logs", "aws_s3_bucket.imported",
            "aws_instance.api"} <= set(s.ignored)
    assert [c.address for c in s.changes] == ["aws_security_group.web", "aws_iam_role.old",
                                              "data.aws_caller_identity.me"]
    assert (s.add, s.change, s.import_, s.remove) == (0, 1, 0, 1)


def test_ignoring_every_change_gives_exit_0_even_though_terraform_found_changes():
    doc = plan(changes=[rc('aws_route53_record.this["www A"]', ["update"], {"ttl": 60}, {"ttl": 300})])
    assert parse_show_json(doc, ignore=['aws_route53_record.this["www A"]']).exit_code == 0


# ---- what is not a plan ------------------------------------------------------------------------------------
@pytest.mark.parametrize("doc,message", [
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
    assert [(d.address, d.relevant) for d in s.drift] == [("aws_security_group.web", None)]
    assert [(c.address, c.actions) for c in s.changes] == [("aws_s3_bucket.logs", ["create"]),
                                                           ("aws_instance.api", ["delete", "create"])]
    assert (s.add, s.change, s.remove, s.exit_code) == (2, 0, 1, 2)


def test_a_stream_with_only_drift_exits_0():
    text = "\n".join(STREAM.splitlines()[:4] + [SUMMARY_0])
    s = parse_stream(text)
    assert s.exit_code == 0 and [d.address for d in s.drift] == ["aws_security_group.web"]


def test_a_coloured_boxed_preamble_before_the_stream_is_skipped():
    text = "\x1b[31m╷\x1b[0m\n\x1b[31m│\x1b[0m \x1b[1mWarning: \x1b[0mdeprecated\n\x1b[31m╵\x1b[0m\n" + STREAM
    assert parse_stream(text).exit_code == 2


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
    moved = json.loads(json.dumps(MODERN))
    moved["resource_changes"][4]["previous_address"] = "aws_vpc.old"
    assert checksum(moved) != a


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


@pytest.mark.parametrize("text, file", [
    # human output of init/plan (boxes as Terraform draws them)
    ("│ Error: Unsupported argument\n│\n│   on network/main.tf line 4, in resource \"terraform_data\" \"vpc\":\n"
     "│    4:   inputz = 1\n", "network/main.tf"),
    ("Error: Invalid expression\n\n  on variables.tf.json line 2:\n", "variables.tf.json"),
    # plan -json: the diagnostic's range
    ('{"@level":"error","type":"diagnostic","diagnostic":{"severity":"error","summary":"Reference to undeclared '
     'resource","range":{"filename":"main.tf","start":{"line":9}}}}', "main.tf"),
    # faults that no change to the configuration fixes
    ("│ Error: Error acquiring the state lock\n│ Lock Info:\n│   ID: 0c3f\n", None),
    ("Error: Failed to get existing workspaces: RequestError: send request failed", None),
    ('{"type":"diagnostic","diagnostic":{"severity":"error","summary":"Backend initialization required"}}', None),
])
def test_configuration_file_names_the_file_an_error_points_at(text, file):
    assert configuration_file(text) == file


# ---- Terraform 1.14 action invocations are changes ------------------------------------------------------------------
def action(address="action.aws_lambda_invoke.warm", resource="aws_lambda_function.api", event="AfterUpdate",
           config=None):
    """An entry of show -json's action_invocations (internal/command/jsonplan/action_invocations.go)."""
    entry = {"address": address, "type": address.split(".")[1], "name": address.split(".")[2],
             "config_values": config or {"function_name": "api", "payload": "{}"}, "config_sensitive": {},
             "config_unknown": {}, "provider_name": "registry.terraform.io/hashicorp/aws"}
    if resource:
        entry["lifecycle_action_trigger"] = {"triggering_resource_address": resource, "action_trigger_event": event,
                                             "action_trigger_block_index": 0, "actions_list_index": 0,
                                             "on_failure": "ActionOnFailureHalt"}
    else:
        entry["invoke_action_trigger"] = {}
    return entry


def test_a_plan_that_only_invokes_an_action_exits_2_and_lists_it():
    s = parse_show_json(plan(action_invocations=[action(resource=None)], applyable=True))
    assert s.exit_code == 2 and [(a.address, a.trigger) for a in s.action_invocations] == [
        ("action.aws_lambda_invoke.warm", "invoked")]


def test_an_action_triggered_by_an_update_names_its_trigger():
    s = parse_show_json(plan(changes=[rc("aws_lambda_function.api", ["update"], {"m": 1}, {"m": 2})],
                             action_invocations=[action()]))
    assert [a.trigger for a in s.action_invocations] == ["after_update of aws_lambda_function.api"]


def test_approving_a_plan_without_an_action_never_approves_one_with_it():
    without = plan(changes=[rc("aws_lambda_function.api", ["update"], {"m": 1}, {"m": 2})])
    assert checksum(without) == checksum({**without, "action_invocations": []})  # older plans keep their checksum
    assert checksum(without) != checksum({**without, "action_invocations": [action()]})
    assert checksum({**without, "action_invocations": [action()]}) != \
        checksum({**without, "action_invocations": [action(config={"function_name": "other"})]})


def test_a_stream_with_a_planned_action_invocation_exits_2():
    invocation = json.dumps({"@level": "info", "@message": "planned action invocation: action.aws_lambda_invoke.warm",
                             "@module": "terraform.ui", "type": "planned_action_invocation", "invocation": {
                                 "action_addr": {"addr": "action.aws_lambda_invoke.warm", "action_name": "warm",
                                                 "action_type": "aws_lambda_invoke"},
                                 "lifecycle_trigger": {"triggering_event": "BeforeCreate", "triggering_resource": {
                                     "addr": "aws_lambda_function.api"}}}})
    s = parse_stream("\n".join([VERSION, invocation, SUMMARY_0]))
    assert s.exit_code == 2 and s.action_invocations[0].trigger == "before_create of aws_lambda_function.api"


def test_an_ignored_action_is_left_out():
    s = parse_show_json(plan(action_invocations=[action()], applyable=True), ignore=["action.*"])
    assert s.action_invocations == [] and s.ignored == ["action.aws_lambda_invoke.warm"]


def test_sensitive_action_config_is_redacted():
    doc = plan(action_invocations=[{**action(config={"function_name": "api", "token": "s3cr3t"}),
                                    "config_sensitive": {"token": True}}])
    assert redact(doc)["action_invocations"][0]["config_values"] == {"function_name": "api", "token": SENSITIVE}


# ---- several plans in one input (terragrunt) ------------------------------------------------------------------------
def one_line(doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":"))


CREATE = plan(changes=[rc("aws_s3_bucket.logs", ["create"], None, {"bucket": "logs"})])
CLEAN_PLAN = plan(changes=[rc("aws_vpc.main", ["no-op"], {}, {})])
FAILED = plan(changes=[rc("aws_s3_bucket.x", ["create"], None, {})], errored=True, applyable=False)


@pytest.mark.parametrize("docs,code", [([CLEAN_PLAN, CREATE], 2), ([CLEAN_PLAN, CLEAN_PLAN], 0),
                                        ([CREATE, FAILED, CLEAN_PLAN], 1)])
def test_one_document_per_line_is_each_summarised_and_exits_as_the_most_severe(docs, code):
    found = parse_input("\n".join(one_line(d) for d in docs) + "\n")
    assert [p.summary.exit_code for p in found.plans] == [d and parse_show_json(d).exit_code for d in docs]
    assert found.exit_code == code and all(p.directory is None for p in found.plans)


def test_terragrunt_log_prefixes_name_each_units_directory():
    text = "\n".join([
        "08:43:10.100 INFO   The runner-pool runner at . will be processed in the following order for command show:",
        f"08:43:10.702 STDOUT [network/vpc] terraform: {one_line(CREATE)}",
        f"08:43:10.708 STDOUT [apps/api] tofu: {one_line(CLEAN_PLAN)}"])
    found = parse_input(text)
    assert [(p.directory, p.summary.exit_code) for p in found.plans] == [("network/vpc", 2), ("apps/api", 0)]


def test_interleaved_plan_json_streams_are_told_apart_by_their_prefix():
    change = json.dumps({"@message": "aws_s3_bucket.logs: Plan to create", "type": "planned_change",
                         "change": {"resource": {"addr": "aws_s3_bucket.logs"}, "action": "create"}})
    lines = [f"STDOUT [a] terraform: {VERSION}", f"STDOUT [b] terraform: {VERSION}", f"STDOUT [a] terraform: {change}",
             f"STDOUT [b] terraform: {SUMMARY_0}", f"STDOUT [a] terraform: {SUMMARY_0}"]
    found = parse_input("\n".join(lines))
    assert [(p.directory, p.summary.exit_code) for p in found.plans] == [("a", 2), ("b", 0)]


def test_pretty_printed_documents_one_after_another_are_read():
    found = parse_input(json.dumps(CREATE, indent=2) + "\n" + json.dumps(CLEAN_PLAN, indent=2))
    assert [p.summary.exit_code for p in found.plans] == [2, 0]


def test_a_document_cut_short_among_several_is_refused_naming_it():
    text = one_line(CREATE) + "\n" + f"STDOUT [db] terraform: {one_line(CLEAN_PLAN)[:80]}"
    with pytest.raises(PlanFormatError, match=r"unit db\) is cut short"):
        parse_input(text)
