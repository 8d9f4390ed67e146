"""Tenant isolation on the real API server (issue 29): an operator run as the chart's
ServiceAccount, its RBAC rendered for two team namespaces (a Role in each), with a policy that
gives each team its own Terraform role, state keys and probe addresses. A DriftCheck is no way
into another team's state, the operator's credentials or Secrets; an approval approves exactly
what runs; probes reach no metadata address."""
from __future__ import annotations

import base64
import gzip
import json
import uuid

import boto3
import pytest
import yaml

import tfrepo
from helpers import OperatorProcess, chart_service_account, forbidden_lines, wait_for
from localhttp import serve_in_thread

ROLE = "arn:aws:iam::123456789012:role/{}-terraform"


@pytest.fixture(scope="module")
def teams(cluster, kubectl, helm, aws_server, terraform_bin, tmp_path_factory):
    """(team-a namespace, team-b namespace, operator): team-a may plan and apply its own keys
    (team-a/*) with no provisioners; team-b its keys with provisioners; probes never reach 127.0.0.2."""
    suffix = uuid.uuid4().hex[:5]
    a, b = f"team-a-{suffix}", f"team-b-{suffix}"
    for ns in (a, b):
        kubectl("create", "namespace", ns)
    workdir = tmp_path_factory.mktemp("tenants")
    identity = chart_service_account(kubectl, helm, workdir, "opex-tenants", f"t{suffix}",
                                     sets=(f"watch.namespaces={{{a},{b}}}",))
    policy = {
        "roles": {"team-a-tf": {"roleArn": ROLE.format("team-a")}, "team-b-tf": {"roleArn": ROLE.format("team-b")}},
        "rules": [
            {"namespaces": [a], "regions": ["us-east-1"], "actions": ["terraform:Plan", "terraform:Apply"],
             "terraform": {"role": "team-a-tf", "allowProvisioners": False,
                           "backends": [{"type": "s3", "settings": {"key": ["team-a/*"]}}]}},
            {"namespaces": [b], "regions": ["us-east-1"], "actions": ["terraform:Plan", "terraform:Apply"],
             "terraform": {"role": "team-b-tf", "backends": [{"type": "s3", "settings": {"key": ["team-b/*"]}}]},
             "probes": {"denyCidrs": ["127.0.0.2/32"]}}]}
    (workdir / "policy.yaml").write_text(yaml.safe_dump(policy))
    proc = OperatorProcess(identity, aws_server, terraform_bin, workdir, namespaces=f"{a},{b}",
                           extra_env={"OPEX_POLICY_FILE": str(workdir / "policy.yaml")})
    proc.start()
    yield a, b, proc
    for ns in (a, b):
        kubectl.delete_opex_objects(ns)
    proc.stop()
    refused = forbidden_lines(proc.log_text())
    assert not refused, "the chart's RBAC refused calls the operator made:\n" + "\n".join(refused[:20])


def driftcheck(kubectl, ns, repo, backend, name="network", **spec) -> None:
    kubectl.apply(json.dumps({
        "apiVersion": "opex.dev/v1alpha1", "kind": "DriftCheck", "metadata": {"name": name},
        "spec": {"schedule": ["0 9 * * *"], "source": {"git": {"url": repo.url, "ref": "main", "path": "network"}},
                 "backendConfig": backend, "timeoutSeconds": 120, **spec}}), ns)


def run_now(kubectl, ns, name="network") -> str:
    token = uuid.uuid4().hex[:8]
    kubectl("annotate", "driftcheck", name, "-n", ns, f"opex.dev/run-requested={token}", "--overwrite")
    return token


def status(kubectl, ns, name="network") -> dict:
    return kubectl.get("driftcheck", name, ns).get("status") or {}


def answered(kubectl, ns, token, name="network", timeout=120) -> dict:
    return wait_for(lambda: (s := status(kubectl, ns, name)).get("answeredRunRequest") == token and s,
                    timeout=timeout, what=f"run {token} answered")


def conditions(st: dict) -> dict:
    return {c["type"]: c for c in st.get("conditions", [])}


