"""Counting what AWS received: moto's backend methods patched in this (the test's) process."""
from __future__ import annotations

import collections
import threading
import time

from moto.awslambda.models import LambdaBackend

MUTATING = ["update_function_code", "update_alias", "update_function_configuration", "publish_version"]


class CallCounter(collections.Counter):
    """Counts calls of moto's backend (or request handler) methods once armed: ``methods`` maps a
    class to the names of its methods to count (default: Lambda's mutating calls). The first call
    of ``hold`` takes ``hold_seconds``, so a test can kill the operator while it is in flight
    (``in_flight`` is set when it starts, ``completed`` when it returns): a SIGKILL from the test
    takes milliseconds; a pod deleted through the API server reaches the operator through the kubelet."""

    def __init__(self, monkeypatch, methods: dict[type, list[str]] | None = None, hold: str = "update_function_code",
                 hold_seconds: float = 1.0):
        super().__init__()
        self.monkeypatch, self.methods, self.hold = monkeypatch, methods or {LambdaBackend: MUTATING}, hold
        self.hold_seconds = hold_seconds
        self.in_flight, self.completed = threading.Event(), threading.Event()

    def arm(self) -> None:
        for cls, names in self.methods.items():
            for name in names:
                original = getattr(cls, name)

                def counted(this, *args, __original=original, __name=name, **kwargs):
                    self[__name] += 1
                    if __name == self.hold and self[__name] == 1:
                        self.in_flight.set()
                        time.sleep(self.hold_seconds)
                        try:
                            return __original(this, *args, **kwargs)
                        finally:
                            self.completed.set()
                    return __original(this, *args, **kwargs)

                self.monkeypatch.setattr(cls, name, counted)
