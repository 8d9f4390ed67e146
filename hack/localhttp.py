"""A stand-in service on loopback for tests and the demo: a subclass answers each POST
(:meth:`LocalServer.answer`); the server runs in a thread of this process, on a free port."""
from __future__ import annotations

import http.server
import json
import threading
from typing import Any


class LocalServer:
    """``start()`` serves on 127.0.0.1 (``base`` is its URL), ``stop()`` ends it."""

    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        """(status, answer, headers) for one POST: a ``bytes`` answer is sent as text, anything else as JSON."""
        raise NotImplementedError

    def start(self):
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer, headers = service.answer(self.path, dict(self.headers), body)
                text = isinstance(answer, bytes)
                data = answer if text else json.dumps(answer).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "text/plain" if text else "application/json",
                             "Content-Length": str(len(data)), **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
