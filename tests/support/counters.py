"""Counting what AWS received: moto's backend methods patched in this (the test's) process."""
from __future__ import annotations

import collections
import threading
import time

from moto.awslambda.models import LambdaBackend

MUTATING = ["update_function_code", "update_alias", "update_function_configuration", "publish_version"]


class CallCounter(collections.Counter):
    """Counts Lambda's mutating backend calls once armed; the first UpdateFunctionCode holds for 3 s."""

    def __init__(self, monkeypatch):
        super().__init__()
        self.monkeypatch = monkeypatch
        self.in_flight, self.completed = threading.Event(), threading.Event()

    def arm(self) -> None:
        for method in MUTATING:
            original = getattr(LambdaBackend, method)

            def counted(backend, *args, __original=original, __name=method, **kwargs):
                self[__name] += 1
                if __name == "update_function_code" and self[__name] == 1:
                    self.in_flight.set()
                    time.sleep(3)
                    try:
                        return __original(backend, *args, **kwargs)
                    finally:
                        self.completed.set()
                return __original(backend, *args, **kwargs)

            self.monkeypatch.setattr(LambdaBackend, method, counted)
