"""``streamscore bench e2e``: producer timestamp → decision readable by a consumer (live stack).

Events of the ``small`` world, re-stamped with their send time (so the features
are fresh and windows advance in real time), are published at ``--rate``
events/s for ``--duration`` s to namespaced topics, through one of two
deployments of the same code:

- **fused**: ``streamscore pipeline`` per stream — features on Redis and the
  decision in one process, one Kafka hop (events → decisions; features still
  published);
- **two-stage**: ``streamscore processor`` (faust) publishing ``features.*``,
  then ``streamscore scorer`` — two hops (transactions only).

``--streams`` picks the streams: ``transactions`` (default, the fused vs
two-stage comparison) or ``all``: the four streams mixed in the proportions
the simulated world produces them (DESIGN.md §5's condition), a fused pipeline
per stream. Only transactions has a model (100 trees); the other streams are
decided by their policies' degraded rules, as in the demo.

``--ramp R1,R2,...`` runs the rates one after another on the same deployment
(after one warm-up) and reports the highest rate whose p99 stays under 50 ms.

A consumer tails the decision topics in this process; an event's latency is
the wall time its decision was received minus the timestamp its record was
produced with (one clock). Afterwards the oracle (DESIGN.md §6): lost (ids
without a decision), duplicates, conflicting duplicates. Each pipeline serves
``/metrics``: the per-stage breakdown (consume lag, decode, feature read,
model, policy, produce until acknowledged, commit) is read from there, as the
mean per micro-batch over the run, with the mean batch size.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import redis
from prometheus_client.parser import text_string_to_metric_families

from streamscore.libs.config import Settings
from streamscore.libs.contracts.base import Event
from streamscore.libs.contracts.codec import encode
from streamscore.libs.model.synthetic import train_synthetic_model
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS, TopicSpec, dlq_topic
from streamscore.services.clients import endpoints, make_admin, make_producer
from streamscore.services.decision_tail import DecisionRecord, DecisionTail
from streamscore.services.scorer import default_policy
from streamscore.services.topics_admin import create_topics

REDIS_DB = 14
MODES = ("fused", "two-stage")
P99_TARGET_MS = 50.0
WARMUP = 300


def parse_args(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="streamscore bench e2e")
    p.add_argument("--rate", type=float, default=1000.0, help="events/s")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of paced load (per rate)")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--modes", default=",".join(MODES), help="fused,two-stage")
    p.add_argument("--streams", default="transactions", help="transactions or all (mixed)")
    p.add_argument("--ramp", default="", help="rates to step through, e.g. 250,500,1000")
    return vars(p.parse_args(argv))


def _events(streams: list[str], n: int) -> list[tuple[str, Event]]:
    """``n`` events of ``streams`` in the world's own order and mix: (stream, event)."""
    inputs = {STREAMS[s].input_topic: s for s in streams}
    days, out = 1, list[tuple[str, Event]]()
    while len(out) < n and days <= 256:
        days *= 2
        scenario = get("small").with_days(days)
        out = [(inputs[r.topic], r.event) for r in scenario.records(seed=31) if r.topic in inputs]
    return out[:n]


def _commands(mode: str, prefix: str, model: Path, stream: str) -> list[list[str]]:
    base = [sys.executable, "-m", "streamscore.services.cli"]
    common = ["--stream", stream, "--topic-prefix", prefix]
    with_model = ["--model", str(model)] if stream == "transactions" else []
    if mode == "fused":
        return [[*base, "pipeline", *common, *with_model]]
    return [[*base, "processor", *common], [*base, "scorer", *common, *with_model]]


