"""Endpoints for tests: drive one of the operator's HTTP endpoints (``endpoint.Endpoint``) as its
sender would (start it, post one request over a real socket, stop it), and a TCP port that never answers."""
from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator

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


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never says a word (a hung server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
