"""DriftCheck runs as Jobs: the Job built from the chart's template, names that let a restarted operator
find its Job, adoption instead of a second Job, the result ConfigMap, the apply's checksum refusal."""
from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from opex_operator.api.driftcheck import DriftCheckSpec, Runner
from opex_operator.policy import Policy
from opex_operator.ports.objects import ObjectRef
from opex_operator.ports.terraform import Result, SourceError, TerraformError
from opex_operator.terraform import jobs
from opex_operator.terraform.job_runner import JobWorkspaces, load_template
from opex_operator.terraform.plan import checksum

ROOT = Path(__file__).resolve().parents[2]
OWNER = ObjectRef("driftchecks", "team-a", "network", "uid-1", "DriftCheck")
SPEC = DriftCheckSpec.model_validate({"schedule": ["0 9 * * *"], "source": {"configMapRef": {"name": "network-tf"}},
                                      "runner": "Job", "resolution": {"strategy": "Apply"}})
POLICY = Policy.model_validate({"roles": {"tf": {"roleArn": "arn:aws:iam::123456789012:role/tf"}},
                                "rules": [{"namespaces": ["*"], "actions": ["terraform:*"],
                                           "terraform": {"role": "tf", "backends": [{"type": "s3"}]}}]})


def chart_template() -> dict:
    """The Job template as the chart renders it (helm template), the operator's security context in it."""
    helm = next(Path.home().glob(".cache/opex/bin/helm-*/helm"), None)
    if helm is None:
        pytest.skip("helm is not in the cache (make venv builds it)")
    out = subprocess.run([str(helm), "template", "t", str(ROOT / "charts" / "opex-operator"),
                          "--show-only", "templates/plan-job.yaml"], capture_output=True, text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    return yaml.safe_load(docs[0]["data"]["plan-job.yaml"])


def test_the_job_is_the_charts_template_with_the_runs_name_owner_deadline_and_input():
    template = chart_template()
    job = jobs.build_job(template, "network-plan-0123456789", OWNER, jobs.PLAN, 1800, "network-plan-0123456789-input")
    assert job["metadata"]["name"] == "network-plan-0123456789" and job["metadata"]["namespace"] == "team-a"
    assert job["metadata"]["ownerReferences"] == [{"apiVersion": "opex.dev/v1alpha1", "kind": "DriftCheck",
                                                   "name": "network", "uid": "uid-1", "controller": True,
                                                   "blockOwnerDeletion": False}]
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 1800
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "opex-plan-job"
    # The operator's own security context, from the same chart helpers as its Deployment.
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65532
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["command"] == ["opex", "plan-job", "--input", "/run/opex/input/input.json"]
    assert {"name": "opex-input", "mountPath": "/run/opex/input", "readOnly": True} in container["volumeMounts"]
    assert {"name": "opex-input", "secret": {"secretName": "network-plan-0123456789-input", "defaultMode": 0o400}} \
        in pod["volumes"]
    # No credentials of the operator: no AWS key, no token file, no kubeconfig in the pod's environment.
    names = {e["name"] for e in container.get("env", [])}
    assert not names & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "KUBECONFIG",
                        "AWS_WEB_IDENTITY_TOKEN_FILE"}
    assert "opex-input" not in json.dumps(template)  # the template is not modified


