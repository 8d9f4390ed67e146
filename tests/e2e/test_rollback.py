"""Rollbacks on the local stack: Lambda code and aliases, static sites with CloudFront, faults."""
from __future__ import annotations

import json
import threading
import time

import boto3
import pytest
from moto.s3.models import S3Backend

import estate
from helpers import bump, wait_for


def rollback(name: str, **spec) -> str:
    return json.dumps({"apiVersion": "opex.dev/v1alpha1", "kind": "Rollback", "metadata": {"name": name},
                       "spec": spec})


def status_of(kubectl, namespace, name) -> dict:
    return kubectl.get("rollback", name, namespace).get("status") or {}


def wait_phase(kubectl, namespace, name, *phases, timeout=60) -> dict:
    return wait_for(lambda: (s := status_of(kubectl, namespace, name)).get("phase") in phases and s, timeout=timeout,
                    what=f"{name} in {phases}")


def site_spec(site, **extra) -> dict:
    return {"staticSite": {"bucket": site.bucket, "backupPrefix": site.backup_prefix, "deleteExtraneous": True,
                           "cloudFront": {"distributionId": site.distribution_id}}, "approval": "Auto", **extra}


def test_lambda_back_to_the_previous_of_three_versions_after_approval(kubectl, namespace, aws, operator):
    shas = estate.lambda_with_versions("pricing-api", versions=3, broken_latest=False)
    kubectl.apply(rollback("pricing-previous", **{"lambda": {"functionName": "pricing-api", "to": {"previous": True}}}),
                  namespace)
    waiting = wait_phase(kubectl, namespace, "pricing-previous", "AwaitingApproval")
    ready = next(c for c in waiting["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and "spec.approved: true" in ready["message"]
    lam = boto3.client("lambda")
    assert lam.get_function(FunctionName="pricing-api")["Configuration"]["CodeSha256"] == shas[2]

    kubectl("patch", "rollback", "pricing-previous", "-n", namespace, "--type=merge", "-p", '{"spec":{"approved":true}}')
    done = wait_phase(kubectl, namespace, "pricing-previous", "Succeeded", "Failed")
    assert done["phase"] == "Succeeded", done.get("message")
    assert lam.get_function(FunctionName="pricing-api")["Configuration"]["CodeSha256"] == shas[1]
    assert (done["from"]["codeSha256"], done["to"]["codeSha256"], done["to"]["version"]) == (shas[2], shas[1], "2")
    assert done["from"]["description"].startswith("v3 = $LATEST") and done["to"]["description"].startswith("v2")
    assert {c["type"]: c["status"] for c in done["conditions"]} == {"Ready": "True", "RolledBack": "True"}
    assert done["startedAt"] <= done["finishedAt"]
    reasons = [e["reason"] for e in kubectl.events(namespace, "pricing-previous")]
    for reason in ("AwaitingApproval", "InProgress", "Captured", "Verifying", "Verified", "RolledBack"):
        assert reason in reasons
    assert operator.metric("opex_rollbacks_total", target_type="lambda", outcome="succeeded") >= 1
    assert operator.metric("opex_rollback_duration_seconds_count", target_type="lambda") >= 1
    # a finished rollback applied again does nothing
    again = bump(kubectl, "rollback", "pricing-previous", namespace, '{"spec":{"approved":false}}')
    assert again["finishedAt"] == done["finishedAt"] and again["phase"] == "Succeeded"


def test_alias_is_pointed_back_and_environment_set(kubectl, namespace, aws, operator):
    estate.lambda_with_versions("search-api", versions=3, alias="live", broken_latest=False)
    kubectl.apply(rollback("search-live", approval="Auto", **{"lambda": {
        "functionName": "search-api", "alias": "live", "to": {"previous": True},
        "environment": {"FEATURE_RANKING": "off"}}}), namespace)
    done = wait_phase(kubectl, namespace, "search-live", "Succeeded", "Failed")
    assert done["phase"] == "Succeeded", done.get("message")
    lam = boto3.client("lambda")
    assert lam.get_alias(FunctionName="search-api", Name="live")["FunctionVersion"] == "2"
    env = lam.get_function(FunctionName="search-api")["Configuration"]["Environment"]["Variables"]
    assert env == {"STAGE": "prod", "FEATURE_RANKING": "off"}
    assert (done["from"]["version"], done["to"]["version"]) == ("3", "2")


def test_static_site_is_restored_byte_for_byte_and_invalidated(kubectl, namespace, aws, operator):
    site = estate.static_site()
    kubectl.apply(rollback("www-restore", **site_spec(site)), namespace)
    done = wait_phase(kubectl, namespace, "www-restore", "Succeeded", "Failed")
    assert done["phase"] == "Succeeded", done.get("message")
    s3 = boto3.client("s3")
    for name, body in site.backup.items():
        assert s3.get_object(Bucket=site.bucket, Key=name)["Body"].read() == body, name
        assert s3.get_object(Bucket=site.bucket, Key=site.backup_prefix + name)["Body"].read() == body
    live = {o["Key"] for o in s3.list_objects_v2(Bucket=site.bucket)["Contents"]}
    assert not set(site.extra) & live
    assert done["progress"] == {"total": 12, "copied": 4, "unchanged": 8, "extraneous": 2, "deleted": 2}
    inv = done["invalidation"]
    assert inv["status"].lower() == "completed" and inv["paths"] == ["/*"]
    listed = boto3.client("cloudfront").list_invalidations(DistributionId=site.distribution_id)
    assert [i["Id"] for i in listed["InvalidationList"]["Items"]] == [inv["id"]]
    manifest = kubectl.get("configmap", done["from"]["manifestRef"]["name"], namespace)
    assert "manifest.json.gz" in manifest["binaryData"]
    assert done["from"]["objects"] == 14 and done["to"]["objects"] == 12
    assert operator.metric("opex_rollbacks_total", target_type="static_site", outcome="succeeded") >= 1


def test_static_site_dry_run_reports_the_plan_and_changes_nothing(kubectl, namespace, aws, operator):
    site = estate.static_site()
    s3 = boto3.client("s3")
    before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=site.bucket)["Contents"]}
    kubectl.apply(rollback("www-dry", **site_spec(site, dryRun=True)), namespace)
    done = wait_phase(kubectl, namespace, "www-dry", "Succeeded", "Failed")
    assert "would copy 4 objects (8 unchanged), delete 2 not in the backup" in done["message"]
    rolled = next(c for c in done["conditions"] if c["type"] == "RolledBack")
    assert (rolled["status"], rolled["reason"]) == ("False", "DryRun")
    assert {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=site.bucket)["Contents"]} == before
    assert boto3.client("cloudfront").list_invalidations(DistributionId=site.distribution_id)["InvalidationList"] \
        .get("Quantity", 0) == 0


