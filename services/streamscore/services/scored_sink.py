"""``streamscore scored-sink``: ``scored.<stream>`` → durable Parquet files per UTC day.

The scorer logs every scored event to ``scored.<stream>``; this service keeps
that log on disk for the label joiner, training and audit, in the layout of
:mod:`streamscore.libs.scored_log` (read it back with
:func:`~streamscore.libs.scored_log.read.read_scored`).

The durability protocol, per partition of the topic:

1. Consume (no auto commit, ``read_committed``, ``earliest``) and decode each
   record against the ``scored_event`` contract. A record that does not
   decode, or that belongs to another stream, goes to ``dlq.scored.<stream>``
   with the usual headers (why, where from, when); its offset still counts.
2. Add the record to its partition's open segment. A segment is sealed by
   size, by age (5 s by default), at a recovery cut point or when the sink
   holds too many rows in memory
   (:mod:`streamscore.libs.scored_log.segments`).
3. For every sealed segment: wait until its dead letters are acknowledged
   (if one failed, stop without committing: fail closed, the batch is
   re-read on restart).
4. Write one file per UTC day of its rows, named after the segment's offset
   range, through :func:`~streamscore.services.durable_files.publish`: temp
   file, fsync, atomic rename; then fsync each folder touched.
5. Only then commit, per partition, the offset after the segment's last one.

**Idempotency** (a crash between 4 and 5 leaves files whose offsets will be
consumed again). When a partition is assigned, the sink reads its committed
offset ``C`` and lists that partition's files: every file whose segment starts
at or after ``C`` was published but not committed, and its last offset
becomes a **cut point**. The re-consumed records are sealed exactly there, so
each file is written again with the same name and the same rows and replaces
the earlier one (a segment half-published at the crash is completed the same
way). Without a committed offset every file of the partition is a cut point:
re-reading a topic into an existing folder reproduces its files. What this
cannot cover (a sink evicted from the group while still writing, roll limits
changed between runs, the scorer's own at-least-once duplicates) is left to the
reader, which keeps the first record of each ``event_id``.

The output folder is claimed for one topic (``<stream>/_source``): file names
carry partitions and offsets only, so a second topic in the same folder is
refused rather than allowed to overwrite files.

Rebalances: a revoked partition's open segment is sealed, written and
committed in the revoke callback (the partition is still owned there); a
*lost* partition's buffer is dropped (its new owner re-reads it). SIGTERM:
seal everything, write, commit, exit 0.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path

import pyarrow.parquet as pq
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import start_http_server

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import decode, schema_id_of
from streamscore.libs.contracts.dlq import build_dlq_headers
from streamscore.libs.contracts.errors import SEMANTIC, ContractError
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.scored_log.layout import (
    day_dir,
    day_dirs,
    day_of,
    file_name,
    segment_files,
    stream_dir,
    temp_prefix,
)
from streamscore.libs.scored_log.segments import PartitionSegments, RollPolicy, Segment
from streamscore.libs.scored_log.table import Logged, to_table
from streamscore.libs.topics import STREAMS, dlq_topic
from streamscore.services.clients import make_consumer, make_producer
from streamscore.services.durable_files import ensure_dir, publish, sync_dir
from streamscore.services.kafka_producer import Producer
from streamscore.services.metrics import StreamMetrics
from streamscore.services.shutdown import stop_on_signals
from streamscore.services.stream_processor import ProcessingHaltedError

SERVICE = "scored-sink"
#: Name of the file that records which topic a stream folder holds.
SOURCE_FILE = "_source"
#: Parquet compression of the log files (zstd: small files, fast to read back).
COMPRESSION = "zstd"


class SourceMismatchError(RuntimeError):
    """The output folder already holds the log of another topic."""


@dataclass
class SinkStats:
    """Counters of the sink's life, for metrics, the CLI summary and tests."""

    consumed: int = 0
    dead_lettered: int = 0
    rows_written: int = 0
    files_written: int = 0
    segments: int = 0
    commits: int = 0
    commit_failures: int = 0
    recovery_cuts: int = 0
    write_s: float = 0.0
    consumer_errors: dict[str, int] = field(default_factory=dict)


