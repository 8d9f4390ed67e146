"""The floor of an assessment: the least any controller does to assess an Incident, in a process of
its own, measured between the same two points as the operator's assessment.

It watches Incidents in its own namespace (the operator watches only the benchmark's), and for
each new one makes the reads an assessment makes, directly through the AWS reader and all at once
in threads, then one status patch with the ``Assessed`` condition. The benchmark times it as it
times the operator: from its create call to the moment its own watching client sees ``Assessed``.
So the two figures differ only by what the operator does beyond that (Kopf's handling of the watch
event, the work queue, reading the object, the playbook's reads in their order, the diagnosis,
the status it writes); the create, the two watch deliveries and the reads themselves are in both.

The operator is a process of its own and moto's server runs in the benchmark's process: a floor
in the benchmark's process would share moto's interpreter lock and be slower than the operator.
This process is started once and warmed by the first rounds (as the operator's clients are); it
prints ``ready`` once its watch is open, then ``error: ...`` for an Incident it could not assess.
The estate of an Incident is its ``bench.opex.dev/estate`` annotation.

Usage (``bench/runtime.py`` starts it): ``python bench/floor.py KUBECONFIG NAMESPACE`` with the
fake AWS's environment (``AWS_ENDPOINT_URL`` ...) and the raised call budget in ``OPEX_AWS_RATES``.
"""
from __future__ import annotations

import datetime as dt
import os
import sys
from concurrent.futures import ThreadPoolExecutor

ESTATE = "bench.opex.dev/estate"


def main(kubeconfig: str, namespace: str) -> None:
    import kubernetes

    from opex_operator.aws.budget import Budget, parse_rates
    from opex_operator.aws.clients import AwsClients
    from opex_operator.aws.reader import AwsReader
    from opex_operator.kube import Kube, ObjectRef

    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=config)
    client = kubernetes.client.ApiClient(config)
    kube, custom = Kube(client), kubernetes.client.CustomObjectsApi(client)
    reader = AwsReader(AwsClients("us-east-1", budget=Budget(rates=parse_rates(os.environ.get("OPEX_AWS_RATES", "")))),
                       None, None)
    pool = ThreadPoolExecutor(8)

    def assess(name: str, prefix: str) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        since = now - dt.timedelta(hours=1)
        builds = pool.submit(reader.builds, f"{prefix}-deploy", [])
        jobs = [pool.submit(reader.pipeline, f"{prefix}-pipeline", None),
                pool.submit(reader.lambda_function, f"{prefix}-api", since),
                pool.submit(reader.trail_errors_from_logs, f"CloudTrail/{prefix}", since)]
        build = builds.result()[0]
        jobs.append(pool.submit(reader.stream_lines, build.log_group, build.log_stream))
        for job in jobs:
            job.result()
        at = dt.datetime.now(dt.timezone.utc).isoformat()
        kube.patch_status(ObjectRef("incidents", namespace, name), {"phase": "Diagnosing", "assessedAt": at, "conditions": [
            {"type": "Assessed", "status": "True", "reason": "Assessed", "message": "floor", "lastTransitionTime": at}]})

    listed = custom.list_namespaced_custom_object("opex.dev", "v1alpha1", namespace, "incidents")
    version = listed["metadata"]["resourceVersion"]
    print("ready", flush=True)
    watch = kubernetes.watch.Watch()
    while True:
        for event in watch.stream(custom.list_namespaced_custom_object, "opex.dev", "v1alpha1", namespace, "incidents",
                                  resource_version=version, timeout_seconds=60):
            obj = event["object"]
            version = obj["metadata"]["resourceVersion"]
            if event["type"] != "ADDED" or obj.get("status"):
                continue
            name = obj["metadata"]["name"]
            try:
                assess(name, obj["metadata"]["annotations"][ESTATE])
            except Exception as err:  # noqa: BLE001 - reported to the benchmark, which stops
                print(f"error: {name}: {type(err).__name__}: {err}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
