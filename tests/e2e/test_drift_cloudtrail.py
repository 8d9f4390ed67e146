"""Drift checked when someone changes a managed resource, end to end (issue 24, part 2): real terraform on an S3
state in moto, the example stack's EventBridge rule sending CloudTrail calls to its queue, and an operator that
long-polls it. A WAF IP set managed by a DriftCheck is updated out of band; the CloudTrail event of that call runs
the check at once (no schedule slot), and the report names the caller; a deployer's own change is not flagged.

No Terraform provider can be downloaded here (REFERENCE.md), so ``terraform_data`` stands for the
``aws_wafv2_ip_set``: it is imported under the IP set's id (the id the provider would record), and the
out-of-band change is an engineer's ``terraform apply`` from a laptop with other addresses plus the
``UpdateIPSet`` call it stands for, made on moto and published as CloudTrail records it."""
from __future__ import annotations

import datetime as dt
import json

import boto3

import aws_events as eb
import estate_events
import tfrepo
from helpers import wait_for

WAF_TF = tfrepo.MAIN_TF % {"size": "small"} + """
variable "blocked" {
  type    = list(string)
  default = ["198.51.100.0/24"]
}

resource "terraform_data" "blocklist" {
  input = var.blocked
}
"""
TERRAFORM_ROLE = "arn:aws:iam::123456789012:role/opex-terraform"   # hack/policy-local.yaml: a deployer


def driftcheck(repo, namespace: str) -> str:
    return json.dumps({"apiVersion": "opex.dev/v1alpha1", "kind": "DriftCheck", "metadata": {"name": "edge"}, "spec": {
        "schedule": ["0 9 1 1 *"], "environment": "production", "timeoutSeconds": 120, "eventDebounceSeconds": 5,
        "triggers": {"cloudTrail": True}, "backendConfig": repo.config,
        "source": {"git": {"url": repo.url, "ref": "main", "path": "network"}}}})


def status(kubectl, namespace: str) -> dict:
    return kubectl.get("driftcheck", "edge", namespace).get("status") or {}


def conditions(kubectl, namespace: str) -> dict:
    return {c["type"]: c for c in status(kubectl, namespace).get("conditions", [])}


def ip_set():
    waf = boto3.client("wafv2")
    summary = waf.create_ip_set(Name="edge-blocklist", Scope="REGIONAL", IPAddressVersion="IPV4",
                                Addresses=["198.51.100.0/24"])["Summary"]
    return waf, summary


def update(waf, summary, addresses, principal, issuer=None):
    """UpdateIPSet on moto, and the CloudTrail event AWS publishes for it."""
    token = waf.get_ip_set(Name=summary["Name"], Scope="REGIONAL", Id=summary["Id"])["LockToken"]
    answer = waf.update_ip_set(Name=summary["Name"], Scope="REGIONAL", Id=summary["Id"], Addresses=addresses,
                               LockToken=token)
    call = eb.api_call("UpdateIPSet", "wafv2.amazonaws.com", principal,
                       {"name": summary["Name"], "scope": "REGIONAL", "id": summary["Id"], "addresses": addresses,
                        "lockToken": token}, {"nextLockToken": answer["NextLockToken"]}, session_issuer=issuer)
    eb.publish([call])
    return call


