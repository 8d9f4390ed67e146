"""The runbook's database connectivity test, ``psql -h <rds-endpoint> -U <user> -d <db> -c "SELECT 1;"``,
as a probe with pg8000: latency, or the exact failure (DNS, refused, timeout, TLS, auth, missing
database). The password is never part of a result, a message or an exception text.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import time
from typing import Callable

import pg8000.native

from ..api.performance import TlsMode
from ..ports.performance import Credentials, ProbeFailure, DbProbeResult

# SQLSTATEs a connection attempt ends with (PostgreSQL docs, Appendix A "Error Codes").
AUTH_STATES = {"28P01": "invalid password", "28000": "invalid authorization specification (no pg_hba.conf entry)"}
DATABASE_MISSING = "3D000"
DETAIL_CHARS = 300


def tls_context(mode: TlsMode) -> ssl.SSLContext | None:
    """None for Disable; encryption without verification for Require (libpq's sslmode=require);
    the system CAs and host-name check for VerifyFull."""
    if mode == TlsMode.DISABLE:
        return None
    context = ssl.create_default_context()
    if mode == TlsMode.REQUIRE:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def check_database(host: str, port: int, database: str, credentials: Credentials, tls: TlsMode = TlsMode.REQUIRE,
                   timeout_seconds: float = 5.0) -> DbProbeResult:
    """Connect, run ``SELECT 1`` (and ``SHOW max_connections``), disconnect. Blocks; never raises.

    ``timeout_seconds`` bounds each socket operation (connect, every read); name resolution is
    bounded by :func:`probe_database`'s outer timeout.
    """
    result = DbProbeResult(host=host, port=port, database=database, user=credentials.username, ok=False)
    started = time.monotonic()
    conn = None
    try:
        conn = pg8000.native.Connection(credentials.username, host=host, port=port, database=database,
                                        password=credentials.password, timeout=timeout_seconds,
                                        ssl_context=tls_context(tls))
        try:
            conn.run("SELECT 1")
        except pg8000.native.DatabaseError as err:
            _server_error(result, err, connected=True)
            return result
        result.ok, result.latency_seconds = True, round(time.monotonic() - started, 6)
        try:
            result.max_connections = int(conn.run("SHOW max_connections")[0][0])
        except (pg8000.native.DatabaseError, ValueError, IndexError):
            pass  # informative only
    except pg8000.native.DatabaseError as err:
        _server_error(result, err, connected=False)
    except (pg8000.native.InterfaceError, OSError) as err:
        _client_error(result, err)
    finally:
        if conn is not None:
            try:
                conn.close()
            except (pg8000.native.InterfaceError, OSError):
                pass
    result.detail = _scrub(result.detail, credentials.password)
    return result


def _address_refusal(host: str, port: int, guard: Callable[[str], str | None]) -> str | None:
    """Why ``host`` may not be probed: it is, or resolves to, an address ``guard`` refuses. A name
    that does not resolve is left to the connection, which reports it as DNS."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return None
    for *_, sockaddr in answers:
        if why := guard(sockaddr[0]):
            return why if sockaddr[0] == host else f"{host} resolves to {sockaddr[0]}: {why}"
    return None


async def probe_database(host: str, port: int, database: str, credentials: Credentials,
                         tls: TlsMode = TlsMode.REQUIRE, timeout_seconds: float = 5.0,
                         guard: Callable[[str], str | None] = lambda address: None) -> DbProbeResult:
    """:func:`check_database` in a thread, with the whole probe bounded by ``timeout_seconds`` plus one
    (a name lookup that hangs becomes a Timeout; the thread is left to finish on its own). Every
    address ``host`` resolves to is checked with ``guard`` first (AddressRefused)."""
    if why := await asyncio.to_thread(_address_refusal, host, port, guard):
        return DbProbeResult(host=host, port=port, database=database, user=credentials.username, ok=False,
                             failure=ProbeFailure.ADDRESS_REFUSED, detail=why)
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(check_database, host, port, database, credentials, tls, timeout_seconds),
            timeout_seconds + 1)
    except asyncio.TimeoutError:
        return DbProbeResult(host=host, port=port, database=database, user=credentials.username, ok=False,
                             failure=ProbeFailure.TIMEOUT, detail=f"no answer within {timeout_seconds:g} s")


def _server_error(result: DbProbeResult, err: pg8000.native.DatabaseError, connected: bool) -> None:
    fields = err.args[0] if err.args and isinstance(err.args[0], dict) else {}
    code, message = fields.get("C"), fields.get("M") or str(err)
    result.sqlstate, result.detail = code, f"{code}: {message}"[:DETAIL_CHARS] if code else message[:DETAIL_CHARS]
    if code in AUTH_STATES:
        result.failure = ProbeFailure.AUTH
    elif code == DATABASE_MISSING:
        result.failure = ProbeFailure.DATABASE_MISSING
    else:
        result.failure = ProbeFailure.QUERY if connected else ProbeFailure.OTHER


def _client_error(result: DbProbeResult, err: BaseException) -> None:
    cause = err.__cause__ or err.__context__ or err
    text = str(err)
    if isinstance(cause, socket.gaierror):
        result.failure, result.detail = ProbeFailure.DNS, f"{result.host} does not resolve: {cause.strerror or cause}"
    elif isinstance(cause, ConnectionRefusedError):
        result.failure, result.detail = ProbeFailure.REFUSED, f"connection to {result.host}:{result.port} refused"
    elif isinstance(cause, (socket.timeout, TimeoutError)):
        result.failure, result.detail = ProbeFailure.TIMEOUT, f"no answer from {result.host}:{result.port} in time"
    elif isinstance(cause, ssl.SSLError) or "SSL" in text:
        result.failure, result.detail = ProbeFailure.TLS, f"TLS failed: {cause}"
    else:
        result.failure, result.detail = ProbeFailure.NETWORK, f"{type(cause).__name__}: {cause}"
    result.detail = result.detail[:DETAIL_CHARS]


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "<hidden>") if secret else text
