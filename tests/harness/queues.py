"""Strict fakes of Cloudflare Queues: producers, push consumers, retries, dead-letter queues.

As in the runtime:

* ``await q.send(body, contentType=..., delaySeconds=...)`` and ``sendBatch([{body, ...}])``
  clone the body by the structured-clone rules (`rpc_clone`: a tuple, a set, a custom object
  raises) and refuse a message over 128 KB or a delay over 12 h (43,200 s);
* a consumer (``[[queues.consumers]]``) receives batches of at most ``max_batch_size``
  messages in ``queue(batch, env, ctx)``; a message has ``id``, ``timestamp``, ``body`` (a
  clone: dicts arrive as ``JsDict``), ``attempts`` (1 on first delivery), ``ack()`` and
  ``retry(delaySeconds=n)``; ``batch.ackAll()``/``retryAll()``. A handler that returns acks
  every message it neither acked nor retried; a handler that throws retries them all;
* a retried message comes back after its delay (default ``retry_delay``, else at once) with
  ``attempts`` one higher; once a delivery with ``attempts == max_retries + 1`` is retried it
  goes to ``dead_letter_queue`` (same body, attempts start again) or is dropped;
* delivery is at least once: ``duplicates = True`` delivers every acked message once more
  (same id and body), as the runtime may after a lost ack.

Time is the system's fake clock: ``deliver()`` runs what is due now; ``advance`` the clock to
reach delayed messages. Operations are counted (``operations``): a write, a read and a delete
per delivery, as Cloudflare bills them (about 3 per message).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .bindings import rpc_clone

MAX_MESSAGE_BYTES = 128 * 1024
MAX_DELAY_S = 43_200
MAX_BATCH_SIZE = 100
_ids = itertools.count(1)


class QueueError(Exception):
    """What the runtime throws for a rejected send (a JS Error)."""


def _size(body: Any) -> int:
    try:
        return len(json.dumps(body, default=str).encode("utf-8"))
    except (TypeError, ValueError):
        return len(repr(body).encode("utf-8"))


def _delay(options: dict[str, Any]) -> float:
    delay = options.get("delaySeconds", 0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise QueueError(f"delaySeconds must be a non-negative number, got {delay!r}")
    if delay > MAX_DELAY_S:
        raise QueueError(f"delaySeconds must be at most {MAX_DELAY_S}, got {delay}")
    return float(delay)


@dataclass
class Envelope:
    """A stored message."""

    id: str
    body: Any
    sent_at: float
    visible_at: float
    attempts: int = 1
    duplicate: bool = False


@dataclass
class ConsumerSpec:
    """One ``[[queues.consumers]]`` entry."""

    worker: str
    max_batch_size: int = 10
    max_retries: int = 3
    dead_letter_queue: str | None = None
    retry_delay: int = 0


@dataclass
class FakeQueue:
    """One queue: its stored messages, and the consumer bound to it (if any)."""

    name: str
    clock: Callable[[], float]
    consumer: ConsumerSpec | None = None
    messages: list[Envelope] = field(default_factory=list)
    duplicates: bool = False
    operations: int = 0
    sent: int = 0
    delivered: int = 0
    dead_lettered: int = 0

    def put(self, body: Any, *, delay: float = 0.0, attempts: int = 1) -> None:
        now = self.clock()
        self.operations += 1
        self.messages.append(Envelope(f"m{next(_ids)}", body, now, now + delay, attempts))

    def due(self) -> list[Envelope]:
        now = self.clock()
        return [m for m in self.messages if m.visible_at <= now]

    def next_due(self) -> float | None:
        """When the next stored message becomes visible (None when empty)."""
        return min((m.visible_at for m in self.messages), default=None)

    def bodies(self) -> list[Any]:
        """Stored message bodies (for assertions)."""
        return [m.body for m in self.messages]


class FakeQueueProducer:
    """A ``[[queues.producers]]`` binding."""

    def __init__(self, queue: FakeQueue) -> None:
        self._queue = queue

    async def send(self, body: Any, **options: Any) -> None:
        unknown = set(options) - {"contentType", "delaySeconds"}
        if unknown:
            raise TypeError(f"send(): unknown options {sorted(unknown)}")
        cloned = rpc_clone(body, path="message body")
        if _size(cloned) > MAX_MESSAGE_BYTES:
            raise QueueError(f"message is larger than {MAX_MESSAGE_BYTES} bytes")
        self._queue.sent += 1
        self._queue.put(cloned, delay=_delay(options))

    async def sendBatch(self, messages: Any, **options: Any) -> None:
        if not isinstance(messages, list) or len(messages) > MAX_BATCH_SIZE:
            raise QueueError(f"sendBatch() takes a list of at most {MAX_BATCH_SIZE} messages")
        for message in messages:
            if not isinstance(message, dict) or "body" not in message:
                raise TypeError("sendBatch(): each message is {body, contentType?, delaySeconds?}")
            extra = {k: v for k, v in message.items() if k != "body"}
            await self.send(message["body"], **{**options, **extra})


class FakeMessage:
    """A delivered message."""

    def __init__(self, envelope: Envelope) -> None:
        self._envelope = envelope
        self.id = envelope.id
        self.timestamp = envelope.sent_at * 1000.0
        self.body = rpc_clone(envelope.body, path="message body")
        self.attempts = envelope.attempts
        self.outcome: str | None = None  # "ack" or "retry"
        self.delay: float | None = None

    def ack(self) -> None:
        if self.outcome is None:
            self.outcome = "ack"

    def retry(self, **options: Any) -> None:
        unknown = set(options) - {"delaySeconds"}
        if unknown:
            raise TypeError(f"retry(): unknown options {sorted(unknown)}")
        if self.outcome is None:
            self.outcome = "retry"
            self.delay = _delay(options) if "delaySeconds" in options else None


class FakeMessageBatch:
    """``MessageBatch``: ``queue``, ``messages``, ``ackAll()``, ``retryAll()``."""

    def __init__(self, queue: str, messages: list[FakeMessage]) -> None:
        self.queue = queue
        self.messages = messages

    def ackAll(self) -> None:
        for m in self.messages:
            m.ack()

    def retryAll(self, **options: Any) -> None:
        for m in self.messages:
            m.retry(**options)


Consume = Callable[[str, FakeMessageBatch], Coroutine[Any, Any, Any]]


class Queues:
    """Every queue of a System, by name."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.by_name: dict[str, FakeQueue] = {}
        self.errors: list[BaseException] = []

    def queue(self, name: str) -> FakeQueue:
        if name not in self.by_name:
            self.by_name[name] = FakeQueue(name, self.clock)
        return self.by_name[name]

    def set_duplicates(self, on: bool = True) -> None:
        """Deliver every acked message once more (at-least-once delivery)."""
        for queue in self.by_name.values():
            queue.duplicates = on

    def pending(self) -> int:
        """Messages stored in every queue."""
        return sum(len(q.messages) for q in self.by_name.values())

    def next_due(self) -> float | None:
        """When the next stored message of any consumed queue becomes visible."""
        times = [
            t
            for q in self.by_name.values()
            if q.consumer is not None and (t := q.next_due()) is not None
        ]
        return min(times, default=None)

    async def deliver(self, consume: Consume, *, max_batches: int = 10_000) -> int:
        """Deliver what is due now, batch by batch, until nothing is due; returns batches."""
        batches = 0
        while batches < max_batches:
            ran = False
            for queue in list(self.by_name.values()):
                if queue.consumer is None:
                    continue
                due = queue.due()[: queue.consumer.max_batch_size]
                if not due:
                    continue
                ran = True
                batches += 1
                await self._deliver_batch(queue, due, consume)
            if not ran:
                break
        return batches

    async def _deliver_batch(self, queue: FakeQueue, due: list[Envelope], consume: Consume) -> None:
        spec = queue.consumer
        assert spec is not None
        for envelope in due:
            queue.messages.remove(envelope)
        messages = [FakeMessage(e) for e in due]
        queue.delivered += len(messages)
        queue.operations += len(messages)  # reads
        failed = False
        died: BaseException | None = None
        try:
            await consume(spec.worker, FakeMessageBatch(queue.name, messages))
        except Exception as exc:  # the handler threw: every unsettled message is retried
            self.errors.append(exc)
            failed = True
        except BaseException as exc:  # the isolate died: the same, then the caller sees it
            failed, died = True, exc
        now = self.clock()
        for message, envelope in zip(messages, due, strict=True):
            outcome = message.outcome or ("retry" if failed else "ack")
            if outcome == "ack":
                queue.operations += 1  # delete
                if queue.duplicates and not envelope.duplicate:
                    copy = Envelope(envelope.id, envelope.body, envelope.sent_at, now)
                    copy.attempts, copy.duplicate = envelope.attempts, True
                    queue.messages.append(copy)
                continue
            if envelope.attempts > spec.max_retries:
                queue.dead_lettered += 1
                queue.operations += 1
                if spec.dead_letter_queue is not None:
                    self.queue(spec.dead_letter_queue).put(envelope.body)
                continue
            delay = message.delay if message.delay is not None else float(spec.retry_delay)
            envelope.attempts += 1
            envelope.visible_at = now + delay
            queue.messages.append(envelope)
        if died is not None:
            raise died
