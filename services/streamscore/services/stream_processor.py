"""The consume → decode → handle → produce → commit loop shared by streaming services.

At-least-once with nothing lost and nothing silently dropped:

1. Consume a micro-batch: up to ``max_batch`` messages, waiting up to
   ``max_wait_s`` for it to fill; or, with ``first_wait_s``, waiting up to that
   long for one message and then taking what is already fetched, with no wait
   (a message is handled as soon as it arrives, and an idle loop sleeps
   instead of waking up every ``max_wait_s``).
2. Decode each message against its topic's contract. A message that fails
   becomes a DLQ record on ``dlq.<topic>``: original key and value untouched,
   headers saying why, where from and when. The partition keeps flowing.
3. Hand the decoded events to the handler, which returns output records.
4. Produce DLQ and output records, then wait until the broker acknowledged
   every one of them (``flush``).
5. Only then commit, per partition, the offset after the last message of the
   batch. If any record of the batch failed to deliver (DLQ topic missing,
   broker gone past the delivery timeout), nothing is committed and
   :class:`ProcessingHaltedError` is raised: the service stops (fail closed) and,
   restarted, processes the batch again. Outputs must therefore be
   deterministic per input (a duplicate carries the same decision).

Rebalances need no extra step: a batch is committed before the next
``consume`` call, which is where librdkafka runs the rebalance callbacks, so
a revoked partition never has uncommitted, acknowledged work.

Step 5 comes in two forms (``commit=``):

- ``"sync"``: a synchronous commit per batch (a round trip to the group
  coordinator before the next batch);
- ``"stored"``: once the batch is acknowledged its offsets are *stored*
  (``store_offsets``, no I/O), and librdkafka commits the stored offsets every
  ``auto.commit.interval.ms`` from its own thread, before partitions are
  revoked and when the consumer is closed (a consumer made with
  ``auto_commit_interval_ms``, see
  :func:`~streamscore.libs.kafka_config.consumer_config`). Still at least
  once: only acknowledged work is ever stored. What changes: after a crash
  (not a SIGTERM, whose close commits) up to one interval more of input is
  processed again, and the loop no longer waits for the group coordinator.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streamscore.libs.contracts.base import Message as ContractMessage
from streamscore.libs.contracts.codec import decode
from streamscore.libs.contracts.dlq import HEADER_REASON, build_dlq_headers
from streamscore.libs.contracts.errors import ContractError
from streamscore.libs.contracts.registry import contract_for
from streamscore.libs.topics import dlq_topic
from streamscore.services.kafka_producer import Producer
from streamscore.services.metrics import StreamMetrics

if TYPE_CHECKING:
    from prometheus_client import Histogram

#: Commit errors after which the loop goes on (see :meth:`StreamProcessor._commit`).
_COMMIT_RETRIABLE = frozenset(
    {
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError.REQUEST_TIMED_OUT,
    }
)


class ProcessingHaltedError(RuntimeError):
    """A batch's records were not all acknowledged; its offsets were not committed."""


@dataclass(frozen=True)
class Decoded:
    """One input message and its decoded contract message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int
    message: ContractMessage
    #: The bytes it was decoded from (for a stage that re-routes it, e.g. to a DLQ).
    raw: bytes = b""


@dataclass(frozen=True)
class Output:
    """A record the handler wants produced."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes]] = ()


Handler = Callable[[list[Decoded]], list[Output]]


@dataclass
class LoopStats:
    """Counters of a processor's life, for metrics and tests."""

    batches: int = 0
    consumed: int = 0
    decoded: int = 0
    dead_lettered: int = 0
    produced: int = 0
    commits: int = 0
    commit_failures: int = 0
    consumer_errors: dict[str, int] = field(default_factory=dict)


def commit_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """Per partition, the offset after the highest one in ``messages`` (what to commit)."""
    top: dict[tuple[str, int], int] = {}
    for m in messages:
        k = (m.topic() or "", m.partition() or 0)
        top[k] = max(top.get(k, -1), m.offset() or 0)
    return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(top.items())]


