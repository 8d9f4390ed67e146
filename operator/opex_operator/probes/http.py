"""The runbook's API endpoint test, ``curl -X POST <api-gateway-url> -H ... -d '{"test": "data"}'``,
as a probe with aiohttp: status, latency and the first bytes of the body, or why it failed.
"""
from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ..runbooks.perf_facts import HttpProbeResult, ProbeFailure

BODY_HEAD_BYTES = 256


def public_url(url: str) -> str:
    """``url`` without user info, query or fragment (they may carry credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def probe_http(method: str, url: str, expected_status: int = 200, headers: dict[str, str] | None = None,
                     body: dict[str, Any] | None = None, timeout_seconds: float = 10.0,
                     session: aiohttp.ClientSession | None = None) -> HttpProbeResult:
    """Send one request; never raises for a failed request.

    ``body`` is sent as JSON (``Content-Type: application/json``, as the runbook's curl does);
    ``timeout_seconds`` bounds the whole request. ``latency_seconds`` runs from sending until
    the status line, headers and the first :data:`BODY_HEAD_BYTES` bytes of the body arrived.
    ``failure`` is Timeout, DNS, ConnectionRefused, TLS or Network when no response came.
    """
    result = HttpProbeResult(method=method, url=public_url(url), expected_status=expected_status)
    timeout = aiohttp.ClientTimeout(total=timeout_seconds)
    own = session is None
    session = session or aiohttp.ClientSession(timeout=timeout)
    sent = {"Content-Type": "application/json", **(headers or {})} if body is not None else dict(headers or {})
    started = time.monotonic()
    try:
        async with session.request(method, url, headers=sent, timeout=timeout,
                                   data=json.dumps(body).encode() if body is not None else None) as resp:
            head = await resp.content.read(BODY_HEAD_BYTES)
            result.latency_seconds = round(time.monotonic() - started, 6)
            result.status = resp.status
            result.body_head = head.decode(resp.get_encoding() if resp.charset else "utf-8", errors="replace")
    except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
        result.failure = ProbeFailure.TIMEOUT
    except aiohttp.ClientConnectorDNSError:
        result.failure = ProbeFailure.DNS
    except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError, ssl.SSLError):
        result.failure = ProbeFailure.TLS
    except aiohttp.ClientConnectorError as err:
        refused = isinstance(err.os_error, ConnectionRefusedError)
        result.failure = ProbeFailure.REFUSED if refused else ProbeFailure.NETWORK
    except aiohttp.ClientError:
        result.failure = ProbeFailure.NETWORK
    finally:
        if own:
            await session.close()
    if result.failure and result.latency_seconds is None:
        result.latency_seconds = round(time.monotonic() - started, 6)
    return result
