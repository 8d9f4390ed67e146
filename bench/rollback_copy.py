"""A static site's restore: objects copied per second by a Rollback's copy batch, before and after
copies ran concurrently, side by side in one run (moto's server in a process of its own, as the
operator meets it).

``python bench/rollback_copy.py [--objects 400] [--rounds 2]``: prints one row per way of copying.
"before" is the copy as it was until this benchmark was added (one at a time: HeadObject, then
boto3's managed copy, which reads the object again and runs a thread pool of its own), kept here as
the reference; the others are the operator's ``run_batch`` over ``SiteActions.copy`` at several
concurrencies. Without the AWS call budget (moto has no quotas) unless the row says otherwise;
with no added latency, and with a round trip added to every S3 request (moto on loopback answers
in about a millisecond, AWS in tens). Figures only, never pass/fail; not part of ``make bench``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from common import ROOT, UNLIMITED  # sys.path: hack/, tests/

sys.path.insert(0, str(ROOT / "operator"))

import boto3  # noqa: E402
import fakeaws  # noqa: E402
import procs  # noqa: E402
from opex_operator.aws.budget import Budget, parse_rates  # noqa: E402
from opex_operator.aws.clients import AwsClients  # noqa: E402
from opex_operator.aws.site import RESTORED_FROM, SiteActions  # noqa: E402
from opex_operator.controllers.rollback import COPY_CONCURRENCY, run_batch  # noqa: E402

BUCKET, BACKUP = "www-bench", "backups/1/"


def seed(objects: int) -> list[str]:
    """``objects`` small pages (2 KiB, content headers and metadata, as a site's) in the backup."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    keys = [f"page-{i:05}.html" for i in range(objects)]
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=BACKUP + key, Body=key.encode() * 150, ContentType="text/html",
                      CacheControl="max-age=60", Metadata={"release": "41"})
    return keys


def before(s3, keys: list[str], target: str) -> None:
    """The copy as it was: one object at a time, HeadObject then boto3's managed copy."""
    for key in keys:
        head = s3.head_object(Bucket=BUCKET, Key=BACKUP + key)
        extra = {"ContentType": head["ContentType"], "CacheControl": head["CacheControl"],
                 "Metadata": {**head["Metadata"], RESTORED_FROM: head["ETag"].strip('"')},
                 "MetadataDirective": "REPLACE"}
        s3.copy({"Bucket": BUCKET, "Key": BACKUP + key}, BUCKET, target + key, ExtraArgs=extra)


def after(site: SiteActions, concurrency: int) -> Callable[[list[str], str], None]:
    def copy(keys: list[str], target: str) -> None:
        done, error = run_batch(lambda key: site.copy(BUCKET, BACKUP + key, BUCKET, target + key), keys, 3600,
                                concurrency)
        if error is not None or done != len(keys):
            raise RuntimeError(f"{done} of {len(keys)} copied: {error}")
    return copy


def with_latency(clients: AwsClients, seconds: float) -> AwsClients:
    """``clients`` whose S3 requests each wait ``seconds`` before they are sent: a round trip to AWS,
    which moto on loopback lacks (a copy to AWS waits on the network, not on a CPU)."""
    if seconds:
        clients.client("s3").meta.events.register("before-send.s3", lambda **_: time.sleep(seconds))
    return clients


def ways(latency: float) -> dict[str, Callable[[list[str], str], None]]:
    """Each way of copying at ``latency`` seconds a request, by name."""
    unlimited = with_latency(AwsClients("us-east-1", budget=Budget(rates=parse_rates(UNLIMITED))), latency)
    budgeted = with_latency(AwsClients("us-east-1"), latency)  # the operator's default budget
    at = f"{latency * 1000:.0f} ms a request"
    out: dict[str, Callable[[list[str], str], None]] = {
        f"{at}, before: one at a time, HeadObject + managed copy": lambda k, t: before(unlimited.client("s3"), k, t),
        f"{at}, before, the default AWS budget": lambda k, t: before(budgeted.client("s3"), k, t)}
    for n in sorted({1, 4, 8, 16, 32, COPY_CONCURRENCY}):
        mark = " (COPY_CONCURRENCY)" if n == COPY_CONCURRENCY else ""
        out[f"{at}, after: {n} in flight, HeadObject + CopyObject{mark}"] = after(SiteActions(unlimited, None, None), n)
    out[f"{at}, after: {COPY_CONCURRENCY} in flight, the default AWS budget"] = \
        after(SiteActions(budgeted, None, None), COPY_CONCURRENCY)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2, help="each way is measured this often, interleaved")
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 20.0],
                        help="added to each S3 request, one set of rows each (default: none, and 20 ms)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opex-bench-copy-"))
    proc, url = fakeaws.spawn(work / "moto.log", work / "moto.ready")
    try:
        os.environ.update(fakeaws.aws_env(url))
        keys = seed(args.objects)
        every = {name: copy for ms in args.latency_ms for name, copy in ways(ms / 1000).items()}
        rates: dict[str, list[float]] = {name: [] for name in every}
        for round_ in range(args.rounds):
            for i, (name, copy) in enumerate(every.items()):
                started = time.perf_counter()
                copy(keys, f"r{round_}-w{i}/")
                rates[name].append(len(keys) / (time.perf_counter() - started))
        print(f"{args.objects} objects of 2 KiB restored, {os.cpu_count()} cores, load "
              f"{'/'.join(f'{x:.1f}' for x in os.getloadavg())}; objects per second, median of {args.rounds} "
              f"(no AWS budget unless said; the default budget has s3 100 calls/s):")
        for name, values in rates.items():
            print(f"  {statistics.median(values):7.1f}  {name}")
    finally:
        procs.terminate(proc.pid, 5.0, proc)


if __name__ == "__main__":
    main()
