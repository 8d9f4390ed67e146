"""Fixtures shared by all tests: the local stack, started lazily and once per session.

* ``cluster``: a real control plane (etcd + kube-apiserver from hack/) with the CRDs applied.
* ``namespace``: a fresh namespace per test, named ``e2e-...``; its opex objects are deleted at
  the end (the namespace itself stays Terminating: no kube-controller-manager runs).
  ``module_namespace``: one per module, for tests that create nothing.
* ``aws``: moto's server in this process (so tests can set failure states on its backends);
  reset before each test that uses it.
* ``operator``: ``python -m opex_operator`` as a subprocess watching ``e2e-*`` namespaces, its
  Alertmanager intake on.
* ``monitoring``: Prometheus scraping that operator with the shipped rules, and Alertmanager sending
  alerts that carry an ``incident_type`` label to its intake (the real servers, from ``make tools``).
* ``postgres``: a real PostgreSQL on loopback (hack/pglocal.py); ``api_app``: the local HTTP app
  standing in for an API (hack/apiapp.py).

Unit tests use none of these and run without the stack.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hack"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import apiapp  # noqa: E402
import controlplane  # noqa: E402
import gotools  # noqa: E402
from monitoring import Monitoring  # noqa: E402
import pglocal  # noqa: E402
import terraform_cli  # noqa: E402
import tfrepo  # noqa: E402
import versions  # noqa: E402
from helpers import (Helm, Kubectl, OperatorProcess, chart_service_account, forbidden_lines,  # noqa: E402
                     serve_fake_aws, use_fake_aws)

# Tests must never reach real AWS: dummy credentials and no metadata lookups, from the start.
os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                   "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"})
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A running control plane with the CRDs established; yields the ControlPlane."""
    cp = controlplane.ControlPlane(tmp_path_factory.mktemp("controlplane"))
    cp.start()
    try:
        kubectl = Kubectl(cp.kubeconfig)
        kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def kubectl(cluster) -> Kubectl:
    return Kubectl(cluster.kubeconfig)


def pytest_report_header(config) -> list[str]:
    """The lock's digest and the Terraform CLI, first thing in every run's output."""
    return versions.lines()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def _dump_on_failure(request, kubectl: Kubectl, namespace: str) -> None:
    """On a failed test, print what a person would look at: the objects, the Events, the operator log."""
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed or getattr(request.node, "_opex_dumped", False):
        return
    request.node._opex_dumped = True
    print(f"\n----- opex objects in {namespace} -----")
    print(kubectl("get", "opex", "-n", namespace, "-o", "yaml", check=False).stdout[-12000:])
    print(f"----- events in {namespace} -----")
    print(kubectl("get", "events", "-n", namespace, check=False).stdout[-4000:])
    for name in ("operator", "solo_operator"):
        if name in request.fixturenames:
            print(f"----- {name} log (tail) -----")
            print(request.getfixturevalue(name).log_text()[-6000:])


def _namespace(kubectl: Kubectl, request, prefix: str):
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"{prefix}-{stem}-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", name)
    yield name
    _dump_on_failure(request, kubectl, name)
    kubectl.delete_opex_objects(name)
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(kubectl, request):
    """A new namespace ``e2e-<test>-<random>`` (watched by the session operator); its opex objects
    are removed afterwards."""
    yield from _namespace(kubectl, request, "e2e")


@pytest.fixture(scope="module")
def module_namespace(kubectl, request):
    """One ``e2e-<module>-<random>`` namespace for a module's tests that create nothing in it (requests
    refused, or made with --dry-run=server): a namespace each costs more kubectl calls than such a test."""
    yield from _namespace(kubectl, request, "e2e")


@pytest.fixture
def solo_namespace(kubectl, request):
    """A new namespace ``solo-<test>-<random>`` that only the test's own ``solo_operator`` watches."""
    yield from _namespace(kubectl, request, "solo")


@pytest.fixture(scope="session")
def aws_server():
    yield from serve_fake_aws()


