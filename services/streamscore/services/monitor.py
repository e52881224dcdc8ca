"""``streamscore monitor``: the scored-event log of one stream → drift alerts and metrics.

The scored-event log ``scored.<stream>`` carries, per decision, the score, the
outcome and the exact model input: everything the watch plan compares
(:mod:`streamscore.libs.monitoring`). One batch, in the order that keeps
alerts at least once and never lost:

1. Consume a micro-batch and decode it as scored events (the
   :class:`~.stream_processor.StreamProcessor` loop); a record that does not
   decode, or that belongs to another stream, goes to ``dlq.scored.<stream>``.
2. Add the batch to the watch: signal columns, slots by event time, and for
   each slot the watermark closed, one ``update_many`` per (segment, signal)
   detector.
3. Turn detections into alerts (incidents, cooldowns, rate cap, retraining
   trigger) and produce them to ``alerts.drift``, keyed by stream.
4. Wait until Kafka acknowledged every alert, then commit the batch's offsets
   (a failure stops the service without committing: the batch is read again).
5. Only then mark the alerts' (segment, signal) in Redis and save a snapshot
   of the state with the next offset of each partition it covers (at once
   after an alert, else every ``snapshot_s``): a crash between 4 and 5
   re-publishes an alert with the same ``alert_id``.

**Restart.** The monitor resumes from the snapshot when its plan is
unchanged, and its consumer starts each partition at the snapshot's offset,
not at the group's commits (which run ahead, one per batch): the records seen
after the snapshot are read again, so a crash loses no detector update (a
SIGKILL every few seconds once made the drift go unnoticed,
``tests/fault/test_monitor_faults.py``). Without a snapshot under this plan its
tests warm up again: a day to settle on a cold stream, a day for a baseline,
the reference slots — and its consumer starts at the beginning of the retained
log (``--offset-reset earliest``; ``latest``: at its end), whatever the group
committed, so the watch is warm when it catches up. Alert marks survive either
way, so a cause alerted before the restart — or in the records read again —
is not alerted twice within its cooldown. A new consumer group starts at the
earliest retained record (``--offset-reset``), so a first start replays the
log and is warm when it catches up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition
from prometheus_client import start_http_server
from redis.exceptions import RedisError

from streamscore.libs.config import Settings
from streamscore.libs.contracts.alerts import DriftAlert
from streamscore.libs.contracts.codec import encode, schema_id_of
from streamscore.libs.contracts.dlq import build_dlq_headers
from streamscore.libs.contracts.errors import SEMANTIC, ContractError
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.detectors import warmup
from streamscore.libs.kafka_config import OffsetReset
from streamscore.libs.monitoring.alerting import AlertDesk
from streamscore.libs.monitoring.comparison import Detection
from streamscore.libs.monitoring.plan import StreamPlan, plan_for
from streamscore.libs.monitoring.watch import StreamWatch
from streamscore.libs.topics import DRIFT_ALERT_TOPIC, STREAMS, dlq_topic
from streamscore.services.clients import make_consumer, make_producer, make_redis
from streamscore.services.metrics import MonitorMetrics, StreamMetrics
from streamscore.services.monitor_state import MonitorStore
from streamscore.services.shutdown import stop_on_signals
from streamscore.services.stream_processor import Decoded, LoopStats, Output, StreamProcessor

log = logging.getLogger(__name__)
SERVICE = "monitor"
Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(tz=UTC)


class MonitorHandler:
    """Steps 2-3 of the module docstring, as a :class:`StreamProcessor` handler."""

    def __init__(
        self,
        watch: StreamWatch,
        desk: AlertDesk,
        *,
        topic_prefix: str = "",
        metrics: MonitorMetrics | None = None,
        clock: Clock = _now,
        assignment: Callable[[], list[int]] | None = None,
    ) -> None:
        self.watch = watch
        #: The consumer's assigned partitions: each holds the watermark until it delivers.
        self.assignment = assignment
        self.desk = desk
        self.stream = watch.plan.stream
        self.alert_topic = topic_prefix + DRIFT_ALERT_TOPIC
        self.log_topic = topic_prefix + STREAMS[self.stream].scored_log_topic
        self.metrics = metrics
        self.clock = clock
        #: Alerts produced by the last batch (marked in Redis once acknowledged).
        self.published: list[DriftAlert] = []
        self._counted = {"late": 0, "ahead": 0, "unknown_schema": 0, "canary": 0}
        self._restarts = watch.stats.restarts
        self._suppressed: dict[str, int] = {}

    def __call__(self, batch: list[Decoded]) -> list[Output]:
        out: list[Output] = []
        events: list[ScoredEvent] = []
        partitions: list[int] = []
        for d in batch:
            ev = cast(ScoredEvent, d.message)
            if ev.stream == self.stream:
                events.append(ev)
                partitions.append(d.partition)
            else:
                out.append(self._dead_letter(d, ev.stream))
        now = time.monotonic()
        if self.assignment is not None:
            self.watch.book.expect(self.assignment(), now=now)
        detections = self.watch.update(events, partitions, now=now)  # step 2
        if self.watch.stats.restarts != self._restarts:
            self._restarts = self.watch.stats.restarts
            log.info(
                "%s: new champion or policy %s: score and outcome baselines restart",
                self.stream,
                self.watch.decider,
            )
        self.desk.offer(detections)  # step 3
        alerts = self.desk.due(
            self.watch.watermark, model_version=self.watch.model_version, now=self.clock()
        )
        self.published = alerts
        key = self.stream.encode()
        out += [Output(self.alert_topic, encode(a), key) for a in alerts]
        if self.metrics is not None:
            self._observe(detections, alerts)
        for a in alerts:
            log.warning("%s alert %s: %s", a.kind, a.alert_id, a.reason)
        return out

    def _dead_letter(self, d: Decoded, other: str) -> Output:
        err = ContractError(
            SEMANTIC,
            f"a {other!r} record on the log of {self.stream!r}",
            field="$.stream",
            schema=schema_id_of(ScoredEvent),
        )
        headers = build_dlq_headers(
            err,
            source_topic=d.topic,
            source_partition=d.partition,
            source_offset=d.offset,
            source_timestamp_ms=d.timestamp_ms if d.timestamp_ms > 0 else None,
            service=SERVICE,
            failed_at=datetime.now(tz=UTC),
        )
        return Output(dlq_topic(d.topic), d.raw, d.key, headers)

    def _observe(self, detections: list[Detection], alerts: list[DriftAlert]) -> None:
        m, s, watch = self.metrics, self.stream, self.watch
        assert m is not None
        for d in detections:
            m.detections.labels(s, d.signal.kind).inc()
        for a in alerts:
            m.alerts.labels(s, a.kind, a.signal).inc()
        for reason, n in self.desk.suppressed.items():
            new = n - self._suppressed.get(reason, 0)
            if new:
                m.suppressed.labels(s, reason).inc(new)
                self._suppressed[reason] = n
        now = {
            "late": watch.book.late,
            "ahead": watch.book.ahead,
            "unknown_schema": watch.stats.unknown_schema,
            "canary": watch.stats.canary,
        }
        for reason, n in now.items():
            if n > self._counted[reason]:
                m.skipped.labels(s, reason).inc(n - self._counted[reason])
                self._counted[reason] = n
        if watch.watermark is not None:
            m.watermark.labels(s).set(watch.watermark)
        for phase, n in watch.phases().items():
            m.tests.labels(s, phase).set(n)
        for comp in watch.comparisons.values():
            for signal_id, x in comp.latest_inputs().items():
                m.statistic.labels(s, comp.name, signal_id).set(x)


def _restore(
    store: MonitorStore, plan: StreamPlan
) -> tuple[StreamWatch, AlertDesk, dict[int, int] | None]:
    """The saved watch and desk and their offsets (``None``: nothing saved, a fresh start)."""
    try:
        saved = store.load(plan)
        marks = store.marks()
    except RedisError as exc:
        log.warning("%s: monitor state unreadable (%s): warming up afresh", plan.stream, exc)
        saved, marks = None, {}
    if saved is None:
        watch, desk, offsets = StreamWatch(plan), AlertDesk(plan), None
    else:
        watch, desk, offsets = saved
    desk.remember(marks)
    if saved is not None:
        log.info("%s: resumed from the saved monitor state at offsets %s", plan.stream, offsets)
    return watch, desk, offsets


def _positions(consumer: Consumer, restored: dict[int, int] | None) -> dict[int, int]:
    """What a snapshot now covers: the next offset to read of each partition. A partition
    this process has read nothing from yet has no position; the state still covers it up
    to the restored snapshot's offset, which is carried forward."""
    read = {tp.partition: tp.offset for tp in consumer.position(consumer.assignment())
            if tp.offset >= 0}  # fmt: skip
    return {**(restored or {}), **read}


