"""``streamscore joiner``: scored-event log + delayed labels → labelled examples, exactly once.

Consumes ``scored.<stream>`` and the stream's label topic; keeps each scored
event pending in Redis until a label arrives or its maturity horizon passes
(:mod:`streamscore.libs.labels.machine` has the rules, in stream time); emits
labelled examples (``schemas/log/labelled_example``) to ``examples.labelled``,
keyed by ``event_id``, and to a Parquet dataset per UTC event day
(:mod:`streamscore.services.examples_dataset`); reports realised performance
(:mod:`streamscore.services.realised_report`).

Why a confluent-kafka loop with Kafka transactions, not faust or
:class:`~streamscore.services.stream_processor.StreamProcessor`: the state lives
in Redis, outside any Kafka transaction. faust's exactly-once mode covers its
own changelogged tables, not Redis, and StreamProcessor is at-least-once
(a crash between acknowledgement and commit re-emits). Here two atomic writes
give an exactly-once *effect*: each batch's state change and its outputs go
to Redis in one ``MULTI`` (an outbox), and each commit cycle produces the
outbox and commits the consumer offsets in one Kafka transaction
(:mod:`streamscore.libs.labels.outbox` has the rule that ties them).

The protocol, in numbered steps:

1. **Start.** ``init_transactions`` with the stream's ``transactional.id``
   (aborts a previous instance's open transaction and fences it), claim the
   Redis epoch (fences its state writes), lock the dataset folder.
2. **Recover.** Read the group's committed offsets; drop the outbox blobs
   they reach (produced by a committed transaction); remove dataset files of
   uncommitted cycles; assign every partition of both topics at its
   committed offset (the beginning when none).
3. **Batch.** Consume; decode (bad records become DLQ records of the
   batch); load the state the batch touches; run the machine; load and
   process the buckets the watermark passed; write changes + the batch's
   blob (its examples and dead letters) atomically. When no record comes,
   the same runs with nothing consumed once the clock's hold has moved (an
   input partition fell idle: :mod:`~streamscore.libs.labels.clock`).
4. **Commit cycle** (every ``commit_interval_s``): the outbox blobs the
   consumed offsets reach are written to the dataset (fsync), then produced
   in a Kafka transaction that also commits the offsets; after the commit
   they leave the outbox.
5. **Stop** (SIGTERM/SIGINT): a last cycle, then close. Any failure stops the
   process with nothing half-committed; a restart resumes at step 1.

One joiner per stream: the transactional id, the epoch and the folder lock
each refuse a second one (the newest wins).
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from confluent_kafka import Producer as RdProducer
from prometheus_client import start_http_server

from streamscore.libs.config import Settings
from streamscore.libs.contracts.base import Message as ContractMessage
from streamscore.libs.contracts.codec import decode, encode, schema_id_of
from streamscore.libs.contracts.dlq import build_dlq_headers
from streamscore.libs.contracts.errors import SEMANTIC, ContractError
from streamscore.libs.contracts.examples import LabelledExample
from streamscore.libs.contracts.registry import contract_for
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.kafka_config import producer_config
from streamscore.libs.labels.clock import PartitionClock
from streamscore.libs.labels.facts import LabelFact, fact_of
from streamscore.libs.labels.layout import JoinKeys
from streamscore.libs.labels.machine import JoinMachine
from streamscore.libs.labels.outbox import Blob, OutRecord, committed_prefix, eligible, merge_tag
from streamscore.libs.labels.records import Emitted, context_of, record_of, to_example
from streamscore.libs.labels.spec import DAY_US, SECOND_US, JoinSpec, to_us
from streamscore.libs.security import kafka_security_config
from streamscore.libs.topics import LABELLED_EXAMPLES_TOPIC, STREAMS, dlq_topic
from streamscore.services.clients import endpoints, make_consumer, make_redis
from streamscore.services.examples_dataset import ExamplesDataset
from streamscore.services.join_state import RedisJoinState
from streamscore.services.metrics import JoinerMetrics
from streamscore.services.realised_report import ReportExporter, live_thresholds, publish_report

SERVICE = "joiner"
_KAFKA_TIMEOUT_S = 30.0


@dataclass
class JoinerStats:
    """Counters of the joiner's life (summary line, tests)."""

    consumed: int = 0
    dead_lettered: int = 0
    batches: int = 0
    commits: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    examples: Counter[str] = field(default_factory=Counter)
    recovered_blobs: int = 0
    removed_files: int = 0


