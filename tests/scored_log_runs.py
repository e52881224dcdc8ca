"""Shared steps of the scored-sink tests: a log topic fed with ScoredEvent records, and checks."""

from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import encode
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.scored_log.layout import day_of
from streamscore.libs.topics import STREAMS, TopicSpec, dlq_topic
from streamscore.services.clients import make_admin, make_producer
from streamscore.services.topics_admin import create_topics

STREAM = "transactions"
DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
#: Floats that a careless path would change: signed zero, subnormal, extremes, float32 casts.
ODD_FLOATS = (-0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 1 / 3)


def log_topics(settings: Settings, prefix: str, *, partitions: int = 3) -> str:
    """``<prefix>scored.transactions`` and its DLQ; returns the log topic."""
    topic = prefix + STREAMS[STREAM].scored_log_topic
    create_topics(
        make_admin(settings), [TopicSpec(topic, partitions, 1), TopicSpec(dlq_topic(topic), 1, 1)]
    )
    return topic


def scored_events(n: int, *, days: int, seed: int) -> list[ScoredEvent]:
    """``n`` valid records whose event times cover ``days`` UTC days (and cross midnights)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = DAY0 + timedelta(seconds=i * days * 86_400 / n, microseconds=rng.randrange(10**6))
        values: list[float | None] = []
        for j in range(12):
            r = rng.random()
            if r < 0.15:
                values.append(None)
            elif r < 0.25:
                values.append(ODD_FLOATS[(i + j) % len(ODD_FLOATS)])
            else:
                values.append(struct.unpack("f", struct.pack("f", rng.gauss(0, 100)))[0])
        scored = rng.random() > 0.1
        out.append(
            ScoredEvent(
                event_id=f"ev-{seed}-{i:07d}",
                event_time=t,
                stream=STREAM,
                keys={"customer_id": f"C{rng.randrange(400)}", "terminal_id": f"T{i % 37}"},
                feature_names_hash=f"{seed:064x}",
                values=values,
                model_version="tx-fraud-1" if scored else "none",
                policy_version="p-1",
                score=rng.random() if scored else None,
                decision=rng.choice(["approve", "step_up", "block"]),
                policy_path="model" if scored else "degraded:no_score",
                degraded=None if scored else "no_score",
                feature_freshness={"customer_tx": rng.random() * 10, "terminal_risk": None},
                decided_at=t + timedelta(milliseconds=3),
            )
        )
    return out


def produce(settings: Settings, topic: str, events: list[ScoredEvent]) -> None:
    """Publish records keyed by customer (as the scorer keys them), acknowledged."""
    producer = make_producer(settings, client_id="scored-sink-test")
    for ev in events:
        producer.send(topic, encode(ev), key=ev.keys["customer_id"].encode())
    assert producer.flush(60) == 0 and producer.failed_total == 0


def produce_raw(settings: Settings, topic: str, values: list[bytes]) -> None:
    producer = make_producer(settings, client_id="scored-sink-test-raw")
    for v in values:
        producer.send(topic, v, key=b"bad")
    assert producer.flush(60) == 0 and producer.failed_total == 0


def bits(values: list[float | None]) -> list[bytes | None]:
    """Floats as their IEEE-754 bytes (so -0.0 differs from 0.0), nulls kept."""
    return [None if v is None else struct.pack("<d", v) for v in values]


@dataclass(frozen=True)
class Figures:
    """What the oracle finds in the files, read back through ``read_scored``."""

    lost: int
    duplicates: int
    extra: int
    wrong_values: int
    wrong_time: int


def check(table: pa.Table, events: list[ScoredEvent]) -> Figures:
    """Lost / duplicate / unexpected ids, values not bit-identical, event times not identical."""
    want = {e.event_id: e for e in events}
    ids = table.column("event_id").to_pylist()
    seen = Counter(ids)
    wrong_values = wrong_time = 0
    for eid, values, t in zip(
        ids,
        table.column("values").to_pylist(),
        table.column("event_time").to_pylist(),
        strict=True,
    ):
        e = want.get(eid)
        if e is None:
            continue
        wrong_values += bits(values) != bits(e.values)
        wrong_time += t != e.event_time
    return Figures(
        lost=len(set(want) - set(seen)),
        duplicates=sum(c - 1 for c in seen.values()),
        extra=len(set(seen) - set(want)),
        wrong_values=wrong_values,
        wrong_time=wrong_time,
    )


def days_match_folders(root: Path) -> bool:
    """Every file's rows have the UTC event day of the folder they are in."""
    import pyarrow.parquet as pq

    for f in (root / STREAM).glob("date=*/*.parquet"):
        day = f.parent.name.removeprefix("date=")
        times = pq.read_table(f, columns=["event_time"]).column("event_time").to_pylist()
        if any(day_of(t).isoformat() != day for t in times):
            return False
    return True


def start_sink(
    settings: Settings, prefix: str, out: Path, log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    """``streamscore scored-sink`` as its own process, output appended to ``log``.

    Returns once the process says it is ready (signal handlers in place, subscribed).
    """
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
        "REDIS_URL": settings.redis_url or "",
    }
    env.pop("STREAMSCORE_METRICS_PORT", None)
    cmd = [
        sys.executable, "-m", "streamscore.services.cli", "scored-sink",
        "--stream", STREAM, "--out", str(out), "--topic-prefix", prefix, *extra,
    ]  # fmt: skip
    ready_before = _ready_lines(log)
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while _ready_lines(log) == ready_before:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.02)
    return proc


def _ready_lines(log: Path) -> int:
    if not log.exists():
        return 0
    return sum(f"{STREAM} -> " in line for line in log.read_text().splitlines())


def terminate(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> int:
    """SIGTERM and wait; the exit code."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout_s)
