"""The CLI's offline commands and renderers (no cluster): exit codes, outputs, one-line errors."""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from opex_operator.cli import cli, render
from test_lock_parse import BOXED, DYNAMODB_NO_INFO, FLAT, HCP, coloured
from test_plan_parse import MODERN, MOVE_A, REMOVE_B, STREAM, SUMMARY_0, TF_1_0_0, VERSION, rds_plan

CLEAN = {"format_version": "1.1", "resource_changes": [
    {"address": "aws_vpc.main", "change": {"actions": ["no-op"], "before": {}, "after": {}}}]}
ERRORED = {"format_version": "1.2", "errored": True, "applyable": False, "resource_changes": [
    {"address": "aws_s3_bucket.logs", "change": {"actions": ["create"], "before": None, "after": {}}}]}
TOFU = "\n".join([json.dumps({"@level": "info", "@message": "OpenTofu 1.10.7", "@module": "tofu.ui", "tofu": "1.10.7",
                              "type": "version", "ui": "1.2"}), *STREAM.splitlines()[3:]])


def invoke(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input)


@pytest.mark.parametrize("doc,code,phrases", [
    (json.dumps(MODERN), 2, ["changes (exit code 2, DriftDetected)", "~ aws_security_group.web",
                             "-/+ aws_instance.api", "2 to add, 2 to change, 2 to destroy, 1 to import, 1 to read"]),
    (json.dumps(CLEAN), 0, ["no changes (exit code 0, NoDrift)", "0 to add"]),
    (STREAM, 2, ["plan-json-stream", "+ aws_s3_bucket.logs", "Terraform 1.11.4"]),
    # the issue's kinds: refresh noise, an errored plan, moves and forgets, Terraform 1.0.0, OpenTofu
    (json.dumps(rds_plan("2026-11-29T09:00:00Z")), 0,
     ["no changes", "Changed outside Terraform, nothing depends on it", "aws_db_instance.orders"]),
    (json.dumps(ERRORED), 1, ["the plan failed (exit code 1, PlanFailed)", "errored"]),
    ("\n".join([VERSION, MOVE_A, REMOVE_B, SUMMARY_0]), 2,
     ["configuration-only changes", "= terraform_data.a2 (moved from terraform_data.a)", "x terraform_data.b",
      "1 to move, 1 to forget"]),
    (json.dumps(TF_1_0_0), 0, ["Terraform 1.0.0", "module.net.aws_subnet.a (index unknown)"]),
    (TOFU, 2, ["OpenTofu 1.10.7"]),
])
def test_plan_summarize_each_format_with_terraform_exit_codes(tmp_path, doc, code, phrases):
    path = tmp_path / "plan.json"
    path.write_text(doc)
    result = invoke("plan", "summarize", str(path))
    assert result.exit_code == code, result.output
    for phrase in phrases:
        assert phrase in result.output


def test_plan_summarize_json_from_stdin_with_ignore():
    result = invoke("plan", "summarize", "-", "--json", "--ignore", "module.legacy.*", input=json.dumps(MODERN))
    data = json.loads(result.output)
    assert result.exit_code == 2 and data["ignored"] == ["module.legacy.aws_instance.old"]
    assert data["add"] == 2 and data["drifted"] is True
    assert (data["exit_code"], data["outcome"], data["program"]) == (2, "DriftDetected", "Terraform")


def test_plan_summarize_exit_code_follows_the_plan_not_the_drift_list():
    data = json.loads(invoke("plan", "summarize", "-", "--json", input=json.dumps(rds_plan("x"))).output)
    assert data["exit_code"] == 0 and data["drift"] == [] and data["irrelevant_drift"][0]["relevant"] is False


