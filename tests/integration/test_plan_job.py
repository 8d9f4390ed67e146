"""``opex plan-job``'s run, as its pod runs it, with the real terraform and the S3 backend on moto: the plan
saved in the state's bucket, its apply refused unless the fetched file is the planned and approved one."""
from __future__ import annotations

import asyncio

import boto3

import tfrepo
from opex_operator.policy import Policy
from opex_operator.terraform import jobs
from opex_operator.terraform.plan import checksum
from opex_operator.terraform.plan_job import run

POLICY = {"roles": {"tf": {"roleArn": "arn:aws:iam::123456789012:role/tf"}},
          "rules": [{"namespaces": ["*"], "actions": ["terraform:*"],
                     "terraform": {"role": "tf", "backends": [{"type": "s3", "workspaces": ["*"]}]}}]}


def request(infra, purpose: str, **extra) -> dict:
    spec = {"schedule": ["0 9 * * *"], "source": {"git": {"url": infra.url, "ref": "main", "path": "network"}},
            "backendConfig": infra.config, "runner": "Job", "resolution": {"strategy": "Apply"}}
    return {"purpose": purpose, "result": "r", "namespace": "team-a", "driftCheck": "network", "uid": "u",
            "action": "terraform:Plan" if purpose == jobs.PLAN else "terraform:Apply", "timeout": 120, "spec": spec,
            "policy": Policy.model_validate(POLICY).model_dump(mode="json", by_alias=True, exclude_none=True),
            "configMaps": {}, "secrets": {}, "roleEnv": {"AWS_ACCESS_KEY_ID": "testing",
                                                         "AWS_SECRET_ACCESS_KEY": "testing"}, **extra}


def state(infra) -> bytes:
    return boto3.client("s3").get_object(Bucket=infra.bucket, Key="network/terraform.tfstate")["Body"].read()


def test_a_plan_with_drift_is_saved_in_the_state_bucket_and_its_approved_apply_applies_it(infra, terraform_bin,
                                                                                          tmp_path):
    infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "large"}}, "large")
    planned = asyncio.run(run(request(infra, jobs.PLAN), tmp_path / "w1", tmp_path / "c1", terraform_bin))
    assert planned.error is None and planned.result.exit_code == 2, planned.error or planned.result.stderr
    assert planned.plan["bucket"] == infra.bucket and planned.plan["key"].startswith("opex-plans/team-a/network/")
    saved = boto3.client("s3").get_object(Bucket=infra.bucket, Key=planned.plan["key"])["Body"].read()
    assert jobs.sha256_hex(saved) == planned.plan["sha256"]
    approved = checksum(planned.doc, planned.inputs)
    back = jobs.decode_result(jobs.encode_result(planned))   # through the ConfigMap
    assert checksum(back.doc, back.inputs) == approved

    # A plan file that is not the one planned is refused, and nothing is applied.
    boto3.client("s3").put_object(Bucket=infra.bucket, Key="opex-plans/other", Body=saved + b"x")
    tampered = asyncio.run(run(request(infra, jobs.APPLY, plan={**planned.plan, "key": "opex-plans/other"},
                                       approvedChecksum=approved), tmp_path / "w2", tmp_path / "c2", terraform_bin))
    assert tampered.result.exit_code == 1 and "nothing was applied" in tampered.result.stderr
    # The planned file, but another approval: refused too.
    other = asyncio.run(run(request(infra, jobs.APPLY, plan=planned.plan, approvedChecksum="sha256:" + "0" * 64),
                            tmp_path / "w3", tmp_path / "c3", terraform_bin))
    assert other.result.exit_code == 1 and "not the approved" in other.result.stderr
    assert b'"large"' not in state(infra)

    applied = asyncio.run(run(request(infra, jobs.APPLY, plan=planned.plan, approvedChecksum=approved),
                              tmp_path / "w4", tmp_path / "c4", terraform_bin))
    assert applied.error is None and applied.result.ok, applied.error or applied.result.stderr
    assert b'"large"' in state(infra)


def test_a_local_backend_has_no_bucket_for_the_saved_plan_and_says_so(infra, terraform_bin, tmp_path):
    infra.commit({"network/main.tf": tfrepo.MAIN_TF.replace('backend "s3" {}', 'backend "local" {}')
                  % {"size": "large"}}, "local")
    req = request(infra, jobs.PLAN)
    req["spec"]["backendConfig"] = {}
    req["policy"]["rules"][0]["terraform"]["backends"].append({"type": "local", "workspaces": ["*"]})
    planned = asyncio.run(run(req, tmp_path / "w", tmp_path / "c", terraform_bin))
    assert planned.error["reason"] == "PlanStoreUnavailable" and "spec.runner: InProcess" in planned.error["message"]
