"""The scorer on a real broker: one decision and log record per event, hot swap between batches."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.decisions import TransactionDecision
from streamscore.libs.contracts.features import TransactionFeatures
from streamscore.libs.contracts.samples import sample_events
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.topics import STREAMS, TopicSpec, dlq_topic
from streamscore.services.clients import make_admin, make_consumer, make_producer
from streamscore.services.metrics import DecisionMetrics, StreamMetrics
from streamscore.services.scorer import Scorer, default_policy
from streamscore.services.stream_processor import StreamProcessor
from streamscore.services.topics_admin import create_topics

pytestmark = pytest.mark.integration
NAMES = model_features("transactions")
N = 2000


class Logistic:
    """A stand-in with the model protocol (the ONNX model plugs in the same way)."""

    feature_names: Sequence[str] = NAMES

    def __init__(self, version: str, shift: float) -> None:
        self.version, self.shift = version, shift

    def predict(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.floating[Any]]:
        return 1 / (1 + np.exp(-(X[:, 0].astype(np.float64) / 100 - self.shift)))


def _read(bootstrap: str, topic: str, n: int) -> list[Any]:
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
    deadline = time.monotonic() + 30
    while len(out) < n and time.monotonic() < deadline:
        out += [m for m in c.consume(2000, timeout=0.5) if m.error() is None]
    out += [m for m in c.consume(2000, timeout=1.0) if m.error() is None]
    c.close()
    return out


def test_scorer_decides_every_event_once_with_one_version(stack_settings: Settings) -> None:
    prefix = f"it-{uuid.uuid4().hex[:8]}."
    s = STREAMS["transactions"]
    src = prefix + s.feature_topic
    topics = [src, prefix + s.decision_topic, prefix + s.scored_log_topic, dlq_topic(src)]
    create_topics(make_admin(stack_settings), [TopicSpec(t, 3, 1) for t in topics])
    feed = make_producer(stack_settings, client_id="it-feed")
    rng = np.random.default_rng(0)
    now = datetime.now(tz=UTC)
    for ev in sample_events("transactions", N, seed=21):
        values: dict[str, float | None] = {n: float(rng.uniform(0, 5)) for n in NAMES}
        values["tx_amount"] = ev.amount  # type: ignore[attr-defined]
        values["customer_nb_tx_1d"] = None if rng.random() < 0.1 else 2.0
        fv = TransactionFeatures(
            event=ev,
            values=values,  # type: ignore[arg-type]
            feature_statuses={"customer_tx": "PRESENT", "terminal_risk": "PRESENT"},
            feature_freshness={"customer_tx": 1.0, "terminal_risk": 9.0},
            computed_at=now,
            schema_hash=feature_schema_hash("transactions"),
        )
        feed.send(src, encode(fv), key=ev.customer_id.encode())  # type: ignore[attr-defined]
    feed.send(src, b'{"not": "a feature vector"}', key=b"poison")
    assert feed.flush(30) == 0

    registry = CollectorRegistry()
    scorer = Scorer(
        "transactions",
        policy=default_policy("transactions"),
        model=Logistic("v1", 3.0),
        topic_prefix=prefix,
        metrics=DecisionMetrics(registry),
    )
    consumer = make_consumer(stack_settings, group_id=prefix + "scorer")
    consumer.subscribe([src])
    proc = StreamProcessor(
        consumer,
        make_producer(stack_settings, client_id="it-scorer"),
        scorer.handle,
        service="scorer",
        max_batch=100,
        topic_prefix=prefix,
        metrics=StreamMetrics(registry),
    )
    deadline = time.monotonic() + 60
    swapped = False
    while proc.stats.consumed < N + 1 and time.monotonic() < deadline:
        proc.step()
        if not swapped and proc.stats.consumed >= N // 2:
            scorer.swap_model(Logistic("v2", 2.0))
            swapped = True
    consumer.close()
    assert proc.stats.consumed == N + 1 and proc.stats.dead_lettered == 1

    # The metrics say the same, with bounded labels.
    def metric(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    decided = sum(
        metric("streamscore_decisions_total", stream="transactions", decision=o, path=k)
        for o in ("approve", "step_up", "block")
        for k in ("model", "rule", "degraded")
    )
    assert decided == N
    assert (
        metric(
            "streamscore_dead_letters_total",
            service="scorer",
            topic=dlq_topic(src),
            reason="extra_field",
        )
        == 1
    )
    assert metric("streamscore_decision_latency_seconds_count", stream="transactions") == N
    assert metric("streamscore_model_serving_info", stream="transactions", model_version="v2") == 1
    assert (
        registry.get_sample_value(
            "streamscore_model_serving_info", {"stream": "transactions", "model_version": "v1"}
        )
        is None
    )
    assert metric("streamscore_stage_seconds_count", service="scorer", stage="commit") > 0
    # Consume lag: one observation per record; every partition read to its end.
    assert metric("streamscore_consume_lag_seconds_count", service="scorer", topic=src) == N + 1
    lags = [
        s.value
        for mf in registry.collect()
        if mf.name == "streamscore_consumer_lag_records"
        for s in mf.samples
    ]
    assert lags and all(v == 0 for v in lags)
    for stage in ("model", "policy"):
        count = metric(
            "streamscore_decision_stage_seconds_count", stream="transactions", stage=stage
        )
        assert 0 < count <= proc.stats.batches  # a poison-only batch decides nothing

    decisions = [
        decode(TransactionDecision, m.value(), max_bytes=1 << 20)
        for m in _read(stack_settings.kafka_bootstrap or "", topics[1], N)
    ]
    ids = Counter(d.event_id for d in decisions)
    assert len(ids) == N and max(ids.values()) == 1
    versions = Counter(d.model_version for d in decisions)
    assert set(versions) == {"v1", "v2"} and sum(versions.values()) == N
    assert all(d.policy_version == default_policy("transactions").version for d in decisions)

    logs = [
        decode(ScoredEvent, m.value(), max_bytes=1 << 20)
        for m in _read(stack_settings.kafka_bootstrap or "", topics[2], N)
    ]
    assert len(logs) == N
    by_id = {d.event_id: d for d in decisions}
    for rec in logs:
        d = by_id[rec.event_id]
        assert (rec.decision, rec.score, rec.model_version) == (
            d.decision,
            d.score,
            d.model_version,
        )
        assert len(rec.values) == len(NAMES)
    missing = sum(rec.values[NAMES.index("customer_nb_tx_1d")] is None for rec in logs)
    assert 100 < missing < 300  # the 10% missing values stay missing in the log
