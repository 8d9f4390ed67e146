"""The SQS long-poll loop of the event intake: receive, write, and delete only once written.

**Leader only.** With leader election on, only the holder of the Lease consumes (the handler waits
for it), as only the leader reconciles. SQS hands each message to one receiver anyway and the
exactly-once guarantee lies in the Incident (its natural-key name, the event ids in its record,
writes at the resourceVersion read), so more consumers would add no safety; what they would add is
a standby calling AWS and writing Incidents while it is meant to do nothing, messages held invisible
by a replica about to exit when it loses the Lease, and two mapping rule files competing during an
upgrade. Not one consumer per shard either: shards split the *reconciling* of existing objects by
their ``opex.dev/shard`` label, and an event has no object yet; the Incidents the intake opens are
unlabelled, so they belong to the default shard, whose Deployment the chart gives the queues.

Each queue is polled by its own task: ``ReceiveMessage`` with up to :data:`MAX_MESSAGES` messages,
``WaitTimeSeconds`` :data:`WAIT_SECONDS` and the configured visibility timeout (longer than a
batch's writes take, so no message comes back while its Incident is being written; if one does,
its Incident holds its event id and the second write is a duplicate). A message is deleted once the
intake says every event in it is written (``events.intake``); one that is refused or deferred
stays, comes back after the visibility timeout and, after the queue's ``maxReceiveCount`` receives,
moves to the dead-letter queue. A ReceiveMessage or DeleteMessageBatch that fails is counted,
logged once per kind of failure and retried with backoff: nothing is lost (an undeleted message
comes back and is a duplicate). The long poll runs on a daemon thread of its own, so a stop does
not wait for a poll to end.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from typing import Any, Callable

from .. import metrics
from ..api.common import now as utcnow
from ..errors import AwsError
from ..ports import EventQueue
from .intake import EventIntake

log = logging.getLogger(__name__)

MAX_MESSAGES, WAIT_SECONDS = 10, 20        # SQS's largest batch and longest long poll
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0     # seconds between failed calls, doubling
REDRIVE_REFRESH = 600.0                    # seconds between reads of a queue's redrive policy


async def _on_daemon(call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)`` on a daemon thread: a stop (or the process' exit) never waits for it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            future.set_result(value) if ok else future.set_exception(value)

    def run() -> None:
        try:
            result, ok = call(*args), True
        except BaseException as err:  # noqa: BLE001 - handed to the awaiting task
            result, ok = err, False
        try:
            loop.call_soon_threadsafe(settle, ok, result)
        except RuntimeError:  # the loop closed while the poll was out: nobody waits any more
            pass

    threading.Thread(target=run, name="opex-event-poll", daemon=True).start()
    return await future


class QueueConsumer:
    """Polls ``queues`` and hands each message to ``intake`` (see the module docstring)."""

    def __init__(self, intake: EventIntake, queues: list[EventQueue], visibility_seconds: int,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.intake, self.queues, self.visibility, self.clock = intake, queues, visibility_seconds, clock
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        """One polling task per queue, on the running loop."""
        self._tasks = [asyncio.create_task(self._poll(q), name=f"opex-events-{q.name}") for q in self.queues]

    async def stop(self) -> None:
        """Stop polling; a message in the middle of its write is not deleted and comes back."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _poll(self, queue: EventQueue) -> None:
        delay, failing, last_receive, read_at = BACKOFF_FIRST, "", None, -REDRIVE_REFRESH
        loop = asyncio.get_running_loop()
        while True:
            try:
                if loop.time() - read_at >= REDRIVE_REFRESH:
                    last_receive = await asyncio.to_thread(queue.max_receive_count)
                    read_at = loop.time()
                    if last_receive is None:
                        log.warning("queue %s has no redrive policy: a message that can never map comes back until "
                                    "its retention period ends; give the queue a dead-letter queue (examples/aws)",
                                    queue.name)
                messages = await _on_daemon(queue.receive, MAX_MESSAGES, WAIT_SECONDS, self.visibility)
            except AwsError as err:
                metrics.EVENT_QUEUE_ERRORS.labels(queue.name, err.operation or "unknown").inc()
                if str(err) != failing:
                    log.error("event queue %s: %s; retrying every %.0f s at most", queue.name, err, BACKOFF_MAX)
                    failing = str(err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            if failing:
                log.info("event queue %s answers again", queue.name)
            delay, failing = BACKOFF_FIRST, ""
            await self._batch(queue, messages, last_receive)

    async def _batch(self, queue: EventQueue, messages: list[Any], last_receive: int | None) -> None:
        now = self.clock()
        ages = [(now - m.sent_at).total_seconds() for m in messages if m.sent_at is not None]
        metrics.EVENT_QUEUE_OLDEST.labels(queue.name).set(max(ages, default=0.0))
        if not messages:
            return
        verdicts = await asyncio.gather(*(self.intake.take(m.body, queue.name, m.receives, last_receive, queue.role_key)
                                          for m in messages))
        done = [m for m, v in zip(messages, verdicts) if v.done]
        for m, v in zip(messages, verdicts):
            metrics.EVENT_MESSAGES.labels("deleted" if v.done else "kept").inc()
        try:
            failed = await asyncio.to_thread(queue.delete, done)
        except AwsError as err:
            metrics.EVENT_QUEUE_ERRORS.labels(queue.name, err.operation or "DeleteMessageBatch").inc()
            log.error("event queue %s: the written messages were not deleted (%s); they come back as duplicates",
                      queue.name, err)
            return
        if failed:
            log.warning("event queue %s did not delete %d written messages; they come back as duplicates",
                        queue.name, len(failed))
