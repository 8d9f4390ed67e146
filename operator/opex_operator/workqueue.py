"""A keyed work queue, as client-go's ``workqueue`` and controller-runtime run reconcilers.

Watch events and timers add an object's key; a bounded pool of workers takes keys; a key is
never held by two workers at once (an add while it is being processed marks it dirty and it
is queued again when the worker is done); delayed adds live in one timer heap, not one
sleeping task per object; failures back off per key exponentially. An object that waits for
a person or a schedule costs nothing until its deadline or a watch event.

Order: a lower ``priority`` first (an Incident's severity: a critical production Incident is
never behind a backlog of low ones), and within a priority the namespaces take turns (fair
queuing by virtual time: each namespace's next key is stamped after the last one it got), so
one busy namespace cannot starve the others.

Pure asyncio, no Kopf and no I/O: ``clock`` is injectable and every method but :meth:`get`
is synchronous, so it is unit-tested with plain data.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import time
from dataclasses import dataclass
from typing import Callable, Hashable

Key = Hashable

BACKGROUND = 100   # added to the priority of work that can wait: re-checks and schedules


@dataclass(frozen=True)
class Backoff:
    """Per-key exponential backoff after failures: ``base`` seconds doubling to ``cap`` (client-go's
    ItemExponentialFailureRateLimiter defaults are 5 ms to 1000 s; a reconcile here costs more)."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, failures: int) -> float:
        return min(self.cap, self.base * 2 ** max(0, failures - 1))


def jittered(seconds: float, spread: float = 0.2, rng: random.Random | None = None) -> float:
    """``seconds`` ± ``spread`` (a fraction), so timers set together do not fire together."""
    return max(0.0, seconds * (1 + (rng or random).uniform(-spread, spread)))


