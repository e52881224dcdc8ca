"""``streamscore dlq replay``: send dead letters back to the topic they came from, after a fix.

A DLQ record keeps its original key and value and says where it came from
(headers, :mod:`streamscore.libs.contracts.dlq`). Once the cause is fixed (a
limit raised, a contract relaxed, a producer corrected upstream), replaying
gives each record a second pass through the normal path; one that is still
refused lands in the DLQ again, as a new record with its new reason.

1. A consumer group of its own (``streamscore-dlq-replay``) reads the DLQ from
   its last committed offset to the end as of the start (records that arrive
   meanwhile — a replayed record refused again — wait for the next run, so a
   run always ends).
2. Records may be selected by reason; the others are skipped but counted as
   passed over (they are committed too: "replayed" means "this run decided").
3. Each selected record is produced to its ``dlq.source.topic`` (with the
   same key and value, and a ``dlq.replayed_from`` header naming the DLQ
   offset), idempotent and ``acks=all``; the DLQ offsets are committed only
   once every replayed record is acknowledged: a crash replays again (the
   normal path deduplicates by event id), never loses one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import TopicPartition

from streamscore.libs.config import Settings
from streamscore.libs.contracts.dlq import HEADER_REASON, HEADER_SOURCE_TOPIC
from streamscore.services.clients import make_consumer, make_producer

GROUP = "streamscore-dlq-replay"
HEADER_REPLAYED_FROM = "dlq.replayed_from"


@dataclass
class ReplayStats:
    """What a run did."""

    replayed: Counter[str] = field(default_factory=Counter)  # by reason
    passed_over: Counter[str] = field(default_factory=Counter)  # by reason
    unroutable: int = 0  # no source topic header: kept, counted


def replay_dlq(
    settings: Settings,
    dlq_topic: str,
    *,
    reasons: set[str] | None = None,
    timeout_s: float = 30.0,
) -> ReplayStats:
    """Steps 1-3 of the module docstring for ``dlq_topic``; ``reasons=None`` replays all."""
    consumer = make_consumer(settings, group_id=GROUP, client_id="dlq-replay")
    producer = make_producer(settings, client_id="dlq-replay")
    stats = ReplayStats()
    try:
        meta = consumer.list_topics(dlq_topic, timeout=10).topics[dlq_topic]
        ends = {}
        for p in meta.partitions:
            _lo, hi = consumer.get_watermark_offsets(TopicPartition(dlq_topic, p), timeout=10)
            ends[p] = hi
        done: dict[int, int] = {}  # partition -> next offset to commit
        for tp in consumer.committed([TopicPartition(dlq_topic, p) for p in ends], timeout=10):
            if tp.offset >= 0:  # replayed up to there by an earlier run
                done[tp.partition] = tp.offset
        consumer.subscribe([dlq_topic])
        while any(done.get(p, -1) < hi for p, hi in ends.items() if hi > 0):
            msgs = consumer.consume(500, timeout=1.0)
            if not msgs:
                timeout_s -= 1.0
                if timeout_s <= 0:
                    break
                continue
            for m in msgs:
                if m.error() is not None:
                    continue
                p, off = m.partition() or 0, m.offset() or 0
                if off >= ends.get(p, 0):  # step 1: arrived after the start
                    continue
                headers = {str(h[0]): _text(h[1]) for h in m.headers() or []}
                reason = headers.get(HEADER_REASON) or "?"
                source = headers.get(HEADER_SOURCE_TOPIC)
                done[p] = off + 1
                if reasons is not None and reason not in reasons:  # step 2
                    stats.passed_over[reason] += 1
                    continue
                if source is None:
                    stats.unroutable += 1
                    continue
                producer.send(  # step 3
                    source,
                    m.value() or b"",
                    key=m.key(),
                    headers=[(HEADER_REPLAYED_FROM, f"{dlq_topic}:{p}:{off}".encode())],
                )
                stats.replayed[reason] += 1
        if producer.flush(60) or producer.failed_total:
            raise RuntimeError(f"replayed records not acknowledged: {dict(producer.failed)}")
        if done:
            consumer.commit(
                offsets=[TopicPartition(dlq_topic, p, o) for p, o in done.items()],
                asynchronous=False,
            )
    finally:
        consumer.close()
    return stats


def _text(value: str | bytes | None) -> str | None:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
