"""``streamscore scored-sink`` as a real process under SIGKILL and SIGTERM.

The oracle reads the files back with ``read_scored`` and counts **lost** (logged
events without a row), **duplicates** (rows beyond one per event) and values or
times that are not bit-identical; it also counts Kafka records present in more
than one file on disk (the cut points should make re-written files replace
the earlier ones, so that is expected to be 0 as well).

A restart after SIGKILL waits about one session timeout (10 s) before the group
hands it the partitions of the dead member: two kills keep the test near 25 s.
The exact crash window (files renamed, offsets not committed) is reproduced
deterministically in ``tests/integration/test_scored_sink.py``.

The suite's report (``tests/fault_report.py``) counts the rows of every file on
disk (a row in two files counts twice, before any reader's deduplication), a
row being visible from its file's modification time (written, then renamed into
place). The log is published before the sink starts, so latency measures that
backlog and the figure of a restart is its first file.
"""

from __future__ import annotations

import re
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from streamscore.libs.config import Settings
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.scored_log.read import read_scored
from tests.fault_report import FaultReport, Out, fault_report, input_id, sent_from
from tests.processor_runs import read_all
from tests.scored_log_runs import (
    STREAM,
    Figures,
    bits,
    check,
    days_match_folders,
    log_topics,
    produce,
    scored_events,
    start_sink,
    terminate,
)

pytestmark = [pytest.mark.integration, pytest.mark.fault]
N = 20_000
#: Small files, closed often: many publish/commit windows for a kill to land in.
ROLL = ("--max-rows", "500", "--max-age", "0.2")


def rows_on_disk(out: Path) -> Counter[tuple[int, int]]:
    """How many files hold each Kafka record (partition, offset)."""
    seen: Counter[tuple[int, int]] = Counter()
    for f in (out / STREAM).glob("date=*/*.parquet"):
        t = pq.read_table(f, columns=["kafka_partition", "kafka_offset"])
        seen.update(
            zip(t["kafka_partition"].to_pylist(), t["kafka_offset"].to_pylist(), strict=True)
        )
    return seen


def rows_visible(out: Path) -> list[Out]:
    """Every row of every file on disk, visible from its file's modification time."""
    rows = []
    for f in (out / STREAM).glob("date=*/*.parquet"):
        at_ms = f.stat().st_mtime * 1e3
        t = pq.read_table(f, columns=["event_id", "values", "event_time"]).to_pydict()
        for eid, values, when in zip(t["event_id"], t["values"], t["event_time"], strict=True):
            rows.append(Out(eid, (tuple(bits(values)), when), at_ms))
    return rows


def _report(
    scenario: str,
    settings: Settings,
    topic: str,
    events: list[ScoredEvent],
    out: Path,
    faults: list[tuple[float, float]],
) -> FaultReport:
    """The oracle over the log topic (inputs) and the rows on disk."""
    read = read_all(settings.kafka_bootstrap or "", topic, len(events))
    inputs = sent_from(read, input_id, ids=[e.event_id for e in events])
    return fault_report(scenario, inputs, rows_visible(out), faults, output_name="file row")


def wait_rows(out: Path, at_least: int, timeout_s: float = 30) -> int:
    """Wait until the files hold ``at_least`` rows (counted from Parquet footers)."""
    deadline = time.monotonic() + timeout_s
    n = 0
    while time.monotonic() < deadline:
        n = sum(pq.read_metadata(f).num_rows for f in (out / STREAM).glob("date=*/*.parquet"))
        if n >= at_least:
            break
        time.sleep(0.05)
    return n


def test_sigkill_mid_run_loses_nothing_and_reader_shows_no_duplicates(
    stack_settings: Settings, tmp_path: Path
) -> None:
    prefix = f"fault-{uuid.uuid4().hex[:8]}."
    topic = log_topics(stack_settings, prefix)
    events = scored_events(N, days=3, seed=3)
    produce(stack_settings, topic, events)
    out, log = tmp_path / "out", tmp_path / "sink.log"
    kills = 0
    killed_at: list[float] = []
    ready_at: list[float] = []
    for fraction in (0.2, 0.55):
        proc = start_sink(stack_settings, prefix, out, log, *ROLL)
        ready_at.append(time.time())
        wait_rows(out, int(N * fraction))
        killed_at.append(time.time())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
    proc = start_sink(stack_settings, prefix, out, log, *ROLL)
    ready_at.append(time.time())
    wait_rows(out, N, timeout_s=40)
    code = terminate(proc)
    assert code == 0, log.read_text()

    figures = check(read_scored(out, STREAM), events)
    on_disk = rows_on_disk(out)
    in_two_files = sum(c > 1 for c in on_disk.values())
    print(f"\nscored-sink SIGKILL x{kills}: {figures}, records in >1 file: {in_two_files}")
    faults = list(zip(killed_at, ready_at[1:], strict=True))
    report = _report(f"scored-sink SIGKILL x{kills}", stack_settings, topic, events, out, faults)
    print(report)
    assert report.lost == 0 and report.conflicting == 0
    assert figures == Figures(lost=0, duplicates=0, extra=0, wrong_values=0, wrong_time=0)
    assert len(on_disk) == N and in_two_files == 0
    assert days_match_folders(out)
    assert not list((out / STREAM).rglob("*.tmp"))


def consumed_by_last_run(log: Path) -> int:
    """The consumed count of the CLI's summary line (``scored-sink S: N consumed, ...``)."""
    line = log.read_text().strip().splitlines()[-1]
    m = re.search(r": ([0-9,]+) consumed", line)
    assert m is not None, line
    return int(m.group(1).replace(",", ""))


def test_sigterm_publishes_the_open_file_and_commits(
    stack_settings: Settings, tmp_path: Path
) -> None:
    prefix = f"fault-{uuid.uuid4().hex[:8]}."
    topic = log_topics(stack_settings, prefix)
    events = scored_events(3000, days=2, seed=4)
    produce(stack_settings, topic, events)
    out, log = tmp_path / "out", tmp_path / "sink.log"
    # No size or age limit is reached in time: files are published by SIGTERM alone.
    proc = start_sink(stack_settings, prefix, out, log, "--max-age", "600")
    time.sleep(4)
    assert wait_rows(out, 1, timeout_s=0.1) == 0
    started = time.monotonic()
    stopped_at = time.time()
    assert terminate(proc) == 0, log.read_text()
    shutdown_s = time.monotonic() - started
    first = consumed_by_last_run(log)
    assert first > 0 and len(rows_on_disk(out)) == first
    # Everything consumed was committed: a restart reads only the rest, nothing twice.
    proc = start_sink(stack_settings, prefix, out, log, "--max-age", "0.2")
    fault = (stopped_at, time.time())
    wait_rows(out, len(events))
    assert terminate(proc) == 0, log.read_text()
    assert first + consumed_by_last_run(log) == len(events)
    assert check(read_scored(out, STREAM), events) == Figures(0, 0, 0, 0, 0)
    report = _report("scored-sink SIGTERM, restarted", stack_settings, topic, events, out, [fault])
    print(f"\n{report}; {first} rows published at shutdown, shutdown took {shutdown_s:.2f} s")
    assert report.lost == 0 and report.conflicting == 0
    assert shutdown_s < 10
