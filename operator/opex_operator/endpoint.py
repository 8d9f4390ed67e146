"""An HTTP endpoint of the operator's own (aiohttp) on its own port: the Alertmanager intake and the
on-call receivers are each one, started and stopped with the operator by their Kopf handlers."""
from __future__ import annotations

from aiohttp import web


class Endpoint:
    """Serves :meth:`app` on ``port`` once :meth:`start`-ed; subclasses build the application."""

    def __init__(self, port: int, max_body_bytes: int):
        self.port, self.max_body_bytes = port, max_body_bytes
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        raise NotImplementedError

    async def start(self, host: str) -> None:
        """Listen on ``host``:``port``. Raises OSError when the port is taken."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def body(self, request: web.Request) -> bytes | None:
        """The request's body, or None when it is over ``max_body_bytes`` (the caller answers 413)."""
        if (request.content_length or 0) > self.max_body_bytes:
            return None
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return None
