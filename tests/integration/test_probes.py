"""The runbook's API and database checks against real servers on loopback: a PostgreSQL started
from the pgserver wheel's binaries and a local HTTP app, reached through the seeded moto estate."""
from __future__ import annotations

import asyncio
import time

import pytest

import perf_estate
import pglocal
import procs
from opex_operator.api.performance import DatabaseSecretRef, TlsMode
from opex_operator.aws.clients import AwsClients
from opex_operator.aws.perf_reader import PerformanceReader
from opex_operator.probes import secrets
from opex_operator.probes.database import probe_database
from opex_operator.probes.http import probe_http
from opex_operator.ports.performance import Credentials, ProbeFailure
from opex_operator.playbooks.probes import database_cause
from opex_operator.api.incident import RootCauseCategory as Cat
from localhttp import serve_in_thread
from support.endpoints import silent_port


def db_probe(pg, **kw):
    args = dict(host=pg.host, port=pg.port, database=pg.database, credentials=Credentials(pg.user, pg.password),
                tls=TlsMode.DISABLE, timeout_seconds=3)
    args.update(kw)
    return asyncio.run(probe_database(**args))


def test_select_1_on_the_running_server_reports_latency_and_max_connections(postgres):
    r = db_probe(postgres)
    assert r.ok and r.failure is None and 0 < r.latency_seconds < 3
    assert r.max_connections == 20


def test_wrong_password_is_an_authentication_failure_without_the_password(postgres):
    r = db_probe(postgres, credentials=Credentials(postgres.user, "Wrong-Horse-Battery"))
    assert (r.ok, r.failure, r.sqlstate) == (False, ProbeFailure.AUTH, "28P01")
    assert "password authentication failed" in r.detail and "Wrong-Horse-Battery" not in repr(r)


def test_missing_database_is_named(postgres):
    r = db_probe(postgres, database="ghost")
    assert (r.failure, r.sqlstate) == (ProbeFailure.DATABASE_MISSING, "3D000") and '"ghost" does not exist' in r.detail


def test_tls_required_by_the_probe_but_not_offered_is_a_tls_failure(postgres):
    r = db_probe(postgres, tls=TlsMode.REQUIRE)
    assert r.failure == ProbeFailure.TLS and "refuses SSL" in r.detail


def test_nothing_listening_is_refused():
    r = asyncio.run(probe_database("127.0.0.1", procs.free_port(), "orders", Credentials("opex", "x"),
                                   TlsMode.DISABLE, 3))
    assert r.failure == ProbeFailure.REFUSED and "refused" in r.detail


def test_unknown_host_is_a_dns_failure():
    r = asyncio.run(probe_database("no-such-db.invalid", 5432, "orders", Credentials("opex", "x"), TlsMode.DISABLE, 3))
    assert r.failure == ProbeFailure.DNS and "does not resolve" in r.detail


@pytest.fixture
def silent_listener():
    """A TCP port that accepts connections and never says a word (a hung server)."""
    with silent_port() as port:
        yield port


def test_server_that_never_answers_times_out_within_the_probe_timeout(silent_listener):
    started = time.monotonic()
    r = asyncio.run(probe_database("127.0.0.1", silent_listener, "orders", Credentials("opex", "x"),
                                   TlsMode.DISABLE, 1))
    assert r.failure == ProbeFailure.TIMEOUT and time.monotonic() - started < 3


def test_stopped_server_is_refused_then_passes_once_started_again():
    pg = pglocal.LocalPostgres()
    try:
        pg.start()
        pg.stop()
        assert db_probe(pg).failure == ProbeFailure.REFUSED
        pg.start()
        assert db_probe(pg).ok
    finally:
        pg.remove()


def test_rds_instance_of_the_estate_is_probed_with_its_secrets_manager_credentials(aws, postgres):
    perf_estate.database("orders-db", postgres.host, postgres.port, postgres.user, postgres.password)
    reader = PerformanceReader(AwsClients("us-east-1"), None, None)
    config, groups = reader.rds_config("orders-db")
    r = db_probe(postgres, host=config.endpoint, port=config.port,
                 credentials=reader.database_credentials("orders-db/credentials"))
    assert r.ok and r.target == f"127.0.0.1:{postgres.port}/orders"


def test_refused_database_behind_a_group_without_the_operator_is_database_connectivity_naming_it(aws):
    pg = pglocal.LocalPostgres()
    try:
        pg.start()
        db = perf_estate.database("orders-db", pg.host, pg.port, pg.user, pg.password)
        pg.stop()
        config, groups = PerformanceReader(AwsClients("us-east-1"), None, None).rds_config("orders-db")
        r = db_probe(pg, host=config.endpoint, port=config.port)
        cause = database_cause(r, groups, ["127.0.0.1/32"])
        assert cause.category == Cat.DATABASE_CONNECTIVITY
        assert f"security group {db.security_group} (orders-db-sg) does not admit the operator's source" in cause.summary
    finally:
        pg.remove()