def objects(bucket: str) -> dict[str, str]:
    return {o["Key"]: o["ETag"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_a_driftcheck_naming_another_teams_state_is_refused_and_that_state_is_untouched(kubectl, teams, infra):
    a, _, operator = teams
    before = objects(infra.bucket)   # infra's state, network/terraform.tfstate, plays production's
    driftcheck(kubectl, a, infra, infra.config, resolution={"strategy": "Apply", "approval": "Auto"})
    st = answered(kubectl, a, run_now(kubectl, a))
    stalled = conditions(st)["Stalled"]
    assert conditions(st)["Checked"]["reason"] == "PolicyRefused" and stalled["reason"] == "PolicyRefused"
    assert "backend s3 key 'network/terraform.tfstate' (allowed: ['team-a/*'])" in stalled["message"]
    assert f"operator policy rule 1 (namespaces ['{a}'])" in stalled["message"]
    assert "reportRef" not in st and "lastResolution" not in st
    assert not kubectl.json("get", "configmaps", "-n", a, "-l", "opex.dev/driftcheck=network")["items"]
    assert objects(infra.bucket) == before   # no lock taken, no workspace created, nothing written

    # The configuration's own backend block names the key: refused all the same, before init.
    infra.commit({"network/main.tf": tfrepo.MAIN_TF.replace(
        'backend "s3" {}', 'backend "s3" {\n    key = "network/terraform.tfstate"\n  }') % {"size": "small"}},
        "network: the key in the configuration")
    own = {k: v for k, v in infra.config.items() if k != "key"}
    driftcheck(kubectl, a, infra, own, name="sneaky")
    st = answered(kubectl, a, run_now(kubectl, a, "sneaky"), "sneaky")
    assert "backend s3 key 'network/terraform.tfstate'" in conditions(st)["Stalled"]["message"]
    assert objects(infra.bucket) == before
    assert "PolicyRefused" in [e["reason"] for e in kubectl.events(a, "network")]


ENV_DUMP = """
variable "out" {
  type = string
}

resource "terraform_data" "probe" {
  provisioner "local-exec" {
    command = "env > ${var.out}; test -r /etc/opex/kubeconfig && echo readable >> ${var.out} || true"
  }
}
"""


def test_terraform_runs_as_the_namespace_role_without_the_operators_environment(kubectl, teams, infra, tmp_path):
    a, b, operator = teams
    dump = tmp_path / "env.txt"
    infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "small"} + ENV_DUMP}, "network: a local-exec")
    backend = {**infra.config, "key": "team-b/network.tfstate"}
    driftcheck(kubectl, b, infra, backend, vars={"out": str(dump)},
               resolution={"strategy": "Apply", "approval": "Auto"})
    run_now(kubectl, b)
    wait_for(lambda: (status(kubectl, b).get("lastResolution") or {}).get("outcome") == "Succeeded", timeout=120,
             what="the apply")
    env = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
    leaked = [k for k in env if k.startswith(("OPEX_", "KUBE")) or k in ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")]
    assert not leaked, leaked
    assert env["AWS_ACCESS_KEY_ID"] != "testing"   # not the operator's own credentials
    assert env["HOME"].endswith(f"/{b}/network/check/home") and env["TMPDIR"].endswith("/check/tmp")
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    caller = boto3.client("sts", aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                          aws_session_token=env["AWS_SESSION_TOKEN"]).get_caller_identity()
    assert ":assumed-role/team-b-terraform/" in caller["Arn"]

    # team-a's policy forbids provisioners: the same configuration is refused before anything is applied.
    driftcheck(kubectl, a, infra, {**infra.config, "key": "team-a/network.tfstate"},
               vars={"out": str(tmp_path / "a.txt")}, resolution={"strategy": "Apply", "approval": "Auto"})
    st = answered(kubectl, a, run_now(kubectl, a))
    assert conditions(st)["Stalled"]["reason"] == "PolicyRefused"
    assert "terraform_data.probe" in conditions(st)["Stalled"]["message"] and not (tmp_path / "a.txt").exists()


def test_the_chart_grants_secrets_only_in_the_watched_namespaces(kubectl, teams, namespace):
    a, _, operator = teams
    sa = yaml.safe_load(open(operator.env["KUBECONFIG"]).read())["users"][0]["name"]
    as_sa = f"--as=system:serviceaccount:opex-tenants:{sa}"
    assert kubectl("auth", "can-i", "get", "secrets", "-n", a, as_sa, check=False).stdout.strip() == "yes"
    for verb, resource in (("get", "secrets"), ("create", "configmaps"), ("list", "driftchecks.opex.dev")):
        answer = kubectl("auth", "can-i", verb, resource, "-n", namespace, as_sa, check=False).stdout.strip()
        assert answer == "no", (verb, resource, answer)
    rendered = kubectl.json("get", "clusterroles", "-l", f"app.kubernetes.io/instance={sa.rsplit('-opex-operator')[0]}")
    assert not rendered["items"], "a fixed list of namespaces needs no ClusterRole"


SWAPPABLE = """
variable "word" {
  type    = string
  default = "hello"
}

variable "marker" {
  type = string
}

resource "terraform_data" "hook" {
  triggers_replace = var.word
  provisioner "local-exec" {
    command = "echo ${var.word} %s >> ${var.marker}"
  }
}
"""


def test_approving_the_reviewed_plan_never_runs_a_swapped_provisioner_command(kubectl, teams, infra, tmp_path):
    _, b, operator = teams
    marker = tmp_path / "ran.txt"
    infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "small"} + SWAPPABLE % "reviewed"}, "hook: reviewed")
    driftcheck(kubectl, b, infra, {**infra.config, "key": "team-b/hook.tfstate"}, vars={"marker": str(marker)},
               resolution={"strategy": "Apply", "approval": "Manual"}, name="hook")
    reviewed = answered(kubectl, b, run_now(kubectl, b, "hook"), "hook")["lastResult"]["planChecksum"]
    # The command is swapped; its references (var.word, var.marker) are the same, so the plan's JSON is too.
    infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "small"} + SWAPPABLE % "swapped"}, "hook: swapped")
    st = answered(kubectl, b, run_now(kubectl, b, "hook"), "hook")
    swapped = st["lastResult"]["planChecksum"]
    assert swapped != reviewed
    kubectl("patch", "driftcheck", "hook", "-n", b, "--type=merge",
            "-p", json.dumps({"spec": {"resolution": {"approvedPlanChecksum": reviewed}}}))
    waiting = wait_for(lambda: (c := conditions(status(kubectl, b, "hook")).get("Remediating")) and c["reason"] ==
                       "AwaitingApproval" and swapped in c["message"] and c, timeout=60, what="approval asked again")
    assert waiting and not marker.exists() and "lastResolution" not in status(kubectl, b, "hook")


