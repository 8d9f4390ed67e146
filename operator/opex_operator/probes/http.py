"""The runbook's API endpoint test, ``curl -X POST <api-gateway-url> -H ... -d '{"test": "data"}'``,
as a probe with aiohttp: status, latency and the first bytes of the body, or why it failed.

A probe is an outbound request the operator makes on a tenant's behalf, so every address it
would connect to is checked first (``guard``, the operator policy's ``ProbeRule.refusal``):
after name resolution, by the resolver that hands the connector its addresses, so a name
cannot resolve to the metadata service between the check and the connection; an IP address
in the URL is checked before the request. Redirects are not followed (the runbook's curl has
no ``-L``): a 3xx is reported as the status it is, never a second, unchecked connection.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import ssl
import time
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from ..ports.performance import HttpProbeResult, ProbeFailure

BODY_HEAD_BYTES = 256


def public_url(url: str) -> str:
    """``url`` without user info, query or fragment (they may carry credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


Guard = Callable[[str], "str | None"]
"""An IP address -> None when a probe may connect to it, else why not (``policy.ProbeRule.refusal``)."""


class AddressRefused(Exception):
    """The host is, or resolves to, an address the guard refuses; the message says which and why."""


class GuardedResolver(AbstractResolver):
    """aiohttp's threaded resolver, refusing every answer that holds an address the guard refuses
    (the connector connects only to addresses this returned)."""

    def __init__(self, guard: Guard):
        self.guard, self.inner = guard, aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        answers = await self.inner.resolve(host, port, family)
        for answer in answers:
            if why := self.guard(answer["host"]):
                raise AddressRefused(f"{host} resolves to {answer['host']}: {why}")
        return answers

    async def close(self) -> None:
        await self.inner.close()


def literal_refusal(host: str, guard: Guard) -> str | None:
    """Why ``host`` may not be probed when it is an IP address (None for a name: the resolver checks it)."""
    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None
    return guard(host.strip("[]"))


def allow_all(address: str) -> None:
    return None


async def probe_http(method: str, url: str, expected_status: int = 200, headers: dict[str, str] | None = None,
                     body: dict[str, Any] | None = None, timeout_seconds: float = 10.0,
                     session: aiohttp.ClientSession | None = None, guard: Guard = allow_all) -> HttpProbeResult:
    """Send one request; never raises for a failed request.

    ``body`` is sent as JSON (``Content-Type: application/json``, as the runbook's curl does);
    ``timeout_seconds`` bounds the whole request. ``latency_seconds`` runs from sending until
    the status line, headers and the first :data:`BODY_HEAD_BYTES` bytes of the body arrived.
    ``failure`` is Timeout, DNS, ConnectionRefused, TLS or Network when no response came, and
    AddressRefused (with ``detail``) when ``guard`` refuses the address (see the module docstring).
    """
    result = HttpProbeResult(method=method, url=public_url(url), expected_status=expected_status)
    if why := literal_refusal(urlsplit(url).hostname or "", guard):
        result.failure, result.detail, result.latency_seconds = ProbeFailure.ADDRESS_REFUSED, why, 0.0
        return result
    timeout = aiohttp.ClientTimeout(total=timeout_seconds)
    own = session is None
    session = session or aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(
        resolver=GuardedResolver(guard), use_dns_cache=False))
    sent = {"Content-Type": "application/json", **(headers or {})} if body is not None else dict(headers or {})
    started = time.monotonic()
    try:
        async with session.request(method, url, headers=sent, timeout=timeout, allow_redirects=False,
                                   data=json.dumps(body).encode() if body is not None else None) as resp:
            head = await resp.content.read(BODY_HEAD_BYTES)
            result.latency_seconds = round(time.monotonic() - started, 6)
            result.status = resp.status
            result.body_head = head.decode(resp.get_encoding() if resp.charset else "utf-8", errors="replace")
    except AddressRefused as err:
        result.failure, result.detail = ProbeFailure.ADDRESS_REFUSED, str(err)
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
