"""A small HTTP app on loopback standing in for the API behind an API Gateway stage.

``POST /prod/orders`` answers 200 with a JSON echo of the order; :attr:`ApiApp.status` forces
another status (a broken release answers 502) and :attr:`ApiApp.hang` makes every request
wait until the app stops (a hung backend, for the probe's timeout). Requests are recorded.

``python hack/apiapp.py --port N`` serves until SIGTERM (the demo's API).
"""
from __future__ import annotations

import argparse
import http.server
import json
import signal
import threading

from localhttp import serve_in_thread


class ApiApp:
    """The app in a thread of this process; ``url`` is its base (``http://127.0.0.1:PORT``)."""

    def __init__(self, port: int = 0):
        self.status: int | None = None
        self.hang = False
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []  # (method, path, headers, body)
        self._stopping = threading.Event()
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                app.requests.append((self.command, self.path, dict(self.headers), body))
                if app.hang:
                    app._stopping.wait()
                    return
                known = self.path.split("?")[0] == "/prod/orders"
                status = app.status or (200 if known else 404)
                payload = (json.dumps({"ok": status < 400, "path": self.path, "received": len(body)}).encode()
                           if status < 500 else b'{"message": "Internal server error"}')
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> "ApiApp":
        serve_in_thread(self._server)
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = ApiApp(args.port).start()
    print(f"API app serving on {app.url}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    app.stop()


if __name__ == "__main__":
    main()
