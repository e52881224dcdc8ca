"""The main job, first stage: bring the local stack up and stream the simulated world through it.

It starts Kafka and Redis (``streamscore up``), creates the topics, publishes
the ``small`` scenario (transactions, logins, sensor readings, clicks and their
delayed labels) at a steady rate with the project's producer, reads everything
back with an independent consumer, decodes each record against its contract,
keeps a per-topic tally in Redis and prints what it saw: counts, duplicates and
the publish-to-visible latency. The scoring loop joins this job as it lands.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from confluent_kafka import OFFSET_END, Consumer, Message, TopicPartition

from streamscore.libs.config import Settings
from streamscore.libs.contracts.base import Event
from streamscore.libs.contracts.codec import decode
from streamscore.libs.contracts.errors import ContractError
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS, catalogue
from streamscore.services import stack
from streamscore.services.clients import make_admin, make_consumer, make_producer, make_redis
from streamscore.services.kafka_producer import Producer
from streamscore.services.sim_producer import publish
from streamscore.services.topics_admin import create_topics

Progress = Callable[[str], None]
REDIS_TALLY_KEY = "streamscore:demo:last_run"


@dataclass
class StreamTally:
    """What the demo saw for one topic."""

    produced: int = 0
    consumed: int = 0
    contract_errors: int = 0
    ids: set[str] = field(default_factory=set)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return self.consumed - self.contract_errors - len(self.ids)

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Reader(threading.Thread):
    """Reads the topics from their current end, in its own thread, and tallies arrivals.

    A thread of its own stamps each message as soon as it is visible, whatever
    the publisher is doing; the consumer is used by this thread only.
    """

    def __init__(
        self, consumer: Consumer, topics: list[str], progress: Progress, max_bytes: int
    ) -> None:
        super().__init__(name="demo-reader", daemon=True)
        self.consumer = consumer
        self._max_bytes = max_bytes
        self._stop_at: float | None = None
        self._expected: int | None = None
        self.tallies = {t: StreamTally() for t in topics}
        self.seen = 0
        self._progress = progress
        # Assign every partition at its current end before anything is produced,
        # so exactly the demo's events are read (no group rebalance race).
        meta = consumer.list_topics(timeout=10)
        parts = []
        for topic in topics:
            for p in meta.topics[topic].partitions:
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                parts.append(TopicPartition(topic, p, high if high >= 0 else OFFSET_END))
        consumer.assign(parts)

    def finish(self, expected: int, timeout_s: float) -> None:
        """Stop once ``expected`` messages were read, or after ``timeout_s``."""
        self._expected = expected
        self._stop_at = time.monotonic() + timeout_s
        self.join()
        self.consumer.close()

    def run(self) -> None:
        while True:
            if self._expected is not None and self.seen >= self._expected:
                return
            if self._stop_at is not None and time.monotonic() > self._stop_at:
                return
            # poll() returns as soon as one message is there (consume() with a
            # batch size would wait for the batch or the timeout and skew latency).
            msg = self.consumer.poll(0.05)
            if msg is not None:
                self._record(msg)

    def _record(self, msg: Message) -> None:
        if msg.error():
            self._progress(f"consumer error: {msg.error()}")
            return
        visible_ms = time.time() * 1000
        topic = msg.topic() or ""
        tally = self.tallies[topic]
        tally.consumed += 1
        self.seen += 1
        tally.latencies_ms.append(visible_ms - msg.timestamp()[1])
        try:
            event = decode(topic, msg.value() or b"", max_bytes=self._max_bytes)
        except ContractError:
            tally.contract_errors += 1
            return
        assert isinstance(event, Event)  # events and labels both carry an event id
        tally.ids.add(event.event_id)


def _publish(
    producer: Producer,
    reader: Reader,
    *,
    records: int,
    rate: float,
    seed: int,
    progress: Progress,
) -> int:
    """Publish the simulated world (the ``small`` scenario) at ``rate`` records/s.

    Events of the four streams and their delayed labels, in event-time order,
    keyed by entity; the reader thread stamps each as it becomes visible, so the
    latency is publish-to-visible at a steady rate. Returns messages unsent.
    """
    # Generate first (the simulator is CPU-bound and would compete with the reader
    # thread for the interpreter), then publish the prepared records at the rate.
    prepared = list(itertools.islice(get("small").records(seed), records))
    stats = publish(prepared, producer, rate=rate, progress=progress)
    for topic, n in stats.by_topic.items():
        reader.tallies[topic].produced += n
    progress(
        f"producer: {stats.acked:,} acknowledged, {sum(stats.failed.values())} failed, "
        f"{stats.unsent} unsent after flush ({stats.rate:,.0f} records/s)"
    )
    return stats.unsent + sum(stats.failed.values())


def _ms(value: float) -> str:
    """A latency cell: ``-`` when nothing was measured (e.g. no labels arrived yet)."""
    return f"{'-':>7s}" if math.isnan(value) else f"{value:7.1f}"


def _report(reader: Reader, stored: dict[str, int], producer_ok: bool) -> bool:
    print(
        f"\n{'topic':28s} {'produced':>9s} {'read':>9s} {'dup':>5s} {'bad':>5s} "
        f"{'p50 ms':>7s} {'p99 ms':>7s} {'in redis':>9s}"
    )
    ok = producer_ok
    for topic, t in reader.tallies.items():
        ok &= len(t.ids) == t.produced and t.duplicates == 0 and t.contract_errors == 0
        print(
            f"{topic:28s} {t.produced:9,d} {t.consumed:9,d} {t.duplicates:5d} "
            f"{t.contract_errors:5d} {_ms(t.percentile(0.5))} {_ms(t.percentile(0.99))} "
            f"{stored.get(topic, 0):9,d}"
        )
    got = sum(len(t.ids) for t in reader.tallies.values())
    want = sum(t.produced for t in reader.tallies.values())
    print(f"\n{got:,} of {want:,} records read back exactly once: {'OK' if ok else 'MISMATCH'}")
    print("The stack keeps running: `streamscore down` stops it.")
    return ok


def run_demo(
    settings: Settings,
    *,
    records: int,
    rate: float,
    seed: int,
    progress: Progress = print,
) -> int:
    """Run the demo; returns 0 when every published record was read back exactly once."""
    stack.up(settings, progress=progress)
    specs = catalogue(settings.topic_partitions, settings.topic_replication)
    outcomes = create_topics(make_admin(settings), specs)
    progress(
        f"topics: {sum(o.status == 'created' for o in outcomes)} created, "
        f"{len(outcomes)} in the catalogue"
    )
    topics = [t for s in STREAMS.values() for t in (s.input_topic, s.label_topic)]
    consumer = make_consumer(settings, group_id=f"streamscore-demo-{int(time.time())}")
    reader = Reader(consumer, topics, progress, settings.max_message_bytes)
    reader.start()
    producer = make_producer(settings, client_id="streamscore-demo")
    left = _publish(producer, reader, records=records, rate=rate, seed=seed, progress=progress)
    reader.finish(sum(t.produced for t in reader.tallies.values()), timeout_s=60)

    r = make_redis(settings)
    r.hset(REDIS_TALLY_KEY, mapping={t: len(tl.ids) for t, tl in reader.tallies.items()})
    raw = cast("dict[bytes, bytes]", r.hgetall(REDIS_TALLY_KEY))
    stored = {k.decode(): int(v) for k, v in raw.items()}
    ok = _report(reader, stored, producer_ok=left == 0)
    return 0 if ok else 1
