"""Produce from asyncio code and await the broker's acknowledgement of each record.

For request/response paths (the API's synchronous scoring): a caller is answered
only once its records are durable in Kafka. librdkafka delivers reports on the
thread that polls; a poll thread hands each report to the event loop that
asked, as the result of an ``asyncio.Future``.

1. ``send`` queues every record (``produce`` with a per-record callback) and
   returns one future per record, created on the caller's loop.
2. The poll thread serves delivery reports continuously (``poll(0.05)``); each
   report completes its future through ``loop.call_soon_threadsafe`` (futures
   are not thread-safe).
3. ``send`` waits for all futures up to ``timeout_s``; a failed or late record
   raises :class:`DeliveryError` naming how many failed and why. A late record
   may still be delivered afterwards: the caller's retry must be idempotent
   (the scoring route's is: the event's features and decision are recorded).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, Message
from confluent_kafka import Producer as _RdProducer

from streamscore.libs.kafka_config import DELIVERY_TIMEOUT_MS, KafkaConf, producer_config

Record = tuple[str, bytes | None, bytes]  # topic, key, value


class DeliveryError(RuntimeError):
    """Some records were not acknowledged (failed, or not within the timeout)."""


class AsyncDelivery:
    """An idempotent, ``acks=all`` producer whose sends are awaited."""

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str,
        linger_ms: float = 0.5,
        delivery_timeout_ms: int = DELIVERY_TIMEOUT_MS,
        security: KafkaConf | None = None,
    ) -> None:
        self._producer = _RdProducer(
            producer_config(
                bootstrap,
                client_id=client_id,
                linger_ms=linger_ms,
                delivery_timeout_ms=delivery_timeout_ms,
                security=security,
            )
        )
        self.acked = 0
        self.failed: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name=f"{client_id}-poll", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def send(self, records: Sequence[Record], *, timeout_s: float = 5.0) -> None:
        """Produce ``records`` and return once the broker acknowledged every one (steps 1-3)."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for topic, key, value in records:
            fut: asyncio.Future[None] = loop.create_future()
            futures.append(fut)
            try:
                self._producer.produce(topic, value, key, on_delivery=self._reporter(loop, fut))
            except BufferError as exc:  # the local queue is full: the broker is not keeping up
                self.failed["_QUEUE_FULL"] += 1
                raise DeliveryError("local producer queue full") from exc
        done, pending = await asyncio.wait(futures, timeout=timeout_s)
        errors = Counter(type(f.exception()).__name__ for f in done if f.exception())
        reasons = Counter(str(f.exception()) for f in done if f.exception())
        if pending or errors:
            raise DeliveryError(
                f"{len(pending)} not acknowledged within {timeout_s} s, "
                f"{sum(errors.values())} failed {dict(reasons)}"
            )

    def _reporter(
        self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]
    ) -> Callable[[KafkaError | None, Message], None]:
        def report(err: KafkaError | None, _msg: Message) -> None:
            # Runs on the poll thread (step 2).
            if err is None:
                self.acked += 1
            else:
                self.failed[err.name()] += 1
            error = None if err is None else DeliveryError(err.name())
            # A closed loop raises RuntimeError: nobody waits for this report any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, fut, error)

        return report

    def close(self, timeout_s: float = 5.0) -> int:
        """Flush what is queued, stop the poll thread; returns records still undelivered."""
        remaining = int(self._producer.flush(timeout_s))
        self._stop.set()
        self._thread.join(timeout=1.0)
        return remaining


def _resolve(fut: asyncio.Future[None], error: Exception | None) -> None:
    if fut.done():  # the awaiting request timed out and went away
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)
