"""Shared steps of the tests that run ``streamscore joiner`` as a real process."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import msgspec
import redis
from confluent_kafka import Consumer, TopicPartition

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import encode
from streamscore.libs.contracts.examples import LabelledExample
from streamscore.libs.contracts.labels import Chargeback
from streamscore.libs.labels.dataset import read_examples
from streamscore.libs.labels.facts import LabelRef
from streamscore.libs.labels.layout import JoinKeys
from streamscore.libs.labels.spec import HOUR_US, from_us, to_us
from streamscore.libs.topics import LABELLED_EXAMPLES_TOPIC, STREAMS, TopicSpec, dlq_topic
from streamscore.services.clients import make_admin, make_producer
from streamscore.services.topics_admin import create_topics
from tests.label_join_cases import LabelIn, Scenario, ScoredIn

HORIZON_US = 10 * HOUR_US

STREAM = "transactions"
#: Horizon 10 h of stream time; grace and orphan lifetime long enough that nothing closes
#: or expires before every input is read (the two topics are read at their own pace), then
#: the final tick (400 h) matures and closes everything. Lateness 2 h: label partitions
#: are read out of label-time order by about that much.
JOINER_ARGS = ["--horizon", "10h", "--grace", "100h", "--orphan-ttl", "100h",
               "--lateness", "2h", "--bucket", "1h"]  # fmt: skip


@dataclass(frozen=True)
class Topics:
    scored: str
    labels: str
    examples: str
    group: str


def joiner_topics(settings: Settings, prefix: str) -> Topics:
    s = STREAMS[STREAM]
    scored, labels = prefix + s.scored_log_topic, prefix + s.label_topic
    examples = prefix + LABELLED_EXAMPLES_TOPIC
    specs = [TopicSpec(t, 3, 1) for t in (scored, labels, examples)]
    specs += [TopicSpec(dlq_topic(t), 1, 1) for t in (scored, labels)]
    create_topics(make_admin(settings), specs)
    return Topics(scored, labels, examples, f"{prefix}streamscore-joiner-{STREAM}")


def chargeback(label: LabelRef, target: str) -> Chargeback:
    return Chargeback(
        event_id=label.label_id,
        event_time=from_us(label.time_us),
        target_event_id=target,
        customer_id="C1",
        terminal_id="T1",
        fraud=label.positive,
        status="reported" if label.positive else "reversed",
    )


def produce_inputs(
    settings: Settings, topics: Topics, inputs: list[ScoredIn | LabelIn], *, poison: int = 0
) -> None:
    """The inputs in order (scored keyed by customer, labels by target), plus poison."""
    producer = make_producer(settings, client_id="joiner-test")
    rng = random.Random(len(inputs))
    for x in inputs:
        if isinstance(x, ScoredIn):
            key = x.event.keys["customer_id"].encode()
            producer.send(topics.scored, encode(x.event), key=key)
        else:
            target = x.fact.target_event_id or ""
            producer.send(
                topics.labels, encode(chargeback(x.fact.label, target)), key=target.encode()
            )
    for i in range(poison):
        producer.send(topics.scored if i % 2 else topics.labels, rng.randbytes(40), key=b"bad")
    assert producer.flush(60) == 0 and producer.failed_total == 0


def start_joiner(
    settings: Settings, prefix: str, out: Path, log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    """``streamscore joiner`` as its own process; returns once it says it is ready."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
        "REDIS_URL": settings.redis_url or "",
    }
    env.pop("STREAMSCORE_METRICS_PORT", None)
    cmd = [sys.executable, "-m", "streamscore.services.cli", "joiner", "--stream", STREAM,
           "--topic-prefix", prefix, "--out", str(out), *JOINER_ARGS, *extra]  # fmt: skip
    before = _count(log, "ready")
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 40
    while _count(log, "ready") == before:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)
    return proc


def _count(log: Path, word: str) -> int:
    return log.read_text().count(word) if log.exists() else 0


def lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Records of ``topics`` not yet committed by ``group``."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        parts = []
        for t in topics:
            meta = c.list_topics(t, timeout=10).topics[t]
            parts += [TopicPartition(t, p) for p in meta.partitions]
        committed = {(tp.topic, tp.partition): tp.offset for tp in c.committed(parts, timeout=10)}
        total = 0
        for tp in parts:
            _lo, hi = c.get_watermark_offsets(tp, timeout=10)
            total += max(0, hi - max(0, committed[(tp.topic, tp.partition)]))
        return total
    finally:
        c.close()


def wait_drained(bootstrap: str, group: str, topics: list[str], timeout_s: float = 45) -> None:
    """Until every record of ``topics`` is committed by ``group`` (commit markers count)."""
    deadline = time.monotonic() + timeout_s
    while lag(bootstrap, group, topics) > 3:  # up to one transaction marker per partition
        assert time.monotonic() < deadline, "the joiner did not catch up"
        time.sleep(0.2)