def test_an_out_of_band_ip_set_update_runs_the_check_at_once_and_the_report_names_the_caller(
        kubectl, aws, solo_namespace, solo_operator, infra, terraform_bin):
    waf, summary = ip_set()
    infra.commit({"network/main.tf": WAF_TF}, "the edge blocklist")
    work = infra.clone / "network"
    tfrepo.terraform(terraform_bin, work, "import", "-input=false", "-no-color", "terraform_data.blocklist",
                     summary["Id"])
    tfrepo.terraform(terraform_bin, work, "apply", "-auto-approve", "-input=false", "-no-color")
    queues = estate_events.deploy()
    solo_operator.env.update({"OPEX_EVENT_QUEUES": queues.queue_url, "OPEX_EVENT_NAMESPACE": solo_namespace,
                              "OPEX_EVENT_VISIBILITY_SECONDS": "5"})
    solo_operator.start()
    kubectl.apply(driftcheck(infra, solo_namespace), solo_namespace)
    kubectl("annotate", "driftcheck", "edge", "-n", solo_namespace, "opex.dev/run-requested=first")
    first = wait_for(lambda: (s := status(kubectl, solo_namespace)).get("reportRef") and s, timeout=120,
                     what="the first check and its report")
    assert first["lastResult"]["outcome"] == "NoDrift"
    report = kubectl.json("get", "configmap", first["reportRef"]["name"], "-n", solo_namespace)["data"]
    assert summary["Id"] in report["managed.json"]  # the prior state's id, for the intake to match calls to

    # A deployer (Terraform's own role) changes the set: recorded, not flagged. Its run finds no drift.
    update(waf, summary, ["198.51.100.0/24"], f"arn:aws:sts::123456789012:assumed-role/opex-terraform/run-1",
           TERRAFORM_ROLE)
    wait_for(lambda: status(kubectl, solo_namespace).get("lastResult", {}).get("trigger", "").startswith(
        "CloudTrail: UpdateIPSet by assumed-role/opex-terraform"), timeout=90, what="the deployer's change run")
    wait_for(lambda: status(kubectl, solo_namespace).get("lastResult", {}).get("finishedAt"), timeout=90,
             what="its end")
    assert "OutOfBandChange" not in conditions(kubectl, solo_namespace)

    # An engineer applies other addresses from a laptop: the state and the set change outside the pipeline.
    tfrepo.terraform(terraform_bin, work, "apply", "-auto-approve", "-input=false", "-no-color",
                     "-var", 'blocked=["198.51.100.0/24","203.0.113.0/24"]')
    jane = "arn:aws:iam::123456789012:user/jane"
    call = update(waf, summary, ["198.51.100.0/24", "203.0.113.0/24"], jane)
    sent = dt.datetime.now(dt.timezone.utc)
    drifted = wait_for(lambda: (s := status(kubectl, solo_namespace)).get("lastResult", {}).get("outcome")
                       == "DriftDetected" and s, timeout=120, what="the run the change triggered")
    assert drifted["lastResult"]["trigger"] == "CloudTrail: UpdateIPSet by user/jane"
    assert dt.datetime.fromisoformat(drifted["lastResult"]["startedAt"].replace("Z", "+00:00")) - sent \
        < dt.timedelta(seconds=60)  # within the debounce and the queue's poll, not at the 1 January slot
    [change] = [c for c in drifted["changes"] if c["principal"] == jane]
    assert change == {"address": "terraform_data.blocklist", "eventName": "UpdateIPSet",
                      "eventId": call.detail["eventID"], "principal": jane, "time": change["time"],
                      "sourceAddress": "203.0.113.77", "userAgent": call.detail["userAgent"], "deployer": False}
    cond = conditions(kubectl, solo_namespace)
    assert "changed by arn:aws:iam::123456789012:user/jane" in cond["Drifted"]["message"]
    assert cond["OutOfBandChange"]["status"] == "True" and jane in cond["OutOfBandChange"]["message"]
    events = [e for e in kubectl.events(solo_namespace, "edge") if e["reason"] == "OutOfBandChange"]
    assert events and jane in events[0]["message"]
    report = json.loads(kubectl.json("get", "configmap", drifted["reportRef"]["name"], "-n", solo_namespace)
                        ["data"]["summary.json"])
    assert [c["principal"] for c in report["changes"]] == [jane]
    assert 'opex_driftcheck_out_of_band_changes_total{environment="production"} 1.0' in solo_operator.metrics()
    wait_for(lambda: boto3.client("sqs").get_queue_attributes(
        QueueUrl=queues.queue_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
        "ApproximateNumberOfMessages"] == "0", timeout=30, what="the queue emptied")
