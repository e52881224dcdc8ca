"""A simulated month through the faust feature processor on real Kafka and Redis.

Checks, with the processor running as a real process (``streamscore processor``):

* every event gets exactly one feature record, and its vector equals the
  offline computation from the same events and labels (float32 rounding only);
* replaying the whole input again (consumer group reset to the beginning)
  re-emits byte-identical records and leaves every Redis state hash unchanged;
* a poison message lands in the DLQ with its reason while the partition flows.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import decode
from streamscore.libs.contracts.dlq import parse_dlq_headers
from streamscore.libs.contracts.events import Transaction
from streamscore.libs.contracts.features import TransactionFeatures
from streamscore.libs.contracts.labels import Chargeback
from streamscore.libs.features.definitions import model_features
from streamscore.libs.features.offline import compute
from streamscore.libs.simulator.records import SimRecord
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS, dlq_topic
from streamscore.services.clients import endpoints, make_admin, make_producer
from streamscore.services.feature_verify import run_verify
from streamscore.services.sim_producer import publish
from tests.processor_runs import (
    create_stream_topics,
    read_all,
    redis_db_url,
    start_processor,
    stop,
)

pytestmark = pytest.mark.integration
DAYS = 30
#: Replay speed (event time / wall time): 7 days of event time pass in ~12 s, so the
#: partitions' event times stay far closer than the terminal group's 7-day grace.
SPEEDUP = 50_000
REDIS_DB = 7
S = STREAMS["transactions"]


def _records() -> list[SimRecord]:
    scenario = get("small").only("transactions").with_days(DAYS)
    return list(scenario.records(seed=5))


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    except KafkaException:  # coordinator still loading on a fresh broker: not yet
        return 0
    finally:
        c.close()
    return sum(max(tp.offset, 0) for tp in tps)


def _snapshot(r: redis.Redis) -> dict[bytes, Any]:
    return {k: r.hgetall(k) for k in r.scan_iter(match="ss:w:*", count=1000)}


@pytest.fixture
def processor_env(stack_settings: Settings) -> Iterator[tuple[str, str, redis.Redis]]:
    """A topic prefix and a Redis database of the test's own: ``(prefix, redis url, client)``."""
    url = redis_db_url(endpoints(stack_settings).redis_url, REDIS_DB)
    r = redis.Redis.from_url(url)
    r.flushdb()
    prefix = f"it-{uuid.uuid4().hex[:8]}."
    create_stream_topics(stack_settings, "transactions", prefix)
    yield prefix, url, r
    r.flushdb()


def test_online_equals_offline_and_replay_changes_nothing(
    stack_settings: Settings,
    processor_env: tuple[str, str, redis.Redis],
    tmp_path: Path,
) -> None:
    prefix, url, r = processor_env
    bootstrap = endpoints(stack_settings).kafka_bootstrap
    records = _records()
    events = [x for x in records if isinstance(x.event, Transaction)]
    labels = [x for x in records if isinstance(x.event, Chargeback)]
    assert len(events) > 25_000 and len(labels) > 1_000  # a month: 28,503 and 1,476
    producer = make_producer(stack_settings, client_id="it-features")
    group = f"{prefix}streamscore-features-transactions"
    log1 = tmp_path / "processor-1.log"
    proc = start_processor("transactions", prefix, bootstrap=bootstrap, redis_url=url, log=log1)
    try:
        # Labels first, and consumed, so that every label arrived "by" an event's time
        # is known when the event is processed (the offline path's rule).
        publish(labels, producer, topic_prefix=prefix, progress=lambda _: None)
        deadline = time.monotonic() + 120
        while _committed(bootstrap, group, prefix + S.label_topic, 3) < len(labels):
            assert time.monotonic() < deadline, log1.read_text()
            assert proc.poll() is None, log1.read_text()
            time.sleep(0.5)
        poison = b'{"event_id": "bad", "amount": "NaN"}'
        producer.send(prefix + S.input_topic, poison, key=b"C00001")
        publish(events, producer, topic_prefix=prefix, speedup=SPEEDUP, progress=lambda _: None)
        got = read_all(bootstrap, prefix + S.feature_topic, len(events))
        assert proc.poll() is None, log1.read_text()
    finally:
        stop(proc)
    vectors = {}
    for m in got:
        fv = decode(TransactionFeatures, m.value(), max_bytes=1 << 21)
        assert fv.event.event_id not in vectors, "one feature record per event"
        vectors[fv.event.event_id] = (fv, m.value())
    assert set(vectors) == {e.event.event_id for e in events}

    names = model_features("transactions")
    offline = {
        ev.event_id: res
        for ev, res in compute("transactions", [e.event for e in events], [x.event for x in labels])
    }
    mismatches = {n: 0 for n in names}
    statuses = 0
    for eid, (fv, _) in vectors.items():
        off = offline[eid]
        statuses += fv.feature_statuses != off.statuses
        for n in names:
            a, b = fv.values[n], off.values[n]
            if (a is None) != (b is None) or (
                a is not None and not np.isclose(a, b, rtol=1e-6, atol=1e-9)  # type: ignore[arg-type]
            ):
                mismatches[n] += 1
    assert (statuses, mismatches) == (0, {n: 0 for n in names})
    # The shadow verifier (``streamscore features verify``) agrees, from the topics alone.
    verified = run_verify(stack_settings, "transactions", topic_prefix=prefix, idle_s=3.0)
    assert verified.agreement.compared == len(events)
    assert verified.agreement.status_mismatches == 0
    assert not any(verified.agreement.mismatches.values())
    # Known labels did reach the terminal risk features.
    assert sum(1 for fv, _ in vectors.values() if (fv.values["terminal_risk_30d"] or 0) > 0) > 100

    dlq = read_all(bootstrap, dlq_topic(prefix + S.input_topic), 1, timeout_s=20)
    assert [m.value() for m in dlq] == [poison]
    assert parse_dlq_headers(dlq[0].headers() or []).reason == "wrong_type"

    # Replay: the same input again, from the beginning.
    before = _snapshot(r)
    assert len(before) > 1000
    admin = make_admin(stack_settings)
    parts = [
        TopicPartition(t, p, 0)
        for t in (prefix + S.input_topic, prefix + S.label_topic)
        for p in range(3)
    ]
    admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, parts)])[group].result()
    log2 = tmp_path / "processor-2.log"
    proc = start_processor("transactions", prefix, bootstrap=bootstrap, redis_url=url, log=log2)
    try:
        again = read_all(bootstrap, prefix + S.feature_topic, 2 * len(events))
    finally:
        stop(proc)
    assert len(again) == 2 * len(events)
    firsts = {m.value() for m in got}
    assert all(m.value() in firsts for m in again), "replayed records are byte-identical"
    assert _snapshot(r) == before