@pytest.mark.parametrize("text,message", [
    ('{"format_version": "1.2", "resource_changes": [', "truncated or invalid JSON"),
    ('{"values": {"root_module": {}}}', "not a Terraform plan"),
    ("Apply complete! Resources: 1 added.", "no line is a Terraform JSON message"),
])
def test_what_is_not_a_plan_is_one_line_exit_1(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    result = invoke("plan", "summarize", str(path))
    assert result.exit_code == 1 and message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_missing_file_is_one_line():
    result = invoke("plan", "summarize", "/nonexistent/plan.json")
    assert result.exit_code == 1 and result.output.strip() == \
        "opex: cannot read /nonexistent/plan.json: No such file or directory"


REALWORLD = Path(__file__).resolve().parents[1] / "realworld" / "plan"
REPLACE = str(REALWORLD / "terraform-show-json-requires-replace.json")
MULTI = str(REALWORLD / "plan-comment-terragrunt-multiplan.ndjson")


def test_plan_gates_pass_exit_0_and_fail_exit_3_naming_the_gate_and_the_resource(tmp_path):
    gates = tmp_path / "gates.yaml"
    gates.write_text("denyActions: [replace]\n")
    failed = invoke("plan", "summarize", "--gates", str(gates), REPLACE)
    assert failed.exit_code == 3, failed.output
    assert f"denyActions of {gates}: replace of test_instance.test" in failed.output
    gates.write_text("denyActions: [forget]\nmaxChangedResources: 1\n")
    passed = invoke("plan", "summarize", "--gates", str(gates), REPLACE)
    assert passed.exit_code == 0 and "Gates: passed (1 resource(s) changed)" in passed.output
    assert invoke("plan", "summarize", REPLACE).exit_code == 2  # without gates: terraform's exit code


def test_plan_gates_of_a_driftcheck_manifest_use_its_ignore_and_the_policy_for_its_namespace(tmp_path):
    manifest = tmp_path / "dc.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "opex.dev/v1alpha1", "kind": "DriftCheck",
        "metadata": {"name": "network", "namespace": "payments-eu"},
        "spec": {"environment": "prod", "ignore": ["local_file.server"],
                 "resolution": {"strategy": "Apply", "approval": "Auto", "gates": {"denyChangesToIgnored": True}}}}))
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"rules": [{"namespaces": ["payments-*"], "environments": {
        "production": {"gates": {"deniedAddresses": ["local_file.database"]}}}}]}))
    result = invoke("plan", "summarize", "--json", "--gates", str(manifest), "--policy", str(policy), MULTI)
    assert result.exit_code == 3, result.output
    verdicts = [p["gates"] for p in json.loads(result.output)["plans"]]
    assert [v["passed"] for v in verdicts] == [True, False, False]
    assert verdicts[1]["failures"] == [{
        "gate": "deniedAddresses", "source": "operator policy rule 1 (namespaces ['payments-*']), environment production",
        "detail": "address local_file.database", "resources": ["local_file.database"]}]
    assert verdicts[2]["failures"][0]["gate"] == "denyChangesToIgnored"
    assert verdicts[2]["failures"][0]["source"] == "DriftCheck network spec.resolution.gates"


def test_plan_gates_of_the_shipped_example_take_the_driftcheck_beside_its_configmap():
    example = Path(__file__).resolve().parents[2] / "examples" / "driftcheck-gated.yaml"
    result = invoke("plan", "summarize", "--gates", str(example), REPLACE)
    assert result.exit_code == 3, result.output
    assert "denyActions of DriftCheck production-edge spec.resolution.gates: replace of test_instance.test" in result.output


def test_describe_prints_an_arn_as_written_not_as_an_emoji_shortcode():
    from opex_operator import cli as cli_module

    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/checkout/db-swehSx"
    con = cli_module.console()
    with con.capture() as captured:
        con.print(f"undo: restore {arn}")
    assert arn in captured.get()