def summary(stats: JoinerStats) -> str:
    """One line for the CLI."""
    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.examples.items())) or "none"
    outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.outcomes.items()))
    return (
        f"{stats.consumed:,} consumed, {stats.dead_lettered:,} to DLQ, {stats.commits:,} "
        f"commits; examples: {kinds}; {outcomes}"
    )


@dataclass
class _Input:
    """A decoded record: a scored event or a label."""

    scored: ScoredEvent | None = None
    fact: LabelFact | None = None

    @property
    def target(self) -> str | None:
        """The event id it is about."""
        if self.scored is not None:
            return self.scored.event_id
        return None if self.fact is None else self.fact.target_event_id

    @property
    def time_us(self) -> int:
        """Its time on its topic: event time of a scored event, label time of a label."""
        if self.scored is not None:
            return to_us(self.scored.event_time)
        assert self.fact is not None
        return self.fact.label.time_us


class LabelJoiner:
    """The loop of the module doc for one stream."""

    def __init__(
        self,
        consumer: Consumer,
        producer: RdProducer,
        state: RedisJoinState,
        spec: JoinSpec,
        *,
        stream: str,
        topic_prefix: str = "",
        dataset: ExamplesDataset | None = None,
        max_batch: int = 1000,
        max_wait_s: float = 0.05,
        commit_interval_s: float = 1.0,
        max_bytes: int = 1024 * 1024,
        metrics: JoinerMetrics | None = None,
        report_interval_s: float | None = None,
        idle_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        s = STREAMS[stream]
        self.consumer = consumer
        self.producer = producer
        self.state = state
        self.spec = spec
        self.machine = JoinMachine(spec)
        self.stream = stream
        self.scored_topic = topic_prefix + s.scored_log_topic
        self.label_topic = topic_prefix + s.label_topic
        self.examples_topic = topic_prefix + LABELLED_EXAMPLES_TOPIC
        self.label_type = contract_for(s.label_topic).type
        self.dataset = dataset
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.commit_interval_s = commit_interval_s
        self.max_bytes = max_bytes
        self.metrics = metrics
        self.report_interval_s = report_interval_s
        self.clock = clock
        self.stats = JoinerStats()
        #: Offset after the last consumed record, and the last committed one, per partition.
        self.positions: dict[tuple[str, int], int] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self._partitions: list[tuple[str, int]] = []
        self._last_cycle = clock()
        self._last_report = clock()
        self._exporter = ReportExporter(metrics, stream) if metrics is not None else None
        self._thresholds: list[float] | None = None
        #: Newest time per input partition, and the partitions' (low, end) offsets refreshed
        #: at most every second: which partitions still hold the clock back (rule 5).
        self.partition_clock = PartitionClock(idle_s=idle_s)
        self._ends: dict[tuple[str, int], tuple[int, int]] = {}
        self._ends_at = -1e9
        #: The hold the last batch advanced to: an idle poll advances again when it moved.
        self._hold: int | None = None
        self._idle_checked = clock()

    # -- 1, 2: start and recover ----------------------------------------------------------

    def start(self) -> None:
        """Steps 1 and 2 of the module doc."""
        self.producer.init_transactions(_KAFKA_TIMEOUT_S)
        self.state.claim()
        if self.dataset is not None:
            self.dataset.lock()
        partitions: list[TopicPartition] = []
        for topic in (self.scored_topic, self.label_topic):
            meta = self.consumer.list_topics(topic, timeout=_KAFKA_TIMEOUT_S).topics[topic]
            if meta.error is not None:
                raise KafkaException(meta.error)
            partitions += [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        committed = self.consumer.committed(partitions, timeout=_KAFKA_TIMEOUT_S)
        self.committed = {(tp.topic, tp.partition): tp.offset for tp in committed if tp.offset >= 0}
        self._partitions = [(tp.topic, tp.partition) for tp in partitions]
        self.partition_clock.start(self._partitions, now=self.clock())
        self.positions = dict(self.committed)
        done = committed_prefix(self.state.outbox(), self.committed)
        self.state.drop_outbox(done)
        self.stats.recovered_blobs = len(done)
        if self.dataset is not None:
            left = self.state.outbox()
            first_open = left[0].seq if left else self.state.next_seq
            self.stats.removed_files = self.dataset.recover(first_open)
        self.consumer.assign(
            [
                TopicPartition(
                    tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                )
                for tp in committed
            ]
        )
        self._gauges()

    # -- 3: a batch -----------------------------------------------------------------------

    def step(self) -> int:
        """Consume and apply one batch (step 3), and run a commit cycle when due (step 4)."""
        raw = self.consumer.consume(num_messages=self.max_batch, timeout=self.max_wait_s)
        messages = []
        for m in raw:
            err = m.error()
            if err is None:
                messages.append(m)
            elif err.fatal():
                raise KafkaException(err)
        now = self.clock()
        if messages:
            self._apply(messages)
        elif now - self._idle_checked >= 0.5:
            # Partitions fall idle without any record arriving (rule 5): advance then too.
            self._idle_checked = now
            if self.partition_clock.hold(self._lagging(), now=now) != self._hold:
                self._apply([])
        if now - self._last_cycle >= self.commit_interval_s:
            self.commit_cycle()
            self._last_cycle = now
        if self.report_interval_s is not None and now - self._last_report >= self.report_interval_s:
            self.report()
            self._last_report = now
        return len(messages)

    def _apply(self, messages: Sequence[Message]) -> None:
        now = self.clock()
        inputs: list[_Input] = []
        dead: list[OutRecord] = []
        for m in messages:
            topic, partition, offset = m.topic() or "", m.partition() or 0, m.offset() or 0
            self.positions[(topic, partition)] = offset + 1
            try:
                x = self._decode(topic, m.value() or b"")
            except ContractError as err:
                dead.append(self._dead_letter(m, err))
                continue
            inputs.append(x)
            self.partition_clock.observe((topic, partition), x.time_us, now=now)
        ids = {x.target for x in inputs if x.target is not None}
        view = self.state.view(ids, ids)
        emitted: list[Emitted] = []
        outcomes: Counter[str] = Counter()
        for x in inputs:
            if x.scored is not None:
                rec = record_of(x.scored, self.state.intern(context_of(x.scored)))
                outcome, out = self.machine.scored(view, x.scored.event_id, rec)
            else:
                assert x.fact is not None
                outcome, out = self.machine.label(view, x.fact)
            outcomes[outcome] += 1
            emitted += out
        hold = self._hold = self.partition_clock.hold(self._lagging(), now=now)
        self.state.load_due(view, self.machine.targets(view.meta, hold_us=hold))
        advanced, out = self.machine.advance(view, hold_us=hold)
        outcomes.update(advanced)
        emitted += out
        records = [self._example_record(e) for e in emitted] + dead
        blob = None
        if records:
            tag = merge_tag(self.state.last_tag, self.positions)
            blob = Blob(self.state.next_seq, tag, records)
        self.state.commit(view, blob)
        self.stats.batches += 1
        self.stats.consumed += len(messages)
        self.stats.dead_lettered += len(dead)
        self.stats.outcomes.update(outcomes)
        if self.metrics is not None:
            for outcome, n in outcomes.items():
                self.metrics.inputs.labels(self.stream, outcome).inc(n)
            self._gauges()

    def _lagging(self) -> list[tuple[str, int]]:
        """Input partitions with records not read yet (as of the last refresh, <= 1 s old)."""
        now = self.clock()
        if now - self._ends_at >= 1.0:
            for tp in self._partitions:
                self._ends[tp] = self.consumer.get_watermark_offsets(
                    TopicPartition(*tp), timeout=_KAFKA_TIMEOUT_S
                )
            self._ends_at = now
        return [tp for tp, (lo, hi) in self._ends.items() if self.positions.get(tp, lo) < hi]

    def _decode(self, topic: str, value: bytes) -> _Input:
        if topic == self.scored_topic:
            event = decode(ScoredEvent, value, max_bytes=self.max_bytes)
            if event.stream != self.stream:
                raise ContractError(
                    SEMANTIC,
                    f"a {event.stream!r} record on the log of {self.stream!r}",
                    field="$.stream",
                    schema=schema_id_of(ScoredEvent),
                )
            return _Input(scored=event)
        label: ContractMessage = decode(self.label_type, value, max_bytes=self.max_bytes)
        return _Input(fact=fact_of(label))

    def _dead_letter(self, m: Message, err: ContractError) -> OutRecord:
        topic = m.topic() or ""
        _kind, ts = m.timestamp()
        headers = build_dlq_headers(
            err,
            source_topic=topic,
            source_partition=m.partition() or 0,
            source_offset=m.offset() or 0,
            source_timestamp_ms=ts if ts > 0 else None,
            service=SERVICE,
            failed_at=datetime.now(tz=UTC),
        )
        return OutRecord(dlq_topic(topic), m.key(), m.value() or b"", headers)

    def _example_record(self, e: Emitted) -> OutRecord:
        value = encode(to_example(e, self.state.contexts[e.record.ctx], self.stream))
        return OutRecord(self.examples_topic, e.event_id.encode(), value)

    # -- 4: commit cycle ------------------------------------------------------------------

    def commit_cycle(self) -> int:
        """Step 4: dataset files, then one Kafka transaction; returns blobs committed."""
        blobs = self.state.outbox()
        ready = eligible(blobs, self.positions)
        moved = {tp: o for tp, o in self.positions.items() if self.committed.get(tp) != o}
        if not ready and not moved:
            return 0
        rows = [
            decode(LabelledExample, r.value, max_bytes=self.max_bytes)
            for b in ready
            for r in b.records
            if r.topic == self.examples_topic
        ]
        # 4a. Files first: fsynced before the transaction that makes them count.
        if self.dataset is not None and rows:
            self.dataset.write(ready[0].seq, ready[-1].seq, rows)
        # 4b. Records and offsets in one transaction.
        self.producer.begin_transaction()
        try:
            for b in ready:
                for r in b.records:
                    self._produce(r)
            if moved:
                offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(moved.items())]
                self.producer.send_offsets_to_transaction(
                    offsets, self.consumer.consumer_group_metadata(), _KAFKA_TIMEOUT_S
                )
            self.producer.commit_transaction(_KAFKA_TIMEOUT_S)
        except KafkaException as exc:
            # Fail closed: abort what can be aborted and stop; a restart recovers (step 2).
            if exc.args and exc.args[0].txn_requires_abort():
                self.producer.abort_transaction(_KAFKA_TIMEOUT_S)
            raise
        self.committed.update(moved)
        # 4c. The produced blobs leave the outbox (a crash before this is step 2's case).
        self.state.drop_outbox(ready)
        self.stats.commits += 1
        kinds = Counter((r.kind, r.late) for r in rows)
        for (kind, _late), n in kinds.items():
            self.stats.examples[kind] += n
        if self.metrics is not None:
            self.metrics.commits.labels(self.stream).inc()
            for (kind, late), n in kinds.items():
                self.metrics.examples.labels(self.stream, kind, str(late).lower()).inc(n)
        return len(ready)

    def _produce(self, r: OutRecord) -> None:
        while True:
            try:
                self.producer.produce(r.topic, r.value, r.key, headers=list(r.headers) or None)
                return
            except BufferError:
                self.producer.poll(0.05)  # the local queue is full: serve deliveries, retry

    # -- reporting, running ---------------------------------------------------------------

    def _gauges(self) -> None:
        if self.metrics is None:
            return
        m, s = self.state.meta, self.stream
        self.metrics.pending.labels(s).set(m.pending)
        self.metrics.held.labels(s).set(m.held)
        self.metrics.orphans.labels(s).set(m.orphans)
        if m.watermark_us is not None:
            self.metrics.watermark.labels(s).set(m.watermark_us / SECOND_US)

    def report(self) -> None:
        """Realised performance from the dataset (needs ``--out``)."""
        if self.dataset is None:
            return
        if self._thresholds is None:
            self._thresholds = live_thresholds(self.stream, self.state.client)
        publish_report(
            self.dataset.root,
            self.stream,
            self.spec,
            self.state.meta.watermark_us,
            thresholds=self._thresholds,
            exporter=self._exporter,
        )

    def close(self) -> None:
        """Release the clients and the folder (no commit: :meth:`run` made the last one)."""
        self.consumer.close()
        self.producer.flush(_KAFKA_TIMEOUT_S)
        if self.dataset is not None:
            self.dataset.unlock()

    def run(self, *, should_stop: Callable[[], bool]) -> JoinerStats:
        """Steps 3-5 until ``should_stop()``; the caller closes the clients."""
        while not should_stop():
            self.step()
        self.commit_cycle()
        if self.report_interval_s is not None:
            self.report()
        return self.stats


def make_joiner(
    settings: Settings,
    stream: str,
    spec: JoinSpec,
    *,
    topic_prefix: str = "",
    out: Path | None = None,
    commit_interval_s: float = 1.0,
    report_interval_s: float = 60.0,
    max_batch: int = 1000,
    idle_s: float = 5.0,
    metrics: JoinerMetrics | None = None,
) -> LabelJoiner:
    """A joiner wired to the settings' Kafka and Redis (not started)."""
    ep = endpoints(settings)
    group = f"{topic_prefix}streamscore-joiner-{stream}"
    consumer = make_consumer(settings, group_id=group, client_id=f"joiner-{stream}")
    producer = RdProducer(
        producer_config(
            ep.kafka_bootstrap,
            client_id=f"joiner-{stream}",
            transactional_id=group,
            security=kafka_security_config(settings),
        )
    )
    horizon_s = (spec.horizon_us + spec.grace_us + spec.orphan_ttl_us) // SECOND_US
    state = RedisJoinState(
        make_redis(settings, timeout_s=10.0),
        JoinKeys(topic_prefix, stream),
        ttl_s=max(2 * horizon_s, 7 * DAY_US // SECOND_US),
    )
    return LabelJoiner(
        consumer,
        producer,
        state,
        spec,
        stream=stream,
        topic_prefix=topic_prefix,
        dataset=ExamplesDataset(out, stream) if out is not None else None,
        max_batch=max_batch,
        commit_interval_s=commit_interval_s,
        max_bytes=settings.max_message_bytes,
        metrics=metrics,
        report_interval_s=report_interval_s if out is not None else None,
        idle_s=idle_s,
    )


def run_joiner(
    settings: Settings,
    stream: str,
    spec: JoinSpec,
    *,
    topic_prefix: str = "",
    out: Path | None = None,
    commit_interval_s: float = 1.0,
    report_interval_s: float = 60.0,
    max_batch: int = 1000,
    idle_s: float = 5.0,
    on_ready: Callable[[JoinerStats], None] | None = None,
) -> JoinerStats:
    """Run the joiner of ``stream`` until SIGTERM/SIGINT (graceful: a last commit cycle)."""
    metrics = JoinerMetrics() if settings.metrics_port is not None else None
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port, addr=settings.bind_host)
    joiner = make_joiner(
        settings,
        stream,
        spec,
        topic_prefix=topic_prefix,
        out=out,
        commit_interval_s=commit_interval_s,
        report_interval_s=report_interval_s,
        max_batch=max_batch,
        idle_s=idle_s,
        metrics=metrics,
    )
    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        joiner.start()
        if on_ready is not None:
            on_ready(joiner.stats)
        return joiner.run(should_stop=stop.is_set)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        joiner.close()
