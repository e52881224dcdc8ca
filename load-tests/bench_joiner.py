"""``streamscore bench joiner``: the delayed-label joiner on the live stack (Kafka + Redis).

1. **Backlog**: ``--events`` scored transactions (the scorer's records, keyed by customer,
   over ``--days`` simulated days), chargebacks for about ``--label-share`` of them (some
   read before their event, redelivered, reversed; also duplicated scored records, labels
   of events that never come) and a far-future tick that matures everything go to private
   topics; then ``streamscore joiner`` starts (stream time: horizon 10 h, grace 3 h, orphan
   TTL 12 h, lateness 10 m, bucket 1 h). Throughput: input records from its "ready" line
   until its committed offsets (a Kafka transaction per commit cycle) reach the end of both
   inputs. The committed examples are checked (DESIGN §6): one primary example per scored
   event, no duplicate (id, revision), the final label the latest one sent.
2. **Baseline**: the same records decoded and run through the pure ``JoinMachine`` on a
   ``DictStore`` in batches of 1,000 (no Kafka, no Redis): the ratio is the share of the
   joiner's time spent joining, ``1 / ratio`` what state, outbox, transactions and files cost.
3. **Memory**: ``join_memory.probe`` (Redis bytes per pending event, 10 M extrapolated).

Topics, group, Redis keys (DB 0, namespaced by the prefix) and files are deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import confluent_kafka
import msgspec
import numpy as np
import redis
from confluent_kafka import TopicPartition

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.labels import Chargeback
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.features.definitions import hash_feature_names, model_features
from streamscore.libs.labels.facts import LabelRef, fact_of
from streamscore.libs.labels.layout import JoinKeys
from streamscore.libs.labels.machine import JoinMachine
from streamscore.libs.labels.records import Emitted, context_of, record_of
from streamscore.libs.labels.spec import DAY_US, HOUR_US, MINUTE_US, default_spec, from_us, to_us
from streamscore.libs.labels.stores import ContextTable, DictStore
from streamscore.libs.topics import LABELLED_EXAMPLES_TOPIC, STREAMS, TopicSpec, dlq_topic
from streamscore.services.clients import endpoints, make_admin, make_consumer, make_producer
from streamscore.services.join_memory import probe
from streamscore.services.join_state import RedisJoinState
from streamscore.services.topics_admin import create_topics

STREAM = "transactions"
T0 = to_us(datetime(2026, 3, 1, tzinfo=UTC))
SPEC = {"horizon": "10h", "grace": "3h", "orphan_ttl": "12h", "lateness": "10m", "bucket": "1h"}
BATCH = 1000  # the joiner's --max-batch default
MAX_BYTES = 1 << 20


def parse_args(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="streamscore bench joiner")
    p.add_argument("--events", type=int, default=100_000, help="scored events of the backlog")
    p.add_argument("--label-share", type=float, default=0.05, help="share of events labelled")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--days", type=float, default=4.0, help="simulated days the events span")
    p.add_argument("--commit-interval", type=float, default=1.0, help="joiner s per transaction")
    p.add_argument("--probe-events", type=int, default=100_000, help="pending events probed")
    return vars(p.parse_args(argv))


class _Inputs(msgspec.Struct):
    records: list[tuple[bool, bytes, bytes]]  # (scored?, key, value) in arrival order
    events: set[str]  # the scored event ids (the tick aside)
    latest: dict[str, LabelRef]  # the effective (latest) label sent per event
    tick_us: int


def _inputs(n: int, share: float, days: float, seed: int = 5) -> _Inputs:
    rng = random.Random(seed)
    names = model_features(STREAM)
    vals = np.random.default_rng(seed).lognormal(3, 1, size=(n, len(names))).astype(np.float32)
    scores = np.random.default_rng(seed + 1).beta(0.5, 8, size=n + 1).astype(np.float32)
    base = ScoredEvent(event_id="x", event_time=from_us(T0), stream=STREAM, keys={},
                       feature_names_hash=hash_feature_names(names), values=[],
                       model_version="tx-fraud-2026.11-1", policy_version="transactions-2026.11-1",
                       score=None, decision="approve", policy_path="model", degraded=None,
                       feature_freshness={"customer": 0.4, "terminal": 1.2},
                       decided_at=from_us(T0))  # fmt: skip
    timed: list[tuple[int, int, bool, bytes, bytes]] = []
    latest: dict[str, LabelRef] = {}

    def at(arrive: int, ev: ScoredEvent, label: tuple[str, int, bool] | None = None) -> None:
        if label is None:  # keyed by customer, as the scorer keys its log
            timed.append((arrive, len(timed), True, ev.keys["customer_id"].encode(), encode(ev)))
            return
        label_id, t, fraud = label
        cb = Chargeback(event_id=label_id, event_time=from_us(t), target_event_id=ev.event_id,
                        customer_id=ev.keys["customer_id"], terminal_id=ev.keys["terminal_id"],
                        fraud=fraud, status="reported" if fraud else "reversed",
                        target_event_time=ev.event_time)  # fmt: skip
        ref = LabelRef(t, label_id, fraud)
        if ev.event_id not in latest or ref.key > latest[ev.event_id].key:
            latest[ev.event_id] = ref
        timed.append((arrive, len(timed), False, ev.event_id.encode(), encode(cb)))

    span = int(days * DAY_US)
    for i in range(n + 1):
        t = T0 + i * span // n if i < n else T0 + span + 10 * DAY_US  # the last: the tick
        s = float(scores[i])
        ev = msgspec.structs.replace(
            base,
            event_id=f"tx-{i:09d}" if i < n else "tick",
            event_time=from_us(t),
            keys={"customer_id": f"C{rng.randrange(n // 20 + 1):06d}",
                  "terminal_id": f"T{rng.randrange(2000):05d}"},
            values=[None if rng.random() < 0.05 else float(v) for v in vals[min(i, n - 1)]],
            score=s,
            decision="block" if s > 0.5 else "step_up" if s > 0.2 else "approve",
            decided_at=from_us(t + 3000),
        )  # fmt: skip
        arrive, delay = t + rng.randrange(60_000_000), rng.randrange(HOUR_US // 2, 8 * HOUR_US)
        if i < n and rng.random() < 0.005:  # the scorer is at-least-once: a duplicate
            at(arrive + rng.randrange(30 * MINUTE_US), ev)
        if i < n and rng.random() < 0.002:  # a label of an event that never comes
            ghost = msgspec.structs.replace(ev, event_id=f"tx-unknown-{i:09d}")
            at(t + delay, ghost, (f"cb-u{i}", t + delay, True))
        if i == n or rng.random() >= share:
            at(arrive, ev)
            continue
        story = rng.choices(["report", "reversal", "redelivered", "before"], [75, 10, 10, 5])[0]
        if story == "before":  # the label is read before the decision's (late) log record
            at(t + MINUTE_US, ev, (f"cb-{i}", t + MINUTE_US, True))
            at(t + 15 * MINUTE_US, ev)
            continue
        at(arrive, ev)
        at(t + delay, ev, (f"cb-{i}", t + delay, True))
        if story == "reversal":
            at(t + delay + 90 * MINUTE_US, ev, (f"cb-{i}-rev", t + delay + 90 * MINUTE_US, False))
        elif story == "redelivered":
            at(t + delay + rng.randrange(HOUR_US), ev, (f"cb-{i}", t + delay, True))
    timed.sort(key=lambda x: (x[0], x[1]))
    records = [(s, k, v) for _, _, s, k, v in timed]
    return _Inputs(records, {f"tx-{i:09d}" for i in range(n)}, latest, t)


def _in_memory(inputs: _Inputs) -> tuple[float, dict[str, bool]]:
    """Records/s of decode + JoinMachine on a DictStore, and each event's final label."""
    machine, store, ctx = JoinMachine(default_spec(STREAM, **SPEC)), DictStore(), ContextTable()
    out: list[Emitted] = []
    started = time.perf_counter()
    for i in range(0, len(inputs.records), BATCH):
        for is_scored, _key, value in inputs.records[i : i + BATCH]:
            if is_scored:
                ev = decode(ScoredEvent, value, max_bytes=MAX_BYTES)
                rec = record_of(ev, ctx.intern(context_of(ev)))
                out += machine.scored(store, ev.event_id, rec)[1]
            else:
                fact = fact_of(decode(Chargeback, value, max_bytes=MAX_BYTES))
                out += machine.label(store, fact)[1]
        out += machine.advance(store)[1]
    rate = len(inputs.records) / (time.perf_counter() - started)
    return rate, {e.event_id: e.value for e in sorted(out, key=lambda e: e.revision)}


