"""``streamscore bench e2e``: producer timestamp → decision readable by a consumer (live stack).

Transactions of the ``small`` world, re-stamped with their send time (so the
features are fresh and windows advance in real time), are published at
``--rate`` events/s for ``--duration`` s to namespaced topics, through one of
two deployments of the same code:

- **fused**: ``streamscore pipeline`` — features on Redis and the decision in
  one process, one Kafka hop (events → decisions; features still published);
- **two-stage**: ``streamscore processor`` (faust) publishing ``features.*``,
  then ``streamscore scorer`` — two hops.

A consumer tails ``decisions.transactions`` in this process; an event's latency
is the wall time its decision was received minus the timestamp its record was
produced with (one clock). Afterwards the oracle (DESIGN.md §6) reads the input
and decision topics: lost (ids without a decision), duplicates, conflicting
duplicates (two different decisions for one id). Fused is the figure, two-stage
the baseline: the ratio says how many times lower fused's latency is.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import redis
from confluent_kafka import Consumer

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import encode
from streamscore.libs.contracts.events import Transaction
from streamscore.libs.model.synthetic import train_synthetic_model
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS, TopicSpec, dlq_topic
from streamscore.services.clients import endpoints, make_admin, make_producer
from streamscore.services.scorer import default_policy
from streamscore.services.topics_admin import create_topics

S = STREAMS["transactions"]
REDIS_DB = 14
MODES = ("fused", "two-stage")


def parse_args(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="streamscore bench e2e")
    p.add_argument("--rate", type=float, default=1000.0, help="events/s")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of paced load")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--modes", default=",".join(MODES), help="fused,two-stage")
    return vars(p.parse_args(argv))


class _Decision(msgspec.Struct):
    event_id: str
    decision: str
    score: float | None
    model_version: str


class _Tail(threading.Thread):
    """Receives decisions as they become readable; receive wall time per record."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": uuid.uuid4().hex,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
                "isolation.level": "read_committed",
            }
        )
        self.consumer.subscribe([topic])
        self.received: list[tuple[float, bytes]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            # poll() returns as soon as one record is there; consume(n) would wait
            # for n records or its timeout and add that wait to every latency.
            m = self.consumer.poll(0.05)
            if m is not None and m.error() is None:
                self.received.append((time.time(), m.value() or b""))
        self.consumer.close()


def _events(n: int) -> list[Transaction]:
    days, out = 1, []
    while len(out) < n and days <= 256:
        days *= 2
        scenario = get("small").only("transactions").with_days(days)
        out = [r.event for r in scenario.records(seed=31) if r.topic == S.input_topic]
    return out[:n]  # type: ignore[return-value]


def _commands(mode: str, prefix: str, model: Path) -> list[list[str]]:
    base = [sys.executable, "-m", "streamscore.services.cli"]
    common = ["--stream", "transactions", "--topic-prefix", prefix]
    if mode == "fused":
        return [[*base, "pipeline", *common, "--model", str(model)]]
    return [[*base, "processor", *common], [*base, "scorer", *common, "--model", str(model)]]


def _send(
    producer: Any, topic: str, events: list[Transaction], rate: float | None
) -> dict[str, float]:
    """Publish ``events`` re-stamped with their send time; returns id -> send time (s)."""
    sent: dict[str, float] = {}
    start = time.time()
    for i, ev in enumerate(events):
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


def _run_mode(
    mode: str, settings: Settings, model: Path, events: list[Transaction], rate: float, parts: int
) -> dict[str, Any]:
    ep = endpoints(settings)
    prefix = f"bench-e2e-{uuid.uuid4().hex[:6]}."
    names = [prefix + t for t in (S.input_topic, S.label_topic, S.feature_topic)]
    names += [prefix + t for t in (S.decision_topic, S.scored_log_topic)]
    admin = make_admin(settings)
    create_topics(
        admin,
        [TopicSpec(t, parts, 1) for t in names]
        + [TopicSpec(dlq_topic(t), 1, 1) for t in names[:3]],
    )
    url = f"{ep.redis_url.rsplit('/', 1)[0]}/{REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    env = {**os.environ, "KAFKA_BOOTSTRAP": ep.kafka_bootstrap, "REDIS_URL": url}
    env.pop("STREAMSCORE_METRICS_PORT", None)
    producer = make_producer(settings, client_id="bench-e2e")
    tail = _Tail(ep.kafka_bootstrap, prefix + S.decision_topic)
    tail.start()
    warm, paced = events[:300], events[300:]
    with tempfile.TemporaryFile() as log:
        procs = [
            subprocess.Popen(c, env=env, stdout=log, stderr=subprocess.STDOUT)
            for c in _commands(mode, prefix, model)
        ]
        try:
            # Warm-up: services joined their groups and compiled; its decisions are seen.
            warm_sent = _send(producer, names[0], warm, rate=200.0)
            deadline = time.monotonic() + 180
            while len(tail.received) < len(warm_sent) and time.monotonic() < deadline:
                time.sleep(0.2)
            if len(tail.received) < len(warm_sent):
                raise SystemExit(f"{mode}: warm-up decisions did not arrive")
            print(f"{mode}: {len(paced):,} events at {rate:,.0f}/s", file=sys.stderr)
            mark = len(tail.received)
            sent = _send(producer, names[0], paced, rate=rate)
            deadline = time.monotonic() + 120
            while len(tail.received) - mark < len(sent) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2.0)  # late duplicates, if any
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=60)
            tail.stop.set()
            tail.join()
    admin.delete_topics([*names, *(dlq_topic(t) for t in names[:3])])
    by_id: dict[str, list[tuple[float, _Decision]]] = {}
    for at, value in tail.received:
        d = msgspec.json.decode(value, type=_Decision)
        by_id.setdefault(d.event_id, []).append((at, d))
    lat = np.array([(by_id[i][0][0] - t) * 1000 for i, t in sent.items() if i in by_id])
    conflicting = sum(
        1
        for recs in by_id.values()
        if len({(d.decision, d.score, d.model_version) for _, d in recs}) > 1
    )
    return {
        "lat": lat,
        "lost": sum(1 for i in sent if i not in by_id),
        "dup": sum(len(r) - 1 for r in by_id.values()),
        "conflicting": conflicting,
        "events": len(sent),
    }


