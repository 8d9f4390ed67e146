"""Guard rails of automation on the local stack (issue 26): the circuit breaker holds the automated
changes of a namespace past the policy's limit, across an operator restart, until `opex breaker reset`.

The operator here runs with its own policy (the local one, with limits.automatedChangesPerHour: 3 for
this module's namespace) as the chart's ServiceAccount, its breaker Leases in the release namespace.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import pytest
import yaml

import tfrepo
from helpers import OperatorProcess, chart_service_account, forbidden_lines, wait_for
from test_cli import opex
from test_driftcheck import conditions, driftcheck, last_result, resolution, run_now, wait_run

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 3


@pytest.fixture(scope="module")
def limited(cluster, kubectl, helm, aws_server, terraform_bin, tmp_path_factory):
    """(namespace, operator): the namespace's Auto changes are limited to LIMIT an hour."""
    suffix = uuid.uuid4().hex[:5]
    ns, home = f"breaker-{suffix}", "opex-breaker"  # not e2e-*: the session operator must not see it
    kubectl("create", "namespace", ns)
    workdir = tmp_path_factory.mktemp("breaker")
    identity = chart_service_account(kubectl, helm, workdir, home, f"b{suffix}", sets=(f"watch.namespaces={{{ns}}}",))
    policy = yaml.safe_load((ROOT / "hack" / "policy-local.yaml").read_text())
    limited_rule = {**policy["rules"][0], "namespaces": [ns],
                    "limits": {**policy["rules"][0].get("limits", {}), "automatedChangesPerHour": LIMIT}}
    policy["rules"].insert(0, limited_rule)
    (workdir / "policy.yaml").write_text(yaml.safe_dump(policy))
    proc = OperatorProcess(identity, aws_server, terraform_bin, workdir, namespaces=ns, extra_env={
        "OPEX_POLICY_FILE": str(workdir / "policy.yaml"), "OPEX_LEASE_NAMESPACE": home})
    proc.start()
    yield ns, proc
    kubectl.delete_opex_objects(ns)
    proc.stop()
    refused = forbidden_lines(proc.log_text())
    assert not refused, "the chart's RBAC refused calls the operator made:\n" + "\n".join(refused[:20])


def state(infra) -> bytes:
    return boto3.client("s3").get_object(Bucket=infra.bucket, Key="network/terraform.tfstate")["Body"].read()


def test_past_the_limit_auto_waits_with_circuit_open_across_a_restart_until_a_reset(cluster, kubectl, limited,
                                                                                     infra):
    ns, operator = limited
    kubectl.apply(driftcheck(infra, resolution={"strategy": "Apply", "approval": "Auto"}), ns)
    for size in ("s1", "s2", "s3"):
        infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": size}}, f"network: {size}")
        planned = wait_run(kubectl, ns, run_now(kubectl, ns))["planChecksum"]
        wait_for(lambda: resolution(kubectl, ns).get("planChecksum") == planned
                 and resolution(kubectl, ns).get("outcome") == "Succeeded", timeout=90, what=f"the Auto apply of {size}")
        assert f'"{size}"'.encode() in state(infra)
        wait_for(lambda: last_result(kubectl, ns).get("trigger", "").startswith("verification")
                 and last_result(kubectl, ns).get("finishedAt"), timeout=90, what="the verification run")
    assert operator.metric("opex_automated_changes_total") == LIMIT

    infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "s4"}}, "network: s4")
    fourth = wait_run(kubectl, ns, run_now(kubectl, ns))["planChecksum"]
    held = wait_for(lambda: (c := conditions(kubectl, ns)).get("CircuitOpen", {}).get("status") == "True" and c,
                    timeout=60, what="the breaker holding the 4th change")
    assert f"{LIMIT} automated change(s) in namespace {ns}" in held["CircuitOpen"]["message"]
    assert f"opex breaker reset {ns}" in held["CircuitOpen"]["message"]
    assert held["Remediating"]["reason"] == "CircuitOpen" and fourth in held["Remediating"]["message"]
    assert any(e["reason"] == "CircuitOpen" and e["type"] == "Warning" for e in kubectl.events(ns, "network"))
    assert operator.metric("opex_circuit_breaker_open", resource_namespace=ns) == 1
    assert resolution(kubectl, ns)["planChecksum"] != fourth and b'"s4"' not in state(infra)

    operator.stop()  # the count is in a Lease, not in the operator's memory
    operator.start()
    assert wait_run(kubectl, ns, run_now(kubectl, ns))["planChecksum"] == fourth
    wait_for(lambda: operator.metric("opex_circuit_breaker_open", resource_namespace=ns) == 1, timeout=60,
             what="the restarted operator holding it again")  # its gauges start empty: this process decided
    assert conditions(kubectl, ns)["Remediating"]["reason"] == "CircuitOpen"
    assert b'"s4"' not in state(infra) and operator.metric("opex_automated_changes_total") in (None, 0.0)

    out = opex(cluster, "breaker", "status", ns).stdout
    assert f"{LIMIT} automated change(s)" in out
    opex(cluster, "breaker", "reset", ns)
    wait_for(lambda: resolution(kubectl, ns).get("outcome") == "Succeeded"
             and b'"s4"' in state(infra), timeout=120, what="the held apply after opex breaker reset")
    assert conditions(kubectl, ns)["CircuitOpen"]["status"] == "False"
    assert any(e["reason"] == "CircuitClosed" for e in kubectl.events(ns, "network"))
