"""Tenant isolation of the Terraform path (issue 29): the operator policy per namespace decides
which state backends, workspaces and Terraform actions a DriftCheck may use, before any
Terraform runs; Terraform's environment holds nothing of the operator's; an approval covers
everything apply executes; values from Secrets never reach a report, status or an Event."""
from __future__ import annotations

import base64
import gzip
import json

import pytest

from opex_operator.policy import Policy, PolicyError
from opex_operator.redaction import MASK, Scrubber
from opex_operator.terraform.backend import Backend, BackendError, declared, initialised
from opex_operator.terraform.plan import checksum, provisioners
from opex_operator.terraform.session import environment
from opex_operator.terraform.workspace import RunDir, SourceError
from support.fakes import FakeWorkspaces, condition, plan_doc, sink_of
from test_driftcheck_controller import World, report_of

TEAMS = Policy.model_validate({
    "roles": {"team-a-tf": {"roleArn": "arn:aws:iam::123456789012:role/team-a-terraform"}},
    "rules": [{"namespaces": ["team-a"], "actions": ["terraform:Plan"],
               "terraform": {"role": "team-a-tf", "allowProvisioners": False,
                             "backends": [{"type": "s3", "settings": {"bucket": ["opex-tfstate"],
                                                                      "key": ["team-a/*"]}}]}},
              {"namespaces": ["*"], "actions": ["terraform:*"],
               "terraform": {"backends": [{"type": "s3"}]}}]})


def s3(key: str, bucket: str = "opex-tfstate") -> Backend:
    return Backend("s3", {"bucket": bucket, "key": key})


@pytest.mark.parametrize("action,backend,workspace,phrase", [
    ("terraform:Plan", s3("production/network.tfstate"), "default",
     "backend s3 key 'production/network.tfstate' (allowed: ['team-a/*'])"),
    ("terraform:Plan", s3("team-a/net.tfstate", bucket="prod-state"), "default", "backend s3 bucket 'prod-state'"),
    ("terraform:Plan", Backend("s3", {"bucket": "opex-tfstate"}), "default", "backend s3 key unset"),
    ("terraform:Plan", Backend("local"), "default", "backend local is not allowed in namespace team-a"),
    ("terraform:Plan", s3("team-a/net.tfstate"), "staging", "workspace 'staging' (allowed: ['default'])"),
    ("terraform:Apply", s3("team-a/net.tfstate"), "default", "action terraform:Apply is not allowed"),
])
def test_a_terraform_run_outside_the_namespace_policy_is_refused_naming_the_rule(action, backend, workspace, phrase):
    refused = TEAMS.check_terraform("team-a", action, backend, workspace)
    assert phrase in refused and "operator policy rule 1 (namespaces ['team-a'])" in refused


def test_terraform_within_the_namespace_policy_is_allowed_and_runs_as_the_namespace_role():
    assert TEAMS.check_terraform("team-a", "terraform:Plan", s3("team-a/net.tfstate"), "default") is None
    grant = TEAMS.terraform_grant("team-a", "terraform:Plan", "default")
    assert grant.role_key == "team-a-tf" and grant.allow_provisioners is False
    assert TEAMS.terraform_grant("team-b", "terraform:Plan", "default").role_key is None


def test_without_a_policy_no_terraform_runs():
    assert "action terraform:Plan is not allowed" in Policy().check_terraform("x", "terraform:Plan", s3("k"), "default")