def test_a_template_without_a_container_is_refused(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("apiVersion: batch/v1\nkind: Job\nspec: {template: {spec: {}}}\n")
    with pytest.raises(ValueError, match="not a Job template"):
        load_template(path)


def test_the_name_is_the_same_for_the_same_slot_and_differs_for_another():
    first = jobs.job_name("network", jobs.PLAN, "uid-1", "2026-12-06T09:00:00+00:00")
    assert first == jobs.job_name("network", jobs.PLAN, "uid-1", "2026-12-06T09:00:00+00:00")
    assert first != jobs.job_name("network", jobs.PLAN, "uid-1", "2026-12-06T10:00:00+00:00")
    assert first != jobs.job_name("network", jobs.APPLY, "uid-1", "2026-12-06T09:00:00+00:00")
    assert first != jobs.job_name("network", jobs.PLAN, "uid-2", "2026-12-06T09:00:00+00:00")  # a re-created DriftCheck
    long = jobs.job_name("a." + "x" * 250, jobs.APPLY, "u", "s")
    assert len(long) <= 63 and long.startswith("a-xx") and "." not in long


def test_the_result_round_trips_through_the_configmap():
    res = jobs.JobResult("1.11.4", "configmap/network-tf", None, Result("plan", 2, '{"type":"x"}', "", 1.5),
                         {"resource_changes": []}, {"configuration": "abc"}, {"bucket": "b", "key": "k", "sha256": "s"})
    back = jobs.decode_result(jobs.encode_result(res))
    assert back == res


def test_a_result_past_a_configmaps_mebibyte_becomes_a_result_too_large_error():
    noise = base64.b64encode(os.urandom(1_500_000)).decode()  # incompressible, 2 MB of text
    res = jobs.JobResult("1.11.4", "r", result=Result("plan", 2, noise, "", 1.0), doc={"big": noise})
    binary = jobs.encode_result(res)
    assert len(base64.b64decode(binary[jobs.RESULT_KEY])) < jobs.MAX_RESULT_BYTES
    back = jobs.decode_result(binary)
    assert back.result is None and back.error["reason"] == "ResultTooLarge"
    assert "spec.runner: InProcess" in back.error["message"]


def test_a_result_that_is_not_one_is_refused():
    with pytest.raises(ValueError, match="cannot be read"):
        jobs.decode_result({jobs.RESULT_KEY: base64.b64encode(b"not gzip").decode()})
    with pytest.raises(ValueError, match="not an object"):
        jobs.decode_result({jobs.RESULT_KEY: base64.b64encode(gzip.compress(b"[1]")).decode()})


def test_an_apply_refuses_a_plan_file_or_a_plan_that_is_not_the_approved_one():
    data = b"PK plan file"
    sha = jobs.sha256_hex(data)
    jobs.verify_plan(data, sha, "sha256:aa", "sha256:aa")
    with pytest.raises(jobs.JobRefused, match="not the .* the plan Job saved; nothing was applied"):
        jobs.verify_plan(data + b"!", sha, "sha256:aa", "sha256:aa")
    with pytest.raises(jobs.JobRefused, match="not the approved sha256:aa; nothing was applied"):
        jobs.verify_plan(data, sha, "sha256:bb", "sha256:aa")


def test_job_state_reads_complete_and_failed_conditions():
    assert not jobs.job_state({"status": {"active": 1}}).finished
    assert jobs.job_state({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}).succeeded
    failed = jobs.job_state({"status": {"conditions": [{"type": "Failed", "status": "True",
                                                        "reason": "DeadlineExceeded", "message": "m"}]}})
    assert failed.finished and not failed.succeeded and failed.reason == "DeadlineExceeded"


class FakeApi:
    """The API server as the Job runner sees it: Jobs finish as ``finish`` says; results are whatever
    ``results`` holds by Job name when it finishes."""

    def __init__(self, finish=None, results=None):
        self.jobs: dict[str, dict] = {}
        self.secrets: dict[str, dict] = {}
        self.config_maps: dict[str, dict] = {"network-tf": {"data": {"main.tf": "x"}, "labels": {}}}
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.finish = finish or (lambda job: {"conditions": [{"type": "Complete", "status": "True"}]})
        self.results = results or {}
        self.dc = {"metadata": {"uid": "uid-1"}, "status": {"runningSince": "2026-12-06T09:00:00Z"}}

    def get(self, plural, namespace, name):
        return self.dc

    def create_job(self, namespace, body):
        name = body["metadata"]["name"]
        if name in self.jobs:
            return None
        self.created.append(name)
        self.jobs[name] = {**body, "metadata": {**body["metadata"], "uid": f"job-{name}"}, "status": {"active": 1}}
        return self.jobs[name]

    def get_job(self, namespace, name):
        job = self.jobs.get(name)
        if job is not None and not jobs.job_state(job).finished:
            job["status"] = self.finish(job)
            if jobs.job_state(job).finished and name in self.results:
                labels = job["metadata"]["labels"]
                self.config_maps[name] = {"binary": jobs.encode_result(self.results[name]), "labels": labels}
        return job

    def list_jobs(self, namespace, selector):
        wanted = dict(kv.split("=") for kv in selector.split(","))
        return [j for j in self.jobs.values() if wanted.items() <= j["metadata"]["labels"].items()]

    def delete_job(self, namespace, name):
        self.deleted.append(name)
        self.jobs.pop(name, None)

    def create_secret(self, namespace, name, data, owner, labels=None):
        self.secrets[name] = {"data": data, "owner": owner}

    def config_map_binary(self, namespace, name):
        cm = self.config_maps.get(name)
        return None if cm is None else cm.get("binary", {})

    def config_map_data(self, namespace, name):
        cm = self.config_maps.get(name)
        return None if cm is None else cm.get("data", {})

    def secret_data(self, namespace, name):
        return None

    def config_map_names(self, namespace, selector):
        wanted = dict(kv.split("=") for kv in selector.split(","))
        return [n for n, cm in self.config_maps.items() if wanted.items() <= cm.get("labels", {}).items()]

    def delete_config_map(self, namespace, name):
        self.config_maps.pop(name, None)


class InProcess:
    def __init__(self):
        self.opened: list[str] = []
        self.checked_later: list[bool] = []

    async def open(self, namespace, name, spec, timeout, grant, purpose="", check_source_later=False):
        self.opened.append(grant.action)
        self.checked_later.append(check_source_later)
        return "in-process session"

    def discard(self, namespace, name):
        pass


TEMPLATE = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {"containers": [{"name": "plan"}]}}}}


