"""A stand-in service on loopback for tests and the demo: a subclass answers each POST
(:meth:`LocalServer.answer`) and shows what it received on ``GET /_state``
(:meth:`LocalServer.state`); the server runs in a thread of this process, on a free port, or as
a process of its own (:func:`serve`, for the local stack)."""
from __future__ import annotations

import argparse
import http.server
import json
import signal
import socketserver
import threading
from typing import Any, Callable


def serve_in_thread(server: socketserver.BaseServer) -> threading.Thread:
    """Run ``server.serve_forever`` in a daemon thread (started; returned): checking for ``shutdown()``
    every 50 ms, not the standard library's 500 ms, which every stop would otherwise wait out."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return thread


class LocalServer:
    """``start()`` serves on 127.0.0.1 (``base`` is its URL), ``stop()`` ends it."""

    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        """(status, answer, headers) for one POST: a ``bytes`` answer is sent as text, anything else as JSON."""
        raise NotImplementedError

    def state(self) -> Any:
        """What ``GET /_state`` shows (JSON): what the service received, for a process of its own."""
        return {}

    def start(self, port: int = 0):
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != "/_state":
                    self.send_error(404)
                    return
                data = json.dumps(service.state(), default=str).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

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

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        serve_in_thread(self._server)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def serve(make: Callable[[argparse.Namespace], LocalServer], description: str,
          options: Callable[[argparse.ArgumentParser], None] = lambda parser: None) -> None:
    """Run a stand-in as a process (``--port``) until SIGTERM; it prints ``serving on <url>``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    options(parser)
    args = parser.parse_args()
    service = make(args).start(args.port)
    print(f"serving on {service.base}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    service.stop()