def test_a_terraform_role_the_policy_does_not_define_is_refused_at_load(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("rules:\n  - namespaces: ['*']\n    terraform: {role: ghost}\n")
    with pytest.raises(PolicyError, match="terraform.role 'ghost' is not defined in roles"):
        Policy.load(path)


# -- what a configuration declares -----------------------------------------------------------------

def test_the_declared_backend_is_the_block_with_backend_config_over_it():
    main = '''terraform {
  # backend "gcs" {}   (a comment is not a block)
  backend "s3" {
    bucket = "opex-tfstate"   # the team's bucket
    key    = "production/network.tfstate"
    assume_role {
      role_arn = "arn:aws:iam::123456789012:role/x"
    }
  }
}
resource "terraform_data" "x" {}
'''
    backend = declared({"main.tf": main, "vars.tf": 'variable "a" {}'}, {"region": "us-east-1"})
    assert backend.type == "s3" and backend.source == "main.tf"
    assert backend.settings["key"] == "production/network.tfstate" and backend.settings["region"] == "us-east-1"
    assert "role_arn" in backend.settings["assume_role"]
    # spec.backendConfig overrides the file, as -backend-config does
    assert declared({"main.tf": main}, {"key": "team-a/x"}).settings["key"] == "team-a/x"


def test_a_backend_in_json_an_override_file_or_none_at_all():
    doc = {"terraform": {"backend": {"s3": {"bucket": "b", "key": "production/x", "use_lockfile": True}}}}
    assert declared({"main.tf.json": json.dumps(doc)}, {}).settings == {"bucket": "b", "key": "production/x",
                                                                          "use_lockfile": "true"}
    override = 'terraform {\n  backend "s3" {\n    key = "production/y"\n  }\n}\n'
    assert declared({"main.tf": 'terraform {\n  backend "s3" {}\n}\n', "backend_override.tf": override},
                    {}).settings["key"] == "production/y"
    assert declared({"main.tf": 'resource "terraform_data" "x" {}'}, {}).type == "local"
    assert declared({"main.tf": 'terraform {\n  cloud {\n    organization = "acme"\n  }\n}\n'}, {}).type == "cloud"
    with pytest.raises(BackendError, match="more than one backend block"):
        declared({"a.tf": 'terraform {\n backend "s3" {}\n}', "b.tf": 'terraform {\n backend "local" {}\n}'}, {})


def test_the_backend_init_recorded_is_read_from_the_data_directory(tmp_path):
    assert initialised(tmp_path) is None
    (tmp_path / "terraform.tfstate").write_text(json.dumps({"version": 3, "backend": {
        "type": "s3", "config": {"bucket": "opex-tfstate", "key": "production/network.tfstate", "profile": None,
                                 "use_path_style": True}}}))
    assert initialised(tmp_path).settings == {"bucket": "opex-tfstate", "key": "production/network.tfstate",
                                              "use_path_style": "true"}


# -- Terraform's environment ---------------------------------------------------------------------

OPERATOR_ENV = {"PATH": "/usr/bin", "HOME": "/home/opex", "KUBECONFIG": "/etc/opex/kubeconfig",
                "AWS_ACCESS_KEY_ID": "AKIAOPERATOR", "AWS_SECRET_ACCESS_KEY": "operator-secret",
                "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
                "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/opex-operator", "AWS_REGION": "eu-west-1",
                "AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "OPEX_ALERT_INTAKE_TOKEN_FILE": "/etc/opex/token",
                "KUBERNETES_SERVICE_HOST": "10.0.0.1", "TF_LOG": "trace"}


def test_terraform_gets_the_namespace_role_and_nothing_of_the_operator(tmp_path):
    run = RunDir(tmp_path / "team-a" / "net" / "check")
    role = {"AWS_ACCESS_KEY_ID": "ASIATEAMA", "AWS_SECRET_ACCESS_KEY": "team-a-secret", "AWS_SESSION_TOKEN": "t"}
    env = environment(OPERATOR_ENV, run, role, {"TF_VAR_size": "small", "GITHUB_TOKEN": "ghp_x"})
    assert env["AWS_ACCESS_KEY_ID"] == "ASIATEAMA" and env["AWS_SESSION_TOKEN"] == "t"
    assert env["HOME"] == str(run.home) and env["TMPDIR"] == str(run.tmp) and run.home.is_dir()
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"   # no fallback to the node's instance role
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000" and env["PATH"] == "/usr/bin"
    assert env["TF_VAR_size"] == "small" and env["GITHUB_TOKEN"] == "ghp_x"
    for leaked in ("KUBECONFIG", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "OPEX_ALERT_INTAKE_TOKEN_FILE",
                   "KUBERNETES_SERVICE_HOST", "TF_LOG"):
        assert leaked not in env
    assert "operator-secret" not in json.dumps(env)
    # without a role: no AWS credentials at all, never the operator's own
    assert "AWS_ACCESS_KEY_ID" not in environment(OPERATOR_ENV, run, {}, {})


@pytest.mark.parametrize("key", ["AWS_WEB_IDENTITY_TOKEN_FILE", "TF_CLI_ARGS_apply", "TF_WORKSPACE", "HOME",
                                 "LD_PRELOAD", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONFIG_FILE"])
def test_an_env_from_secret_cannot_take_the_operators_identity_or_change_how_terraform_runs(tmp_path, key):
    with pytest.raises(SourceError, match=f"spec.envFrom sets {key}") as err:
        environment(OPERATOR_ENV, RunDir(tmp_path), {}, {key: "x"})
    assert err.value.reason == "EnvironmentRefused"


# -- the controller ------------------------------------------------------------------------------

def test_a_driftcheck_naming_another_teams_state_is_refused_before_terraform_runs():
    w = World(FakeWorkspaces(), name="network", policy=TEAMS, namespace="team-a",
              backendConfig={"bucket": "opex-tfstate", "key": "production/network.tfstate"},
              resolution={"strategy": "Apply", "approval": "Auto"})
    w.run_now()
    assert w.ws.calls == []   # no plan, no apply
    checked, stalled = condition(w.status, "Checked"), condition(w.status, "Stalled")
    assert checked.reason == "PolicyRefused" and stalled.reason == "PolicyRefused"
    assert "backend s3 key 'production/network.tfstate' (allowed: ['team-a/*'])" in stalled.message
    assert "operator policy rule 1" in stalled.message and w.status.report_ref is None
    assert "PolicyRefused" in w.reasons()


def test_within_policy_the_run_plans_and_a_refused_apply_names_the_action():
    w = World(FakeWorkspaces(plans=[plan_doc(("terraform_data.net", ["update"]))]), policy=TEAMS,
              namespace="team-a", backendConfig={"bucket": "opex-tfstate", "key": "team-a/network.tfstate"},
              resolution={"strategy": "Apply", "approval": "Auto"})
    w.run_now()
    assert w.ws.calls[0] == "plan" and "apply" not in w.ws.calls
    assert w.status.last_resolution.outcome == "Failed"
    assert "action terraform:Apply is not allowed in namespace team-a" in w.status.last_resolution.message
    assert [g.action for g in w.ws.grants] == ["terraform:Plan", "terraform:Apply"]


def test_a_plan_with_provisioners_is_refused_where_the_policy_forbids_them():
    doc = plan_doc(("terraform_data.hook", ["create"]))
    doc["configuration"] = {"root_module": {"module_calls": {"hooks": {"module": {"resources": [
        {"address": "terraform_data.hook", "provisioners": [{"type": "local-exec"}]}]}}}}}
    assert provisioners(doc) == ["module.hooks.terraform_data.hook"]
    w = World(FakeWorkspaces(plans=[doc]), policy=TEAMS, namespace="team-a",
              backendConfig={"bucket": "opex-tfstate", "key": "team-a/network.tfstate"})
    w.run_now()
    stalled = condition(w.status, "Stalled")
    assert stalled.reason == "PolicyRefused" and "module.hooks.terraform_data.hook" in stalled.message
    assert "allowProvisioners: false" in stalled.message and w.status.last_result.plan_checksum is None


# -- the checksum covers what apply executes -----------------------------------------------------

def test_the_checksum_covers_configuration_variables_and_what_the_json_leaves_out():
    doc = plan_doc(("terraform_data.hook", ["create"]))
    doc["variables"] = {"token": {"value": "s3cret"}}
    doc["configuration"] = {"root_module": {"resources": [{"address": "terraform_data.hook", "provisioners": [
        {"type": "local-exec", "expressions": {"command": {"references": ["var.token"]}}}]}]}}
    inputs = {"configuration": "c1", "backend": "b1"}
    base = checksum(doc, inputs)
    assert base == checksum(json.loads(json.dumps(doc)), dict(inputs))   # stable
    other_value = json.loads(json.dumps(doc))
    other_value["variables"]["token"]["value"] = "other"
    other_config = json.loads(json.dumps(doc))
    other_config["configuration"]["root_module"]["resources"][0]["provisioners"][0]["type"] = "remote-exec"
    # The command's text is not in the JSON (only its references): the plan file's files are.
    assert len({base, checksum(other_value, inputs), checksum(other_config, inputs),
                checksum(doc, {**inputs, "configuration": "c2"}), checksum(doc, {**inputs, "backend": "b2"})}) == 5
    assert "s3cret" not in base


# -- values from Secrets -------------------------------------------------------------------------

def test_secret_values_are_masked_in_text_and_json_but_short_values_only_whole():
    scrub = Scrubber(["hunter2-long", "42"])
    assert scrub("token=hunter2-long;") == f"token={MASK};"
    assert scrub({"hunter2-long": ["42", "x42", 42]}) == {MASK: [MASK, "x42", 42]}
    assert not Scrubber([]) and Scrubber([]).text("hunter2-long") == "hunter2-long"


def test_a_varsfrom_secret_value_not_declared_sensitive_never_reaches_the_report_or_status():
    secret = "pa55-from-a-secret"
    doc = plan_doc(("terraform_data.db", ["update"]), marker=f"password={secret}")
    doc["variables"] = {"db_password": {"value": secret}}
    w = World(FakeWorkspaces(plans=[doc], secret_values=frozenset({secret})))
    w.run_now()
    summary, binary = report_of(w)
    plan = json.loads(gzip.decompress(base64.b64decode(binary["plan.json.gz"])))
    assert secret not in json.dumps(summary) and secret not in json.dumps(plan)
    assert plan["variables"]["db_password"]["value"] == MASK
    assert secret not in w.status.model_dump_json()
    assert secret not in json.dumps(sink_of(w.obj).events + sink_of(w.obj).patches, default=str)


# -- mutating AWS calls are not retried by botocore --------------------------------------------

def test_mutating_calls_get_one_attempt_and_reads_or_idempotent_ones_are_retried():
    import botocore.session

    from opex_operator.aws.clients import retried

    lam = botocore.session.get_session().get_service_model("lambda")
    cf = botocore.session.get_session().get_service_model("cloudfront")
    sm = botocore.session.get_session().get_service_model("secretsmanager")
    assert retried(lam.operation_model("GetFunction")) and retried(lam.operation_model("ListVersionsByFunction"))
    assert not retried(lam.operation_model("UpdateFunctionCode"))
    assert not retried(lam.operation_model("UpdateFunctionConfiguration"))
    # an idempotency token makes a retry safe: AWS acts once per token
    assert retried(sm.operation_model("RotateSecret")) and sm.operation_model("RotateSecret").idempotent_members
    # a repeated CopyObject writes the same object (the managed copy's retried CopyObject did too); PutObject
    # and DeleteObjects stay at one attempt
    s3 = botocore.session.get_session().get_service_model("s3")
    assert retried(s3.operation_model("CopyObject"))
    assert not retried(s3.operation_model("PutObject")) and not retried(s3.operation_model("DeleteObjects"))


def test_a_mutating_call_goes_through_the_client_without_retries():
    from opex_operator.aws.clients import AwsClients

    client = AwsClients("us-east-1").client("lambda")
    assert client._once.meta.config.retries["total_max_attempts"] == 1
    assert client._raw.meta.config.retries["total_max_attempts"] > 1


def test_a_driftcheck_whose_source_configmap_is_missing_is_not_ready_from_its_first_pass():
    w = World(FakeWorkspaces())
    del w.objects.config_maps[("ns", "tf")]
    assert w.drive() == 60.0
    stalled = condition(w.status, "Stalled")
    assert stalled.reason == "SourceUnavailable" and "ConfigMap tf (spec.source.configMapRef)" in stalled.message
    assert condition(w.status, "Ready").status == "False" and w.ws.calls == []
    w.drive()
    assert w.reasons().count("SourceUnavailable") == 1   # said once, not on every look
    w.objects.config_maps[("ns", "tf")] = {"data": {"main.tf": ""}, "labels": {}, "binary": {}}
    w.drive()
    assert condition(w.status, "Stalled") is None and condition(w.status, "Ready").status == "True"


# -- the alert intake ----------------------------------------------------------------------------

@pytest.mark.parametrize("body,phrase", [
    (b'{"alerts": ' + b"[" * 100000 + b"]" * 100000 + b"}", "nested too deeply"),
    (b'{"version": "4", "alerts": [{"labels": {"alertname": "\\ud800"}}]}', "lone surrogate"),
])
def test_a_notification_json_allows_but_nothing_can_hold_is_a_payload_error(body, phrase):
    import datetime as dt

    from opex_operator.alerts.webhook import PayloadError, parse

    with pytest.raises(PayloadError, match=phrase):
        parse(body, dt.datetime.now(dt.timezone.utc))
