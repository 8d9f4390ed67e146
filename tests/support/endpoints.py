"""Drive one of the operator's HTTP endpoints (``endpoint.Endpoint``) as its sender would: start it,
post one request over a real socket, stop it."""
from __future__ import annotations

import asyncio

import aiohttp


def post_once(server, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """(HTTP status, body text) of one POST of ``body`` to ``server`` (listening on 127.0.0.1:``server.port``)."""
    async def run():
        await server.start("127.0.0.1")
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(f"http://127.0.0.1:{server.port}{path}", data=body, headers=headers) as resp:
                    return resp.status, await resp.text()
        finally:
            await server.stop()

    return asyncio.run(run())