class StreamProcessor:
    """Runs one handler over input topics with commit-after-acknowledgement."""

    def __init__(
        self,
        consumer: Consumer,
        producer: Producer,
        handler: Handler,
        *,
        service: str,
        max_batch: int = 500,
        max_wait_s: float = 0.005,
        max_bytes: int = 1024 * 1024,
        topic_prefix: str = "",
        metrics: StreamMetrics | None = None,
        decode_as: type[ContractMessage] | None = None,
        commit: Literal["sync", "stored"] = "sync",
        first_wait_s: float | None = None,
    ) -> None:
        self.consumer = consumer
        self.commit = commit
        self.first_wait_s = first_wait_s
        self.producer = producer
        self.handler = handler
        self.service = service
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_bytes = max_bytes
        self.topic_prefix = topic_prefix
        self.stats = LoopStats()
        self.metrics = metrics
        #: Decode every input as this type (topics sharing one contract, like ``scored.*``);
        #: ``None``: the contract of each message's topic.
        self.decode_as = decode_as

    def _contract_topic(self, topic: str) -> str:
        return topic.removeprefix(self.topic_prefix)

    def _dead_letter(self, msg: Message, error: ContractError) -> Output:
        topic = msg.topic() or ""
        _kind, ts = msg.timestamp()
        headers = build_dlq_headers(
            error,
            source_topic=topic,
            source_partition=msg.partition() or 0,
            source_offset=msg.offset() or 0,
            source_timestamp_ms=ts if ts > 0 else None,
            service=self.service,
            failed_at=datetime.now(tz=UTC),
        )
        return Output(dlq_topic(topic), msg.value() or b"", msg.key(), headers)

    def _decode(self, msg: Message) -> Decoded | Output:
        topic = msg.topic() or ""
        try:
            message_type = self.decode_as or contract_for(self._contract_topic(topic)).type
            event = decode(message_type, msg.value() or b"", max_bytes=self.max_bytes)
        except ContractError as err:
            return self._dead_letter(msg, err)
        return Decoded(
            topic,
            msg.partition() or 0,
            msg.offset() or 0,
            msg.key(),
            msg.timestamp()[1],
            event,
            msg.value() or b"",
        )

    def _consume(self) -> list[Message]:
        if self.first_wait_s is None:
            return self.consumer.consume(num_messages=self.max_batch, timeout=self.max_wait_s)
        first = self.consumer.poll(self.first_wait_s)
        if first is None:
            return []
        return [first, *self.consumer.consume(num_messages=self.max_batch - 1, timeout=0)]

    def step(self) -> int:
        """Process one micro-batch; returns how many messages it consumed."""
        raw = self._consume()
        messages: list[Message] = []
        for m in raw:
            err = m.error()
            if err is None:
                messages.append(m)
            else:
                name = err.name()
                self.stats.consumer_errors[name] = self.stats.consumer_errors.get(name, 0) + 1
                if err.fatal():
                    raise KafkaException(err)
        if not messages:
            return 0
        consumed_at = time.time()  # wall clock, against the records' Kafka timestamps
        t0 = time.perf_counter()
        decoded: list[Decoded] = []
        outputs: list[Output] = []
        for m in messages:
            d = self._decode(m)
            if isinstance(d, Decoded):
                decoded.append(d)
            else:
                outputs.append(d)
        dead = list(outputs)
        self.stats.dead_lettered += len(dead)
        t1 = time.perf_counter()
        if decoded:
            outputs += self.handler(decoded)
        t2 = time.perf_counter()
        failed_before = self.producer.failed_total
        for o in outputs:
            self.producer.send(o.topic, o.value, key=o.key, headers=o.headers)
        if self.producer.flush(timeout_s=60) or self.producer.failed_total > failed_before:
            if self.metrics is not None:
                self.metrics.halted.labels(self.service).inc()
            msg = (
                f"{self.service}: {self.producer.failed_total - failed_before} record(s) of a "
                f"batch not acknowledged ({dict(self.producer.failed)}); offsets not committed"
            )
            raise ProcessingHaltedError(msg)
        t3 = time.perf_counter()
        self._commit(messages)
        t4 = time.perf_counter()
        self.stats.batches += 1
        self.stats.consumed += len(messages)
        self.stats.decoded += len(decoded)
        self.stats.produced += len(outputs)
        if self.metrics is not None:
            self._observe(messages, dead, outputs, (t0, t1, t2, t3, t4), consumed_at)
        return len(messages)

    def _observe(
        self,
        messages: Sequence[Message],
        dead: Sequence[Output],
        outputs: Sequence[Output],
        times: tuple[float, float, float, float, float],
        consumed_at: float,
    ) -> None:
        """Per-batch metric updates (a few calls per batch; consume lag per message)."""
        m, svc = self.metrics, self.service
        assert m is not None
        for topic, n in Counter(msg.topic() or "" for msg in messages).items():
            m.consumed.labels(svc, topic).inc(n)
        self._observe_lag(messages, consumed_at)
        for (topic, reason), n in Counter(
            (o.topic, dict(o.headers).get(HEADER_REASON, b"?").decode()) for o in dead
        ).items():
            m.dead_letters.labels(svc, topic, reason).inc(n)
        for topic, n in Counter(o.topic for o in outputs).items():
            m.produced.labels(svc, topic).inc(n)
        m.batch_size.labels(svc).observe(len(messages))
        t0, t1, t2, t3, t4 = times
        for stage, seconds in (
            ("decode", t1 - t0),
            ("handle", t2 - t1),
            ("produce_ack", t3 - t2),
            ("commit", t4 - t3),
        ):
            m.stage_seconds.labels(svc, stage).observe(seconds)
        m.last_commit.labels(svc).set_to_current_time()

    def _observe_lag(self, messages: Sequence[Message], consumed_at: float) -> None:
        """Consume lag in time (per record) and in records (per partition, after the batch).

        The record count uses the high watermark librdkafka cached from its last
        fetch of the partition (no broker call); while that is unknown the gauge
        keeps its previous value.
        """
        m, svc = self.metrics, self.service
        assert m is not None
        last: dict[tuple[str, int], int] = {}
        children: dict[str, Histogram] = {}
        for msg in messages:
            topic = msg.topic() or ""
            _kind, ts = msg.timestamp()
            if ts > 0:
                hist = children.get(topic) or children.setdefault(
                    topic, m.consume_lag.labels(svc, topic)
                )
                hist.observe(max(0.0, consumed_at - ts / 1000))
            last[topic, msg.partition() or 0] = msg.offset() or 0
        for (topic, partition), offset in last.items():
            try:
                marks = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            if marks is not None and marks[1] >= 0:
                m.lag_records.labels(svc, topic, str(partition)).set(max(0, marks[1] - offset - 1))

    def _commit(self, messages: Sequence[Message]) -> None:
        try:
            if self.commit == "stored":
                self.consumer.store_offsets(offsets=commit_offsets(messages))
            else:
                self.consumer.commit(offsets=commit_offsets(messages), asynchronous=False)
            self.stats.commits += 1
        except KafkaException as exc:
            # The group moved under us between consume and commit: a rebalance took
            # the partition away, or a restarted broker (coordinator) forgot this
            # member, or the coordinator is not reachable right now. Whoever owns
            # the partition next re-processes from the last commit and produces
            # the same outputs (duplicates, never losses); a later commit of this
            # member covers these offsets too. Counted, not fatal.
            err: KafkaError = exc.args[0]
            if not err.fatal() and (err.code() in _COMMIT_RETRIABLE or err.retriable()):
                self.stats.commit_failures += 1
                if self.metrics is not None:
                    self.metrics.commit_failures.labels(self.service).inc()
                return
            raise

    def run(self, *, should_stop: Callable[[], bool], idle_sleep_s: float = 0.0) -> LoopStats:
        """Step until ``should_stop()``; the caller closes the consumer afterwards."""
        while not should_stop():
            if self.step() == 0 and idle_sleep_s:
                time.sleep(idle_sleep_s)
        return self.stats
