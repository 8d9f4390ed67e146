"""The operator as users run it: the image built from the Dockerfile, ``helm install`` of the chart on a
real node (containerd, runc, the kubelet, kube-proxy, the scheduler and controller-manager; hack/node.py),
AWS as moto on the host reached through ``aws.endpointUrl``.

Skipped, with the reason, where no node can run (not root, no Debian packages, another node running);
on this machine it runs. The module's cluster is its own (a control plane listening on the node's
address), not the session's.
"""
from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from packaging.utils import canonicalize_name

import cluster as local_cluster
import estate
import node
import versions
from helpers import Kubectl, serve_fake_aws, use_fake_aws, wait_for
from support.counters import CallCounter

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "incident-deployment-failure.yaml"
NS, RELEASE = local_cluster.NAMESPACE, local_cluster.RELEASE
SELECTOR = f"app.kubernetes.io/instance={RELEASE}"
# From `helm install` to both replicas Running and Ready (pods start in seconds here; the operator's
# readiness probe runs every 10 s).
READY_WITHIN = 90


@pytest.fixture(scope="module")
def node_cluster(tmp_path_factory):
    try:
        node.check_prerequisites()
    except node.NodeUnavailable as err:
        pytest.skip(f"no node on this machine: {err}")
    started = local_cluster.start(tmp_path_factory.mktemp("node"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def nkubectl(node_cluster) -> Kubectl:
    return Kubectl(node_cluster.kubeconfig)


@pytest.fixture(scope="module")
def node_aws_server(node_cluster):
    """moto in this process, on the node's address (pods cannot reach loopback)."""
    yield from serve_fake_aws(node_cluster.address)


@pytest.fixture
def node_aws(node_aws_server, monkeypatch):
    yield use_fake_aws(node_aws_server, monkeypatch)


@pytest.fixture(scope="module")
def installed(node_cluster, nkubectl, node_aws_server, helm, tmp_path_factory):
    """The chart installed; yields the seconds from ``helm install`` until both pods were Ready."""
    began = time.monotonic()
    local_cluster.install_chart(helm.binary, node_cluster.kubeconfig, node_cluster.image, node_aws_server,
                                tmp_path_factory.mktemp("helm"), timeout=f"{READY_WITHIN}s")
    wait_for(lambda: len(ready_pods(nkubectl)) == 2, timeout=READY_WITHIN, what="both operator pods Ready")
    yield time.monotonic() - began


@pytest.fixture(autouse=True)
def dump_on_failure(request):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed or "nkubectl" not in request.fixturenames:
        return
    kubectl = request.getfixturevalue("nkubectl")
    print(kubectl("get", "nodes,pods,leases", "-A", "-o", "wide", check=False).stdout)
    print(kubectl("get", "events", "-A", check=False).stdout[-6000:])
    for pod in kubectl.json("get", "pods", "-n", NS, "-l", SELECTOR)["items"]:
        print(f"----- {pod['metadata']['name']} log (tail) -----")
        print(kubectl("logs", pod["metadata"]["name"], "-n", NS, "--tail=60", check=False).stdout)


def operator_pods(kubectl: Kubectl) -> list[dict]:
    return kubectl.json("get", "pods", "-n", NS, "-l", SELECTOR)["items"]


def ready_pods(kubectl: Kubectl) -> list[str]:
    return [p["metadata"]["name"] for p in operator_pods(kubectl)
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]


def leader(kubectl: Kubectl) -> str:
    """The pod holding the chart's Lease (its holderIdentity is ``<pod name>-<pid>``)."""
    holder = kubectl("get", "lease", f"{RELEASE}-opex-operator", "-n", NS, "-o", "jsonpath={.spec.holderIdentity}",
                     check=False).stdout
    return holder.rsplit("-", 1)[0] if holder else ""


def new_namespace(kubectl: Kubectl) -> str:
    name = f"node-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    return name


def condition(obj: dict, kind: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == kind), {})


def test_helm_install_runs_two_replicas_of_the_built_image_ready_within_the_bound(nkubectl, installed,
                                                                                    node_cluster):
    assert installed < READY_WITHIN
    pods = operator_pods(nkubectl)
    assert len(pods) == 2 and {p["spec"]["nodeName"] for p in pods} == {node.NODE_NAME}
    assert {c["image"] for p in pods for c in p["spec"]["containers"]} == {node_cluster.image}
    # One active, one standby: the Lease names one of the two pods.
    assert wait_for(lambda: leader(nkubectl), what="a Lease holder") in {p["metadata"]["name"] for p in pods}
    # The Service selects both pods, and /metrics answers through its ClusterIP (kube-proxy).
    service = nkubectl.json("get", "service", f"{RELEASE}-opex-operator", "-n", NS)
    slices = nkubectl.json("get", "endpointslices", "-n", NS, "-l", f"kubernetes.io/service-name={RELEASE}-opex-operator")
    addresses = {a for s in slices["items"] for e in s.get("endpoints") or [] for a in e["addresses"]}
    assert addresses == {p["status"]["podIP"] for p in pods}
    url = f"http://{service['spec']['clusterIP']}:8080/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert "opex_build_info{" in resp.read().decode()


def test_an_incident_created_with_kubectl_is_assessed_by_the_in_cluster_operator(nkubectl, installed, node_aws):
    ns = new_namespace(nkubectl)
    estate.deployment_failure("checkout")
    nkubectl("apply", "-n", ns, "-f", str(EXAMPLE))
    assessed = wait_for(lambda: condition(nkubectl.get("incident", "checkout-deploy-failed", ns), "Assessed")
                        .get("status") == "True" and nkubectl.get("incident", "checkout-deploy-failed", ns),
                        timeout=60, what="the Incident assessed")
    status = assessed["status"]
    assert status["rootCause"]["category"] == "LambdaDeployment", status["rootCause"]
    # The Events come from the leader pod: the in-cluster operator did the work.
    events = [e for e in nkubectl.events(ns, "checkout-deploy-failed") if e.get("reportingInstance")]
    assert {e["reportingInstance"] for e in events} == {leader(nkubectl)}, events


def test_another_pod_takes_over_when_the_leader_pod_is_deleted_and_nothing_runs_twice(
        nkubectl, installed, node_aws, monkeypatch):
    ns = new_namespace(nkubectl)
    scenario = estate.deployment_failure("checkout")
    calls = CallCounter(monkeypatch, hold_seconds=3.0)  # in flight while the pod's deletion reaches it
    calls.arm()
    first = wait_for(lambda: leader(nkubectl), what="a leader")
    nkubectl("apply", "-n", ns, "-f", str(EXAMPLE))
    nkubectl("patch", "incident", "checkout-deploy-failed", "-n", ns, "--type=merge",
             "-p", '{"spec":{"remediation":{"approvedSteps":["rollback-lambda-checkout-api"]}}}')
    assert calls.in_flight.wait(90), "the leader never called UpdateFunctionCode"
    # As a node drain or a rollout does: a graceful delete while the rollback is in flight.
    nkubectl("delete", "pod", first, "-n", NS, "--wait=false")
    assert calls.completed.wait(10)
    # The standby and the Deployment's replacement pod both compete once the Lease expires (the
    # deleted leader does not release it): whichever asks first leads, as with controller-runtime.
    wait_for(lambda: leader(nkubectl) not in ("", first), timeout=60, what="another pod holding the Lease")
    wait_for(lambda: (nkubectl.get("incident", "checkout-deploy-failed", ns).get("status") or {}).get("phase")
             == "Resolved", timeout=120, what="the Incident Resolved")
    assert dict(calls) == {"update_function_code": 1}
    assert boto3.client("lambda").get_function(FunctionName="checkout-api")["Configuration"]["CodeSha256"] \
        == scenario.shas[0]
    # The Deployment replaced the deleted pod: two replicas again, one of them leading.
    wait_for(lambda: len(ready_pods(nkubectl)) == 2 and first not in ready_pods(nkubectl), timeout=READY_WITHIN,
             what="a replacement pod Ready")
    assert leader(nkubectl) in ready_pods(nkubectl)


def exec_in(kubectl: Kubectl, pod: str, script: str):
    return kubectl("exec", pod, "-n", NS, "-c", "operator", "--", "sh", "-c", script, check=False)


def test_the_image_runs_as_its_user_on_a_read_only_root_with_the_opentofu_it_carries(nkubectl, installed):
    pod = ready_pods(nkubectl)[0]
    assert exec_in(nkubectl, pod, "id -u; id -g").stdout.split() == ["65532", "65532"]
    refused = exec_in(nkubectl, pod, "touch /opex-probe")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    assert exec_in(nkubectl, pod, "touch /var/lib/opex/probe /tmp/probe").returncode == 0  # the emptyDirs
    version = re.search(r"github\.com/opentofu/opentofu v(\S+)", (ROOT / "hack" / "opentofu" / "go.mod").read_text())
    tofu = exec_in(nkubectl, pod, "$OPEX_TERRAFORM version -json")
    assert json.loads(tofu.stdout)["terraform_version"] == version.group(1), tofu.stderr
    # The host's CA bundle was mounted for the build only: the image trusts Debian's bundle, not
    # the certificates this machine added (a TLS-inspecting proxy's).
    bundle = exec_in(nkubectl, pod, "cat /etc/ssl/certs/ca-certificates.crt").stdout
    added = [p.read_text().strip() for p in Path("/usr/local/share/ca-certificates").glob("*.crt")]
    assert bundle.count("BEGIN CERTIFICATE") > 100
    assert not [pem for pem in added if pem in bundle]


def test_the_image_holds_exactly_the_locked_runtime_set(nkubectl, installed):
    """What the Dockerfile's ``uv sync --frozen`` installed, read in the running image, against uv.lock."""
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")
    out = nkubectl("exec", ready_pods(nkubectl)[0], "-n", NS, "-c", "operator", "--", "python", "-c", code).stdout
    installed_set = {canonicalize_name(n): v for n, v in json.loads(out).items()}
    assert installed_set.pop("opex-operator")
    expected = versions.expected_set()
    assert installed_set == expected, {"only installed": installed_set.keys() - expected.keys(),
                                       "only locked": expected.keys() - installed_set.keys()}


def test_a_job_pod_from_the_operator_image_runs_opex_help_to_completion(nkubectl, installed, node_cluster):
    ns = new_namespace(nkubectl)
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "opex-help"},
           "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 60, "template": {"spec": {
               "restartPolicy": "Never",
               "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
               "containers": [{"name": "opex", "image": node_cluster.image, "imagePullPolicy": "Never",
                               "command": ["opex", "--help"],
                               "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                   "capabilities": {"drop": ["ALL"]}}}]}}}}
    nkubectl.create(json.dumps(job), ns)
    nkubectl("wait", "--for=condition=Complete", "job/opex-help", "-n", ns, "--timeout=60s")
    assert "Usage: opex" in nkubectl("logs", "job/opex-help", "-n", ns).stdout
    # The garbage collector runs: deleting the Job deletes its pod (what a Job runner relies on).
    nkubectl("delete", "job", "opex-help", "-n", ns, "--cascade=foreground", "--wait=true", "--timeout=60s")
    wait_for(lambda: not nkubectl.json("get", "pods", "-n", ns)["items"], timeout=30, what="the Job's pod deleted")


# -- DriftCheck plans as Jobs (spec.runner: Job) ----------------------------------------------------
DRIFTCHECK_EXAMPLE = ROOT / "examples" / "driftcheck.yaml"


def runner_namespace(kubectl: Kubectl, helm) -> str:
    """A new namespace with the chart's runner ServiceAccount and Role in it (planJob.namespaces), as
    the platform team renders them for a tenant namespace."""
    ns = new_namespace(kubectl)
    docs = helm.template(local_cluster.VALUES, sets=(f"planJob.namespaces={{{ns}}}",), namespace=NS, release=RELEASE)
    for doc in docs:
        if doc["metadata"].get("namespace") == ns:
            kubectl.apply(json.dumps(doc), ns)
    return ns


def job_driftcheck(ns: str, kubectl: Kubectl, annotations: dict[str, str] | None = None,
                   **spec) -> tuple[dict, dict]:
    """The example DriftCheck (its ConfigMap source) with ``runner: Job``, its state bucket on moto."""
    import yaml

    config_map, dc = yaml.safe_load_all(DRIFTCHECK_EXAMPLE.read_text())
    dc["spec"].update(runner="Job", **spec)
    dc["metadata"].setdefault("annotations", {}).update(annotations or {})
    boto3.client("s3").create_bucket(Bucket=dc["spec"]["backendConfig"]["bucket"])
    kubectl.apply(json.dumps(config_map), ns)
    kubectl.apply(json.dumps(dc), ns)
    return config_map, dc


def dc_status(kubectl: Kubectl, ns: str) -> dict:
    return kubectl.get("driftcheck", "production-network", ns).get("status") or {}


def jobs_created(kubectl: Kubectl, ns: str, purpose: str) -> list[str]:
    """Jobs of ``purpose`` the Job controller created a pod for (its SuccessfulCreate Events outlive the Job)."""
    return sorted({e["involvedObject"]["name"] for e in kubectl.events(ns) if e["involvedObject"]["kind"] == "Job"
                   and e["reason"] == "SuccessfulCreate" and f"-{purpose}-" in e["involvedObject"]["name"]})


def test_a_driftcheck_with_runner_job_plans_in_a_job_pod_and_its_approved_apply_runs_in_a_second_job(
        nkubectl, installed, node_aws, helm):
    ns = runner_namespace(nkubectl, helm)
    _, dc = job_driftcheck(ns, nkubectl)
    token = uuid.uuid4().hex[:8]
    nkubectl("annotate", "driftcheck", "production-network", "-n", ns, f"opex.dev/run-requested={token}")
    result = wait_for(lambda: (r := dc_status(nkubectl, ns).get("lastResult") or {}).get("trigger", "").endswith(
        f"={token})") and r.get("finishedAt") and r, timeout=120, what="the plan in a Job")
    assert result["outcome"] == "DriftDetected" and result["add"] == 2, result
    assert result["sourceRevision"] == "configmap/production-network-tf"
    plans = jobs_created(nkubectl, ns, "plan")
    assert len(plans) == 1 and plans[0].startswith("production-network-plan-")
    # Its pod ran as the runner ServiceAccount; the Job is deleted once read, its result kept for the apply.
    results = nkubectl.json("get", "configmaps", "-n", ns, "-l", "opex.dev/run=plan")["items"]
    assert [r["metadata"]["name"] for r in results] == plans
    assert results[0]["metadata"]["ownerReferences"][0]["kind"] == "DriftCheck"
    assert not nkubectl.json("get", "jobs", "-n", ns)["items"]
    saved = boto3.client("s3").list_objects_v2(Bucket=dc["spec"]["backendConfig"]["bucket"],
                                               Prefix="opex-plans/")["Contents"]
    assert len(saved) == 1 and saved[0]["Key"].startswith(f"opex-plans/{ns}/production-network/")
    # No run directory in the operator pods: the plan did not run there.
    for pod in ready_pods(nkubectl):
        assert exec_in(nkubectl, pod, f"ls /var/lib/opex/work/{ns}").returncode != 0

    nkubectl("patch", "driftcheck", "production-network", "-n", ns, "--type=merge", "-p",
             json.dumps({"spec": {"resolution": {"approvedPlanChecksum": result["planChecksum"]}}}))
    wait_for(lambda: (dc_status(nkubectl, ns).get("lastResolution") or {}).get("outcome") in ("Succeeded", "Failed"),
             timeout=120, what="the approved apply")
    resolution = dc_status(nkubectl, ns)["lastResolution"]
    assert resolution["outcome"] == "Succeeded", resolution
    applies = jobs_created(nkubectl, ns, "apply")
    assert len(applies) == 1 and applies[0].startswith("production-network-apply-")
    state = boto3.client("s3").get_object(Bucket=dc["spec"]["backendConfig"]["bucket"],
                                          Key=dc["spec"]["backendConfig"]["key"])["Body"].read()
    assert b"terraform_data" in state and b"10.0.0.0/16" in state
    wait_for(lambda: (r := dc_status(nkubectl, ns).get("lastResult") or {}).get("trigger", "").startswith(
        "verification") and r.get("finishedAt"), timeout=120, what="the verification run")
    assert dc_status(nkubectl, ns)["lastResult"]["outcome"] == "NoDrift"
    assert len(jobs_created(nkubectl, ns, "plan")) == 2


def test_a_plan_job_killed_mid_plan_is_reported_and_the_next_slot_runs(nkubectl, installed, node_aws, helm):
    ns = runner_namespace(nkubectl, helm)
    import yaml

    _, example = yaml.safe_load_all(DRIFTCHECK_EXAMPLE.read_text())
    backend = example["spec"]["backendConfig"]
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=backend["bucket"])
    # Another process holds the state lock (S3 lock file): the plan waits for it, so it is mid-plan.
    lock = {"ID": str(uuid.uuid4()), "Operation": "OperationTypeApply", "Who": "someone@elsewhere",
            "Version": "1.11.4", "Created": "2026-12-06T09:00:00Z", "Path": f"{backend['bucket']}/{backend['key']}"}
    s3.put_object(Bucket=backend["bucket"], Key=backend["key"] + ".tflock", Body=json.dumps(lock).encode())
    # The run to kill is asked for at creation (a request goes before a slot), not the first slot's: that
    # would add up to a minute; the run after the kill is still the next slot's.
    job_driftcheck(ns, nkubectl, annotations={"opex.dev/run-requested": "first"}, schedule=["* * * * *"],
                   lock={"timeout": "300s"}, timeoutSeconds=600)
    pod = wait_for(lambda: next((p["metadata"]["name"] for p in nkubectl.json(
        "get", "pods", "-n", ns, "-l", "opex.dev/run=plan")["items"] if p["status"].get("phase") == "Running"), None),
        timeout=120, what="the plan Job's pod running")
    time.sleep(3)  # terraform is waiting for the lock
    nkubectl("delete", "pod", pod, "-n", ns, "--grace-period=0", "--force", "--wait=false")
    failed = wait_for(lambda: (r := dc_status(nkubectl, ns).get("lastResult") or {}).get("finishedAt") and r,
                      timeout=120, what="the killed run reported")
    assert failed["outcome"] == "PlanFailed" and failed["reason"] == "PlanFailed", failed
    assert failed["trigger"].endswith("=first)"), failed
    assert "failed before it reported" in failed["message"], failed
    assert any(e["reason"] == "PlanFailed" for e in nkubectl.events(ns, "production-network"))
    s3.delete_object(Bucket=backend["bucket"], Key=backend["key"] + ".tflock")
    nxt = wait_for(lambda: (r := dc_status(nkubectl, ns).get("lastResult") or {}).get("finishedAt", "") >
                   failed["finishedAt"] and r, timeout=150, what="the next slot's run")
    assert nxt["outcome"] == "DriftDetected" and nxt["trigger"].startswith("schedule "), nxt
    assert len(jobs_created(nkubectl, ns, "plan")) == 2