def claim_folder(root: Path, stream: str, topic: str) -> Path:
    """The stream's folder, refusing one that holds another topic's log.

    File names carry partitions and offsets only, so two topics (say two topic
    prefixes) in one folder would overwrite each other's files.
    """
    folder = ensure_dir(stream_dir(root, stream))
    marker = folder / SOURCE_FILE
    if marker.exists():
        held = marker.read_text(encoding="utf-8").strip()
        if held != topic:
            msg = f"{folder} holds the log of {held!r}, not {topic!r}: use another --out"
            raise SourceMismatchError(msg)
        return folder
    publish(folder, SOURCE_FILE, lambda p: p.write_text(topic + "\n"), temp_prefix=".source-")
    sync_dir(folder)
    return folder


class ScoredSink:
    """Consumes one stream's scored-event log and publishes it as Parquet files."""

    def __init__(
        self,
        consumer: Consumer,
        producer: Producer,
        *,
        root: Path,
        stream: str,
        topic: str,
        policy: RollPolicy,
        max_bytes: int,
        max_batch: int = 2000,
        max_wait_s: float = 0.1,
        metrics: StreamMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.root = root
        self.stream = stream
        self.topic = topic
        self.policy = policy
        self.max_bytes = max_bytes
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.metrics = metrics
        self.clock = clock
        self.stats = SinkStats()
        self._parts: dict[int, PartitionSegments[Logged]] = {}
        self._sealed: list[Segment[Logged]] = []
        self._halted = False

    # -- rebalance callbacks (run inside ``consume``) -------------------------------------

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Recovery per newly assigned partition: cut points from uncommitted files."""
        if not partitions:
            return
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=30)}
        cuts = self.recovery_cuts(committed)
        for p in committed:
            self.stats.recovery_cuts += len(cuts[p])
            self._parts[p] = PartitionSegments(p, self.policy, cuts=cuts[p])

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Publish and commit what the revoked partitions hold (they are still ours here)."""
        if self._halted:
            self.on_lost(consumer, partitions)
            return
        for tp in partitions:
            segs = self._parts.pop(tp.partition, None)
            sealed = segs.seal() if segs is not None else None
            if sealed is not None:
                self._sealed.append(sealed)
        self._flush()

    def on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Drop lost partitions' buffers: their new owner re-reads from the last commit."""
        gone = {tp.partition for tp in partitions}
        for p in gone:
            self._parts.pop(p, None)
        self._sealed = [s for s in self._sealed if s.partition not in gone]

    def recovery_cuts(self, committed: dict[int, int]) -> dict[int, list[int]]:
        """Per partition, the last offsets of its files at or after its committed offset.

        ``committed`` maps partitions to their committed offset (negative: none,
        then every file of the partition counts). The partitions' temporary files
        are removed on the way: never renamed, so never visible.
        """
        cuts: dict[int, set[int]] = {p: set() for p in committed}
        for _day, folder in day_dirs(self.root, self.stream):
            for p in committed:
                for tmp in folder.glob(f"{temp_prefix(p)}*"):
                    tmp.unlink(missing_ok=True)
            for name, _path in segment_files(folder):
                c = committed.get(name.partition)
                if c is not None and (c < 0 or name.first_offset >= c):
                    cuts[name.partition].add(name.last_offset)
        return {p: sorted(c) for p, c in cuts.items()}

    # -- the loop -------------------------------------------------------------------------

    def step(self) -> int:
        """Consume one batch, seal what is due, publish and commit; returns messages consumed."""
        raw = self.consumer.consume(num_messages=self.max_batch, timeout=self.max_wait_s)
        messages: list[Message] = []
        for m in raw:
            err = m.error()
            if err is None:
                messages.append(m)
                continue
            name = err.name()
            self.stats.consumer_errors[name] = self.stats.consumer_errors.get(name, 0) + 1
            if err.fatal():
                raise KafkaException(err)
        now = self.clock()
        for m in messages:
            self._take(m, now)
        self.stats.consumed += len(messages)
        if self.metrics is not None and messages:
            self.metrics.consumed.labels(SERVICE, self.topic).inc(len(messages))
            self.metrics.batch_size.labels(SERVICE).observe(len(messages))
        open_rows = 0
        for segs in self._parts.values():
            sealed = segs.due(now)
            if sealed is not None:
                self._sealed.append(sealed)
            elif segs.open_segment is not None:
                open_rows += len(segs.open_segment.rows)
        if open_rows >= self.policy.max_open_rows:
            self._seal_all(recovering_too=False)
        if self._sealed:
            self._flush()
        return len(messages)

    def close(self) -> None:
        """Seal every open segment, publish and commit (graceful stop)."""
        self._seal_all(recovering_too=True)
        self._flush()

    def _seal_all(self, *, recovering_too: bool) -> None:
        for segs in self._parts.values():
            if segs.pending_cuts and not recovering_too:
                continue  # bounded by the earlier segment's size; its cut keeps the name
            sealed = segs.seal()
            if sealed is not None:
                self._sealed.append(sealed)

    def run(self, *, should_stop: Callable[[], bool]) -> SinkStats:
        """Step until ``should_stop()``, then :meth:`close`; the caller closes the consumer.

        After any failure the sink is halted: the revoke callback run by
        ``consumer.close()`` then drops the buffers instead of publishing them, since
        committing a later segment would skip the offsets of the one that failed.
        """
        try:
            while not should_stop():
                self.step()
            self.close()
        except BaseException:
            self._halted = True
            raise
        return self.stats

    def _take(self, m: Message, now: float) -> None:
        partition, offset = m.partition() or 0, m.offset() or 0
        value = m.value() or b""
        row = self._decode(m, value)
        segs = self._parts.get(partition)
        if segs is None:  # assigned without the callback (cannot happen with subscribe)
            segs = self._parts[partition] = PartitionSegments(partition, self.policy)
        sealed = segs.add(offset, row, nbytes=len(value), now=now)
        if sealed is not None:
            self._sealed.append(sealed)

    def _decode(self, m: Message, value: bytes) -> Logged | None:
        try:
            event = decode(ScoredEvent, value, max_bytes=self.max_bytes)
            if event.stream != self.stream:
                raise ContractError(
                    SEMANTIC,
                    f"a {event.stream!r} record on the log of {self.stream!r}",
                    field="$.stream",
                    schema=schema_id_of(ScoredEvent),
                )
        except ContractError as err:
            self._dead_letter(m, value, err)
            return None
        return Logged(event, m.partition() or 0, m.offset() or 0)

    def _dead_letter(self, m: Message, value: bytes, err: ContractError) -> None:
        _kind, ts = m.timestamp()
        headers = build_dlq_headers(
            err,
            source_topic=self.topic,
            source_partition=m.partition() or 0,
            source_offset=m.offset() or 0,
            source_timestamp_ms=ts if ts > 0 else None,
            service=SERVICE,
            failed_at=datetime.now(tz=UTC),
        )
        self.producer.send(dlq_topic(self.topic), value, key=m.key(), headers=headers)
        self.stats.dead_lettered += 1
        if self.metrics is not None:
            self.metrics.dead_letters.labels(SERVICE, dlq_topic(self.topic), err.reason).inc()
            self.metrics.produced.labels(SERVICE, dlq_topic(self.topic)).inc()

    # -- publish, then commit ---------------------------------------------------------------

    def _flush(self) -> None:
        """Steps 3-5 of the module doc for every sealed segment (halts the sink on failure)."""
        sealed, self._sealed = self._sealed, []
        if not sealed:
            return
        try:
            self._publish_and_commit(sealed)
        except BaseException:
            self._halted = True
            raise

    def _publish_and_commit(self, sealed: Sequence[Segment[Logged]]) -> None:
        t0 = time.perf_counter()
        # 3. Dead letters first: a segment is committed only if all of them are acknowledged.
        failed_before = self.producer.failed_total
        if self.producer.flush(timeout_s=60) or self.producer.failed_total > failed_before:
            if self.metrics is not None:
                self.metrics.halted.labels(SERVICE).inc()
            msg = (
                f"{SERVICE}: dead letters not acknowledged ({dict(self.producer.failed)}); "
                "nothing committed"
            )
            raise ProcessingHaltedError(msg)
        # 4. One file per (segment, day): temp, fsync, rename; each folder synced once after.
        touched: set[Path] = set()
        for seg in sealed:
            touched |= self._publish(seg)
        for folder in touched:
            sync_dir(folder)
        t1 = time.perf_counter()
        # 5. Commit only now: every offset up to the segment's last one is on disk or in a DLQ.
        self._commit(sealed)
        t2 = time.perf_counter()
        self.stats.segments += len(sealed)
        self.stats.write_s += t1 - t0
        if self.metrics is not None:
            self.metrics.stage_seconds.labels(SERVICE, "write").observe(t1 - t0)
            self.metrics.stage_seconds.labels(SERVICE, "commit").observe(t2 - t1)

    def _publish(self, seg: Segment[Logged]) -> set[Path]:
        by_day: dict[date, list[Logged]] = defaultdict(list)
        for row in seg.rows:
            by_day[day_of(row.event.event_time)].append(row)
        name = file_name(seg.partition, seg.first_offset, seg.last_offset)
        folders: set[Path] = set()
        for day, rows in sorted(by_day.items()):
            folder = ensure_dir(day_dir(self.root, self.stream, day))
            write = partial(pq.write_table, to_table(rows), compression=COMPRESSION)
            publish(folder, name, write, temp_prefix=temp_prefix(seg.partition))
            folders.add(folder)
            self.stats.files_written += 1
            self.stats.rows_written += len(rows)
        return folders

    def _commit(self, sealed: Sequence[Segment[Logged]]) -> None:
        top: dict[int, int] = {}
        for seg in sealed:
            top[seg.partition] = max(top.get(seg.partition, -1), seg.last_offset)
        offsets = [TopicPartition(self.topic, p, o + 1) for p, o in sorted(top.items())]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
            self.stats.commits += 1
        except KafkaException as exc:
            # The partition moved between publish and commit: its new owner finds the
            # files as cut points and writes them again under the same names. Counted.
            err: KafkaError = exc.args[0]
            if err.code() in (KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION):
                self.stats.commit_failures += 1
                if self.metrics is not None:
                    self.metrics.commit_failures.labels(SERVICE).inc()
                return
            raise
        if self.metrics is not None:
            self.metrics.last_commit.labels(SERVICE).set_to_current_time()


def run_scored_sink(
    settings: Settings,
    stream: str,
    out: Path,
    *,
    topic_prefix: str = "",
    policy: RollPolicy | None = None,
    on_ready: Callable[[str, str], None] | None = None,
) -> SinkStats:
    """Run the sink of ``stream`` into ``out`` until SIGTERM or SIGINT (graceful: all committed).

    ``topic_prefix`` namespaces the topic, its DLQ and the consumer group.
    ``on_ready(topic, group)`` is called once the signal handlers are in place.
    """
    stop = stop_on_signals()
    topic = topic_prefix + STREAMS[stream].scored_log_topic
    group = f"{topic_prefix}streamscore-scored-sink-{stream}"
    claim_folder(out, stream, topic)
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port, addr=settings.bind_host)
    consumer = make_consumer(
        settings,
        group_id=group,
        client_id=f"scored-sink-{stream}",
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = make_producer(settings, client_id=f"scored-sink-{stream}")
    sink = ScoredSink(
        consumer,
        producer,
        root=out,
        stream=stream,
        topic=topic,
        policy=policy or RollPolicy(),
        max_bytes=settings.max_message_bytes,
        metrics=StreamMetrics(),
    )
    consumer.subscribe(
        [topic], on_assign=sink.on_assign, on_revoke=sink.on_revoke, on_lost=sink.on_lost
    )
    if on_ready is not None:
        on_ready(topic, group)
    try:
        return sink.run(should_stop=stop.is_set)
    finally:
        # After a graceful stop nothing is buffered; after a halt the revoke callback
        # drops the buffers instead of publishing them.
        consumer.close()


def summary(stats: SinkStats) -> str:
    """One line for the CLI."""
    rate = stats.rows_written / stats.write_s if stats.write_s else 0.0
    line = (
        f"{stats.consumed:,} consumed, {stats.rows_written:,} rows in {stats.files_written:,} "
        f"files ({rate:,.0f} rows/s while writing), {stats.dead_lettered:,} to DLQ, "
        f"{stats.commits:,} commits ({stats.commit_failures} refused), "
        f"{stats.recovery_cuts} recovery cuts"
    )
    if stats.consumer_errors:
        line += f", consumer errors {stats.consumer_errors}"
    return line