@pytest.mark.parametrize("content,message", [
    ("denyAction: [delete]\n", "invalid gates"),             # a misspelt gate is refused, not ignored
    ("denyActions: [destroy]\n", "invalid gates"),
    ("- delete\n", "expected gates"),
])
def test_a_gates_file_that_is_not_gates_is_one_line_exit_1(tmp_path, content, message):
    gates = tmp_path / "gates.yaml"
    gates.write_text(content)
    result = invoke("plan", "summarize", "--gates", str(gates), REPLACE)
    assert result.exit_code == 1 and message in result.output


def test_an_errored_plan_exits_1_with_gates_too(tmp_path):
    path, gates = tmp_path / "plan.json", tmp_path / "gates.yaml"
    path.write_text(json.dumps(ERRORED))
    gates.write_text("maxChangedResources: 5\n")
    assert invoke("plan", "summarize", "--gates", str(gates), str(path)).exit_code == 1


def test_policy_gates_need_a_namespace(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules: [{namespaces: ['*']}]\n")
    result = invoke("plan", "summarize", "--policy", str(policy), REPLACE)
    assert result.exit_code == 1 and "--policy needs --namespace" in result.output


@pytest.mark.parametrize("text,lock_id", [(BOXED, "4cb1a7e2-7d4f-d2f1-0a6b-3f1c2e9d8b7a"), (FLAT, "tflock-2020-06-01-prod")])
def test_lock_parse_both_layouts(text, lock_id):
    result = invoke("lock", "parse", "-", input=text)
    assert result.exit_code == 0 and f"Id         {lock_id}" in result.output
    assert f"terraform force-unlock {lock_id}" in result.output
    data = json.loads(invoke("lock", "parse", "-", "--json", input=text).output)
    assert data["id"] == lock_id


def test_lock_parse_without_a_lock_error():
    result = invoke("lock", "parse", "-", input="Plan: 1 to add")
    assert result.exit_code == 1 and "no state-lock error" in result.output


def test_lock_parse_of_a_coloured_paste():
    result = invoke("lock", "parse", "-", "--json", input=coloured(BOXED))
    assert json.loads(result.output)["id"] == "4cb1a7e2-7d4f-d2f1-0a6b-3f1c2e9d8b7a"


def test_lock_parse_of_hcp_terraform_offers_the_workspace_id_and_an_unknown_holder():
    result = invoke("lock", "parse", "-", input=HCP)
    assert result.exit_code == 0 and "Id         acme/checkout-production" in result.output
    assert "Who        unknown" in result.output and "ae0b51a1" not in result.output
    assert "terraform force-unlock acme/checkout-production" in result.output


def test_lock_parse_without_lock_info_says_nothing_can_be_force_unlocked():
    result = invoke("lock", "parse", "-", input=DYNAMODB_NO_INFO)
    assert result.exit_code == 0 and "force-unlock " not in result.output.replace("force-unlocked", "")
    data = json.loads(invoke("lock", "parse", "-", "--json", input=DYNAMODB_NO_INFO).output)
    assert "id" not in data and data["who"] == "unknown" and data["backend"] == "s3/dynamodb"


def test_every_command_has_help_with_an_example():
    for args in (["get"], ["describe"], ["approve"], ["abort"], ["run"], ["plan", "summarize"], ["lock", "parse"],
                 ["operator"], ["crds"], ["demo"], ["down"], ["breaker", "status"], ["breaker", "reset"]):
        result = invoke(*args, "--help")
        assert result.exit_code == 0 and "Example" in result.output, args


NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.timezone.utc)


