"""Commit-after-acknowledgement, DLQ routing and fail-closed on a real broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Literal

import pytest
from confluent_kafka import Consumer, TopicPartition

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import encode
from streamscore.libs.contracts.dlq import parse_dlq_headers
from streamscore.libs.contracts.samples import sample_events
from streamscore.libs.topics import TopicSpec, dlq_topic
from streamscore.services.clients import make_admin, make_consumer, make_producer
from streamscore.services.stream_processor import (
    Decoded,
    Output,
    ProcessingHaltedError,
    StreamProcessor,
)
from streamscore.services.topics_admin import create_topics

pytestmark = pytest.mark.integration

N_VALID = 3000
POISON = {
    b"\x00\x9f\x12random": "not_utf8",
    b'{"event_id": "x1", "event_time": "2026-01-01T00:00:00Z", "cust': "not_json",
    b'{"event_id": "x2", "event_time": "2026-01-01T00:00:00Z", "customer_id": "c", '
    b'"terminal_id": "t", "amount": "12.3"}': "wrong_type",
    b'{"event_id": "x3", "event_time": "2026-01-01T00:00:00Z", "terminal_id": "t", '
    b'"amount": 1}': "missing_field",
    b'{"event_id": "x4", "event_time": "2026-01-01T00:00:00Z", "customer_id": "c", '
    b'"terminal_id": "t", "amount": 1, "amout": 2}': "extra_field",
    b'{"event_id": "x5", "event_time": "2026-01-01T00:00:00Z", "customer_id": "c", '
    b'"terminal_id": "t", "amount": -5}': "constraint",
    b"[" * 10 + b" " * (1024 * 1024 + 100): "oversize",
}


def _read_all(bootstrap: str, topic: str, expected: int) -> list:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    out, deadline = [], time.monotonic() + 30
    while len(out) < expected and time.monotonic() < deadline:
        out += [m for m in c.consume(1000, timeout=0.5) if m.error() is None]
    # Linger briefly: anything beyond ``expected`` would be a duplicate.
    out += [m for m in c.consume(1000, timeout=1.0) if m.error() is None]
    c.close()
    return out


def _run_until(proc: StreamProcessor, consumed: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while proc.stats.consumed < consumed and time.monotonic() < deadline:
        proc.step()


@pytest.fixture
def prefix() -> Iterator[str]:
    yield f"it-{uuid.uuid4().hex[:8]}."


def _committed(consumer: Consumer, parts: list[TopicPartition], want: list[int]) -> list[int]:
    """The group's committed offsets, polled for a while until they are ``want``.

    In ``stored`` mode librdkafka commits from its own thread every interval, so
    the offsets may lag the last batch by one interval.
    """
    deadline = time.monotonic() + 10
    while True:
        got = [tp.offset for tp in consumer.committed(parts, timeout=10)]
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("commit", "first_wait_s"),
    [("sync", None), ("stored", 0.1)],  # the defaults; the fused pipeline's settings
)
def test_poison_to_dlq_outputs_acked_then_committed(
    stack_settings: Settings,
    prefix: str,
    commit: Literal["sync", "stored"],
    first_wait_s: float | None,
) -> None:
    source, out_topic = f"{prefix}events.transactions", f"{prefix}out"
    admin = make_admin(stack_settings)
    create_topics(
        admin,
        [TopicSpec(source, 3, 1), TopicSpec(dlq_topic(source), 1, 1), TopicSpec(out_topic, 3, 1)],
    )
    producer = make_producer(stack_settings, client_id="it-feed")
    valid = list(sample_events("transactions", N_VALID, seed=3))
    for i, ev in enumerate(valid):
        producer.send(source, encode(ev), key=ev.customer_id.encode())
        if i % 500 == 0:
            poison = list(POISON)[(i // 500) % len(POISON)]
            producer.send(source, poison, key=b"poison")
    for poison in POISON:
        producer.send(source, poison, key=b"poison")
    assert producer.flush(30) == 0
    n_poison = N_VALID // 500 + len(POISON)

    def handler(batch: list[Decoded]) -> list[Output]:
        return [Output(out_topic, d.message.event_id.encode(), d.key) for d in batch]

    group = f"{prefix}group"
    interval = 200 if commit == "stored" else None
    consumer = make_consumer(stack_settings, group_id=group, auto_commit_interval_ms=interval)
    consumer.subscribe([source])
    proc = StreamProcessor(
        consumer,
        make_producer(stack_settings, client_id="it-proc"),
        handler,
        service="it",
        topic_prefix=prefix,
        commit=commit,
        first_wait_s=first_wait_s,
    )
    _run_until(proc, N_VALID + n_poison)
    if first_wait_s is not None:  # the backlog was taken in batches, not one by one
        assert proc.stats.batches < (N_VALID + n_poison) / 10
    assert proc.stats.consumed == N_VALID + n_poison
    assert proc.stats.dead_lettered == n_poison

    # Every committed offset is the end of its partition (the off-by-one check);
    # stored offsets are committed by librdkafka's timer, without another step.
    parts = [TopicPartition(source, p) for p in range(3)]
    ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
    assert _committed(consumer, parts, ends) == ends
    consumer.close()

    outs = _read_all(stack_settings.kafka_bootstrap or "", out_topic, N_VALID)
    assert sorted(m.value() for m in outs) == sorted(e.event_id.encode() for e in valid)
    dlq = _read_all(stack_settings.kafka_bootstrap or "", dlq_topic(source), n_poison)
    assert len(dlq) == n_poison
    for m in dlq:
        h = parse_dlq_headers(m.headers() or [])
        assert h.reason == POISON[m.value()], (m.value()[:40], h.reason, h.detail)
        assert h.source_topic == source and h.service == "it"
        assert m.key() == b"poison"

    # Restarted in the same group: it begins after the last committed offset.
    again = make_consumer(stack_settings, group_id=group)
    again.subscribe([source])
    proc2 = StreamProcessor(
        again,
        make_producer(stack_settings, client_id="it-proc2"),
        handler,
        service="it",
        topic_prefix=prefix,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        proc2.step()
    again.close()
    assert proc2.stats.consumed == 0


@pytest.mark.parametrize("commit", ["sync", "stored"])
def test_missing_dlq_topic_fails_closed(
    stack_settings: Settings, prefix: str, commit: Literal["sync", "stored"]
) -> None:
    source = f"{prefix}events.transactions"
    create_topics(make_admin(stack_settings), [TopicSpec(source, 1, 1)])  # no DLQ topic
    feed = make_producer(stack_settings, client_id="it-feed")
    feed.send(source, b"not json at all", key=b"k")
    assert feed.flush(30) == 0
    interval = 100 if commit == "stored" else None
    group = f"{prefix}g"
    consumer = make_consumer(stack_settings, group_id=group, auto_commit_interval_ms=interval)
    consumer.subscribe([source])
    proc = StreamProcessor(
        consumer,
        make_producer(stack_settings, client_id="it-proc", delivery_timeout_ms=3000),
        lambda batch: [],
        service="it",
        topic_prefix=prefix,
        commit=commit,
    )
    with pytest.raises(ProcessingHaltedError):
        _run_until(proc, 1, timeout_s=30)
    time.sleep(0.5)  # several auto-commit intervals: nothing was stored, so nothing goes
    committed = consumer.committed([TopicPartition(source, 0)], timeout=10)[0]
    assert committed.offset < 0  # nothing committed: the message will be processed again
    consumer.close()  # closing commits what was stored: still nothing
    probe = make_consumer(stack_settings, group_id=group)
    assert probe.committed([TopicPartition(source, 0)], timeout=10)[0].offset < 0
    probe.close()


def test_stored_offsets_are_committed_on_close(stack_settings: Settings, prefix: str) -> None:
    """A graceful stop (SIGTERM closes the consumer) commits what was stored, however long
    the interval: no re-processing after a deploy."""
    source, out_topic = f"{prefix}events.transactions", f"{prefix}out"
    create_topics(make_admin(stack_settings), [TopicSpec(source, 3, 1), TopicSpec(out_topic, 3, 1)])
    feed = make_producer(stack_settings, client_id="it-feed")
    for ev in sample_events("transactions", 300, seed=5):
        feed.send(source, encode(ev), key=ev.customer_id.encode())
    assert feed.flush(30) == 0
    group = f"{prefix}g"
    consumer = make_consumer(stack_settings, group_id=group, auto_commit_interval_ms=60_000)
    consumer.subscribe([source])
    proc = StreamProcessor(
        consumer,
        make_producer(stack_settings, client_id="it-proc"),
        lambda batch: [Output(out_topic, d.message.event_id.encode(), d.key) for d in batch],
        service="it",
        topic_prefix=prefix,
        commit="stored",
    )
    _run_until(proc, 300)
    parts = [TopicPartition(source, p) for p in range(3)]
    ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
    consumer.close()
    probe = make_consumer(stack_settings, group_id=group)
    assert [tp.offset for tp in probe.committed(parts, timeout=10)] == ends
    probe.close()


def test_stored_offsets_are_committed_when_partitions_are_revoked(
    stack_settings: Settings, prefix: str
) -> None:
    """A member joining the group takes partitions from one that stored offsets but whose
    interval has not come: librdkafka commits them before the revocation, so the new owner
    starts after the work already done."""
    topic = f"{prefix}rv"
    create_topics(make_admin(stack_settings), [TopicSpec(topic, 2, 1)])
    feed = make_producer(stack_settings, client_id="it-feed")
    for i in range(200):
        feed.send(topic, b"x", key=str(i).encode())
    assert feed.flush(30) == 0
    group = f"{prefix}g"
    first = make_consumer(
        stack_settings, group_id=group, auto_commit_interval_ms=60_000, assignment_strategy="range"
    )
    first.subscribe([topic])
    done, deadline = 0, time.monotonic() + 30
    while done < 200 and time.monotonic() < deadline:
        m = first.poll(0.2)
        if m is not None and m.error() is None:
            first.store_offsets(message=m)
            done += 1
    assert done == 200
    second = make_consumer(
        stack_settings, group_id=group, auto_commit_interval_ms=60_000, assignment_strategy="range"
    )
    second.subscribe([topic])
    deadline = time.monotonic() + 30
    while not second.assignment() and time.monotonic() < deadline:
        first.poll(0.1)
        second.poll(0.1)
    assert len(second.assignment()) == 1
    probe = make_consumer(stack_settings, group_id=group)
    parts = [TopicPartition(topic, p) for p in range(2)]
    assert sum(tp.offset for tp in probe.committed(parts, timeout=10)) == 200
    for c in (probe, second, first):
        c.close()