OnAssign = Callable[[Consumer, list[TopicPartition]], None]


def _seek_to_checkpoint(offsets: dict[int, int] | None, offset_reset: OffsetReset) -> OnAssign:
    """``on_assign``: a partition's first assignment starts at the snapshot's offset, or,
    with nothing saved, at the start (or end) of the log; later ones at the group's commit."""
    first: set[int] = set()
    start = OFFSET_BEGINNING if offset_reset == "earliest" else OFFSET_END

    def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if tp.partition in first:
                continue
            first.add(tp.partition)
            if offsets is None:
                tp.offset = start
            elif tp.partition in offsets:
                tp.offset = offsets[tp.partition]
        consumer.incremental_assign(partitions)

    return on_assign


class _Persistence:
    """Step 5 of the module docstring: alert marks, then the snapshot."""

    def __init__(
        self,
        store: MonitorStore,
        handler: MonitorHandler,
        snapshot_s: float,
        positions: Callable[[], dict[int, int]],
    ) -> None:
        self.store, self.handler, self.snapshot_s = store, handler, snapshot_s
        self.positions = positions
        self.saved_at = time.monotonic()
        self.saves = 0

    def after_commit(self, *, force: bool = False) -> None:
        h = self.handler
        alerts, h.published = h.published, []
        due = force or alerts or time.monotonic() - self.saved_at >= self.snapshot_s
        if not due:
            return
        outcome = "ok"
        try:
            for a in alerts:
                self.store.mark(AlertDesk.marks(a))
            self.store.save(h.watch, h.desk, self.positions())
            self.saves += 1
        except RedisError as exc:  # counted; a restart then resumes from an older snapshot
            outcome = "error"
            log.warning("%s: monitor state not saved: %s", h.stream, exc)
        self.saved_at = time.monotonic()
        if h.metrics is not None:
            h.metrics.state_saves.labels(h.stream, outcome).inc()


