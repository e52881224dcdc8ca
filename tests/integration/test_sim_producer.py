"""The simulator published to a real broker: every record on its topic, keyed by its entity."""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter

import pytest
from confluent_kafka import Consumer

from streamscore.libs.config import Settings
from streamscore.libs.contracts.base import Event
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.registry import contract_for
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import TopicSpec
from streamscore.services.clients import make_admin, make_producer
from streamscore.services.sim_producer import KEY_FIELD, publish
from streamscore.services.topics_admin import create_topics

pytestmark = pytest.mark.integration


def test_published_records_arrive_keyed_and_complete(stack_settings: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    records = list(itertools.islice(get("small").records(seed=9), 20_000))
    # Fresh topics named after the real ones (a prefix) so the test is isolated.
    prefix = f"it-{run}."
    topics = sorted({prefix + r.topic for r in records})
    assert create_topics(make_admin(stack_settings), [TopicSpec(t, 3, 1) for t in topics])
    stats = publish(
        records,
        make_producer(stack_settings, client_id=run),
        rate=20_000,
        topic_prefix=prefix,
        progress=lambda _m: None,
    )
    assert (stats.sent, stats.acked, stats.unsent) == (len(records), len(records), 0)
    assert stats.failed == {}

    consumer = Consumer(
        {
            "bootstrap.servers": stack_settings.kafka_bootstrap,
            "group.id": f"it-{run}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(topics)
    got: Counter[str] = Counter()
    sent = {encode(r.event) for r in records}
    deadline = time.monotonic() + 60
    while sum(got.values()) < len(records) and time.monotonic() < deadline:
        for msg in consumer.consume(5000, timeout=1.0):
            assert msg.error() is None
            topic = (msg.topic() or "").removeprefix(prefix)
            event = decode(contract_for(topic).type, msg.value() or b"", max_bytes=1 << 20)
            assert isinstance(event, Event)
            assert msg.key() == getattr(event, KEY_FIELD[topic]).encode()
            assert msg.value() in sent
            got[topic] += 1
    consumer.close()
    assert got == Counter(r.topic for r in records)
