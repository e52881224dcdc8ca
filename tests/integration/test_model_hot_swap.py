"""A scorer adopts the model store's active model between batches, without restart (issue #5).

Real ONNX model folders, the real Redis; batches go through ``Scorer.handle`` as
the stream processor calls it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.decisions import TransactionDecision
from streamscore.libs.contracts.features import TransactionFeatures, event_of
from streamscore.libs.contracts.samples import sample_events
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.model.safety import ModelRefused
from streamscore.libs.model.synthetic import synthetic_rows
from streamscore.libs.scoring.decide import Explainer, ScoreModel
from streamscore.libs.topics import STREAMS, TopicSpec, dlq_topic
from streamscore.services.clients import make_admin, make_producer
from streamscore.services.metrics import DecisionMetrics
from streamscore.services.model_store import (
    ACTIVE_KEY,
    HISTORY_KEY,
    ModelRef,
    ModelStore,
    load_reference,
)
from streamscore.services.scorer import Scorer, default_policy, load_model
from streamscore.services.stream_processor import Decoded, Output
from streamscore.services.topics_admin import create_topics
from tests.model_folders import copied, renamed, tamper, trained
from tests.processor_runs import redis_db_url

pytestmark = pytest.mark.integration
NAMES = model_features("transactions")
POLICY = default_policy("transactions")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "v1": trained(root / "v1", "tx-swap-1", seed=1),
        "v2": trained(root / "v2", "tx-swap-2", seed=2),
    }


@pytest.fixture
def store(stack_settings: Settings) -> ModelStore:
    client = redis.Redis.from_url(stack_settings.redis_url or "")
    return ModelStore(client, namespace=f"it-{uuid.uuid4().hex[:8]}")


def _batch(n: int, seed: int) -> list[Decoded]:
    now = datetime.now(tz=UTC)
    rows = synthetic_rows(np.random.default_rng(seed), n)
    out = []
    events = sample_events("transactions", n, seed=seed)
    for i, (ev, row) in enumerate(zip(events, rows, strict=True)):
        values = {k: (None if np.isnan(v) else float(v)) for k, v in zip(NAMES, row, strict=True)}
        fv = TransactionFeatures(
            event=ev,
            values=values,  # type: ignore[arg-type]
            feature_statuses={"customer_tx": "PRESENT", "terminal_risk": "PRESENT"},
            feature_freshness={"customer_tx": 1.0, "terminal_risk": 1.0},
            computed_at=now,
            schema_hash=feature_schema_hash("transactions"),
        )
        out.append(Decoded("features.transactions", 0, i, b"k", 0, fv))
    return out


def _versions(outputs: list[Output]) -> set[str]:
    """The model versions of a batch's decisions and scored-log records (checked to agree)."""
    decisions = [
        decode(TransactionDecision, o.value, max_bytes=1 << 20)
        for o in outputs
        if o.topic.endswith("decisions.transactions")
    ]
    logged = [
        decode(ScoredEvent, o.value, max_bytes=1 << 20)
        for o in outputs
        if o.topic.endswith("scored.transactions")
    ]
    assert len(decisions) == len(logged) > 0
    assert [d.model_version for d in decisions] == [s.model_version for s in logged]
    assert not any(d.policy_path.startswith("degraded") for d in decisions)
    return {d.model_version for d in decisions}


