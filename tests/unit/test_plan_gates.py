"""Plan gates (guardrails.gates): what each Terraform action kind is, which gate a plan fails and
whose, on plans built from Terraform's JSON format and on the real plans of tests/realworld/plan; and
that a resource's gates never widen the operator policy's."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from pydantic import ValidationError

from opex_operator.api.gates import GateAction, PlanGates
from opex_operator.guardrails.gates import (Gate, Layer, evaluate, evaluate_plan, import_change, merge,
                                            planned_changes, resource_type)
from opex_operator.policy import Policy
from opex_operator.terraform.plan import parse_any, parse_input, parse_show_json

REALWORLD = Path(__file__).resolve().parents[1] / "realworld" / "plan"
POLICY = "operator policy rule 1 (namespaces ['*'])"


def rc(address: str, actions: list[str], **change) -> dict:
    """One ``resource_changes`` entry as ``terraform show -json`` writes it."""
    mode = "data" if address.startswith("data.") else "managed"
    bare = address.removeprefix("data.").split("[")[0].split(".")
    entry = {"address": address, "mode": mode, "type": bare[-2], "name": bare[-1],
             "provider_name": "registry.terraform.io/hashicorp/aws",
             "change": {"actions": actions, "before": None if actions == ["create"] else {"id": "x"},
                        "after": None if actions == ["delete"] else {"id": "x", "size": "large"},
                        "after_unknown": {}, "before_sensitive": False, "after_sensitive": False, **change}}
    if "previous_address" in change:
        entry["previous_address"] = entry["change"].pop("previous_address")
    return entry


def plan(*changes: dict, invocations: list[dict] = ()) -> dict:
    doc = {"format_version": "1.2", "terraform_version": "1.14.0", "applyable": True, "complete": True,
           "errored": False, "resource_changes": list(changes)}
    if invocations:
        doc["action_invocations"] = list(invocations)
    return doc


EVERY_KIND = plan(
    rc("aws_s3_bucket.logs", ["create"]),
    rc("aws_lambda_function.api", ["update"]),
    rc("aws_instance.old", ["delete"]),
    rc("aws_db_instance.main", ["delete", "create"], replace_paths=[["engine_version"]]),
    rc("aws_lb.front", ["create", "delete"]),
    rc("data.aws_ami.ubuntu", ["read"]),
    rc("aws_iam_role.unchanged", ["no-op"]),
    rc("aws_sqs_queue.legacy", ["forget"]),
    rc("aws_route53_zone.main", ["no-op"], importing={"id": "Z0123456789"}),
    rc("module.app.aws_security_group.web", ["no-op"], previous_address="aws_security_group.web"),
    invocations=[{"address": "action.aws_lambda_invoke.notify", "type": "aws_lambda_invoke", "name": "notify",
                  "provider_name": "registry.terraform.io/hashicorp/aws",
                  "lifecycle_action_trigger": {"triggering_resource_address": "aws_lambda_function.api",
                                               "action_trigger_event": "AfterUpdate"}}])


def gates(**fields) -> object:
    return merge(Layer(POLICY, PlanGates(**fields)))


def test_each_terraform_action_kind_is_the_gate_action_it_does():
    found = {c.address: {a.value for a in c.actions} for c in planned_changes(parse_show_json(EVERY_KIND))}
    assert found == {
        "aws_s3_bucket.logs": {"create"},
        "aws_lambda_function.api": {"update"},
        "aws_instance.old": {"delete"},
        "aws_db_instance.main": {"replace", "delete"},     # delete-create destroys the object too
        "aws_lb.front": {"replace", "delete"},             # so does create-delete (create_before_destroy)
        "data.aws_ami.ubuntu": {"read"},
        "aws_sqs_queue.legacy": {"forget"},
        "aws_route53_zone.main": {"import"},
        "module.app.aws_security_group.web": {"move"},
        "action.aws_lambda_invoke.notify": {"invoke"},
    }  # the plain no-op (aws_iam_role.unchanged) does nothing and is not checked


@pytest.mark.parametrize("denied,failing", [
    ("create", ["aws_s3_bucket.logs"]),
    ("update", ["aws_lambda_function.api"]),
    ("delete", ["aws_instance.old", "aws_db_instance.main", "aws_lb.front"]),
    ("replace", ["aws_db_instance.main", "aws_lb.front"]),
    ("read", ["data.aws_ami.ubuntu"]),
    ("forget", ["aws_sqs_queue.legacy"]),
    ("import", ["aws_route53_zone.main"]),
    ("move", ["module.app.aws_security_group.web"]),
    ("invoke", ["action.aws_lambda_invoke.notify"]),
])
def test_a_denied_action_fails_naming_the_gate_its_source_and_the_resources(denied, failing):
    result = evaluate_plan(parse_show_json(EVERY_KIND), gates(deny_actions=[denied]))
    assert not result.passed
    [failure] = result.failures
    assert (failure.gate, failure.source, list(failure.resources)) == (Gate.DENY_ACTIONS, POLICY, failing)
    assert failure.describe().startswith(f"denyActions of {POLICY}: {denied} of {failing[0]}")


def test_a_replacement_both_denied_actions_catch_is_named_once_in_the_message():
    replaced = plan(rc("terraform_data.edge_certificate", ["delete", "create"]))
    result = evaluate_plan(parse_show_json(replaced), gates(deny_actions=["delete", "replace"]))
    assert len(result.failures) == 2  # status keeps one record per denied action
    assert result.message() == f"denyActions of {POLICY}: delete, replace of terraform_data.edge_certificate"
    both = evaluate_plan(parse_show_json(EVERY_KIND), gates(deny_actions=["delete", "replace"]))
    assert both.message() == (f"denyActions of {POLICY}: delete of aws_instance.old, aws_db_instance.main, aws_lb.front; "
                              f"denyActions of {POLICY}: replace of aws_db_instance.main, aws_lb.front")


def test_a_plan_of_no_ops_and_nothing_denied_passes():
    quiet = plan(rc("aws_iam_role.unchanged", ["no-op"]))
    assert evaluate_plan(parse_show_json(quiet), gates(deny_actions=list(GateAction), max_changed_resources=0)).passed
    assert evaluate_plan(parse_show_json(EVERY_KIND), merge()).passed  # no gate at all


def test_max_changed_resources_counts_what_an_apply_changes_but_not_reads_or_actions():
    result = evaluate_plan(parse_show_json(EVERY_KIND), gates(max_changed_resources=7))
    # create, update, delete, 2 replaces, forget, import, move: 8; the read and the invocation are not resources changed
    assert result.changed == 8
    assert [(f.gate, f.detail) for f in result.failures] == [
        (Gate.MAX_CHANGED_RESOURCES, "8 resources changed, at most 7 allowed")]
    assert evaluate_plan(parse_show_json(EVERY_KIND), gates(max_changed_resources=8)).passed


def test_types_and_addresses_allowed_and_denied_use_the_ignore_pattern_syntax():
    summary = parse_show_json(EVERY_KIND)
    allowed = evaluate_plan(summary, gates(allowed_resource_types=["aws_lambda_*", "aws_s3_*"]))  # and aws_lambda_invoke
    assert set(allowed.failures[0].resources) == {"aws_instance.old", "aws_db_instance.main", "aws_lb.front",
                                                  "aws_sqs_queue.legacy", "aws_route53_zone.main",
                                                  "module.app.aws_security_group.web"}  # a read changes nothing
    denied = evaluate_plan(summary, gates(denied_resource_types=["aws_db_*", "aws_lambda_invoke"]))
    assert [(f.gate, f.resources) for f in denied.failures] == [
        (Gate.DENIED_RESOURCE_TYPES, ("aws_db_instance.main",)),
        (Gate.DENIED_RESOURCE_TYPES, ("action.aws_lambda_invoke.notify",))]
    by_address = evaluate_plan(summary, gates(allowed_addresses=["aws_*"], denied_addresses=["module.app.*"]))
    assert [(f.gate, f.resources) for f in by_address.failures] == [
        (Gate.ALLOWED_ADDRESSES, ("module.app.aws_security_group.web", "action.aws_lambda_invoke.notify")),
        (Gate.DENIED_ADDRESSES, ("module.app.aws_security_group.web",))]


def test_changes_to_ignored_resources_fail_only_when_the_gate_is_set():
    summary = parse_show_json(EVERY_KIND)
    result = evaluate_plan(summary, gates(deny_changes_to_ignored=True), ignore=["aws_db_*", "data.*"])
    assert [(f.gate, f.resources) for f in result.failures] == [(Gate.DENY_CHANGES_TO_IGNORED,
                                                                 ("aws_db_instance.main",))]
    assert evaluate_plan(summary, gates(), ignore=["aws_db_*"]).passed


def test_a_plan_read_with_ignore_is_refused_because_its_hidden_changes_would_escape_the_gates():
    with pytest.raises(ValueError, match="read it without them"):
        evaluate_plan(parse_show_json(EVERY_KIND, ["aws_db_*"]), gates(deny_actions=["replace"]))


def test_an_import_step_without_a_plan_is_checked_as_an_import():
    result = evaluate([import_change('module.dns["eu.west"].aws_route53_record.www["a.example.com"]')],
                      gates(deny_actions=["import"], allowed_resource_types=["aws_route53_*"]))
    assert [f.gate for f in result.failures] == [Gate.DENY_ACTIONS]


@pytest.mark.parametrize("address,type_", [
    ("aws_instance.web", "aws_instance"),
    ("aws_instance.web[0]", "aws_instance"),
    ('module.app["eu.west"].aws_instance.web["a.b[c]"]', "aws_instance"),
    ("module.a.module.b[2].data.aws_ami.ubuntu", "aws_ami"),
    ("action.aws_lambda_invoke.notify", "aws_lambda_invoke"),
    ('aws_route53_record.this["say \\"hi\\"."]', "aws_route53_record"),
])
def test_resource_type_of_an_address(address, type_):
    assert resource_type(address) == type_


# -- real plans (tests/realworld/plan) ---------------------------------------------------------------

def real(name: str):
    return parse_any((REALWORLD / name).read_text())


@pytest.mark.parametrize("file,fields,gate,resources", [
    ("terraform-show-json-requires-replace.json", {"deny_actions": ["replace"]}, Gate.DENY_ACTIONS,
     ("test_instance.test",)),
    ("terraform-show-json-basic-delete.json", {"deny_actions": ["delete"]}, Gate.DENY_ACTIONS,
     ("test_instance.test-delete",)),
    ("equivalence-local-provider-delete.json", {"deny_actions": ["delete"]}, Gate.DENY_ACTIONS,
     ("local_file.local_file",)),
    ("terraform-show-json-basic-create.json", {"max_changed_resources": 2}, Gate.MAX_CHANGED_RESOURCES, ()),
    ("terraform-show-json-moved.json", {"deny_actions": ["move"]}, Gate.DENY_ACTIONS, ("test_instance.baz",)),
    ("terraform-show-json-multi-resource-update.json", {"deny_actions": ["move"]}, Gate.DENY_ACTIONS,
     ("test_instance.test[0]",)),
    ("plan-comment-removed-block-forget.json", {"deny_actions": ["forget"]}, Gate.DENY_ACTIONS,
     ("local_file.test2",)),
    ("equivalence-data-read.json", {"denied_addresses": ["module.create.*"]}, Gate.DENIED_ADDRESSES,
     ("module.create.local_file.data_file", "module.create.random_integer.random")),
    ("hcp-plan-json-full.jsonl", {"allowed_resource_types": ["tfcoremock_simple_*"]}, Gate.ALLOWED_RESOURCE_TYPES,
     ("tfcoremock_complex_resource.example",)),
    ("hcp-plan-json-basic.jsonl", {"denied_resource_types": ["null_*"]}, Gate.DENIED_RESOURCE_TYPES,
     ("null_resource.foo",)),
])
def test_real_plans_fail_the_gate_their_changes_break(file, fields, gate, resources):
    result = evaluate_plan(real(file), gates(**fields))
    assert [(f.gate, f.resources) for f in result.failures] == [(gate, resources)]


@pytest.mark.parametrize("file", ["terraform-show-json-basic-update.json", "plan-comment-empty.json",
                                  "equivalence-drift-refresh-only.json", "hcp-plan-json-no-changes.jsonl",
                                  "equivalence-moved-with-refresh-only.json"])
def test_real_plans_that_change_no_resource_pass_the_strictest_gates(file):
    strictest = gates(deny_actions=list(GateAction), max_changed_resources=0, allowed_resource_types=["nothing"])
    assert evaluate_plan(real(file), strictest).passed


def test_each_terragrunt_unit_is_gated_on_its_own():
    found = parse_input((REALWORLD / "plan-comment-terragrunt-multiplan.ndjson").read_text())
    verdicts = [evaluate_plan(u.summary, gates(denied_addresses=["local_file.database"])).passed for u in found.plans]
    assert verdicts == [True, False, True]


# -- merge: a resource never widens the policy -------------------------------------------------------

STRICT = PlanGates(deny_actions=["delete"], max_changed_resources=1, allowed_resource_types=["test_*", "local_*"],
                   denied_addresses=["module.create.*"], deny_changes_to_ignored=True)
WIDENING = [
    PlanGates(),
    PlanGates(deny_actions=[], max_changed_resources=10000, allowed_resource_types=["*"], allowed_addresses=["*"]),
    PlanGates(deny_actions=["create"], max_changed_resources=5, denied_resource_types=["random_*"]),
    None,
]


@pytest.mark.parametrize("file", sorted(p.name for p in REALWORLD.iterdir() if p.suffix in (".json", ".jsonl")))
def test_no_resource_gates_let_through_a_real_plan_the_policy_stops(file):
    summary = real(file)
    by_policy = evaluate_plan(summary, merge(Layer("policy", STRICT)), ignore=["test_instance.test*"])
    for resource in WIDENING:
        merged = evaluate_plan(summary, merge(Layer("policy", STRICT), Layer("spec.resolution.gates", resource)),
                               ignore=["test_instance.test*"])
        assert set(by_policy.failures) <= set(merged.failures), resource


def test_merge_keeps_the_strictest_of_each_gate_and_who_set_it():
    merged = merge(Layer("policy", PlanGates(deny_actions=["delete"], max_changed_resources=10,
                                             allowed_resource_types=["aws_*"])),
                   Layer("environment production", PlanGates(deny_actions=["replace", "delete"],
                                                             max_changed_resources=3)),
                   Layer("spec", PlanGates(max_changed_resources=50, allowed_resource_types=["aws_lambda_*", "x_*"],
                                           deny_changes_to_ignored=True)))
    assert merged.denied_actions == ((GateAction.DELETE, "policy"), (GateAction.REPLACE, "environment production"))
    assert merged.max_changed == (3, "environment production")
    assert merged.allowed_types == ((("aws_*",), "policy"), (("aws_lambda_*", "x_*"), "spec"))  # both must hold
    assert merged.deny_ignored == "spec"
    # x_thing passes the resource's list but not the policy's
    result = evaluate([import_change("x_thing.a")], merged)
    assert [(f.gate, f.source) for f in result.failures] == [(Gate.ALLOWED_RESOURCE_TYPES, "policy")]


# -- the policy's gates per namespace and environment ------------------------------------------------

POLICY_FILE = {"rules": [{"namespaces": ["payments-*"], "gates": {"denyActions": ["delete"]},
                          "environments": {"production": {"gates": {"denyActions": ["replace"],
                                                                    "deniedResourceTypes": ["aws_iam_*"]}}}},
                         {"namespaces": ["*"]}]}


def test_policy_gates_apply_per_namespace_and_add_the_environments_under_any_spelling():
    policy = Policy.model_validate(POLICY_FILE)
    layers = policy.gate_layers("payments-eu", "prd")
    assert [layer.source for layer in layers] == [
        "operator policy rule 1 (namespaces ['payments-*'])",
        "operator policy rule 1 (namespaces ['payments-*']), environment production"]
    assert [a for a, _ in merge(*layers).denied_actions] == [GateAction.DELETE, GateAction.REPLACE]
    assert [layer.source for layer in policy.gate_layers("payments-eu", "staging")] == [layers[0].source]
    assert policy.gate_layers("search", "production") == []


@pytest.mark.parametrize("bad", [{"denyAction": ["delete"]}, {"denyActions": ["destroy"]},
                                 {"maxChangedResources": -1}])
def test_a_misspelt_or_invalid_gate_is_refused_not_ignored(bad):
    with pytest.raises(ValidationError):
        PlanGates.model_validate(bad)
    with pytest.raises(ValidationError):
        Policy.model_validate({"rules": [{"namespaces": ["*"], "gates": bad}]})
    with pytest.raises(ValidationError):
        Policy.model_validate({"rules": [{"namespaces": ["*"], "environments": {"production": {"gate": bad}}}]})


def test_every_gate_action_has_a_kind_of_terraform_change():
    covered = set(itertools.chain.from_iterable(c.actions for c in planned_changes(parse_show_json(EVERY_KIND))))
    assert covered == set(GateAction)