class WorkQueue:
    """Keys ready now (ordered as the module docstring says), keys due later, keys being processed.

    ``namespace_of(key)`` names a key's namespace for fairness.
    """

    def __init__(self, namespace_of: Callable[[Key], str], clock: Callable[[], float] = time.monotonic,
                 backoff: Backoff = Backoff()):
        self.namespace_of, self.clock, self.backoff = namespace_of, clock, backoff
        self._ready: list[tuple[int, float, int, Key]] = []       # (priority, virtual time, seq, key)
        self._queued: dict[Key, tuple[int, float, int]] = {}       # key -> its entry in _ready (latest wins)
        self._timers: list[tuple[float, int, Key]] = []            # (due, seq, key)
        self._due: dict[Key, tuple[float, int]] = {}               # key -> (earliest due, priority)
        self._processing: set[Key] = set()
        self._dirty: dict[Key, int] = {}                           # added while processing -> priority
        self._failures: dict[Key, int] = {}
        self._added_at: dict[Key, float] = {}
        self._vt = 0.0                                             # virtual time of the last key handed out
        self._ns_vt: dict[str, float] = {}
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._shut = False

    # -- adding ---------------------------------------------------------------------------------
    def add(self, key: Key, priority: int = 0) -> None:
        """Make ``key`` ready now (a duplicate keeps the better priority; a key in process is marked
        dirty and queued again when its worker is done)."""
        if self._shut:
            return
        if key in self._processing:
            self._dirty[key] = min(priority, self._dirty.get(key, priority))
            return
        current = self._queued.get(key)
        if current is not None and current[0] <= priority:
            return
        namespace = self.namespace_of(key)
        vt = max(self._vt, self._ns_vt.get(namespace, 0.0)) + 1.0
        self._ns_vt[namespace] = vt
        seq = next(self._seq)
        self._queued[key] = (priority, vt, seq)
        heapq.heappush(self._ready, (priority, vt, seq, key))
        self._added_at.setdefault(key, self.clock())
        self._wakeup.set()

    def add_after(self, key: Key, delay: float, priority: int = BACKGROUND) -> None:
        """Make ``key`` ready after ``delay`` seconds (an earlier deadline already set wins)."""
        if self._shut:
            return
        if delay <= 0:
            self.add(key, priority)
            return
        due = self.clock() + delay
        current = self._due.get(key)
        if current is not None and current[0] <= due:
            return
        self._due[key] = (due, priority)
        heapq.heappush(self._timers, (due, next(self._seq), key))
        self._wakeup.set()

    def add_rate_limited(self, key: Key, priority: int = BACKGROUND) -> float:
        """After a failure: ready again after the key's backoff; returns the delay in seconds."""
        self._failures[key] = self._failures.get(key, 0) + 1
        delay = self.backoff.delay(self._failures[key])
        self.add_after(key, delay, priority)
        return delay

    def forget(self, key: Key) -> None:
        """The key succeeded: its next failure starts the backoff afresh."""
        self._failures.pop(key, None)

    def dirty(self, key: Key) -> bool:
        """An add came for ``key`` while a worker held it (the object changed meanwhile)."""
        return key in self._dirty

    def waiting_before(self, priority: int) -> bool:
        """A key more urgent than ``priority`` is ready: a worker chaining passes of one object
        lets it go first (a critical production Incident never waits for a chain of low ones)."""
        while self._ready:
            top = self._ready[0]
            if self._queued.get(top[3]) == top[:3]:
                return top[0] < priority
            heapq.heappop(self._ready)  # superseded or removed: drop it here rather than in get()
        return False

    def failures(self, key: Key) -> int:
        return self._failures.get(key, 0)

    def remove(self, key: Key) -> None:
        """The object is gone: forget everything about ``key`` (a worker holding it finishes)."""
        self._queued.pop(key, None)
        self._due.pop(key, None)
        self._dirty.pop(key, None)
        self._failures.pop(key, None)
        self._added_at.pop(key, None)

    # -- taking ---------------------------------------------------------------------------------
    async def get(self) -> tuple[Key, float, int]:
        """The next key, how long it waited (seconds) and its priority; the caller must call
        :meth:`done`. Raises asyncio.CancelledError after :meth:`shutdown`."""
        while True:
            if self._shut:
                raise asyncio.CancelledError("the work queue is shut down")
            self._fire_timers()
            while self._ready:
                priority, vt, seq, key = heapq.heappop(self._ready)
                if self._queued.get(key) != (priority, vt, seq):
                    continue  # superseded by a better entry, or removed
                del self._queued[key]
                self._due.pop(key, None)  # the pass about to run sets the next deadline itself
                self._vt = max(self._vt, vt)
                self._processing.add(key)
                waited = self.clock() - self._added_at.pop(key, self.clock())
                return key, waited, priority
            self._wakeup.clear()
            timeout = self._timers[0][0] - self.clock() if self._timers else None
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                pass

    def done(self, key: Key) -> None:
        """The worker finished ``key``; an add that came meanwhile queues it again."""
        self._processing.discard(key)
        if key in self._dirty:
            self.add(key, self._dirty.pop(key))

    def _fire_timers(self) -> None:
        now = self.clock()
        while self._timers and self._timers[0][0] <= now:
            due, _, key = heapq.heappop(self._timers)
            current = self._due.get(key)
            if current is None or current[0] != due:
                continue  # superseded or removed
            del self._due[key]
            self.add(key, current[1])

    # -- state ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Keys ready now (the queue depth)."""
        return len(self._queued)

    @property
    def waiting(self) -> int:
        """Keys with a deadline later."""
        return len(self._due)

    def next_due(self, key: Key) -> float | None:
        """Seconds until ``key`` is due (None: no timer)."""
        current = self._due.get(key)
        return None if current is None else max(0.0, current[0] - self.clock())

    @property
    def closed(self) -> bool:
        """:meth:`shutdown` was called: no more work is to start."""
        return self._shut

    def shutdown(self) -> None:
        """Stop handing out keys; workers blocked in :meth:`get` are woken and cancelled."""
        self._shut = True
        self._wakeup.set()