def runner(api, inner=None):
    return JobWorkspaces(inner or InProcess(), api, POLICY, TEMPLATE, credentials=lambda key: {"AWS_ACCESS_KEY_ID": key},
                         poll=0)


def plan_result(exit_code=2):
    doc = {"resource_changes": [{"address": "terraform_data.a", "change": {"actions": ["update"], "before": {"input": 1},
                                                                          "after": {"input": 2}}}]}
    return jobs.JobResult("1.11.4", "configmap/network-tf", None, Result("plan", exit_code, "{}", "", 1.0), doc,
                          {"configuration": "c", "backend": "b"}, {"bucket": "state", "key": "k", "sha256": "s"})


def name_for(purpose, slot):
    return jobs.job_name("network", purpose, "uid-1", slot)


def test_a_plan_runs_as_a_job_with_the_namespace_role_and_answers_through_the_port():
    name = name_for(jobs.PLAN, "2026-12-06T09:00:00Z")
    api = FakeApi(results={name: plan_result()})
    grant = POLICY.terraform_grant("team-a", "terraform:Plan", "default")
    session = asyncio.run(runner(api).open("team-a", "network", SPEC, 600, grant))
    assert api.created == [name] and api.deleted == [name]
    assert asyncio.run(session.plan("60s")).exit_code == 2
    assert session.version == "1.11.4" and session.revision == "configmap/network-tf" and session.has_saved_plan()
    assert checksum(asyncio.run(session.show_plan()), session.plan_inputs()).startswith("sha256:")
    data = json.loads(api.secrets[f"{name}-input"]["data"]["input.json"])
    assert data["roleEnv"] == {"AWS_ACCESS_KEY_ID": "tf"} and data["configMaps"] == {"network-tf": {"main.tf": "x"}}
    assert api.secrets[f"{name}-input"]["owner"]["kind"] == "Job"  # collected with the Job
    assert name in api.config_maps  # the last plan's result stays for its apply


