"""The settings that decide delivery semantics are explicit (DESIGN.md §6)."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer

from streamscore.libs.kafka_config import consumer_config, producer_config


def test_producer_semantics_explicit() -> None:
    cfg = producer_config("127.0.0.1:1", client_id="t")
    assert cfg["acks"] == "all"
    assert cfg["enable.idempotence"] is True
    assert cfg["max.in.flight.requests.per.connection"] <= 5
    assert cfg["linger.ms"] <= 5
    assert cfg["partitioner"] == "murmur2_random"
    assert "message.timeout.ms" in cfg


def test_consumer_semantics_explicit() -> None:
    cfg = consumer_config("127.0.0.1:1", group_id="g")
    assert cfg["enable.auto.commit"] is False
    assert cfg["enable.auto.offset.store"] is False
    assert cfg["auto.offset.reset"] == "earliest"
    assert cfg["isolation.level"] == "read_committed"


def test_librdkafka_accepts_every_setting() -> None:
    # librdkafka rejects unknown or ill-typed properties at construction.
    Producer(producer_config("127.0.0.1:1", client_id="t", transactional_id="tx-1"))
    Consumer(consumer_config("127.0.0.1:1", group_id="g")).close()


def test_assignment_strategy_chosen_per_consumer() -> None:
    # Cooperative-sticky by default; "range" for consumers of co-partitioned topics
    # (the fused pipeline), which cooperative-sticky does not split per topic.
    assert consumer_config("127.0.0.1:1", group_id="g")["partition.assignment.strategy"] == (
        "cooperative-sticky"
    )
    cfg = consumer_config("127.0.0.1:1", group_id="g", assignment_strategy="range")
    assert cfg["partition.assignment.strategy"] == "range"
    Consumer(cfg).close()
