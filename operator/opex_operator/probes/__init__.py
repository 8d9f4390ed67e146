"""Checks against live endpoints (the runbook's ``curl`` and ``psql -c "SELECT 1"``), reporting
what they saw as ``ports.performance`` results; never a password or header value."""
from __future__ import annotations

from typing import Any

from ..api.performance import TlsMode
from ..ports.performance import Credentials, DbProbeResult, HttpProbeResult
from .database import probe_database
from .http import Guard, probe_http


class LiveProbes:
    """``ports.ProbesPort`` over aiohttp and pg8000 (see :func:`probe_http`, :func:`probe_database`)."""

    async def http(self, method: str, url: str, expected_status: int, headers: dict[str, str],
                   body: dict[str, Any] | None, timeout_seconds: float, guard: Guard) -> HttpProbeResult:
        return await probe_http(method, url, expected_status, headers, body, timeout_seconds, guard=guard)

    async def database(self, host: str, port: int, database: str, credentials: Credentials, tls: TlsMode,
                       timeout_seconds: float, guard: Guard) -> DbProbeResult:
        return await probe_database(host, port, database, credentials, tls, timeout_seconds, guard)
