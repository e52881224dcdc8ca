"""``streamscore bench processor``: the faust feature processor on the live stack (Kafka + Redis).

Two phases, one processor process (``streamscore processor``), transactions of
the ``small`` world (customer and terminal windows, labels applied):

1. **Backlog**: ``--events`` events are published first, then the processor
   starts; throughput is events over the span between the first and the last
   feature record's broker timestamps (start-up excluded).
2. **Paced**: ``--paced`` more events at ``--rate`` events/s; per-event latency
   is the feature record's broker timestamp minus the event record's (both
   CreateTime, one clock): consume, Redis round trips, compute, produce, ack.

The baseline is the same computation in memory (``offline.compute``, no Kafka,
no Redis) on the same events, so the ratio is the share of the processor's
time that is feature computation, and ``1 / ratio`` what the I/O costs.
Everything runs in namespaced topics and a Redis database of its own, which
are deleted / flushed afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from typing import Any

import msgspec
import numpy as np
import redis
from confluent_kafka import Consumer

from streamscore.libs.config import Settings
from streamscore.libs.contracts.events import Transaction
from streamscore.libs.contracts.labels import Chargeback
from streamscore.libs.features.offline import compute
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS, TopicSpec, dlq_topic
from streamscore.services.clients import endpoints, make_admin, make_producer
from streamscore.services.sim_producer import publish
from streamscore.services.topics_admin import create_topics

S = STREAMS["transactions"]
REDIS_DB = 9


def parse_args(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="streamscore bench processor")
    p.add_argument("--days", type=int, default=30, help="simulated days (the backlog)")
    p.add_argument("--paced", type=int, default=5000, help="events of the paced phase")
    p.add_argument("--rate", type=float, default=1000.0, help="events/s of the paced phase")
    p.add_argument("--partitions", type=int, default=3)
    return vars(p.parse_args(argv))


def _consume(bootstrap: str, topic: str, n: int, timeout_s: float) -> list[Any]:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    last_report = time.monotonic()
    while len(out) < n and time.monotonic() < deadline:
        out += [m for m in c.consume(5000, timeout=0.5) if m.error() is None]
        if time.monotonic() - last_report > 5:
            print(f"  ... {len(out):,} / {n:,} feature records", file=sys.stderr)
            last_report = time.monotonic()
    c.close()
    return out


def run(
    days: int = 30, paced: int = 5000, rate: float = 1000.0, partitions: int = 3
) -> dict[str, Any]:
    settings = Settings()
    ep = endpoints(settings)
    world = get("small").only("transactions").with_days(days)
    records = list(world.records(seed=3))
    events = [r for r in records if isinstance(r.event, Transaction)]
    labels = [r for r in records if isinstance(r.event, Chargeback)]
    backlog, tail = events[: len(events) - paced], events[len(events) - paced :]

    started = time.perf_counter()
    n_off = sum(
        1 for _ in compute("transactions", [e.event for e in events], [x.event for x in labels])
    )
    offline_rate = n_off / (time.perf_counter() - started)

    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    names = [prefix + t for t in (S.input_topic, S.label_topic, S.feature_topic)]
    admin = make_admin(settings)
    specs = [TopicSpec(t, partitions, 1) for t in names]
    specs += [TopicSpec(dlq_topic(t), 1, 1) for t in names[:2]]
    create_topics(admin, specs)
    url = f"{ep.redis_url.rsplit('/', 1)[0]}/{REDIS_DB}"
    r = redis.Redis.from_url(url)
    r.flushdb()
    producer = make_producer(settings, client_id="bench-processor")
    quiet = lambda _: None  # noqa: E731
    publish(labels, producer, topic_prefix=prefix, progress=quiet)
    publish(backlog, producer, topic_prefix=prefix, progress=quiet)
    env = {**os.environ, "KAFKA_BOOTSTRAP": ep.kafka_bootstrap, "REDIS_URL": url}
    env.pop("STREAMSCORE_METRICS_PORT", None)
    cmd = [
        sys.executable,
        "-m",
        "streamscore.services.cli",
        "processor",
        "--stream",
        "transactions",
        "--topic-prefix",
        prefix,
    ]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            print(f"backlog: {len(backlog):,} events queued; processor started", file=sys.stderr)
            got = _consume(ep.kafka_bootstrap, names[2], len(backlog), timeout_s=600)
            ts = sorted(m.timestamp()[1] for m in got)
            span_s = (ts[-1] - ts[0]) / 1000
            backlog_rate = (len(got) - 1) / span_s if span_s > 0 else float("nan")
            print(f"paced: {len(tail):,} events at {rate:,.0f}/s", file=sys.stderr)
            publish(tail, producer, topic_prefix=prefix, rate=rate, progress=quiet)
            more = _consume(ep.kafka_bootstrap, names[2], len(backlog) + len(tail), timeout_s=300)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    sent = _input_times(ep.kafka_bootstrap, names[0], len(events))
    out_ts = _output_times(more)
    lat = np.array([out_ts[k] - sent[k] for k in (e.event.event_id for e in tail) if k in out_ts])
    admin.delete_topics([*names, *(dlq_topic(t) for t in names[:2])])
    r.flushdb()
    p50, p99 = (float(np.percentile(lat, q)) for q in (50, 99))
    return {
        "bench": "processor",
        "conditions": {
            "stream": "transactions (customer + terminal groups, chargebacks applied)",
            "backlog_events": len(backlog),
            "paced_events": len(tail),
            "paced_rate": rate,
            "partitions": partitions,
            "processes": 1,
            "faust_streaming": version("faust-streaming"),
            "redis_py": version("redis"),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
        },
        "rows": [
            {
                "metric": "processor events/s (backlog, Kafka + Redis)",
                "value": round(backlog_rate),
                "unit": "events/s",
                "baseline_name": "same features computed in memory (offline path)",
                "baseline": round(offline_rate),
                "ratio": round(backlog_rate / offline_rate, 3),
                "better": "higher",
            },
            {
                "metric": f"per-event latency p50 at {rate:,.0f}/s",
                "value": round(p50, 2),
                "unit": "ms",
                "better": "lower",
            },
            {
                "metric": f"per-event latency p99 at {rate:,.0f}/s",
                "value": round(p99, 2),
                "unit": "ms",
                "better": "lower",
            },
        ],
    }


class _Id(msgspec.Struct):
    event_id: str


class _Wrapped(msgspec.Struct):
    event: _Id


def _event_id(value: bytes) -> str:
    """The event id of an event record or of a feature record (which wraps the event)."""
    try:
        return msgspec.json.decode(value, type=_Wrapped).event.event_id
    except msgspec.ValidationError:
        return msgspec.json.decode(value, type=_Id).event_id


def _input_times(bootstrap: str, topic: str, n: int) -> dict[str, int]:
    msgs = _consume(bootstrap, topic, n, timeout_s=60)
    return {_event_id(m.value()): m.timestamp()[1] for m in msgs}


def _output_times(msgs: list[Any]) -> dict[str, int]:
    return {_event_id(m.value()): m.timestamp()[1] for m in msgs}
