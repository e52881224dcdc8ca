"""Kafka client settings that decide delivery semantics, set explicitly.

DESIGN.md §6: every setting that decides semantics is written here and never
inherited from a library default. The functions are pure: they return the
librdkafka configuration dictionaries that services hand to confluent-kafka.

>>> cfg = producer_config("127.0.0.1:9092", client_id="demo")
>>> cfg["acks"], cfg["enable.idempotence"], cfg["partitioner"]
('all', True, 'murmur2_random')
>>> consumer_config("127.0.0.1:9092", group_id="g")["enable.auto.commit"]
False

Every function takes ``security``: the connection's security keys
(:func:`streamscore.libs.security.kafka_security_config` of the settings),
merged last so that every client of the process connects the same way.

>>> admin_config("b:9092", security={"security.protocol": "sasl_plaintext"})["security.protocol"]
'sasl_plaintext'
"""

from __future__ import annotations

from typing import Literal

OffsetReset = Literal["earliest", "latest", "error"]
IsolationLevel = Literal["read_committed", "read_uncommitted"]
AssignmentStrategy = Literal["cooperative-sticky", "range", "roundrobin"]
#: A librdkafka configuration dictionary.
KafkaConf = dict[str, str | int | float | bool]

#: librdkafka's per-message delivery deadline. Past it a message fails with
#: ``_MSG_TIMED_OUT``; the producer surfaces that as a counted failure.
DELIVERY_TIMEOUT_MS = 120_000
#: Longest a transaction may stay open before the coordinator aborts it.
TRANSACTION_TIMEOUT_MS = 60_000


def producer_config(
    bootstrap: str,
    *,
    client_id: str,
    linger_ms: float = 1.0,
    transactional_id: str | None = None,
    message_max_bytes: int = 2 * 1024 * 1024,
    delivery_timeout_ms: int = DELIVERY_TIMEOUT_MS,
    security: KafkaConf | None = None,
) -> KafkaConf:
    """Configuration of an idempotent, fully acknowledged producer.

    Why each setting:

    1. ``acks=all`` + ``enable.idempotence``: a write is acknowledged only once
       every in-sync replica has it, and retries never duplicate or reorder it
       within a partition (librdkafka caps in-flight requests at 5 for this).
    2. ``partitioner=murmur2_random``: the same key lands on the same partition
       as with the Java client and with aiokafka/faust (librdkafka's default,
       crc32-based ``consistent_random``, would disagree with them).
    3. ``linger.ms`` low: the latency budget (p50 ≤ 3 ms end to end) leaves
       no room for long batching; 1 ms still forms batches under load.
    4. ``message.timeout.ms`` bounded: a message that cannot be delivered fails
       visibly (delivery callback with ``_MSG_TIMED_OUT``) instead of waiting
       forever in the local queue.
    5. ``compression.type=lz4``: cheap on CPU, shrinks JSON several-fold.
    """
    cfg: KafkaConf = {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        "max.in.flight.requests.per.connection": 5,
        "partitioner": "murmur2_random",
        "linger.ms": linger_ms,
        "batch.num.messages": 10_000,
        "compression.type": "lz4",
        "message.timeout.ms": delivery_timeout_ms,
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 512 * 1024,
        "message.max.bytes": message_max_bytes,
        "socket.nagle.disable": True,
    }
    if transactional_id is not None:
        cfg["transactional.id"] = transactional_id
        # librdkafka requires message.timeout.ms <= transaction.timeout.ms.
        cfg["transaction.timeout.ms"] = TRANSACTION_TIMEOUT_MS
        cfg["message.timeout.ms"] = min(delivery_timeout_ms, TRANSACTION_TIMEOUT_MS)
    return {**cfg, **(security or {})}


def consumer_config(
    bootstrap: str,
    *,
    group_id: str,
    client_id: str = "streamscore",
    auto_offset_reset: OffsetReset = "earliest",
    isolation_level: IsolationLevel = "read_committed",
    fetch_wait_max_ms: int = 100,
    security: KafkaConf | None = None,
    assignment_strategy: AssignmentStrategy = "cooperative-sticky",
    auto_commit_interval_ms: int | None = None,
) -> KafkaConf:
    """Configuration of a consumer that commits only what it has finished.

    Why each setting:

    1. ``enable.auto.offset.store=false`` and, by default,
       ``enable.auto.commit=false``: the service commits an offset only after
       the work for it is acknowledged (at-least-once); nothing is committed
       behind its back. With ``auto_commit_interval_ms`` librdkafka commits,
       at that interval (and on revocation and close), the offsets the service
       *stored* after its work was acknowledged: still nothing unfinished, and
       no commit round trip in the service's loop.
    2. ``auto.offset.reset`` explicit: a new group starts where the caller says
       (``earliest`` by default so that nothing is skipped, FAULTS K12).
    3. ``isolation.level=read_committed``: aborted transactional writes are never
       read.
    4. ``fetch.wait.max.ms`` 100: how long the broker holds a fetch that finds
       no data. A fetch returns as soon as a record arrives (``fetch.min.bytes``
       1), so this wait adds no latency: at 200 transactions/s the fused
       pipeline's p50 was 5.2 ms with 5 ms and with 100 ms. What it changes is
       the idle fetches, every 5 ms from every consumer: with the four
       pipelines and the bench at 1k events/s the broker used 0.55 of a core
       with 5 ms and 0.47 with 100 ms (one run each).
    5. ``partition.assignment.strategy=cooperative-sticky``: a rebalance moves
       only the partitions that must move; the others keep flowing. It balances
       the *count* of partitions over all subscribed topics, not each topic: a
       consumer of several topics with equal partition counts can get every
       partition of one topic while another member gets every partition of the
       other (measured with the fused pipeline, events + labels at 12
       partitions each and two members: 12 event partitions and 0; librdkafka
       issue 4044). Such consumers pass ``assignment_strategy="range"``: each
       topic is split on its own, and co-partitioned topics (same count, same
       key) give a member the same partition numbers of each, at the price of
       eager rebalances (every partition paused while the group rebalances).
       Members of one group must share a strategy (no common one: the joining
       member is refused with INCONSISTENT_GROUP_PROTOCOL), so changing it is
       a stop-all-then-start deploy of that group, not a rolling one.
    """
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "client.id": client_id,
        "enable.auto.commit": auto_commit_interval_ms is not None,
        **(
            {"auto.commit.interval.ms": auto_commit_interval_ms}
            if auto_commit_interval_ms is not None
            else {}
        ),
        "enable.auto.offset.store": False,
        "auto.offset.reset": auto_offset_reset,
        "isolation.level": isolation_level,
        "fetch.wait.max.ms": fetch_wait_max_ms,
        "fetch.min.bytes": 1,
        "partition.assignment.strategy": assignment_strategy,
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 2_000,
        "max.poll.interval.ms": 300_000,
        "enable.partition.eof": False,
        "socket.nagle.disable": True,
        **(security or {}),
    }


def admin_config(
    bootstrap: str, *, client_id: str = "streamscore-admin", security: KafkaConf | None = None
) -> KafkaConf:
    """Configuration of an admin client (topic creation and listing)."""
    return {"bootstrap.servers": bootstrap, "client.id": client_id, **(security or {})}
