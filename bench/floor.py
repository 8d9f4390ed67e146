"""The floor of an assessment, in a process of its own: the reads an assessment makes, made directly
through the AWS reader all at once in threads, then one status patch.

The operator is a process of its own and moto's server runs in the benchmark's process: a floor made
from the benchmark's process would share moto's interpreter lock and be slower than the operator,
so the ratio of the two would flatter the operator. This process is started once, its clients and
thread pool warmed by the first rounds (as the operator's are), and driven over stdin/stdout: one
estate prefix per line in, the seconds the floor took (or ``error: ...``) per line out.

Usage (``bench/runtime.py`` starts it): ``python bench/floor.py KUBECONFIG NAMESPACE NAME`` with the
fake AWS's environment (``AWS_ENDPOINT_URL`` ...) and the raised call budget in ``OPEX_AWS_RATES``.
"""
from __future__ import annotations

import datetime as dt
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def main(kubeconfig: str, namespace: str, name: str) -> None:
    import kubernetes

    from opex_operator.aws.budget import Budget, parse_rates
    from opex_operator.aws.clients import AwsClients
    from opex_operator.aws.reader import AwsReader
    from opex_operator.kube import Kube, ObjectRef

    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=config)
    kube = Kube(kubernetes.client.ApiClient(config))
    ref = ObjectRef("incidents", namespace, name)
    reader = AwsReader(AwsClients("us-east-1", budget=Budget(rates=parse_rates(os.environ.get("OPEX_AWS_RATES", "")))),
                       None, None)
    pool = ThreadPoolExecutor(8)

    def floor(prefix: str) -> float:
        since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
        t0 = time.monotonic()
        builds = pool.submit(reader.builds, f"{prefix}-deploy", [])
        jobs = [pool.submit(reader.pipeline, f"{prefix}-pipeline", None),
                pool.submit(reader.lambda_function, f"{prefix}-api", since),
                pool.submit(reader.trail_errors_from_logs, f"CloudTrail/{prefix}", since)]
        build = builds.result()[0]
        jobs.append(pool.submit(reader.stream_lines, build.log_group, build.log_stream))
        for job in jobs:
            job.result()
        kube.patch_status(ref, {"phase": "Diagnosing", "assessedAt": dt.datetime.now(dt.timezone.utc).isoformat()})
        return time.monotonic() - t0

    for line in sys.stdin:
        try:
            print(f"{floor(line.strip()):.6f}", flush=True)
        except Exception as err:  # noqa: BLE001 - reported to the benchmark, which stops
            print(f"error: {type(err).__name__}: {err}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
