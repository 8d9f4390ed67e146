import pytest

from opex_operator.policy import Policy, PolicyError

RULES = {"roles": {"deployer": {"roleArn": "arn:aws:iam::123456789012:role/opex-deployer"}},
         "rules": [{"namespaces": ["payments-*"], "roles": ["", "deployer"], "regions": ["us-east-1"],
                    "actions": ["lambda:*", "codepipeline:RetryStageExecution"]}]}


def test_default_policy_reads_everywhere_and_changes_nothing():
    p = Policy()
    assert p.check("any", None, "eu-west-1") is None
    denied = p.check("any", None, "eu-west-1", "lambda:UpdateFunctionCode")
    assert "action lambda:UpdateFunctionCode is not allowed in namespace any by operator policy rule 1" in denied


def test_allowed_action_role_and_region():
    p = Policy.model_validate(RULES)
    assert p.check("payments-prod", "deployer", "us-east-1", "lambda:UpdateAlias") is None
    assert p.check("payments-prod", None, "us-east-1", "codepipeline:RetryStageExecution") is None


@pytest.mark.parametrize("args,phrase", [
    (("payments-prod", None, "us-east-1", "codepipeline:StartPipelineExecution"),
     "action codepipeline:StartPipelineExecution is not allowed"),
    (("payments-prod", None, "eu-west-1", None), "region eu-west-1 is not allowed"),
    (("payments-prod", "admin", "us-east-1", None), "role 'admin' is not allowed"),
    (("search", None, "us-east-1", None), "no operator policy rule matches namespace search"),
])
def test_refusals_name_the_rule(args, phrase):
    assert phrase in Policy.model_validate(RULES).check(*args)


def test_policy_file_errors_name_the_file(tmp_path):
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        Policy.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - namespaces: []\n")
    with pytest.raises(PolicyError, match=f"invalid policy file {bad}"):
        Policy.load(bad)
    ok = tmp_path / "ok.yaml"
    ok.write_text("rules:\n  - namespaces: ['*']\n    actions: ['lambda:*']\n")
    assert Policy.load(ok).check("x", None, "us-east-1", "lambda:UpdateAlias") is None


def test_local_stack_policy_parses():
    from pathlib import Path

    p = Policy.load(Path(__file__).resolve().parents[2] / "hack" / "policy-local.yaml")
    assert p.check("e2e-x", None, "us-east-1", "lambda:UpdateFunctionCode") is None


def test_limits_come_from_the_first_rule_matching_the_namespace():
    p = Policy.model_validate({"rules": [
        {"namespaces": ["payments-*"], "actions": ["lambda:*"], "limits": {"lambdaMemoryMb": 1024}},
        {"namespaces": ["*"], "actions": ["lambda:*"]}]})
    assert p.limits("payments-prod").lambda_memory_mb == 1024
    assert p.limits("search").lambda_memory_mb is None
    assert Policy.model_validate({"rules": [{"namespaces": ["a"]}]}).limits("b").lambda_memory_mb is None


def test_limit_outside_lambdas_memory_range_is_refused_naming_the_field(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("rules:\n  - namespaces: ['*']\n    limits: {lambdaMemoryMb: 64}\n")
    with pytest.raises(PolicyError, match="lambdaMemoryMb"):
        Policy.load(path)
