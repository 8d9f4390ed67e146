"""The AWS call budget: one rate limiter per (service, region) that every AWS call of the operator
draws from, so the operator stays within AWS's request quotas however many objects it serves.

AWS throttles per account and region, per API (documented quotas; defaults below): CloudWatch
Logs ``FilterLogEvents`` 5 TPS, ``GetLogEvents`` 25 TPS, CloudTrail ``LookupEvents`` 2 TPS,
Lambda control plane 15 TPS (``GetFunction`` 100), CodePipeline and CodeBuild reads around 20.
botocore's adaptive retries react after AWS says "slow down"; the budget keeps the operator from
getting there. A call waits for a token (in its worker thread; the event loop never blocks).

Background work (re-checks of waiting Incidents, scheduled passes: :func:`background`) may use
only ``background_share`` of each budget, so it can never crowd out the first assessment of a
new Incident; the rest of the budget stays for foreground work.

Budgets are configurable with ``OPEX_AWS_RATES`` (``service[:Operation]=calls per second``,
comma-separated, e.g. ``logs=5,cloudtrail:LookupEvents=2,lambda=15``).
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

# Requests per second per account and region (AWS service quotas pages; the lowest documented
# figure of the operations the runbook calls).
DEFAULT_RATES: dict[str, float] = {
    "logs": 25.0, "logs:FilterLogEvents": 5.0, "logs:GetLogEvents": 25.0,
    "cloudtrail": 2.0, "cloudtrail:LookupEvents": 2.0,
    "lambda": 15.0, "lambda:GetFunction": 100.0,
    "codepipeline": 20.0, "codebuild": 20.0, "apigateway": 10.0, "rds": 20.0, "ec2": 20.0,
    "iam": 20.0, "wafv2": 10.0, "secretsmanager": 50.0, "cloudwatch": 20.0, "s3": 100.0,
    "cloudfront": 10.0, "sns": 100.0, "sts": 50.0,
}
FALLBACK_RATE = 10.0

_background: contextvars.ContextVar[bool] = contextvars.ContextVar("opex_aws_background", default=False)
_counter: contextvars.ContextVar["CallCounter | None"] = contextvars.ContextVar("opex_aws_calls", default=None)


class CallCounter:
    """Counts the AWS calls made inside :func:`counting` (thread-safe: reads run in threads)."""

    def __init__(self):
        self.calls = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.calls += 1


@contextlib.contextmanager
def counting() -> Iterator[CallCounter]:
    """Count the AWS calls made inside (e.g. by one assessment)."""
    counter = CallCounter()
    token = _counter.set(counter)
    try:
        yield counter
    finally:
        _counter.reset(token)


@contextlib.contextmanager
def background(on: bool = True) -> Iterator[None]:
    """AWS calls made inside (and in threads started inside, ``asyncio.to_thread`` copies the
    context) draw on the background share of the budget."""
    token = _background.set(on)
    try:
        yield
    finally:
        _background.reset(token)


class Bucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` saved. Thread-safe."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self._tokens, self._at = burst, clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a token; returns the seconds to wait before using it (0 when one was there)."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


@dataclass
class Budget:
    """Token buckets per (service or service:Operation, region), created on first use."""

    rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATES))
    background_share: float = 0.2
    sleep: Callable[[float], None] = time.sleep
    _buckets: dict[tuple[str, str, bool], Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _bucket(self, name: str, region: str, is_background: bool) -> Bucket | None:
        if name not in self.rates and ":" in name:
            return None
        rate = self.rates.get(name, FALLBACK_RATE)
        if is_background:
            rate *= self.background_share
        key = (name, region, is_background)
        with self._lock:
            if key not in self._buckets:
                self._buckets[key] = Bucket(rate, max(1.0, rate))
            return self._buckets[key]

    def acquire(self, service: str, operation: str, region: str) -> float:
        """Wait until ``service:operation`` in ``region`` may be called; returns the seconds waited."""
        counter = _counter.get()
        if counter is not None:
            counter.add()
        is_background = _background.get()
        waits = []
        for name in (f"{service}:{operation}", service):
            for bg in ((False, True) if is_background else (False,)):
                bucket = self._bucket(name, region, bg)
                if bucket is not None:
                    waits.append(bucket.reserve())
        waited = max(waits, default=0.0)
        if waited > 0:
            self.sleep(waited)
        return waited


def parse_rates(text: str) -> dict[str, float]:
    """``OPEX_AWS_RATES`` over the defaults. Raises ValueError naming the bad entry."""
    rates = dict(DEFAULT_RATES)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        try:
            rates[name.strip()] = float(value)
            if rates[name.strip()] <= 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"OPEX_AWS_RATES entry {item!r} must be service[:Operation]=<calls per second > 0>") \
                from None
    return rates
