"""10,000 events of each type through a real broker with the project's producer settings."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

import pytest
from confluent_kafka import Consumer

from streamscore.libs.config import Settings
from streamscore.libs.contracts.base import Event
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.registry import contract_for
from streamscore.libs.contracts.samples import sample_events
from streamscore.libs.topics import STREAMS, TopicSpec
from streamscore.services.clients import make_admin, make_producer
from streamscore.services.topics_admin import create_topics

pytestmark = pytest.mark.integration

N_PER_STREAM = 10_000


def test_every_event_arrives_once_in_key_order(stack_settings: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    # One fresh topic per stream, named after the real input topic so the codec
    # picks the right contract by prefix.
    topic_of = {s.name: f"it-{run}.{s.input_topic}" for s in STREAMS.values()}
    outcomes = create_topics(
        make_admin(stack_settings),
        [TopicSpec(t, partitions=6, replication=1) for t in topic_of.values()],
    )
    assert {o.status for o in outcomes} == {"created"}

    producer = make_producer(stack_settings, client_id=f"it-{run}")
    sent: dict[str, dict[bytes, list[str]]] = {t: defaultdict(list) for t in topic_of.values()}
    for s in STREAMS.values():
        topic = topic_of[s.name]
        for event in sample_events(s.name, N_PER_STREAM, seed=11):
            key = str(getattr(event, s.key_field)).encode()
            producer.send(topic, encode(event), key=key)
            sent[topic][key].append(event.event_id)
    assert producer.flush(60) == 0
    assert producer.failed_total == 0, producer.failed
    assert producer.acked == N_PER_STREAM * len(STREAMS)

    # An independent consumer: plain confluent-kafka with its own minimal settings.
    consumer = Consumer(
        {
            "bootstrap.servers": stack_settings.kafka_bootstrap,
            "group.id": f"it-reader-{run}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe(list(topic_of.values()))
    received: dict[str, dict[bytes, list[str]]] = {t: defaultdict(list) for t in topic_of.values()}
    total, deadline = 0, time.monotonic() + 120
    while total < N_PER_STREAM * len(STREAMS) and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=10_000, timeout=1.0):
            assert msg.error() is None, msg.error()
            contract = contract_for(msg.topic().split(".", 1)[1])
            event = decode(contract.type, msg.value() or b"", max_bytes=1 << 20)
            assert isinstance(event, Event)
            received[msg.topic()][msg.key() or b""].append(event.event_id)
            total += 1
    consumer.close()

    for topic in topic_of.values():
        got = [i for ids in received[topic].values() for i in ids]
        want = [i for ids in sent[topic].values() for i in ids]
        assert len(got) == len(set(got)), f"{topic}: duplicates"
        assert set(got) == set(want), f"{topic}: {len(set(want) - set(got))} missing"
        # Per key, the order read equals the order produced.
        for key, ids in sent[topic].items():
            assert received[topic][key] == ids, f"{topic} key {key!r}: order differs"