@pytest.fixture
def aws(aws_server, monkeypatch):
    """moto's server, reset; this process's boto3 points at it. Yields the endpoint URL."""
    yield use_fake_aws(aws_server, monkeypatch)


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL serving on 127.0.0.1 for the session (started and stopped by its pid)."""
    pg = pglocal.LocalPostgres()
    pg.start()
    yield pg
    pg.remove()


@pytest.fixture
def api_app():
    """The local HTTP app (``POST /prod/orders``); set ``.status`` or ``.hang`` to break it."""
    app = apiapp.ApiApp().start()
    yield app
    app.stop()


@pytest.fixture(scope="session")
def terraform_bin() -> str:
    return terraform_cli.ensure_terraform()


@pytest.fixture(scope="session")
def helm() -> Helm:
    """helm (built from the Go module proxy by `make tools`) on charts/opex-operator."""
    return Helm(gotools.ensure_helm())


@pytest.fixture(scope="session")
def operator(cluster, kubectl, helm, aws_server, terraform_bin, tmp_path_factory):
    """The operator as a subprocess, watching ``e2e-*`` namespaces, for the whole session, its
    Alertmanager intake on.

    It runs as the Helm chart's ServiceAccount with the chart's RBAC (a token, not the admin
    certificate) and leader election on: a Kubernetes call the chart does not allow fails the e2e
    test that needs it, and the session at its end.
    """
    workdir = tmp_path_factory.mktemp("operator")
    identity = chart_service_account(kubectl, helm, workdir, "opex-system", "opex", sets=("watch.namespaces={e2e-*}",))
    # With leader election, as the chart runs it: the Lease in the release namespace is covered too.
    proc = OperatorProcess(identity, aws_server, terraform_bin, workdir, namespaces="e2e-*", extra_env={
        "OPEX_LEADER_ELECTION": "true", "OPEX_LEASE_NAMESPACE": "opex-system", "OPEX_LEASE_NAME": "opex-opex-operator"},
        alert_intake=True)
    proc.start()
    yield proc
    proc.stop()
    refused = forbidden_lines(proc.log_text())
    assert not refused, "the chart's RBAC refused calls the operator made:\n" + "\n".join(refused[:20])


@pytest.fixture
def fire(monitoring, namespace):
    """Post alerts to Alertmanager as Prometheus does; at the end of the test they are resolved, so
    nothing goes on notifying the operator about a namespace the test leaves."""
    sent: list[dict] = []

    def post(alerts: list[dict]) -> None:
        sent.extend(alerts)
        monitoring.post_alerts(alerts)

    yield post
    if sent:
        ended = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        monitoring.post_alerts([{**alert, "endsAt": ended} for alert in sent])


@pytest.fixture(scope="session")
def monitoring(operator, tmp_path_factory):
    """Prometheus and Alertmanager around the session's operator (see monitoring.Monitoring)."""
    servers = Monitoring(tmp_path_factory.mktemp("monitoring"), f"127.0.0.1:{operator.metrics_port}",
                         operator.intake_url, operator.token_file)
    servers.start()
    yield servers
    servers.stop()


@pytest.fixture
def solo_operator(cluster, kubectl, aws_server, terraform_bin, solo_namespace, tmp_path, request):
    """An operator of the test's own (not started yet) for ``solo_namespace``: restarts, kills, policies."""
    proc = OperatorProcess(cluster.kubeconfig, aws_server, terraform_bin, tmp_path, namespaces=solo_namespace)
    yield proc
    _dump_on_failure(request, kubectl, solo_namespace)
    if proc.proc is not None:  # let it remove its finalizers before it goes
        kubectl.delete_opex_objects(solo_namespace)
    else:  # stopped or killed by the test: the namespace's teardown need not wait 30 s for finalizers
        kubectl.drop_finalizers(solo_namespace)
    proc.stop()


@pytest.fixture
def infra(tmp_path, aws, terraform_bin):
    """A git repository with a network configuration whose state (in S3 on moto) matches it."""
    repo = tfrepo.Repo(tmp_path)
    commit = repo.commit({"network/main.tf": tfrepo.MAIN_TF % {"size": "small"}}, "network: small")
    bucket = tfrepo.new_bucket()
    config = tfrepo.backend_config(bucket)
    tfrepo.terraform(terraform_bin, repo.clone / "network", *tfrepo.init_args(config))
    tfrepo.terraform(terraform_bin, repo.clone / "network", "apply", "-auto-approve", "-input=false", "-no-color")
    repo.first_commit, repo.bucket, repo.config = commit, bucket, config
    return repo


def pytest_collection_modifyitems(items):
    for item in items:
        parts = Path(str(item.fspath)).parts
        for marker in ("e2e", "integration"):
            if marker in parts:
                item.add_marker(getattr(pytest.mark, marker))


def run(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, **kw)