def wait_matured(settings: Settings, prefix: str, sc: Scenario, timeout_s: float = 45) -> None:
    """Until the joiner's clock has reached the final tick of ``sc`` (all matured, closed).

    Offsets alone do not say it: the tick's batch advances the clock only as far as
    the input partitions' holds allow; the rest follows once they fall idle.
    """
    tick = sc.inputs[-1]
    assert isinstance(tick, ScoredIn) and tick.event.event_id == "tick"
    # The buckets (1 h, JOINER_ARGS) the watermark (tick - lateness 2 h) has entirely passed.
    want = (to_us(tick.event.event_time) - 2 * HOUR_US) // HOUR_US - 1
    client = redis.Redis.from_url(settings.redis_url or "")
    key = JoinKeys(prefix, STREAM).meta
    deadline = time.monotonic() + timeout_s
    while True:
        matured = client.hget(key, "matured")
        if matured is not None and int(matured) >= want:  # type: ignore[arg-type]
            return
        assert time.monotonic() < deadline, f"the joiner's clock stayed at bucket {matured!r}"
        time.sleep(0.2)


def read_examples_topic(bootstrap: str, topic: str) -> list[LabelledExample]:
    """Every committed example on the topic (``read_committed``, from the beginning)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    parts = [
        TopicPartition(topic, p) for p in c.list_topics(topic, timeout=10).topics[topic].partitions
    ]
    ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
    c.assign([TopicPartition(topic, p, 0) for p in ends])
    out: list[LabelledExample] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = [m for m in c.consume(5000, timeout=1.0) if m.error() is None]
        out += [msgspec.json.decode(m.value(), type=LabelledExample) for m in got]
        # Done when a quiet second finds every partition at its end (the last offset
        # of a partition may be a transaction marker, never delivered).
        if not got and all(tp.offset >= ends[tp.partition] - 1 for tp in c.position(parts)):
            break
    c.close()
    return out


@dataclass(frozen=True)
class Figures:
    """The oracle's counts (DESIGN §6 for examples)."""

    events: int
    lost: int
    duplicates: int
    wrong_final: int
    bad_sequences: int
    unexpected: int
    #: Events corrected although no reversal and no label past the horizon came for them
    #: (an event matured before its in-time label was read).
    early_maturity: int
    kinds: dict[str, int]


def check(examples: list[tuple[str, int, str, bool]], sc: Scenario) -> Figures:
    """``(event_id, revision, kind, label)`` rows against the scenario's inputs.

    Every scored event (the final tick aside) ends as exactly one primary
    example and a correction per change of its label; its last label is the
    latest label sent for it (none: negative). Duplicates: rows beyond one per
    ``(event_id, revision)``.
    """
    latest: dict[str, LabelRef] = {}
    times = {
        x.event.event_id: to_us(x.event.event_time) for x in sc.inputs if isinstance(x, ScoredIn)
    }
    may_correct: set[str] = set()
    for x in sc.inputs:
        if isinstance(x, LabelIn) and x.fact.target_event_id is not None:
            t = x.fact.target_event_id
            if t not in latest or x.fact.label.key > latest[t].key:
                latest[t] = x.fact.label
            if not x.fact.label.positive or x.fact.label.time_us > times.get(t, 0) + HORIZON_US:
                may_correct.add(t)
    per_id: dict[str, dict[int, list[tuple[str, bool]]]] = defaultdict(lambda: defaultdict(list))
    for eid, rev, kind, label in examples:
        per_id[eid][rev].append((kind, label))
    dup = sum(len(v) - 1 for revs in per_id.values() for v in revs.values())
    expected = set(sc.events) - {"tick"}
    lost = wrong = bad = 0
    for eid in expected:
        revs = per_id.get(eid)
        if not revs:
            lost += 1
            continue
        seq = [revs[r][0] for r in sorted(revs)]
        ok = sorted(revs) == list(range(len(revs)))
        ok &= seq[0][0] in ("positive", "negative", "matured_negative")
        ok &= all(k == "correction" for k, _ in seq[1:])
        ok &= all(a[1] != b[1] for a, b in itertools.pairwise(seq))
        bad += not ok
        want = latest[eid].positive if eid in latest else False
        wrong += seq[-1][1] != want
    return Figures(
        events=len(expected),
        lost=lost,
        duplicates=dup,
        wrong_final=wrong,
        bad_sequences=bad,
        unexpected=len(set(per_id) - expected),
        early_maturity=sum(
            1 for e, revs in per_id.items() if len(revs) > 1 and e not in may_correct
        ),
        kinds=dict(Counter(k for _e, _r, k, _l in examples)),
    )


def topic_rows(examples: list[LabelledExample]) -> list[tuple[str, int, str, bool]]:
    return [(e.event_id, e.revision, e.kind, e.label) for e in examples]


def dataset_rows(out: Path) -> list[tuple[str, int, str, bool]]:
    t = read_examples(out, STREAM, columns=("event_id", "revision", "kind", "label"))
    return list(zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True))  # type: ignore[arg-type]
