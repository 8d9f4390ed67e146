"""The local stack's parts: the control plane as built, kubectl skew, moto, terraform."""
from __future__ import annotations

import json
import subprocess

import boto3

import kube_build
import procs


def test_api_server_reports_the_pinned_release(cluster):
    status, body = cluster.get("/version")
    assert status == 200
    assert json.loads(body)["gitVersion"] == kube_build.KUBE_VERSION


def test_kubectl_is_within_the_supported_skew(kubectl):
    versions = json.loads(kubectl("version", "-o", "json").stdout)
    client, server = versions["clientVersion"], versions["serverVersion"]
    assert client["major"] == server["major"] == "1"
    assert abs(int(client["minor"].rstrip("+")) - int(server["minor"].rstrip("+"))) <= 1


def test_binaries_are_cached_outside_the_clone():
    target = kube_build.bin_dir()
    assert (target / "etcd").is_file() and (target / "kube-apiserver").is_file()
    assert ".cache" in target.parts or "OPEX_CACHE" in str(target)


def test_control_plane_stops_its_processes(tmp_path):
    import controlplane

    cp = controlplane.ControlPlane(tmp_path / "cp").start()
    pids = json.loads((cp.state_dir / "controlplane.json").read_text())["pids"]
    assert cp.get("/readyz")[0] == 200
    cp.stop()
    assert not any(procs.alive(pid) for pid in pids.values())


def test_boto3_reaches_moto_through_aws_endpoint_url(aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="opex-smoke")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["opex-smoke"]
    assert s3.meta.endpoint_url == aws


def test_terraform_cli_runs(terraform_bin, tmp_path):
    env = {"TF_CLI_CONFIG_FILE": "/dev/null", "CHECKPOINT_DISABLE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([terraform_bin, "version", "-json"], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout)["terraform_version"].startswith("1.")