class Copies(list):
    """S3 copies by destination key, in order. With ``hold_at`` set, the copy of that number waits
    (``held`` is set) until ``release`` is set: a batch is then certainly in flight."""

    def __init__(self):
        super().__init__()
        self.hold_at: int | None = None
        self.held, self.release = threading.Event(), threading.Event()


@pytest.fixture
def slow_copies(monkeypatch):
    """Counts S3 copies (by destination key) in moto's backend; each takes 20 ms."""
    copies = Copies()
    original = S3Backend.copy_object
    lock = threading.Lock()

    def copy(self, src_key, dest_bucket_name, dest_key_name, *args, **kwargs):
        time.sleep(0.02)
        with lock:
            copies.append(dest_key_name)
            hold = len(copies) == copies.hold_at
        if hold:
            copies.held.set()
            copies.release.wait(60)
        return original(self, src_key, dest_bucket_name, dest_key_name, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "copy_object", copy)
    return copies


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_restart_mid_copy_resumes_without_recopying(kubectl, solo_namespace, aws, solo_operator, slow_copies, how):
    site = estate.static_site(objects=400, changed=400, extra=0)
    solo_operator.env["OPEX_SHUTDOWN_GRACE"] = "30"  # SIGTERM: a batch in flight (at most 5 s) has time to finish
    if how == "SIGKILL":
        slow_copies.hold_at = 120  # the 120th copy waits for the kill: certainly mid-batch
    solo_operator.start()
    kubectl.apply(rollback("www-big", **site_spec(site)), solo_namespace)
    wait_for(lambda: len(slow_copies) >= 120, timeout=60, what="120 copies")
    if how == "SIGKILL":
        assert slow_copies.held.wait(10)
        solo_operator.kill()  # mid-batch: the batch's step stays Running under the dead process
        slow_copies.release.set()  # S3 finishes the copy the dead operator asked for
    else:
        solo_operator.stop()  # the batch in flight finishes, then the operator goes
    copied_before = len(slow_copies)
    assert copied_before < 400
    solo_operator.start()
    done = wait_phase(kubectl, solo_namespace, "www-big", "Succeeded", "Failed", timeout=120)
    assert done["phase"] == "Succeeded", done.get("message")
    assert len(slow_copies) == 400 and len(set(slow_copies)) == 400, "an object was copied twice"
    assert done["progress"]["copied"] == 400
    interrupted = [t for t in done["timeline"] if t["reason"] == "Interrupted"]
    assert bool(interrupted) == (how == "SIGKILL"), done["timeline"]