def run_monitor(
    settings: Settings,
    stream: str,
    *,
    topic_prefix: str = "",
    offset_reset: OffsetReset = "earliest",
    snapshot_s: float = 10.0,
    plan: StreamPlan | None = None,
    on_ready: Callable[[str, str], None] | None = None,
) -> LoopStats:
    """Run the monitor of ``stream`` until SIGTERM or SIGINT (last batch committed, state saved)."""
    plan = plan or plan_for(stream)
    warmup()  # Numba kernels compiled or loaded before the first record
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port, addr=settings.bind_host)
    store = MonitorStore(make_redis(settings, timeout_s=2.0), stream, topic_prefix=topic_prefix)
    watch, desk, checkpoint = _restore(store, plan)
    metrics = MonitorMetrics()
    topic = topic_prefix + STREAMS[stream].scored_log_topic
    group = f"{topic_prefix}streamscore-monitor-{stream}"
    consumer = make_consumer(
        settings, group_id=group, client_id=f"{SERVICE}-{stream}", auto_offset_reset=offset_reset
    )
    handler = MonitorHandler(
        watch,
        desk,
        topic_prefix=topic_prefix,
        metrics=metrics,
        assignment=lambda: [tp.partition for tp in consumer.assignment()],
    )
    consumer.subscribe([topic], on_assign=_seek_to_checkpoint(checkpoint, offset_reset))
    processor = StreamProcessor(
        consumer,
        make_producer(settings, client_id=f"{SERVICE}-{stream}"),
        handler,
        service=SERVICE,
        max_batch=2000,
        max_wait_s=0.05,
        max_bytes=settings.max_message_bytes,
        topic_prefix=topic_prefix,
        metrics=StreamMetrics(),
        decode_as=ScoredEvent,
    )
    persistence = _Persistence(store, handler, snapshot_s, lambda: _positions(consumer, checkpoint))
    stop = stop_on_signals()
    if on_ready is not None:
        on_ready(topic, group)
    try:
        while not stop.is_set():
            processor.step()  # steps 1-4: consume, watch, alert, acknowledge, commit
            persistence.after_commit()  # step 5
        persistence.after_commit(force=True)
    finally:
        consumer.close()
    return processor.stats
