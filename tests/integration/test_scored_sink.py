"""The scored-event sink on a real broker: every event once, bit for bit, in its day's folder."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from msgspec.structs import replace

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import encode
from streamscore.libs.contracts.dlq import parse_dlq_headers
from streamscore.libs.scored_log.layout import day_of, parse_name
from streamscore.libs.scored_log.read import read_scored
from streamscore.libs.scored_log.segments import RollPolicy
from streamscore.libs.topics import dlq_topic
from streamscore.services.clients import make_admin, make_consumer, make_producer
from streamscore.services.scored_sink import ScoredSink, SinkStats, claim_folder
from tests.processor_runs import read_all
from tests.scored_log_runs import (
    DAY0,
    STREAM,
    Figures,
    check,
    days_match_folders,
    log_topics,
    produce,
    produce_raw,
    scored_events,
)

pytestmark = pytest.mark.integration
POLICY = RollPolicy(max_rows=400, max_age_s=0.5)


def group_of(prefix: str) -> str:
    return f"{prefix}streamscore-scored-sink-{STREAM}"


def run_sink(
    settings: Settings,
    prefix: str,
    topic: str,
    out: Path,
    *,
    until: Callable[[SinkStats], bool],
    timeout_s: float = 45,
) -> SinkStats:
    """The sink in a thread (as ``streamscore scored-sink`` wires it) until ``until(stats)``."""
    claim_folder(out, STREAM, topic)
    consumer = make_consumer(settings, group_id=group_of(prefix), client_id="it-scored-sink")
    producer = make_producer(settings, client_id="it-scored-sink")
    sink = ScoredSink(
        consumer,
        producer,
        root=out,
        stream=STREAM,
        topic=topic,
        policy=POLICY,
        max_bytes=settings.max_message_bytes,
    )
    consumer.subscribe(
        [topic], on_assign=sink.on_assign, on_revoke=sink.on_revoke, on_lost=sink.on_lost
    )
    stop = threading.Event()
    failure: list[BaseException] = []

    def loop() -> None:
        try:
            sink.run(should_stop=stop.is_set)
        except BaseException as exc:
            failure.append(exc)
        finally:
            consumer.close()

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    deadline = time.monotonic() + timeout_s
    while not until(sink.stats) and time.monotonic() < deadline and not failure:
        time.sleep(0.05)
    stop.set()
    worker.join(timeout=30)
    assert not failure, failure
    assert until(sink.stats), sink.stats
    return sink.stats


def files_by_offsets(out: Path) -> dict[str, list[tuple[int, int]]]:
    """Every file (day/name) and the (partition, offset) of its rows."""
    return {
        f"{f.parent.name}/{f.name}": list(
            zip(
                *(
                    pq.read_table(f, columns=[c]).column(c).to_pylist()
                    for c in ("kafka_partition", "kafka_offset")
                ),
                strict=True,
            )
        )
        for f in sorted((out / STREAM).glob("date=*/*.parquet"))
    }


def _partition(key: str) -> int:
    name = parse_name(key.split("/")[1])
    assert name is not None
    return name.partition


def _segment_start(key: str) -> int:
    name = parse_name(key.split("/")[1])
    assert name is not None
    return name.first_offset


def test_every_event_once_bit_for_bit_partitioned_by_day(
    stack_settings: Settings, tmp_path: Path
) -> None:
    prefix = f"it-{uuid.uuid4().hex[:8]}."
    topic = log_topics(stack_settings, prefix)
    events = scored_events(3000, days=4, seed=1)
    produce(stack_settings, topic, events)
    # The scorer is at-least-once: 100 events logged again later, decided a second later.
    again = [replace(e, decided_at=e.decided_at + timedelta(seconds=1)) for e in events[::30]]
    produce(stack_settings, topic, again)
    other_stream = replace(events[0], event_id="from-logins", stream="logins")
    bad = [b"not json", b"\xff\xfe\x00", b'{"event_id": "x"}', encode(other_stream)]
    produce_raw(stack_settings, topic, bad)
    total = len(events) + len(again) + len(bad)

    t0 = time.perf_counter()
    stats = run_sink(stack_settings, prefix, topic, tmp_path, until=lambda s: s.consumed >= total)
    elapsed = time.perf_counter() - t0
    table = read_scored(tmp_path, STREAM)
    print(
        f"\nscored-sink: {stats.rows_written:,} rows in {stats.files_written} files, "
        f"{stats.segments} segments, {stats.rows_written / stats.write_s:,.0f} rows/s while "
        f"writing, {elapsed:.1f} s end to end"
    )

    # Every event exactly once, values and times identical bit for bit.
    assert check(table, events) == Figures(0, 0, 0, 0, 0)
    # The first logged record of a duplicated event is the one kept.
    first = dict(zip(table["event_id"].to_pylist(), table["decided_at"].to_pylist(), strict=True))
    assert all(first[e.event_id] == e.decided_at for e in events[::30])
    # Partitioned by UTC event day; several files per day (rolled by size and age).
    days = sorted(p.name for p in (tmp_path / STREAM).glob("date=*"))
    assert days == [f"date={(DAY0 + timedelta(days=d)).date().isoformat()}" for d in range(4)]
    assert days_match_folders(tmp_path)
    assert stats.files_written > 8
    # On disk, every Kafka record is in exactly one file; no temporary file is left.
    on_disk = Counter(o for rows in files_by_offsets(tmp_path).values() for o in rows)
    assert max(on_disk.values()) == 1 and len(on_disk) == len(events) + len(again)
    assert not list((tmp_path / STREAM).rglob("*.tmp"))
    # A range of days reads exactly those days.
    d1, d2 = date(2026, 3, 2), date(2026, 3, 3)
    some = read_scored(tmp_path, STREAM, start_day=d1, end_day=d2)
    assert sorted(some["event_id"].to_pylist()) == sorted(
        e.event_id for e in events if d1 <= day_of(e.event_time) <= d2
    )
    # Bad records went to the DLQ with their reason; none became a row.
    dead = read_all(stack_settings.kafka_bootstrap or "", dlq_topic(topic), len(bad), 30)
    reasons = sorted(parse_dlq_headers(m.headers() or []).reason for m in dead)
    assert reasons == sorted(["not_json", "not_utf8", "missing_field", "semantic"])
    assert stats.dead_lettered == len(bad)


def test_reconsumed_offsets_rewrite_the_same_files(
    stack_settings: Settings, tmp_path: Path
) -> None:
    """A crash between publish and commit, made exact: the committed offsets are set back."""
    prefix = f"it-{uuid.uuid4().hex[:8]}."
    topic = log_topics(stack_settings, prefix)
    events = scored_events(2000, days=2, seed=2)
    produce(stack_settings, topic, events)
    run_sink(stack_settings, prefix, topic, tmp_path, until=lambda s: s.consumed >= len(events))
    before = files_by_offsets(tmp_path)
    # Per partition, move the committed offset back to the start of a middle segment:
    # the files from there on are published but, as far as Kafka knows, uncommitted.
    starts: dict[int, set[int]] = {}
    for key in before:
        starts.setdefault(_partition(key), set()).add(_segment_start(key))
    back = {p: sorted(s)[len(s) // 2] for p, s in starts.items()}
    admin = make_admin(stack_settings)
    request = ConsumerGroupTopicPartitions(
        group_of(prefix), [TopicPartition(topic, p, o) for p, o in sorted(back.items())]
    )
    for fut in admin.alter_consumer_group_offsets([request]).values():
        fut.result(timeout=30)
    uncommitted = [k for k in before if _segment_start(k) >= back[_partition(k)]]
    replayed = sum(len(before[k]) for k in uncommitted)
    # Remove some of them: they stand for a segment half-published when the sink died.
    for key in uncommitted[::3]:
        (tmp_path / STREAM / key).unlink()

    stats = run_sink(
        stack_settings,
        prefix,
        topic,
        tmp_path,
        until=lambda s: s.rows_written >= replayed,
    )
    after = files_by_offsets(tmp_path)
    # The same files with the same rows: re-cut at the recovered offsets, renamed over.
    assert stats.recovery_cuts > 0
    assert after == before
    assert check(read_scored(tmp_path, STREAM), events) == Figures(0, 0, 0, 0, 0)