def run(
    rate: float = 1000.0,
    duration: float = 30.0,
    partitions: int = 3,
    modes: str = ",".join(MODES),
) -> dict[str, Any]:
    settings = Settings()
    chosen = [m for m in modes.split(",") if m]
    events = _events(300 + int(rate * duration))
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        train_synthetic_model(
            Path(tmp),
            name="bench",
            version="bench-e2e-1",
            thresholds=default_policy("transactions").thresholds,
            trees=100,
            depth=5,
        )
        for mode in chosen:
            results[mode] = _run_mode(mode, settings, Path(tmp), events, rate, partitions)
    rows: list[dict[str, Any]] = []
    pct = {
        m: {q: float(np.percentile(r["lat"], q)) for q in (50, 95, 99)} for m, r in results.items()
    }
    for q in (50, 95, 99):
        row: dict[str, Any] = {
            "metric": f"e2e p{q} at {rate:,.0f} events/s ({chosen[0]})",
            "value": round(pct[chosen[0]][q], 2),
            "unit": "ms",
            "better": "lower",
        }
        if len(chosen) > 1:
            base = chosen[1]
            row |= {
                "baseline_name": f"{base}, same events and rate",
                "baseline": round(pct[base][q], 2),
                "ratio": round(pct[base][q] / pct[chosen[0]][q], 3),
            }
        rows.append(row)
    for m, r in results.items():
        rows.append(
            {
                "metric": f"{m}: lost / duplicate / conflicting",
                "value": r["lost"],
                "unit": f"lost (dup {r['dup']}, conflicting {r['conflicting']})",
                "better": "lower",
            }
        )
    return {
        "bench": "e2e",
        "conditions": {
            "stream": "transactions (small world, re-stamped with send time)",
            "rate_per_s": rate,
            "events_per_mode": {m: r["events"] for m, r in results.items()},
            "partitions": partitions,
            "model": "xgboost 100 trees depth 5, ONNX",
            "latency": "producer record timestamp -> decision received by a tailing consumer",
            "kafka_python_client": f"confluent-kafka {version('confluent-kafka')}",
            "faust_streaming": version("faust-streaming"),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
        },
        "rows": rows,
    }
