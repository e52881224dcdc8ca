"""``streamscore rollout report`` and ``status``: a shadow challenger against the champion,
read back from Kafka, and the store's champion / challenger state.

The report pairs every record of ``shadow.decisions.<stream>`` (the challenger)
with the decision of the same event on ``decisions.<stream>`` (the champion)
and compares them (:func:`streamscore.libs.rollout.report.compare`): decision
mixes, agreement and flips, score quantiles and the KS statistic. Model
latency per version is not in the records: it is the scorers'
``streamscore_rollout_model_seconds`` histogram.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, get_args, get_type_hints

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import decode
from streamscore.libs.contracts.decisions import Decision
from streamscore.libs.contracts.errors import ContractError
from streamscore.libs.rollout.report import Comparison, Outcome, compare
from streamscore.libs.scoring.decide import DECISION_TYPES
from streamscore.libs.topics import STREAMS
from streamscore.services.clients import make_consumer
from streamscore.services.model_store import ModelStore

MAX_BYTES = 1 << 20


def read_topic(
    settings: Settings, topic: str, take: Callable[[bytes], None], *, timeout_s: float = 60.0
) -> None:
    """Every record of ``topic`` from the beginning to the end offsets seen at the start.

    1. Partitions and their high watermarks (the end of what to read).
    2. Every non-empty partition assigned at its beginning, under a group id of its
       own that never commits (reading moves no service's offsets).
    3. Consumed until every partition reached its end, or ``timeout_s`` (TimeoutError).
    """
    consumer: Consumer = make_consumer(
        settings, group_id=f"streamscore-rollout-{uuid.uuid4().hex[:8]}", client_id="rollout"
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None:
            raise RuntimeError(f"{topic}: {meta.error}")
        ends: dict[int, int] = {}
        for p in meta.partitions:  # 1.
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])  # 2.
        deadline = time.monotonic() + timeout_s
        done: set[int] = set()
        while len(done) < len(ends) and time.monotonic() < deadline:  # 3.
            for m in consumer.consume(num_messages=1000, timeout=0.5):
                if m.error() is not None:
                    continue
                p, off = m.partition() or 0, m.offset() or 0
                if off < ends.get(p, 0):
                    take(m.value() or b"")
                if off + 1 >= ends.get(p, 0):
                    done.add(p)
        if len(done) < len(ends):
            raise TimeoutError(f"{topic}: not read to the end in {timeout_s} s")
    finally:
        consumer.close()


def _outcome(d: Decision) -> Outcome:
    return (str(d.decision), d.score, d.degraded is not None)  # type: ignore[attr-defined]


def shadow_report(
    settings: Settings, stream: str, *, prefix: str = "", version: str | None = None
) -> tuple[Comparison | None, dict[str, int]]:
    """The comparison for ``stream`` (``None``: nothing paired) and the read counts.

    ``version``: the challenger version to report (default: the one with most records).
    """
    s = STREAMS[stream]
    kind = DECISION_TYPES[stream]
    counts: Counter[str] = Counter()
    shadow: dict[str, Decision] = {}

    def take_shadow(raw: bytes) -> None:
        try:
            d = decode(kind, raw, max_bytes=MAX_BYTES)
        except ContractError:
            counts["shadow_rejected"] += 1
            return
        counts["shadow"] += 1
        shadow[d.event_id] = d  # a redelivered record: the last one

    read_topic(settings, prefix + s.shadow_decision_topic, take_shadow)
    by_version = Counter(d.model_version for d in shadow.values())
    if not by_version:
        return None, dict(counts)
    chosen = version or by_version.most_common(1)[0][0]
    wanted = {e: d for e, d in shadow.items() if d.model_version == chosen}
    live: dict[str, Decision] = {}

    def take_live(raw: bytes) -> None:
        try:
            d = decode(kind, raw, max_bytes=MAX_BYTES)
        except ContractError:
            counts["decisions_rejected"] += 1
            return
        counts["decisions"] += 1
        if d.event_id in wanted:
            live[d.event_id] = d

    read_topic(settings, prefix + s.decision_topic, take_live)
    pairs = [(_outcome(live[e]), _outcome(d)) for e, d in wanted.items() if e in live]
    counts["paired"] = len(pairs)
    if not pairs:
        return None, dict(counts)
    champion = Counter(d.model_version for d in live.values()).most_common(1)[0][0]
    outcomes = list(get_args(get_type_hints(kind)["decision"]))  # the Literal's values
    return compare(pairs, outcomes, versions=(champion, chosen)), dict(counts)


def render(c: Comparison) -> str:
    """The comparison as a small table."""
    lines = [
        f"paired events: {c.paired}   agreement: {c.agreement:.4f}   "
        f"KS(score): {'-' if c.ks is None else f'{c.ks:.4f}'}",
        f"{'':<14}{'champion':>22}{'challenger':>22}",
        f"{'version':<14}{c.champion.model_version:>22}{c.challenger.model_version:>22}",
    ]
    for o in c.champion.mix:
        lines.append(f"{o + ' rate':<14}{c.champion.mix[o]:>22.4f}{c.challenger.mix[o]:>22.4f}")
    lines.append(
        f"{'degraded':<14}{c.champion.degraded_rate:>22.4f}{c.challenger.degraded_rate:>22.4f}"
    )
    for i, q in enumerate(("p50", "p90", "p99")):
        a, b = c.champion.score_quantiles, c.challenger.score_quantiles
        fa = "-" if a is None else f"{a[i]:.4f}"
        fb = "-" if b is None else f"{b[i]:.4f}"
        lines.append(f"{'score ' + q:<14}{fa:>22}{fb:>22}")
    if c.flips:
        lines.append("flips: " + ", ".join(f"{k} {v}" for k, v in c.flips.items()))
    lines.append("model latency per version: streamscore_rollout_model_seconds (Prometheus)")
    return "\n".join(lines)


def as_json(c: Comparison | None, counts: dict[str, int]) -> str:
    body: dict[str, Any] = {"counts": counts, "comparison": None if c is None else asdict(c)}
    return json.dumps(body, sort_keys=True)


def status(store: ModelStore, stream: str) -> dict[str, Any]:
    """Champion, challenger and the last challenger events of ``stream`` (JSON-ready)."""

    def plain(x: Any) -> Any:
        return None if x is None else msgspec.to_builtins(x)

    return {
        "stream": stream,
        "champion": plain(store.active(stream)),
        "challenger": plain(store.challenger(stream)),
        "log": [plain(e) for e in store.challenger_log(stream)[:10]],
    }
