"""moto's AWS server on loopback, in this process, so its backend models can be given failure states.

boto3 (in the operator and in tests) reaches it exactly as it reaches AWS, through the
environment :func:`aws_env` returns (``AWS_ENDPOINT_URL`` and dummy credentials). moto cannot
express some failures through its API (REFERENCE.md: pipeline executions and builds always
succeed), so :mod:`estate` sets them on the backend objects of this same process.

``python hack/fakeaws.py --port N [--seed demo --postgres HOST:PORT --api-url URL] [--ready-file F]``
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


def start(port: int = 0):
    """Start moto's server on 127.0.0.1:``port`` (0 = any free port); returns (server, url)."""
    import logging

    import moto_compat
    import moto_ext
    import moto_perf  # noqa: F401  - percentiles, Performance Insights, RDS endpoints
    import moto_security  # noqa: F401 - RotateSecret modelled (moto breaks a secret without a rotation Lambda)

    moto_compat.verify()  # the internals the three patch are still there, or a list of what moved

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access line per AWS call otherwise
    server = moto_ext.Server(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return server, f"http://{host}:{bound}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", choices=["none", "demo"], default="none", help="seed the demo's AWS estate")
    parser.add_argument("--ready-file", type=Path, help="written with the URL once serving ")
    parser.add_argument("--postgres", help="HOST:PORT of the demo's PostgreSQL (the performance scenario)")
    parser.add_argument("--api-url", help="base URL of the demo's API app (the performance scenario)")
    args = parser.parse_args()
    server, url = start(args.port)
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
