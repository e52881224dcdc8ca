"""An idempotent Kafka producer with delivery accounting and local back-pressure.

Nothing is produced silently: every message ends either acknowledged or in the
``failed`` counts by librdkafka error name, and the caller can see both.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, Message
from confluent_kafka import Producer as _RdProducer

from streamscore.libs.kafka_config import DELIVERY_TIMEOUT_MS, KafkaConf, producer_config

Headers = Sequence[tuple[str, bytes]]
DeliveryHook = Callable[[KafkaError | None, Message], None]


class Producer:
    """Wraps ``confluent_kafka.Producer`` with the project's settings.

    ``send`` never raises ``BufferError``: when the local queue is full it
    serves delivery reports (``poll``) until there is room, so a slow broker
    slows the caller down instead of losing messages.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str,
        linger_ms: float = 1.0,
        delivery_timeout_ms: int = DELIVERY_TIMEOUT_MS,
        security: KafkaConf | None = None,
        on_delivery: DeliveryHook | None = None,
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
        self._hook = on_delivery
        self.acked = 0
        self.failed: Counter[str] = Counter()
        self.buffer_full_waits = 0

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.acked += 1
        else:
            self.failed[err.name()] += 1
        if self._hook is not None:
            self._hook(err, msg)

    def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Queue one message; blocks (serving delivery reports) while the queue is full."""
        hdrs: list[tuple[str, str | bytes | None]] | None = list(headers) if headers else None
        while True:
            try:
                self._producer.produce(
                    topic,
                    value,
                    key,
                    on_delivery=self._on_delivery,
                    timestamp=timestamp_ms or 0,  # 0: librdkafka stamps the send time
                    headers=hdrs,
                )
                break
            except BufferError:
                # 1. The local queue is full (broker slow or down).
                # 2. Serve delivery reports so acknowledged messages leave the queue.
                # 3. Try again: the caller is slowed down, nothing is dropped.
                self.buffer_full_waits += 1
                self._producer.poll(0.05)
        self._producer.poll(0)

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports; returns how many were served."""
        return int(self._producer.poll(timeout_s))

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for every queued message to be acknowledged or failed.

        Returns the number still in the queue when the timeout passed (0 = all done).
        """
        deadline = time.monotonic() + timeout_s
        remaining = len(self._producer)
        while remaining and time.monotonic() < deadline:
            remaining = int(self._producer.flush(min(1.0, deadline - time.monotonic())))
        return remaining

    def __len__(self) -> int:
        return len(self._producer)

    @property
    def failed_total(self) -> int:
        """All messages whose delivery failed, whatever the reason."""
        return sum(self.failed.values())