def test_a_restarted_operator_adopts_the_job_still_running_instead_of_creating_a_second():
    old = name_for(jobs.PLAN, "2026-12-06T08:59:00Z")   # started by the operator that stopped
    api = FakeApi(results={old: plan_result(0)})
    api.jobs[old] = {"metadata": {"name": old, "labels": {jobs.OWNER_LABEL: "uid-1", jobs.PURPOSE_LABEL: jobs.PLAN}},
                     "status": {"active": 1}}
    grant = POLICY.terraform_grant("team-a", "terraform:Plan", "default")
    session = asyncio.run(runner(api).open("team-a", "network", SPEC, 600, grant))
    assert api.created == [] and asyncio.run(session.plan("60s")).exit_code == 0


def test_a_job_of_the_same_name_is_adopted_when_the_api_server_refuses_a_second():
    name = name_for(jobs.PLAN, "2026-12-06T09:00:00Z")
    api = FakeApi(results={name: plan_result(0)})
    api.jobs[name] = {"metadata": {"name": name, "labels": {}}, "status": {"active": 1}}  # another operator's
    grant = POLICY.terraform_grant("team-a", "terraform:Plan", "default")
    asyncio.run(runner(api).open("team-a", "network", SPEC, 600, grant))
    assert api.created == [] and not api.secrets  # its input is the creator's


def test_a_job_killed_before_it_reported_is_a_failed_plan_that_says_so():
    api = FakeApi(finish=lambda job: {"conditions": [{"type": "Failed", "status": "True",
                                                      "reason": "BackoffLimitExceeded", "message": "Job has reached "
                                                      "the specified backoff limit"}]})
    grant = POLICY.terraform_grant("team-a", "terraform:Plan", "default")
    with pytest.raises(TerraformError) as err:
        asyncio.run(runner(api).open("team-a", "network", SPEC, 600, grant))
    assert err.value.result.command == "plan" and not err.value.result.timed_out
    assert "failed before it reported (BackoffLimitExceeded" in err.value.result.stderr


def test_a_job_past_its_deadline_is_a_timed_out_plan():
    api = FakeApi(finish=lambda job: {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]})
    grant = POLICY.terraform_grant("team-a", "terraform:Plan", "default")
    with pytest.raises(TerraformError) as err:
        asyncio.run(runner(api).open("team-a", "network", SPEC, 600, grant))
    assert err.value.result.timed_out


def test_what_the_job_reported_as_a_source_error_is_raised_as_one():
    name = name_for(jobs.PLAN, "2026-12-06T09:00:00Z")
    api = FakeApi(results={name: jobs.JobResult(error={"type": "SourceError", "reason": "PolicyRefused",
                                                       "message": "terraform:Plan refused: backend local"})})
    grant = POLICY.terraform_grant("team-a", "terraform:Plan", "default")
    with pytest.raises(SourceError) as err:
        asyncio.run(runner(api).open("team-a", "network", SPEC, 600, grant))
    assert err.value.reason == "PolicyRefused"


def test_an_approved_apply_runs_in_a_second_job_with_the_saved_plans_checksum():
    plan_name = name_for(jobs.PLAN, "2026-12-06T09:00:00Z")
    api = FakeApi(results={plan_name: plan_result()})
    grant = POLICY.terraform_grant("team-a", "terraform:Plan", "default")
    asyncio.run(runner(api).open("team-a", "network", SPEC, 600, grant))
    api.dc["status"]["lastResolution"] = {"planChecksum": "sha256:x", "time": "2026-12-06T09:05:00Z"}
    apply_name = name_for(jobs.APPLY, "sha256:x@2026-12-06T09:05:00Z")
    api.results[apply_name] = jobs.JobResult("1.11.4", "r", result=Result("apply", 0, "Apply complete!", "", 2.0))
    session = asyncio.run(runner(api).open("team-a", "network", SPEC, 600,
                                           POLICY.terraform_grant("team-a", "terraform:Apply", "default")))
    assert session.has_saved_plan()
    applied = asyncio.run(session.apply_saved_plan("60s"))
    assert applied.ok and api.created == [plan_name, apply_name]
    data = json.loads(api.secrets[f"{apply_name}-input"]["data"]["input.json"])
    assert data["approvedChecksum"] == checksum(plan_result().doc, plan_result().inputs)
    assert data["plan"] == {"bucket": "state", "key": "k", "sha256": "s"}
    assert apply_name not in api.config_maps  # an apply's result is pruned once read


