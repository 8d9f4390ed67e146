"""moto's AWS server on loopback (or the node's address), in this process, so its backend models can be given failure states.

boto3 (in the operator and in tests) reaches it exactly as it reaches AWS, through the
environment :func:`aws_env` returns (``AWS_ENDPOINT_URL`` and dummy credentials). moto cannot
express some failures through its API (REFERENCE.md: pipeline executions and builds always
succeed), so :mod:`estate` sets them on the backend objects of this same process.

``python hack/fakeaws.py --port N [--host IP] [--seed demo --postgres HOST:PORT --api-url URL] [--ready-file F]``
serves until SIGTERM (the demo's AWS; the performance scenario's RDS endpoint and API stage point at
the local PostgreSQL and API app given); tests call :func:`start` from the pytest process instead.
"""
from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"


def aws_env(url: str, region: str = REGION) -> dict[str, str]:
    """Environment that points boto3 and terraform's AWS SDK at the fake AWS at ``url``."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def start(port: int = 0, host: str = "127.0.0.1"):
    """Start moto's server on ``host``:``port`` (0 = any free port); returns (server, url). Pods on the
    node (hack/node.py) reach it on the node's address, never on loopback."""
    import logging

    import moto_compat
    import moto_ext
    import moto_perf  # noqa: F401  - percentiles, Performance Insights, RDS endpoints
    import moto_security  # noqa: F401 - RotateSecret modelled (moto breaks a secret without a rotation Lambda)

    moto_compat.verify()  # the internals the three patch are still there, or a list of what moved

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access line per AWS call otherwise
    server = moto_ext.Server(ip_address=host, port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return server, f"http://{host}:{bound}"


def spawn(log: Path, ready: Path, *args: str):
    """Run this module as a server process with ``args`` (see :func:`main`), output to ``log``, and
    wait until it serves; returns (process, URL). RuntimeError with the log's tail when it has not
    started within 60 s (the process is stopped first)."""
    import sys
    import time

    import procs

    ready.unlink(missing_ok=True)
    proc = procs.spawn([sys.executable, str(Path(__file__).resolve()), *args, "--ready-file", str(ready)], log)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            procs.terminate(proc.pid, 5.0, proc)
            raise RuntimeError(f"the fake AWS did not start:\n{procs.tail(log)}")
        time.sleep(0.1)
    return proc, ready.read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (the node's, for pods)")
    parser.add_argument("--seed", choices=["none", "demo"], default="none", help="seed the demo's AWS estate")
    parser.add_argument("--ready-file", type=Path, help="written with the URL once serving ")
    parser.add_argument("--postgres", help="HOST:PORT of the demo's PostgreSQL (the performance scenario)")
    parser.add_argument("--api-url", help="base URL of the demo's API app (the performance scenario)")
    args = parser.parse_args()
    server, url = start(args.port, args.host)
    os.environ.update(aws_env(url))
    if args.seed == "demo":
        import estate

        estate.seed_demo()
        if args.postgres and args.api_url:
            import perf_estate

            host, port = args.postgres.rsplit(":", 1)
            perf_estate.seed_demo((host, int(port)), args.api_url)
    if args.ready_file:
        args.ready_file.write_text(url)
    print(f"fake AWS serving on {url}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()


if __name__ == "__main__":
    main()
