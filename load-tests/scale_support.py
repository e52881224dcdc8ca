"""Measuring helpers of ``bench_scale.py``: events, publisher, decision tail, process figures.

Kept apart so that the bench module reads as its phases; loaded by
``bench_scale.py`` from the same folder.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import redis
from prometheus_client.parser import text_string_to_metric_families

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import encode
from streamscore.libs.contracts.events import Transaction
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS
from streamscore.services.decision_tail import DecisionRecord
from streamscore.services.stack.layout import StackLayout

S = STREAMS["transactions"]
#: Counters read from each process: decisions, and batches recomputed because
#: another process wrote the same entities (optimistic concurrency on Redis).
COUNTERS = ("streamscore_decisions_total", "streamscore_feature_state_conflicts_total")


def events(n: int) -> list[Transaction]:
    """``n`` transactions of the ``small`` world, in its order."""
    days, out = 1, list[Transaction]()
    while len(out) < n and days <= 256:
        days *= 2
        scenario = get("small").only("transactions").with_days(days)
        out = [r.event for r in scenario.records(seed=31) if r.topic == S.input_topic]
    return out[:n]


def send(producer: Any, topic: str, evs: list[Transaction], rate: float | None) -> dict[str, float]:
    """Publish ``evs`` re-stamped with their send time (keyed by customer); id -> send time."""
    sent: dict[str, float] = {}
    start = time.time()
    for i, ev in enumerate(evs):
        if rate is not None:
            due = start + i / rate
            while (now := time.time()) < due:
                producer.poll(min(0.001, due - now))
        now = time.time()
        ev2 = msgspec.structs.replace(ev, event_time=datetime.fromtimestamp(now, tz=UTC))
        producer.send(topic, encode(ev2), key=ev.customer_id.encode(), timestamp_ms=int(now * 1e3))
        sent[ev.event_id] = now
    producer.flush(60)
    return sent


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``; 0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kafka_pid(settings: Settings) -> int | None:
    """The pid of the local stack's Kafka broker (its server.properties), if ``/proc`` shows it."""
    config = str(StackLayout.for_home(settings.home).config_dir / "kafka-server.properties")
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"java") and config.encode() in cmd:
            return int(d.name)
    return None


def stack_cpu(client: redis.Redis, kafka_pid: int | None) -> dict[str, float]:
    """CPU seconds so far of the Redis server (its ``INFO cpu``) and the Kafka broker."""
    info = client.info("cpu")
    out = {"redis": float(info["used_cpu_user"]) + float(info["used_cpu_sys"])}
    if kafka_pid is not None:
        out["kafka"] = cpu_seconds(kafka_pid)
    return out


def log_bytes(settings: Settings, prefix: str) -> dict[str, int]:
    """Bytes of the local broker's log segments per topic of ``prefix`` (empty if not local)."""
    out: dict[str, int] = {}
    for d in StackLayout.for_home(settings.home).kafka_data.glob(f"{prefix}*"):
        topic = d.name.rsplit("-", 1)[0].removeprefix(prefix)
        out[topic] = out.get(topic, 0) + sum(f.stat().st_size for f in d.glob("*.log"))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    port: int

    def counters(self) -> np.ndarray:
        """The process's decisions and feature-state conflicts so far (its ``/metrics``)."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        out = np.zeros(len(COUNTERS))
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name in COUNTERS:
                    out[COUNTERS.index(s.name)] += s.value
        return out


@dataclass
class Decisions:
    """Decisions read by the tail, decoded as they come: first receipt and all records per id."""

    tail: Any
    first: dict[str, float] = field(default_factory=dict)
    records: dict[str, list[Any]] = field(default_factory=dict)
    seen: int = 0

    def update(self) -> None:
        received = self.tail.received
        while self.seen < len(received):
            at, value = received[self.seen]
            d = msgspec.json.decode(value, type=DecisionRecord)
            self.first.setdefault(d.event_id, at)
            self.records.setdefault(d.event_id, []).append(d)
            self.seen += 1

    def wait(self, ids: list[str], timeout_s: float) -> bool:
        """Until every id has a decision (True) or the timeout (False)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.update()
            if all(i in self.first for i in ids):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