def _send(
    producer: Any, prefix: str, events: list[tuple[str, Event]], rate: float | None
) -> dict[str, float]:
    """Publish ``events`` re-stamped with their send time; returns id -> send time (s)."""
    sent: dict[str, float] = {}
    start = time.time()
    for i, (stream, ev) in enumerate(events):
        if rate is not None:
            # Sleep until the event is due. (A poll with a timeout under 1 ms is a
            # 0 ms poll in librdkafka: waiting that way spun a core, 0.6 of the
            # machine's 2 at 1k/s, and starved the pipelines being measured.)
            due = start + i / rate
            if (wait := due - time.time()) > 0:
                producer.poll(0)
                time.sleep(wait)
        now = time.time()
        s = STREAMS[stream]
        ev2 = msgspec.structs.replace(ev, event_time=datetime.fromtimestamp(now, tz=UTC))
        key = str(getattr(ev, s.key_field)).encode()
        producer.send(prefix + s.input_topic, encode(ev2), key=key, timestamp_ms=int(now * 1e3))
        sent[ev.event_id] = now
    producer.flush(60)
    return sent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sums(text: str) -> dict[tuple[str, str], tuple[float, float]]:
    """(metric, stage or topic) -> (sum, count) of the stage histograms in a /metrics page."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    wanted = {
        "streamscore_stage_seconds": "stage",
        "streamscore_decision_stage_seconds": "stage",
        "streamscore_consume_lag_seconds": "topic",
        "streamscore_batch_size": "service",
    }
    for family in text_string_to_metric_families(text):
        label = wanted.get(family.name)
        if label is None:
            continue
        for sample in family.samples:
            if sample.name.endswith(("_sum", "_count")):
                key = (family.name, str(sample.labels.get(label, "")))
                s, c = out.get(key, (0.0, 0.0))
                if sample.name.endswith("_sum"):
                    out[key] = (s + sample.value, c)
                else:
                    out[key] = (s, c + sample.value)
    return out


def _scrape(ports: list[int]) -> dict[tuple[str, str], tuple[float, float]]:
    total: dict[tuple[str, str], tuple[float, float]] = {}
    for port in ports:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0).text
        except httpx.HTTPError:
            continue
        for k, (s, c) in _sums(text).items():
            s0, c0 = total.get(k, (0.0, 0.0))
            total[k] = (s0 + s, c0 + c)
    return total


def _breakdown(
    before: dict[tuple[str, str], tuple[float, float]],
    after: dict[tuple[str, str], tuple[float, float]],
) -> dict[str, float]:
    """Mean ms per observation of each stage between two scrapes (lag: per record), and
    the mean batch size."""
    names = {
        ("streamscore_consume_lag_seconds", None): "consume lag (per record)",
        ("streamscore_stage_seconds", "decode"): "decode",
        ("streamscore_decision_stage_seconds", "feature_read"): "features (Redis state)",
        ("streamscore_decision_stage_seconds", "model"): "model",
        ("streamscore_decision_stage_seconds", "policy"): "policy",
        ("streamscore_stage_seconds", "handle"): "handle (features+model+policy)",
        ("streamscore_stage_seconds", "produce_ack"): "produce until acked",
        ("streamscore_stage_seconds", "commit"): "commit",
        ("streamscore_batch_size", None): "batch size (events)",
    }
    out: dict[str, float] = {}
    for (metric, stage), name in names.items():
        s = c = 0.0
        for (m, lab), (s1, c1) in after.items():
            if m != metric or (stage is not None and lab != stage):
                continue
            s0, c0 = before.get((m, lab), (0.0, 0.0))
            s, c = s + s1 - s0, c + c1 - c0
        if c > 0:
            out[name] = round(s / c * (1 if metric == "streamscore_batch_size" else 1000), 3)
    return out


def _run_mode(
    mode: str,
    settings: Settings,
    model: Path,
    streams: list[str],
    events: list[tuple[str, Event]],
    rates: list[float],
    duration: float,
    parts: int,
) -> dict[str, Any]:
    ep = endpoints(settings)
    prefix = f"bench-e2e-{uuid.uuid4().hex[:6]}."
    inputs = [prefix + STREAMS[s].input_topic for s in streams]
    others = [
        prefix + t for s in streams for t in (STREAMS[s].label_topic, STREAMS[s].feature_topic)
    ]
    outs = [
        prefix + t
        for s in streams
        for t in (STREAMS[s].decision_topic, STREAMS[s].scored_log_topic)
    ]
    names = [*inputs, *others, *outs]
    admin = make_admin(settings)
    create_topics(
        admin,
        [TopicSpec(t, parts, 1) for t in names]
        + [TopicSpec(dlq_topic(t), 1, 1) for t in [*inputs, *others]],
    )
    url = f"{ep.redis_url.rsplit('/', 1)[0]}/{REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    producer = make_producer(settings, client_id="bench-e2e")
    tail = DecisionTail(ep.kafka_bootstrap, [prefix + STREAMS[s].decision_topic for s in streams])
    tail.start()
    warm, paced = events[:WARMUP], events[WARMUP:]
    steps: list[dict[str, Any]] = []
    ports: list[int] = []
    with tempfile.TemporaryFile() as log:
        procs = []
        for stream in streams:
            for cmd in _commands(mode, prefix, model, stream):
                port = _free_port()
                ports.append(port)
                env = {**os.environ, "KAFKA_BOOTSTRAP": ep.kafka_bootstrap, "REDIS_URL": url,
                       "STREAMSCORE_METRICS_PORT": str(port)}  # fmt: skip
                procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
        try:
            # Warm-up: services joined their groups and compiled; its decisions are seen.
            warm_sent = _send(producer, prefix, warm, rate=200.0)
            deadline = time.monotonic() + 180
            while len(tail.received) < len(warm_sent) and time.monotonic() < deadline:
                time.sleep(0.2)
            if len(tail.received) < len(warm_sent):
                raise SystemExit(f"{mode}: warm-up decisions did not arrive")
            at = 0
            for rate in rates:
                batch = paced[at : at + int(rate * duration)]
                at += len(batch)
                print(f"{mode}: {len(batch):,} events at {rate:,.0f}/s", file=sys.stderr)
                before, mark = _scrape(ports), len(tail.received)
                sent = _send(producer, prefix, batch, rate=rate)
                deadline = time.monotonic() + 120
                while len(tail.received) - mark < len(sent) and time.monotonic() < deadline:
                    time.sleep(0.2)
                steps.append(
                    {"rate": rate, "sent": sent, "stages": _breakdown(before, _scrape(ports))}
                )
            time.sleep(2.0)  # late duplicates, if any
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=60)
            tail.stop.set()
            tail.join()
    admin.delete_topics([*names, *(dlq_topic(t) for t in [*inputs, *others])])
    by_id: dict[str, list[tuple[float, DecisionRecord]]] = {}
    for got, d in tail.decisions():
        by_id.setdefault(d.event_id, []).append((got, d))
    for step in steps:
        sent = step.pop("sent")
        step["lat"] = np.array([(by_id[i][0][0] - t) * 1000 for i, t in sent.items() if i in by_id])
        step["lost"] = sum(1 for i in sent if i not in by_id)
        step["events"] = len(sent)
    conflicting = sum(
        1
        for recs in by_id.values()
        if len({(d.decision, d.score, d.model_version) for _, d in recs}) > 1
    )
    return {
        "steps": steps,
        "lost": sum(s["lost"] for s in steps),
        "dup": sum(len(r) - 1 for r in by_id.values()),
        "conflicting": conflicting,
        "events": sum(s["events"] for s in steps),
        "processes": len(ports),
    }


def run(
    rate: float = 1000.0,
    duration: float = 30.0,
    partitions: int = 3,
    modes: str = ",".join(MODES),
    streams: str = "transactions",
    ramp: str = "",
) -> dict[str, Any]:
    settings = Settings()
    chosen_streams = list(STREAMS) if streams == "all" else streams.split(",")
    chosen = [m for m in modes.split(",") if m]
    if len(chosen_streams) > 1:
        chosen = [m for m in chosen if m == "fused"]  # two-stage: transactions only
    rates = [float(r) for r in ramp.split(",") if r] or [rate]
    events = _events(chosen_streams, WARMUP + int(sum(rates) * duration))
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
            results[mode] = _run_mode(
                mode, settings, Path(tmp), chosen_streams, events, rates, duration, partitions
            )
    rows: list[dict[str, Any]] = []
    first = chosen[0]
    pct = {
        m: [{q: float(np.percentile(s["lat"], q)) for q in (50, 95, 99, 100)} for s in r["steps"]]
        for m, r in results.items()
    }
    for k, step_rate in enumerate(rates):
        for q in (50, 95, 99, 100):
            label = "max" if q == 100 else f"p{q}"
            row: dict[str, Any] = {
                "metric": f"e2e {label} at {step_rate:,.0f} events/s ({first})",
                "value": round(pct[first][k][q], 2),
                "unit": "ms",
                "better": "lower",
            }
            if len(chosen) > 1:
                base = chosen[1]
                row |= {
                    "baseline_name": f"{base}, same events and rate",
                    "baseline": round(pct[base][k][q], 2),
                    "ratio": round(pct[base][k][q] / pct[first][k][q], 3),
                }
            rows.append(row)
    if len(rates) > 1:
        under = [r for k, r in enumerate(rates) if pct[first][k][99] < P99_TARGET_MS]
        rows.append(
            {
                "metric": f"highest ramp rate with p99 < {P99_TARGET_MS:.0f} ms ({first})",
                "value": max(under) if under else 0.0,
                "unit": "events/s",
                "better": "higher",
            }
        )
    for m, r in results.items():
        rows.append(
            {
                "metric": f"{m}: lost / duplicate / conflicting",
                "value": r["lost"],
                "unit": f"lost (dup {r['dup']}, conflicting {r['conflicting']})",
                "better": "lower",
            }
        )
        for k, step in enumerate(r["steps"]):
            for stage, ms in step["stages"].items():
                rows.append(
                    {
                        "metric": f"{m} at {rates[k]:,.0f}/s: {stage}",
                        "value": ms,
                        "unit": "events"
                        if "size" in stage
                        else "ms per record"
                        if "lag" in stage
                        else "ms per batch",
                        "better": "lower",
                    }
                )
    return {
        "bench": "e2e",
        "conditions": {
            "streams": ", ".join(chosen_streams)
            + " (small world, mixed as simulated, re-stamped with send time)",
            "rates_per_s": rates,
            "duration_s_per_rate": duration,
            "events_per_mode": {m: r["events"] for m, r in results.items()},
            "processes_per_mode": {m: r["processes"] for m, r in results.items()},
            "partitions": partitions,
            "model": "transactions: xgboost 100 trees depth 5, ONNX; other streams: policy rules",
            "latency": "producer record timestamp -> decision received by a tailing consumer",
            "stages": "mean per micro-batch from each process's /metrics over the paced run",
            "kafka_python_client": f"confluent-kafka {version('confluent-kafka')}",
            "faust_streaming": version("faust-streaming"),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
        },
        "rows": rows,
    }