def test_abort_in_flight_stops_copying_and_says_what_was_restored(kubectl, namespace, aws, operator, slow_copies):
    site = estate.static_site(objects=600, changed=600, extra=0)
    kubectl.apply(rollback("www-abort", **site_spec(site)), namespace)
    wait_for(lambda: len(slow_copies) >= 50, timeout=60, what="copying to start")
    kubectl("patch", "rollback", "www-abort", "-n", namespace, "--type=merge", "-p", '{"spec":{"abort":true}}')
    done = wait_phase(kubectl, namespace, "www-abort", "Aborted")
    stopped_at = len(slow_copies)
    bump(kubectl, "rollback", "www-abort", namespace, '{"spec":{"progressDeadlineSeconds":601}}')  # one pass more
    assert len(slow_copies) == stopped_at == done["progress"]["copied"], "copies went on after the abort"
    assert stopped_at < 600
    assert "aborted by spec.abort" in done["message"] and "of 600 differing objects" in done["message"]
    assert "ConfigMap www-abort-from" in done["message"]
    assert next(c for c in done["conditions"] if c["type"] == "Ready")["reason"] == "AbortRequested"
    assert operator.metric("opex_rollback_aborts_total", reason="requested") >= 1


@pytest.mark.parametrize("make_spec,reason,phrase", [
    (lambda s: {"lambda": {"functionName": "ghost-fn", "to": {"previous": True}}},
     "NotFound", "function ghost-fn does not exist; nothing was changed"),
    (lambda s: {"lambda": {"functionName": "pricing-api", "to": {"version": "9"}}},
     "NotFound", "version 9 of function pricing-api does not exist"),
    (lambda s: {"staticSite": {"bucket": "no-such-site", "backupPrefix": "b/"}},
     "NotFound", "bucket no-such-site does not exist; nothing was changed"),
    (lambda s: {"staticSite": {"bucket": s.bucket, "backupPrefix": "backups/1999-01-01/", "deleteExtraneous": True}},
     "EmptyBackup", "has no objects; nothing was restored and nothing deleted"),
    (lambda s: {"staticSite": {"bucket": s.bucket, "backupPrefix": s.backup_prefix,
                               "cloudFront": {"distributionId": "E0000NOTHERE"}}},
     "NotFound", "CloudFront distribution E0000NOTHERE does not exist; nothing was changed"),
])
def test_missing_things_fail_naming_them_and_change_nothing(kubectl, namespace, aws, operator, make_spec, reason,
                                                             phrase):
    site = estate.static_site()
    estate.lambda_with_versions("pricing-api", versions=2, broken_latest=False)
    s3 = boto3.client("s3")
    before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=site.bucket)["Contents"]}
    sha = boto3.client("lambda").get_function(FunctionName="pricing-api")["Configuration"]["CodeSha256"]
    kubectl.apply(rollback("bad", approval="Auto", **make_spec(site)), namespace)
    done = wait_phase(kubectl, namespace, "bad", "Failed", "Succeeded")
    assert done["phase"] == "Failed"
    ready = next(c for c in done["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == reason and phrase in ready["message"]
    assert {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=site.bucket)["Contents"]} == before
    assert boto3.client("lambda").get_function(FunctionName="pricing-api")["Configuration"]["CodeSha256"] == sha