class CountingLoader:
    """The real loader, counting calls and checking the scorer's lock is free meanwhile."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.scorer: Scorer | None = None

    def __call__(self, ref: ModelRef, stream: str) -> tuple[ScoreModel, Explainer | None]:
        self.calls.append(ref.version)
        assert self.scorer is not None
        # The lock is not held while the ONNX session is built (it is not re-entrant:
        # held here, this acquire would time out).
        assert self.scorer._lock.acquire(timeout=1.0)
        self.scorer._lock.release()
        return load_reference(ref, stream)


def test_scorer_switches_between_batches_and_keeps_serving_on_refusal(
    store: ModelStore, models: dict[str, Path], tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    loader = CountingLoader()
    session, reasons = load_model(models["v1"], "transactions")  # as `--model v1`
    scorer = Scorer(
        "transactions",
        policy=POLICY,
        model=session,
        explainer=reasons,
        metrics=DecisionMetrics(registry),
        model_source=lambda: store.active("transactions"),
        model_refresh_s=0.0,
        model_loader=loader,
    )
    loader.scorer = scorer
    # The store has no model yet: `--model` serves.
    assert _versions(scorer.handle(_batch(64, 1))) == {"tx-swap-1"}
    assert loader.calls == []

    # Promoted: the next batch, whole, is decided by the new version.
    store.promote("transactions", models["v2"], "ops", "retrained")
    for seed in (2, 3):
        assert _versions(scorer.handle(_batch(64, seed))) == {"tx-swap-2"}
    assert loader.calls == ["tx-swap-2"] and scorer.model_version == "tx-swap-2"
    assert (
        registry.get_sample_value(
            "streamscore_model_serving_info",
            {"stream": "transactions", "model_version": "tx-swap-2"},
        )
        == 1.0
    )

    # A refused promotion changes nothing at all.
    with pytest.raises(ModelRefused, match="hash_mismatch"):
        store.promote("transactions", tamper(copied(models["v1"], tmp_path / "bad")), "a", "b")
    assert _versions(scorer.handle(_batch(64, 4))) == {"tx-swap-2"}

    # A folder promoted and then damaged: the scorer refuses it, keeps v2, counts it by
    # reason, and does not try it again on every batch.
    late = renamed(models["v1"], tmp_path / "late", "tx-swap-3")
    store.promote("transactions", late, "ops", "damaged after promotion")
    tamper(late)
    for seed in (5, 6, 7):
        assert _versions(scorer.handle(_batch(64, seed))) == {"tx-swap-2"}
    assert loader.calls == ["tx-swap-2", "tx-swap-3"]
    assert scorer.model_refusals == {"hash_mismatch": 1}
    assert (
        registry.get_sample_value(
            "streamscore_model_refusals_total",
            {"stream": "transactions", "reason": "hash_mismatch"},
        )
        == 1.0
    )

    # Rolled back (to v2, already serving: nothing to load); then v1 promoted.
    assert store.rollback("transactions").version == "tx-swap-2"
    assert _versions(scorer.handle(_batch(64, 8))) == {"tx-swap-2"}
    store.promote("transactions", models["v1"], "ops", "back to the first")
    assert _versions(scorer.handle(_batch(64, 9))) == {"tx-swap-1"}
    assert loader.calls == ["tx-swap-2", "tx-swap-3", "tx-swap-1"]
    # Rolling back now would reach the damaged version: refused by the store itself.
    with pytest.raises(ModelRefused, match="hash_mismatch"):
        store.rollback("transactions")
    assert _versions(scorer.handle(_batch(64, 10))) == {"tx-swap-1"}
    assert (
        registry.get_sample_value(
            "streamscore_model_serving_info",
            {"stream": "transactions", "model_version": "tx-swap-2"},
        )
        is None
    )


def test_the_store_wins_over_the_start_model_and_outages_keep_serving(
    store: ModelStore, models: dict[str, Path]
) -> None:
    store.promote("transactions", models["v2"], "ops", "the operator's latest word")
    session, reasons = load_model(models["v1"], "transactions")  # `--model v1` at start
    reads: list[Any] = []

    def source() -> ModelRef | None:
        reads.append(1)
        return store.active("transactions")

    scorer = Scorer(
        "transactions",
        policy=POLICY,
        model=session,
        explainer=reasons,
        model_source=source,
        model_refresh_s=60.0,
    )
    # Adopted before the very first batch is decided.
    assert _versions(scorer.handle(_batch(32, 1))) == {"tx-swap-2"}
    # ... and the store is not asked again within the refresh interval.
    scorer.handle(_batch(32, 2))
    assert len(reads) == 1

    # The store unreachable: the serving model goes on, the error is counted, and the
    # next attempt waits for the back-off (a dead store stays off the decision path).
    def broken() -> ModelRef | None:
        raise redis.ConnectionError("store down")

    scorer._model_source, scorer._model_refresh_s = broken, 0.0
    assert _versions(scorer.handle(_batch(32, 3))) == {"tx-swap-2"}
    assert _versions(scorer.handle(_batch(32, 4))) == {"tx-swap-2"}
    assert scorer.model_refusals == {"store_unreadable": 1}


def test_no_start_model_adopts_the_store_model(store: ModelStore, models: dict[str, Path]) -> None:
    scorer = Scorer(
        "transactions",
        policy=POLICY,
        model=None,
        model_source=lambda: store.active("transactions"),
        model_refresh_s=0.0,
    )
    assert scorer.model_version is None
    store.promote("transactions", models["v1"], "ops", "first")
    assert _versions(scorer.handle(_batch(16, 1))) == {"tx-swap-1"}


#: A database of its own: the process reads the default namespace there, no other scorer does.
REDIS_DB = 13


def _read_decisions(settings: Settings, topic: str, n: int) -> dict[str, TransactionDecision]:
    c = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    c.subscribe([topic])
    got: dict[str, TransactionDecision] = {}
    deadline = time.monotonic() + 60
    while len(got) < n and time.monotonic() < deadline:
        for m in c.consume(1000, timeout=0.5):
            if m.error() is None:
                d = decode(TransactionDecision, m.value() or b"", max_bytes=1 << 20)
                got[d.event_id] = d
    c.close()
    return got


def test_scorer_process_adopts_a_promotion_without_restart(
    stack_settings: Settings, models: dict[str, Path]
) -> None:
    url = redis_db_url(stack_settings.redis_url or "", REDIS_DB)
    client = redis.Redis.from_url(url)
    for key in (ACTIVE_KEY, HISTORY_KEY):
        client.delete(key.format(ns="streamscore", stream="transactions"))
    store = ModelStore(client)  # the default namespace: the one `run_scorer` reads
    prefix = f"it-{uuid.uuid4().hex[:8]}."
    s = STREAMS["transactions"]
    src, out = prefix + s.feature_topic, prefix + s.decision_topic
    create_topics(
        make_admin(stack_settings),
        [TopicSpec(t, 2, 1) for t in (src, out, prefix + s.scored_log_topic, dlq_topic(src))],
    )
    feed = make_producer(stack_settings, client_id="it-feed")

    def send(batch: list[Decoded]) -> set[str]:
        for d in batch:
            feed.send(src, encode(d.message), key=d.key)
        assert feed.flush(30) == 0
        return {event_of(d.message).event_id for d in batch}  # type: ignore[arg-type]

    argv = [sys.executable, "-m", "streamscore.services.cli", "scorer", "--stream"]
    argv += ["transactions", "--model", str(models["v1"]), "--topic-prefix", prefix]
    env = {**os.environ, "KAFKA_BOOTSTRAP": stack_settings.kafka_bootstrap or "", "REDIS_URL": url}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        before = send(_batch(300, 11))
        got = _read_decisions(stack_settings, out, len(before))
        assert {got[i].model_version for i in before} == {"tx-swap-1"}  # `--model`

        store.promote("transactions", models["v2"], "ops", "hot swap")
        time.sleep(1.5)  # past the scorer's model refresh interval (1 s)
        after = send(_batch(300, 12))
        got = _read_decisions(stack_settings, out, len(before) + len(after))
        assert set(got) == before | after  # nothing lost
        assert {got[i].model_version for i in before} == {"tx-swap-1"}
        assert {got[i].model_version for i in after} == {"tx-swap-2"}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, proc.stderr.read().decode() if proc.stderr else ""