def test_other_runs_and_in_process_driftchecks_stay_in_the_operator():
    api, inner = FakeApi(), InProcess()
    jobs_runner = runner(api, inner)
    in_process = SPEC.model_copy(update={"runner": "InProcess"})
    asyncio.run(jobs_runner.open("team-a", "network", in_process, 60, POLICY.terraform_grant("team-a", "terraform:Plan", "d")))
    asyncio.run(jobs_runner.open("team-a", "network", SPEC, 60, POLICY.terraform_grant("team-a", "terraform:Import", "d")))
    asyncio.run(jobs_runner.open("team-a", "network", SPEC, 60, POLICY.terraform_grant("team-a", "terraform:Plan", "d"),
                                 purpose="unlock"))
    assert inner.opened == ["terraform:Plan", "terraform:Import", "terraform:Plan"] and api.created == []


def test_a_lock_is_not_force_unlocked_while_a_job_of_the_driftcheck_runs():
    api, inner = FakeApi(), InProcess()
    api.jobs["network-plan-1"] = {"metadata": {"name": "network-plan-1", "labels": {jobs.OWNER_LABEL: "uid-1",
                                                                                     jobs.PURPOSE_LABEL: jobs.PLAN}},
                                  "status": {"active": 1}}
    grant = POLICY.terraform_grant("team-a", "terraform:ForceUnlock", "default")
    with pytest.raises(SourceError) as err:
        asyncio.run(runner(api, inner).open("team-a", "network", SPEC, 60, grant))
    assert err.value.reason == "LockHolderRunning" and inner.opened == []
    api.jobs["network-plan-1"]["status"] = {"conditions": [{"type": "Failed", "status": "True"}]}
    asyncio.run(runner(api, inner).open("team-a", "network", SPEC, 60, grant))
    assert inner.opened == ["terraform:ForceUnlock"]


def test_without_the_charts_template_a_driftcheck_asking_for_a_job_fails_saying_so():
    api, inner = FakeApi(), InProcess()
    no_template = JobWorkspaces(inner, api, POLICY, None, Runner.IN_PROCESS, credentials=lambda key: {})
    with pytest.raises(SourceError) as err:
        asyncio.run(no_template.open("team-a", "network", SPEC, 60, POLICY.terraform_grant("team-a", "terraform:Plan", "d")))
    assert err.value.reason == "RunnerUnavailable" and "spec.runner: InProcess" in str(err.value)
    unset = SPEC.model_copy(update={"runner": None})   # the default without the chart: in process
    asyncio.run(no_template.open("team-a", "network", unset, 60, POLICY.terraform_grant("team-a", "terraform:Plan", "d")))
    assert inner.opened == ["terraform:Plan"] and api.created == []


def test_a_role_that_cannot_be_assumed_fails_the_run_before_any_job_is_created():
    def refuse(key):
        raise RuntimeError("AccessDenied")
    api = FakeApi()
    failing = JobWorkspaces(InProcess(), api, POLICY, TEMPLATE, credentials=refuse, poll=0)
    with pytest.raises(SourceError) as err:
        asyncio.run(failing.open("team-a", "network", SPEC, 60, POLICY.terraform_grant("team-a", "terraform:Plan", "d")))
    assert err.value.reason == "CredentialsUnavailable" and api.created == [] and not api.secrets
