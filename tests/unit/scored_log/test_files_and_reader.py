"""Parquet rows bit for bit, file names, the deduplicating reader and durable publication."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from msgspec.structs import replace

from streamscore.libs.scored_log.layout import (
    day_dir,
    file_name,
    parse_name,
    segment_files,
    temp_prefix,
)
from streamscore.libs.scored_log.read import read_scored
from streamscore.libs.scored_log.segments import RollPolicy
from streamscore.libs.scored_log.table import SCHEMA, Logged, to_rows, to_table
from streamscore.libs.topics import STREAMS, catalogue, dlq_topic
from streamscore.services.durable_files import ensure_dir, publish, sync_dir
from tests.scored_log_runs import ODD_FLOATS, bits, scored_events

STREAM = "transactions"


def _write(root: Path, rows: list[Logged], partition: int, first: int, last: int) -> None:
    by_day: dict[date, list[Logged]] = {}
    for r in rows:
        by_day.setdefault(r.event.event_time.astimezone(UTC).date(), []).append(r)
    for day, day_rows in by_day.items():
        folder = ensure_dir(day_dir(root, STREAM, day))
        pq.write_table(to_table(day_rows), folder / file_name(partition, first, last))


def test_rows_survive_parquet_bit_for_bit(tmp_path: Path) -> None:
    events = scored_events(500, days=2, seed=11)
    # Odd floats everywhere, a non-UTC offset, an empty map, no score.
    plus2 = timezone(timedelta(hours=2))
    events[0] = replace(
        events[0],
        values=[*ODD_FLOATS, None, None],
        event_time=datetime(2026, 3, 2, 1, 30, 0, 999_999, tzinfo=plus2),
        keys={},
        score=None,
    )
    events[1] = replace(events[1], model_role="canary")
    rows = [Logged(e, 0, i) for i, e in enumerate(events)]
    _write(tmp_path, rows, 0, 0, len(rows) - 1)
    table = read_scored(tmp_path, STREAM)
    assert table.schema.equals(SCHEMA)
    back = {r.event.event_id: r for r in to_rows(table)}
    assert len(back) == len(events)
    for r in rows:
        got = back[r.event.event_id]
        assert got == r  # every field (datetimes compared as instants)
        assert bits(got.event.values) == bits(r.event.values)
    # The +02:00 event of 01:30 on 2 March is on 1 March in UTC.
    first = read_scored(tmp_path, STREAM, end_day=date(2026, 3, 1))
    assert events[0].event_id in first["event_id"].to_pylist()


def test_files_written_before_contract_v2_read_as_champion_decisions(tmp_path: Path) -> None:
    events = [replace(e, model_role="canary") for e in scored_events(30, days=1, seed=14)]
    rows = [Logged(e, 0, i) for i, e in enumerate(events)]
    old = to_table(rows).drop_columns(["model_role"])  # the v1 file layout
    folder = ensure_dir(day_dir(tmp_path, STREAM, date(2026, 3, 1)))
    pq.write_table(old, folder / file_name(0, 0, len(rows) - 1))
    table = read_scored(tmp_path, STREAM)
    assert table.schema.equals(SCHEMA)
    assert table["model_role"].null_count == len(rows)
    back = to_rows(table)
    assert {r.event.model_role for r in back} == {"champion"}
    assert [replace(r.event, model_role="canary") for r in back] == events


def test_reader_keeps_the_first_record_of_each_event(tmp_path: Path) -> None:
    events = scored_events(300, days=1, seed=12)
    rows = [Logged(e, 1, 100 + i) for i, e in enumerate(events)]
    # Two overlapping files (a sink evicted mid-write), and a later re-decision of 10 events.
    _write(tmp_path, rows[:200], 1, 100, 299)
    _write(tmp_path, rows[150:], 1, 250, 399)
    later = [
        Logged(replace(r.event, decided_at=r.event.decided_at + timedelta(seconds=1)), 1, 400 + i)
        for i, r in enumerate(rows[:10])
    ]
    _write(tmp_path, later, 1, 400, 409)
    table = read_scored(tmp_path, STREAM)
    assert table["event_id"].to_pylist() == [e.event_id for e in events]
    assert table["kafka_offset"].to_pylist() == list(range(100, 400))
    assert table["decided_at"].to_pylist()[:10] == [e.decided_at for e in events[:10]]


def test_reader_ignores_temporary_and_foreign_files(tmp_path: Path) -> None:
    events = scored_events(20, days=1, seed=13)
    _write(tmp_path, [Logged(e, 0, i) for i, e in enumerate(events)], 0, 0, 19)
    folder = day_dir(tmp_path, STREAM, date(2026, 3, 1))
    (folder / f"{temp_prefix(0)}abc.tmp").write_bytes(b"half a file")
    (folder / "notes.txt").write_text("x")
    (tmp_path / STREAM / "date=garbage").mkdir()
    (tmp_path / STREAM / "_source").write_text("scored.transactions\n")
    assert [n for n, _ in segment_files(folder)] == [parse_name(file_name(0, 0, 19))]
    assert read_scored(tmp_path, STREAM).num_rows == 20
    assert read_scored(tmp_path, "logins").num_rows == 0


def test_names_sort_by_offset() -> None:
    names = [file_name(2, a, a + 9) for a in (0, 10, 100, 1000, 10**12)]
    assert sorted(names) == names
    assert [parse_name(n) for n in names][-1] == (2, 10**12, 10**12 + 9)


def test_publish_replaces_atomically_and_cleans_up_on_failure(tmp_path: Path) -> None:
    folder = ensure_dir(tmp_path / "a" / "b")
    publish(folder, "f.bin", lambda p: p.write_bytes(b"one"), temp_prefix=".f-")
    publish(folder, "f.bin", lambda p: p.write_bytes(b"two"), temp_prefix=".f-")
    sync_dir(folder)
    assert (folder / "f.bin").read_bytes() == b"two"

    def broken(p: Path) -> None:
        p.write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        publish(folder, "f.bin", broken, temp_prefix=".f-")
    assert os.listdir(folder) == ["f.bin"] and (folder / "f.bin").read_bytes() == b"two"


def test_scored_log_topics_have_a_dlq() -> None:
    names = {t.name for t in catalogue(partitions=3, replication=1)}
    assert all(dlq_topic(s.scored_log_topic) in names for s in STREAMS.values())


def test_cli_knows_the_sink() -> None:
    from streamscore.services.cli import build_parser

    args = build_parser().parse_args(
        ["scored-sink", "--stream", STREAM, "--out", "/tmp/x", "--max-age", "2"]
    )
    assert (args.command, args.max_age, args.max_rows, args.topic_prefix) == (
        "scored-sink",
        2.0,
        RollPolicy().max_rows,
        "",
    )


def test_a_folder_holds_one_topic(tmp_path: Path) -> None:
    from streamscore.services.scored_sink import SourceMismatchError, claim_folder

    claim_folder(tmp_path, STREAM, "a.scored.transactions")
    claim_folder(tmp_path, STREAM, "a.scored.transactions")  # the same topic again: fine
    with pytest.raises(SourceMismatchError, match="another --out"):
        claim_folder(tmp_path, STREAM, "b.scored.transactions")
