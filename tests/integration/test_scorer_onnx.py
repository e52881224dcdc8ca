"""The scorer with a real XGBoost model exported to ONNX behind the parity gate."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import redis
from confluent_kafka import Consumer

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.decisions import TransactionDecision
from streamscore.libs.contracts.features import TransactionFeatures
from streamscore.libs.contracts.samples import sample_events
from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.model.safety import ModelRefused
from streamscore.libs.topics import STREAMS, TopicSpec, dlq_topic
from streamscore.services.clients import make_admin, make_consumer, make_producer
from streamscore.services.policy_store import PolicyStore
from streamscore.services.replay import find_scored, policy_version, replay
from streamscore.services.scorer import Scorer, default_policy, load_model
from streamscore.services.stream_processor import StreamProcessor
from streamscore.services.topics_admin import create_topics
from tests.conftest import transaction_rows

pytestmark = pytest.mark.integration
NAMES = model_features("transactions")
POLICY = default_policy("transactions")


def test_tampered_model_refused(transaction_model_dir: Path, tmp_path: Path) -> None:
    model_dir = transaction_model_dir
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in model_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    raw = bytearray((bad / "model.onnx").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (bad / "model.onnx").write_bytes(bytes(raw))
    with pytest.raises(ModelRefused):
        load_model(bad, "transactions")
    with pytest.raises(ModelRefused):  # a model for another stream's features
        load_model(model_dir, "logins")


def test_onnx_scorer_decides_with_reasons(
    stack_settings: Settings, transaction_model_dir: Path
) -> None:
    session, reasons = load_model(transaction_model_dir, "transactions")
    prefix = f"it-{uuid.uuid4().hex[:8]}."
    s = STREAMS["transactions"]
    src = prefix + s.feature_topic
    out_topic = prefix + s.decision_topic
    create_topics(
        make_admin(stack_settings),
        [TopicSpec(t, 2, 1) for t in (src, out_topic, prefix + s.scored_log_topic, dlq_topic(src))],
    )
    rng = np.random.default_rng(1)
    X = transaction_rows(rng, 1000)
    feed = make_producer(stack_settings, client_id="it-feed")
    now = datetime.now(tz=UTC)
    events = list(sample_events("transactions", len(X), seed=5))
    for ev, row in zip(events, X, strict=True):
        values = {n: (None if np.isnan(v) else float(v)) for n, v in zip(NAMES, row, strict=True)}
        fv = TransactionFeatures(
            event=ev,
            values=values,  # type: ignore[arg-type]
            feature_statuses={"customer_tx": "PRESENT", "terminal_risk": "PRESENT"},
            feature_freshness={"customer_tx": 1.0, "terminal_risk": 1.0},
            computed_at=now,
            schema_hash=feature_schema_hash("transactions"),
        )
        feed.send(src, encode(fv), key=ev.customer_id.encode())  # type: ignore[attr-defined]
    assert feed.flush(30) == 0

    scorer = Scorer(
        "transactions", policy=POLICY, model=session, explainer=reasons, topic_prefix=prefix
    )
    consumer = make_consumer(stack_settings, group_id=prefix + "g")
    consumer.subscribe([src])
    proc = StreamProcessor(
        consumer,
        make_producer(stack_settings, client_id="it-scorer"),
        scorer.handle,
        service="scorer",
        topic_prefix=prefix,
    )
    deadline = time.monotonic() + 60
    while proc.stats.consumed < len(X) and time.monotonic() < deadline:
        proc.step()
    consumer.close()

    reader = Consumer(
        {
            "bootstrap.servers": stack_settings.kafka_bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    reader.subscribe([out_topic])
    got: list[TransactionDecision] = []
    deadline = time.monotonic() + 30
    while len(got) < len(X) and time.monotonic() < deadline:
        got += [
            decode(TransactionDecision, m.value(), max_bytes=1 << 20)
            for m in reader.consume(1000, timeout=0.5)
            if m.error() is None
        ]
    reader.close()
    assert len({d.event_id for d in got}) == len(X) == len(got)
    # The scores are the ONNX model's, for the same rows.
    by_id = {d.event_id: d for d in got}
    expected = session.predict(X)
    for ev, p in zip(events, expected, strict=True):
        assert by_id[ev.event_id].score == pytest.approx(float(p), abs=1e-6)
        assert by_id[ev.event_id].model_version == "tx-fraud-it-1"
    flagged = [d for d in got if d.decision != "approve" and d.policy_path == "model"]
    assert flagged, "the model should flag some of the large amounts"
    for d in flagged:
        assert d.reasons and all(r.code in NAMES for r in d.reasons)
    assert all(d.reasons == [] for d in got if d.decision == "approve")

    # Any logged decision replays bit for bit from the scored-event log.
    store = PolicyStore(redis.Redis.from_url(stack_settings.redis_url or ""))
    sample = [d.event_id for d in flagged[:5]] + [
        d.event_id for d in got if d.decision == "approve"
    ][:5]
    for event_id in sample:
        rec = find_scored(stack_settings, "transactions", event_id, topic_prefix=prefix)
        policy = policy_version(store, "transactions", rec.policy_version)
        result = replay(rec, policy=policy, model_dir=transaction_model_dir)
        assert result.identical, (event_id, result)
        assert result.score == by_id[event_id].score