def text_of(renderable) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def incident(phase="AwaitingApproval"):
    return {"kind": "Incident", "metadata": {"name": "checkout", "namespace": "payments",
                                             "creationTimestamp": "2026-11-29T11:15:00Z"},
            "spec": {"type": "DeploymentFailure", "severity": "high", "title": "t", "environment": "production",
                     "remediation": {"mode": "Manual"}},
            "status": {"phase": phase, "rootCause": {"category": "LambdaDeployment", "summary": "v2 fails",
                                                     "evidence": ["F1"]},
                       "findings": [{"id": "F1", "source": "Lambda", "severity": "Error", "resource": "function/api",
                                     "observed": "12 ERROR events"}],
                       "steps": [{"id": "rollback-lambda-api", "action": "lambda:UpdateFunctionCode",
                                  "state": "AwaitingApproval", "attempts": 0, "inputs": "to v1", "mutating": True}],
                       "escalation": {"currentLevel": 1, "nextLevel": 2, "nextEscalationAt": "2026-11-29T11:45:00Z",
                                      "notified": []},
                       "conditions": [{"type": "Ready", "status": "False", "reason": "AwaitingApproval",
                                       "message": "approve", "lastTransitionTime": "2026-11-29T11:15:01Z"}],
                       "timeline": [{"time": "2026-11-29T11:15:00Z", "reason": "Detected", "message": "x"}]}}


def test_table_shows_the_story_of_each_incident():
    out = text_of(render.table("incidents", [incident()], NOW, all_namespaces=True))
    assert "payments" in out and "AwaitingApproval" in out and "LambdaDeployment" in out
    assert "rollback-lambda-api" in out and "False/AwaitingApproval" in out and "45m" in out


def test_describe_incident_has_every_section_and_the_next_command():
    out = text_of(render.describe("incident", incident()))
    for section in ("Root cause", "Findings", "Steps", "Escalation", "Conditions", "Timeline"):
        assert section in out
    assert "Next: opex approve incident checkout -n payments rollback-lambda-api" in out


def test_a_severity_raised_on_evidence_is_shown_with_what_was_declared():
    raised = incident()
    raised["status"]["classification"] = {"declaredSeverity": "high", "severity": "critical", "raised": True,
                                          "reason": "x", "classifiedAt": "2026-11-29T11:15:01Z"}
    assert "critical (declared high; raised on evidence)" in text_of(render.describe("incident", raised))
    row = text_of(render.table("incidents", [raised], NOW, all_namespaces=True))
    assert "critical" in row and "high" not in row
    assert "Severity     high" in text_of(render.describe("incident", incident()))


def test_age_like_kubectl():
    assert [render.age(t, NOW) for t in ("2026-11-29T11:59:30Z", "2026-11-29T11:00:00Z", "2026-11-27T12:00:00Z")] \
        == ["30s", "1h", "2d"]


@pytest.mark.parametrize("argv,phrase", [(["describe"], "Missing argument 'KIND'"), (["get", "--bogus"], "No such option"),
                                         (["approve", "widget", "x"], "Invalid value for '{incident|driftcheck|rollback}'")])
def test_usage_mistakes_are_one_line_and_exit_1(argv, phrase, capsys):
    from opex_operator.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and err.startswith("opex: ") and phrase in err and len(err.strip().splitlines()) == 1


def test_a_checksum_that_cannot_be_one_is_refused_before_any_call(capsys):
    from opex_operator.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--kubeconfig", "/nonexistent", "approve", "driftcheck", "net", "--checksum", "sha256:deadbeef"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "is not a plan checksum" in err


class OperatorScript:
    """The CLI's cluster, answering ``get`` with the DriftCheck as the operator would write it, one
    state per read, for the request the CLI annotated."""

    def __init__(self, *states):
        self.states, self.token, self.reads = list(states), None, 0
        self.default_namespace = "platform"

    def patch(self, plural, namespace, name, body):
        self.token = body["metadata"]["annotations"]["opex.dev/run-requested"]

    def wait_for_change(self, plural, namespace, name, resource_version, timeout):
        """The operator's next write: the next state."""

    def get(self, plural, namespace, name):
        state = self.states[min(self.reads, len(self.states) - 1)](self.token)
        self.reads += 1
        return {"metadata": {"name": name, "generation": 1, "annotations": {"opex.dev/run-requested": self.token}},
                "status": state}