SECRET_VAR = """
variable "api_token" {
  type = string
}

resource "terraform_data" "client" {
  input = "Bearer ${var.api_token}"
}
"""
TOKEN = "tok-e2e-7Hq2-not-sensitive"


def test_a_secret_value_not_declared_sensitive_reaches_no_report_status_or_event(kubectl, teams, infra):
    _, b, operator = teams
    kubectl("create", "secret", "generic", "api", "-n", b, f"--from-literal=api_token={TOKEN}")
    infra.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "small"} + SECRET_VAR}, "client: a token")
    driftcheck(kubectl, b, infra, {**infra.config, "key": "team-b/client.tfstate"}, name="client",
               varsFrom=[{"kind": "Secret", "name": "api"}])
    st = answered(kubectl, b, run_now(kubectl, b, "client"), "client")
    assert st["lastResult"]["outcome"] == "DriftDetected"
    report = kubectl.get("configmap", st["reportRef"]["name"], b)
    plan = gzip.decompress(base64.b64decode(report["binaryData"]["plan.json.gz"])).decode()
    assert "terraform_data.client" in plan and "(redacted: from a Secret)" in plan
    seen = [plan, json.dumps(report["data"]), json.dumps(kubectl.get("driftcheck", "client", b)),
            json.dumps(kubectl.events(b)), operator.log_text()]
    assert not [text[:200] for text in seen if TOKEN in text]


PROBE = """
apiVersion: opex.dev/v1alpha1
kind: Incident
metadata:
  name: %(name)s
spec:
  type: DeploymentFailure
  severity: low
  environment: staging
  title: probe
  targets:
    lambda:
      functionNames: [probe-target]
    probes:
      http:
        method: GET
        url: %(url)s
        headersSecretRef: {name: probe-headers}
        timeoutSeconds: 3
  remediation:
    mode: DryRun
"""


@pytest.fixture
def echo_server():
    """A loopback endpoint that answers every GET with the Authorization header it received."""
    import http.server

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"you sent {self.headers.get('Authorization')}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    serve_in_thread(server)
    yield server.server_address[1]
    server.shutdown()


def test_probes_reach_no_metadata_address_and_never_report_a_header_echoed_back(kubectl, teams, echo_server):
    _, b, operator = teams
    header = "Bearer hdr-e2e-9Kx4"
    kubectl("create", "secret", "generic", "probe-headers", "-n", b, f"--from-literal=Authorization={header}")
    for name, url in (("metadata", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
                      ("denied", f"http://127.0.0.2:{echo_server}/prod/orders"),
                      ("echo", f"http://127.0.0.1:{echo_server}/echo")):
        kubectl.apply(PROBE % {"name": name, "url": url}, b)

    def finding(name):
        st = kubectl.get("incident", name, b).get("status") or {}
        return next((f for f in st.get("findings", []) if f.get("source") == "HTTP"), None)

    metadata = wait_for(lambda: finding("metadata"), timeout=60, what="the metadata probe's finding")
    assert "AddressRefused" in metadata["observed"] and "metadata" in metadata["observed"]
    denied = wait_for(lambda: finding("denied"), timeout=60, what="the denied probe's finding")
    assert "probes.denyCidrs of operator policy rule 2" in denied["observed"]
    echo = wait_for(lambda: finding("echo"), timeout=60, what="the echo probe's finding")
    assert "hdr-e2e-9Kx4" not in json.dumps(echo) and "(redacted: from a Secret)" in echo.get("evidence", "")
    seen = [json.dumps(kubectl.get("incident", n, b)) for n in ("metadata", "denied", "echo")]
    assert not [t[:200] for t in seen + [json.dumps(kubectl.events(b)), operator.log_text()] if "hdr-e2e-9Kx4" in t]