class _Example(msgspec.Struct):
    event_id: str
    revision: int
    kind: str
    label: bool


_decoder = msgspec.json.Decoder(_Example)


def _read_examples(settings: Settings, topic: str) -> list[tuple[_Example, int]]:
    """Every committed example (``read_committed``) with its broker timestamp (ms)."""
    c = make_consumer(settings, group_id=uuid.uuid4().hex)
    meta = c.list_topics(topic, timeout=10).topics[topic]
    parts = [TopicPartition(topic, p) for p in meta.partitions]
    ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
    c.assign([TopicPartition(topic, p, 0) for p in ends])
    out: list[tuple[_Example, int]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        got = [m for m in c.consume(5000, timeout=1.0) if m.error() is None]
        out += [(_decoder.decode(m.value() or b""), m.timestamp()[1]) for m in got]
        if not got and all(tp.offset >= ends[tp.partition] - 1 for tp in c.position(parts)):
            break  # a partition's last offset may be a transaction marker
    c.close()
    return out


def _wait_drained(
    settings: Settings, group: str, ends: dict[TopicPartition, int], proc: subprocess.Popen[bytes]
) -> float:
    """Wall time at which the group's committed offsets reached the ends (one marker allowed)."""
    c = make_consumer(settings, group_id=group)  # never subscribes: only reads the offsets
    last, changed_at, reported = -1, time.time(), time.monotonic()
    deadline = time.monotonic() + 300 + sum(ends.values()) / 200
    try:
        while True:
            now = time.time()
            got = c.committed(list(ends), timeout=10)
            # (a TopicPartition hashes and compares by topic and partition, not offset)
            lag = sum(max(0, ends[tp] - max(0, tp.offset)) for tp in got)
            if lag != last:
                last, changed_at = lag, now
            if lag == 0 or (lag <= len(ends) and now - changed_at > 3):
                return changed_at
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the joiner did not drain ({lag:,} records left)")
            if time.monotonic() - reported > 5:
                print(f"  ... {lag:,} input records not committed yet", file=sys.stderr)
                reported = time.monotonic()
            time.sleep(0.05)
    finally:
        c.close()


def _row(metric: str, value: float, unit: str, better: str = "lower", **kw: Any) -> dict[str, Any]:
    return {"metric": metric, "value": value, "unit": unit, "better": better, **kw}


def _joiner(settings: Settings, prefix: str, tmp: Path, commit_interval: float, tick_us: int,
            ends: dict[TopicPartition, int]) -> tuple[float, float, str]:  # fmt: skip
    """Run ``streamscore joiner`` until every event matured: (ready, drained) times, summary."""
    spec_args = [x for k, v in SPEC.items() for x in (f"--{k.replace('_', '-')}", v)]
    cmd = [sys.executable, "-m", "streamscore.services.cli", "joiner", "--stream", STREAM,
           "--topic-prefix", prefix, "--out", str(tmp / "out"), *spec_args,
           "--commit-interval", str(commit_interval)]  # fmt: skip
    env = {**os.environ, "KAFKA_BOOTSTRAP": settings.kafka_bootstrap or ""}
    env["REDIS_URL"] = settings.redis_url or ""
    env.pop("STREAMSCORE_METRICS_PORT", None)
    log, meta = tmp / "joiner.log", JoinKeys(prefix, STREAM).meta
    client = redis.Redis.from_url(settings.redis_url or "")

    def meta_int(field: str, default: int) -> int:
        return int(client.hget(meta, field) or default)  # type: ignore[arg-type]

    with log.open("wb") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while b"ready" not in log.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, "no ready line"
            time.sleep(0.01)
        ready_at = time.time()
        print("joiner ready: draining the backlog", file=sys.stderr)
        drained_at = _wait_drained(settings, f"{prefix}streamscore-joiner-{STREAM}", ends, proc)
        # The clock reaches the tick once the inputs have been idle for the joiner's --idle.
        want, deadline = (tick_us - 10 * MINUTE_US) // HOUR_US - 1, time.monotonic() + 120
        while meta_int("matured", -1) < want or meta_int("orphans", 1) > 0:
            assert proc.poll() is None and time.monotonic() < deadline, "the clock stalled"
            time.sleep(0.1)
    except (AssertionError, RuntimeError) as exc:
        raise RuntimeError(f"{exc}; joiner log:\n{log.read_text()[-3000:]}") from exc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # graceful: a last commit cycle
        proc.wait(timeout=60)
    summary = log.read_text().strip().splitlines()[-1]
    return ready_at, drained_at, f"exit code {proc.returncode}: {summary}"


def run(
    events: int = 100_000,
    label_share: float = 0.05,
    partitions: int = 3,
    days: float = 4.0,
    commit_interval: float = 1.0,
    probe_events: int = 100_000,
    settings: Settings | None = None,
) -> dict[str, Any]:
    ep = endpoints(settings := settings or Settings())
    base, _, db = ep.redis_url.rpartition("/")
    url = f"{base}/0" if db.isdigit() else f"{ep.redis_url.rstrip('/')}/0"
    settings = settings.model_copy(update={"kafka_bootstrap": ep.kafka_bootstrap, "redis_url": url})
    client = redis.Redis.from_url(url, socket_timeout=30)
    print(f"inputs: {events:,} scored events over {days:g} simulated days", file=sys.stderr)
    inputs = _inputs(events, label_share, days)
    records, n_labels = len(inputs.records), sum(1 for s, _, _ in inputs.records if not s)
    print(f"in memory: {records:,} records through JoinMachine", file=sys.stderr)
    mem_rate, mem_final = _in_memory(inputs)

    prefix, s = f"bench-{uuid.uuid4().hex[:8]}-", STREAMS[STREAM]
    scored_t, labels_t = prefix + s.scored_log_topic, prefix + s.label_topic
    topics = [scored_t, labels_t, prefix + LABELLED_EXAMPLES_TOPIC]
    topics += [dlq_topic(scored_t), dlq_topic(labels_t)]
    admin = make_admin(settings)
    create_topics(
        admin, [TopicSpec(t, partitions if i < 3 else 1, 1) for i, t in enumerate(topics)]
    )
    try:
        print(f"publishing {records:,} records to {prefix}*", file=sys.stderr)
        producer = make_producer(settings, client_id="bench-joiner")
        for is_scored, key, value in inputs.records:
            producer.send(scored_t if is_scored else labels_t, value, key=key)
        if producer.flush(120) or producer.failed_total:
            raise RuntimeError(f"publishing failed: {producer.failed}")
        c = make_consumer(settings, group_id=uuid.uuid4().hex)
        tps = [TopicPartition(t, p) for t in (scored_t, labels_t) for p in range(partitions)]
        ends = {tp: c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
        c.close()
        with tempfile.TemporaryDirectory(prefix="bench-joiner-") as tmp:
            times = _joiner(settings, prefix, Path(tmp), commit_interval, inputs.tick_us, ends)
            ready_at, drained_at, summary = times
        print("reading the examples", file=sys.stderr)
        examples = _read_examples(settings, topics[2])
    finally:
        group = f"{prefix}streamscore-joiner-{STREAM}"
        futures = [*admin.delete_topics(topics).values()]
        futures += admin.delete_consumer_groups([group]).values()
        for fut in futures:
            fut.exception(timeout=30)
        RedisJoinState(client, JoinKeys(prefix, STREAM), ttl_s=3600).delete_all()
    print(f"memory probe: {probe_events:,} pending events", file=sys.stderr)
    mem = probe(client, STREAM, probe_events)

    drain_s = drained_at - ready_at
    live_rate = records / drain_s
    in_window = sum(1 for _e, ts in examples if ts <= drained_at * 1000)
    per_rev = Counter((e.event_id, e.revision) for e, _ts in examples)
    final = {e.event_id: e.label for e, _ts in sorted(examples, key=lambda x: x[0].revision)}
    want = {e: e in inputs.latest and inputs.latest[e].positive for e in inputs.events}
    lost = sum(1 for e in inputs.events if (e, 0) not in per_rev)
    dups = sum(v - 1 for v in per_rev.values())
    wrong = sum(1 for e, v in want.items() if final.get(e, v) != v)
    must = "oracle (DESIGN §6): must be 0"
    server: dict[str, Any] = client.info("server")  # type: ignore[assignment]
    ck = f"{version('confluent-kafka')} (librdkafka {confluent_kafka.libversion()[0]})"
    return {
        "bench": "joiner",
        "conditions": {
            "stream": f"{STREAM} (scored log keyed by customer, chargebacks by target id)",
            "events": events, "scored_records": records - n_labels, "labels": n_labels,
            "labelled_events": len(inputs.latest), "simulated_days": days, "topic_prefix": prefix,
            "partitions": partitions, "join_spec": ", ".join(f"{k} {v}" for k, v in SPEC.items()),
            "commit_interval_s": commit_interval, "max_batch": BATCH, "drain_s": round(drain_s, 2),
            "example_kinds": dict(sorted(Counter(e.kind for e, _ts in examples).items())),
            "unexpected_examples": len({e for e, _r in per_rev} - inputs.events),
            "joiner": summary, "memory_probe": mem.to_dict(),
            "python": platform.python_version(), "confluent_kafka": ck,
            "redis_py": version("redis"), "redis_server": server.get("redis_version"),
            "cpu_count": os.cpu_count(),
        },
        "rows": [
            _row("joiner input records/s (backlog, Kafka + Redis, exactly once)",
                 round(live_rate), "records/s", "higher", baseline=round(mem_rate),
                 baseline_name="decode + JoinMachine on a DictStore (in memory)",
                 ratio=round(live_rate / mem_rate, 4), agrees=final == mem_final),
            _row("examples emitted/s (until drained)", round(in_window / drain_s), "examples/s",
                 "higher"),
            _row("examples out (committed)", len(examples), "examples", "higher"),
            _row("lost events (no primary example)", lost, must),
            _row("duplicate examples (same id, revision)", dups, must),
            _row("wrong final labels", wrong, must),
            _row("Redis bytes per pending event", mem.bytes_per_event,
                 f"B (MEMORY USAGE; used_memory {mem.bytes_per_event_used_memory:g})"),
            _row("Redis for 10M pending events", mem.extrapolated_10m_gib, "GiB (extrapolated)"),
        ],
    }  # fmt: skip