def result(outcome, trigger, **extra):
    return {"outcome": outcome, "trigger": trigger, "finishedAt": "2026-11-29T09:00:05Z", "durationSeconds": 1.5,
            **extra}


def test_run_driftcheck_reports_the_run_that_answers_the_request_not_the_lock_held_before_it():
    asked = "on demand (opex.dev/run-requested={})".format
    lock_held = result("LockHeld", "", message="state lock 0c3f is held by ci@runner-7")
    cluster = OperatorScript(
        lambda t: {},
        # the run ended LockHeld; the pass that decides to force-unlock has not come yet
        lambda t: {"lastRunRequest": t, "lastResult": {**lock_held, "trigger": asked(t)}},
        lambda t: {"lastRunRequest": t, "lastResult": {**lock_held, "trigger": asked(t)},
                   "pendingRun": f"{asked(t)}, after force-unlock"},
        lambda t: {"lastRunRequest": t, "answeredRunRequest": t,
                   "lastResult": result("NoDrift", f"{asked(t)}, after force-unlock")})
    out = CliRunner().invoke(cli, ["run", "driftcheck", "network"], obj={"cluster": cluster})
    assert out.exit_code == 0, out.output
    assert out.output.startswith("driftcheck network: NoDrift (0 to add, 0 to change, 0 to destroy) in 1.50s")
    assert "[the last run: on demand (opex.dev/run-requested=" in out.output and "after force-unlock]" in out.output
    assert "LockHeld" not in out.output and cluster.reads == 4


def test_run_driftcheck_stops_at_once_when_the_driftcheck_cannot_run():
    stalled = {"type": "Stalled", "status": "True", "reason": "InvalidSpec", "observedGeneration": 1,
               "message": "spec.lock.orphanedAfter: Value error, must be at least 60s",
               "lastTransitionTime": "2026-11-29T09:00:00Z"}
    out = CliRunner().invoke(cli, ["run", "driftcheck", "network"],
                             obj={"cluster": OperatorScript(lambda t: {"conditions": [stalled]})})
    assert out.exit_code == 1 and "cannot run: InvalidSpec: spec.lock.orphanedAfter" in out.output


def test_describe_shows_what_the_operator_acts_under_not_only_the_spec():
    acting = incident()
    acting["status"]["remediation"] = {"mode": "Manual"}
    assert re.search(r"Mode\s+Manual *\n", text_of(render.describe("incident", acting)))
    assert "Manual (not read by the operator yet)" in text_of(render.describe("incident", incident()))
    dc = {"kind": "DriftCheck", "metadata": {"name": "net", "namespace": "platform"},
          "spec": {"schedule": ["0 9 * * *"], "source": {"configMapRef": {"name": "tf"}},
                   "resolution": {"strategy": "ReportOnly", "approval": "Manual"}},
          "status": {"resolution": {"strategy": "ReportOnly", "approval": "Manual"}}}
    assert re.search(r"Resolution\s+ReportOnly / Manual *\n", text_of(render.describe("driftcheck", dc)))
    rb = {"kind": "Rollback", "metadata": {"name": "rb", "namespace": "platform"},
          "spec": {"approval": "Auto", "dryRun": False}, "status": {"approval": "Auto", "dryRun": False}}
    out = text_of(render.describe("rollback", rb))
    assert re.search(r"Approval\s+Auto \(approved: no\) *\n", out) and re.search(r"Dry run\s+no *\n", out)


def test_describe_incident_says_how_to_undo_what_its_steps_changed():
    contained = incident("Remediating")
    contained["status"]["steps"][0].update(state="Succeeded", undo="aws iam update-access-key --access-key-id "
                                           "AKIAEXAMPLE --status Active --user-name ci-deployer")
    out = text_of(render.describe("incident", contained))
    assert "Undo" in out and "update-access-key" in out and "--status Active" in out
    assert "Undo" not in text_of(render.describe("incident", incident()))  # nothing changed yet, nothing to undo