def test_credentials_from_a_kubernetes_secret_and_a_missing_key_named():
    ref = DatabaseSecretRef(name="orders-db")
    data = {"username": "opex", "password": "pw-123"}
    assert secrets.database_credentials(data, ref).password == "pw-123"
    with pytest.raises(LookupError, match="Secret orders-db has no key password"):
        secrets.database_credentials({"username": "opex"}, ref)
    with pytest.raises(LookupError, match="Secret orders-db not found"):
        secrets.database_credentials(None, ref)


# ---- HTTP -----------------------------------------------------------------------------------

def test_post_with_json_body_reports_status_latency_and_body_head(api_app):
    r = asyncio.run(probe_http("POST", f"{api_app.url}/prod/orders?token=abc", 200,
                               headers={"X-Probe": "opex"}, body={"test": "data"}, timeout_seconds=5))
    assert r.ok and r.status == 200 and 0 < r.latency_seconds < 5
    assert '"ok": true' in r.body_head and r.url == f"{api_app.url}/prod/orders"
    method, path, headers, body = api_app.requests[-1]
    assert (method, path, body) == ("POST", "/prod/orders?token=abc", b'{"test": "data"}')
    assert headers["Content-Type"] == "application/json" and headers["X-Probe"] == "opex"


def test_status_other_than_expected_is_not_ok(api_app):
    api_app.status = 502
    r = asyncio.run(probe_http("POST", f"{api_app.url}/prod/orders", 200, body={"test": "data"}))
    assert (r.ok, r.status, r.failure) == (False, 502, None) and "Internal server error" in r.body_head


def test_hung_api_times_out_at_the_probe_timeout(api_app):
    api_app.hang = True
    started = time.monotonic()
    r = asyncio.run(probe_http("GET", f"{api_app.url}/prod/orders", 200, timeout_seconds=1))
    assert (r.ok, r.failure, r.status) == (False, "Timeout", None) and time.monotonic() - started < 3


def test_nothing_listening_is_connection_refused():
    r = asyncio.run(probe_http("GET", f"http://127.0.0.1:{procs.free_port()}/", 200, timeout_seconds=2))
    assert r.failure == "ConnectionRefused"


def test_headers_from_a_secret_are_sent_and_never_reported(api_app):
    secret = {"Authorization": "Bearer s3cr3t-token"}
    r = asyncio.run(probe_http("GET", f"{api_app.url}/prod/orders", 200,
                               headers=secrets.headers(secret, "api-probe"), timeout_seconds=5))
    assert r.ok and api_app.requests[-1][2]["Authorization"] == "Bearer s3cr3t-token"
    assert "s3cr3t" not in repr(r)


def _recording_server():
    """A loopback HTTP server that counts the requests it got and echoes the Authorization header."""
    import http.server

    seen: list[str] = []

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = f"you sent {self.headers.get('Authorization')}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Echo)
    serve_in_thread(server)
    return server, seen


def test_a_probe_of_a_metadata_address_or_a_name_resolving_to_a_refused_one_never_connects():
    from opex_operator.policy import Policy

    server, seen = _recording_server()
    port = server.server_address[1]
    guard = Policy.model_validate({"rules": [{"namespaces": ["team-a"], "probes": {"denyCidrs": ["127.0.0.0/8"]}}]}
                                  ).probe_guard("team-a")
    try:
        metadata = asyncio.run(probe_http("GET", "http://169.254.169.254/latest/meta-data/iam/", timeout_seconds=3,
                                          guard=Policy().probe_guard("any")))
        assert metadata.failure == ProbeFailure.ADDRESS_REFUSED and "metadata" in metadata.detail
        by_name = asyncio.run(probe_http("POST", f"http://localhost:{port}/x", body={}, timeout_seconds=3,
                                         guard=guard))
        assert by_name.failure == ProbeFailure.ADDRESS_REFUSED and "localhost resolves to 127.0.0.1" in by_name.detail
        assert "probes.denyCidrs of operator policy rule 1" in by_name.detail
        assert seen == []
        allowed = asyncio.run(probe_http("POST", f"http://localhost:{port}/x", body={}, timeout_seconds=3,
                                         guard=Policy().probe_guard("team-a")))
        assert allowed.status == 200 and seen == ["/x"]
    finally:
        server.shutdown()


def test_a_database_probe_of_a_refused_address_never_connects():
    from opex_operator.policy import Policy

    guard = Policy.model_validate({"rules": [{"namespaces": ["*"], "probes": {"allowCidrs": ["10.0.0.0/8"]}}]}
                                  ).probe_guard("x")
    r = asyncio.run(probe_database("localhost", procs.free_port(), "orders", Credentials("opex", "x"),
                                   TlsMode.DISABLE, 3, guard))
    assert r.failure == ProbeFailure.ADDRESS_REFUSED and "not in probes.allowCidrs" in r.detail
