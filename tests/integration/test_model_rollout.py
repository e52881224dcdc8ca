"""Champion / challenger rollout on the real Redis, real ONNX folders and (for rollback) the
real Kafka: the store's challenger slot, shadow scoring, canary routing, automatic rollback."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import msgspec
import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry

from streamscore.libs.config import Settings
from streamscore.libs.contracts.alerts import DriftAlert
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.decisions import TransactionDecision
from streamscore.libs.contracts.events import Transaction
from streamscore.libs.contracts.features import TransactionFeatures, event_of
from streamscore.libs.contracts.samples import sample_events
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.model.safety import ModelRefused
from streamscore.libs.model.synthetic import synthetic_rows
from streamscore.libs.rollout.judge import Bounds
from streamscore.libs.rollout.progression import Plan
from streamscore.libs.rollout.routing import in_canary
from streamscore.libs.topics import DRIFT_ALERT_TOPIC, STREAMS, TopicSpec, dlq_topic
from streamscore.services.clients import make_admin, make_consumer, make_producer
from streamscore.services.metrics import DecisionMetrics, StreamMetrics
from streamscore.services.model_store import ModelStore, ModelStoreError
from streamscore.services.rollout import challenger_runner
from streamscore.services.rollout_report import render, shadow_report
from streamscore.services.scorer import Scorer, default_policy
from streamscore.services.stream_processor import Decoded, Output, StreamProcessor
from streamscore.services.topics_admin import create_topics
from tests.model_folders import blocking, copied, renamed, tamper, trained
from tests.processor_runs import read_all

pytestmark = pytest.mark.integration
NAMES = model_features("transactions")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rollout-models")
    return {
        "v1": trained(root / "v1", "tx-ro-1", seed=1),
        "v2": trained(root / "v2", "tx-ro-2", seed=2),
        "bad": blocking(root / "bad", "tx-ro-blocks"),
    }


@pytest.fixture
def store(stack_settings: Settings) -> ModelStore:
    client = redis.Redis.from_url(stack_settings.redis_url or "")
    return ModelStore(client, namespace=f"it-ro-{uuid.uuid4().hex[:8]}")


def test_store_challenger_set_verified_cleared_and_promoted(
    store: ModelStore, models: dict[str, Path], tmp_path: Path
) -> None:
    s = "transactions"
    store.promote(s, models["v1"], "ops", "first")
    assert store.challenger(s) is None
    ref = store.set_challenger(
        s, models["v2"], mode="shadow", share=0.0, by="ml", reason="retrained"
    )
    ch = store.challenger(s)
    assert ch is not None and ch.ref == ref and ch.mode == "shadow"
    assert (ref.version, ref.promoted_by, ref.reason) == ("tx-ro-2", "ml", "retrained")
    # Same model again: its mode and share change.
    store.set_challenger(s, models["v2"], mode="canary", share=0.3, by="ml", reason="canary")
    ch = store.challenger(s)
    assert ch is not None and (ch.mode, ch.share) == ("canary", 0.3)
    # Refused like a promotion: nothing changes.
    with pytest.raises(ModelRefused, match="hash_mismatch"):
        store.set_challenger(
            s,
            tamper(copied(models["v2"], tmp_path / "t")),
            mode="shadow",
            share=0,
            by="a",
            reason="b",
        )
    with pytest.raises(ModelStoreError, match="active model"):
        store.set_challenger(s, models["v1"], mode="shadow", share=0, by="a", reason="b")
    with pytest.raises(ModelStoreError, match="share"):
        store.set_challenger(s, models["v2"], mode="canary", share=1.5, by="a", reason="b")
    with pytest.raises(ModelStoreError, match="mode"):
        store.set_challenger(s, models["v2"], mode="live", share=0.1, by="a", reason="b")  # type: ignore[arg-type]
    assert store.challenger(s) == ch
    # Compare-and-delete: another version's clear does nothing.
    assert store.clear_challenger(s, by="judge", reason="x", version="tx-other") is None
    assert store.clear_challenger(s, by="judge", reason="p99", version="tx-ro-2") == ch
    assert store.challenger(s) is None
    assert store.clear_challenger(s, by="judge", reason="again") is None
    # Promotion: the challenger becomes active and is pushed to the history.
    store.set_challenger(
        s,
        renamed(models["v2"], tmp_path / "v3", "tx-ro-3"),
        mode="canary",
        share=0.5,
        by="ml",
        reason="r",
    )
    promoted = store.promote_challenger(s, by="lead", reason="canary good")
    assert promoted.version == "tx-ro-3" and promoted.promoted_by == "lead"
    assert store.active(s) == promoted and store.history(s)[0] == promoted
    assert store.challenger(s) is None
    assert [e.action for e in store.challenger_log(s)][:2] == ["promoted", "cleared"]
    with pytest.raises(ModelStoreError, match="no challenger"):
        store.promote_challenger(s, by="lead", reason="again")


# -- the scorer: shadow, canary, rollback ------------------------------------------------

S = STREAMS["transactions"]
POLICY = default_policy("transactions")


def _vectors(n: int, seed: int, *, customers: int = 1000) -> list[Decoded]:
    """``n`` feature vectors of synthetic rows; customer keys drawn from ``customers``."""
    now = datetime.now(tz=UTC)
    rows = synthetic_rows(np.random.default_rng(seed), n)
    rng = np.random.default_rng(seed + 1000)
    out = []
    for i, (sample, row) in enumerate(
        zip(sample_events("transactions", n, seed=seed), rows, strict=True)
    ):
        ev = msgspec.structs.replace(
            cast(Transaction, sample), customer_id=f"C{int(rng.integers(customers)):06d}"
        )
        values = {k: (None if np.isnan(v) else float(v)) for k, v in zip(NAMES, row, strict=True)}
        fv = TransactionFeatures(
            event=ev,
            values=values,
            feature_statuses={"customer_tx": "PRESENT", "terminal_risk": "PRESENT"},
            feature_freshness={"customer_tx": 1.0, "terminal_risk": 1.0},
            computed_at=now,
            schema_hash=feature_schema_hash("transactions"),
        )
        out.append(Decoded(S.feature_topic, 0, i, ev.customer_id.encode(), 0, fv))
    return out


def _event(d: Decoded) -> Transaction:
    return cast(Transaction, event_of(cast(TransactionFeatures, d.message)))


def _on(outputs: list[Output], topic: str, kind: type[Any]) -> list[Any]:
    return [decode(kind, o.value, max_bytes=1 << 20) for o in outputs if o.topic == topic]


def _scorer(
    store: ModelStore, registry: CollectorRegistry, *, rollout: bool, prefix: str = "", **kw: Any
) -> Scorer:
    metrics = DecisionMetrics(registry)
    runner = challenger_runner(store, "transactions", metrics) if rollout else None
    if runner is not None:
        runner._refresh_s = 0.0  # every batch (the service polls every second)
        for k, v in kw.items():
            setattr(runner, k, v)
    return Scorer(
        "transactions",
        policy=POLICY,
        model=None,
        metrics=metrics,
        model_source=lambda: store.active("transactions"),
        model_refresh_s=0.0,
        rollout=runner,
        topic_prefix=prefix,
    )


def _without_time(ds: list[TransactionDecision]) -> list[TransactionDecision]:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    return [msgspec.structs.replace(d, decided_at=t) for d in ds]


def test_shadow_one_shadow_decision_per_event_and_live_decisions_unchanged(
    store: ModelStore, models: dict[str, Path]
) -> None:
    store.promote("transactions", models["v1"], "ops", "champion")
    store.set_challenger(
        "transactions", models["v2"], mode="shadow", share=0.0, by="ml", reason="r"
    )
    registry = CollectorRegistry()
    with_ch = _scorer(store, registry, rollout=True)
    without = _scorer(store, CollectorRegistry(), rollout=False)
    total = 0
    for seed in range(4):
        batch = _vectors(200, seed)
        out_a, out_b = with_ch.handle(batch), without.handle(batch)
        live_a = _on(out_a, S.decision_topic, TransactionDecision)
        live_b = _on(out_b, S.decision_topic, TransactionDecision)
        # The decision topic's content is the same as with no challenger at all.
        assert _without_time(live_a) == _without_time(live_b)
        assert {d.model_version for d in live_a} == {"tx-ro-1"}
        shadow = _on(out_a, S.shadow_decision_topic, TransactionDecision)
        assert [s.event_id for s in shadow] == [d.event_id for d in live_a]  # one per event
        assert {s.model_version for s in shadow} == {"tx-ro-2"}
        assert not _on(out_b, S.shadow_decision_topic, TransactionDecision)
        # Scored-event log stays the champion's.
        logged = _on(out_a, S.scored_log_topic, ScoredEvent)
        assert {s.model_version for s in logged} == {"tx-ro-1"}
        total += len(batch)
    shadowed = sum(
        registry.get_sample_value(
            "streamscore_rollout_decisions_total",
            {
                "stream": "transactions",
                "role": "challenger",
                "model_version": "tx-ro-2",
                "route": "shadow",
                "decision": o,
            },
        )
        or 0.0
        for o in POLICY.outcomes
    )
    assert shadowed == total
    assert (
        registry.get_sample_value(
            "streamscore_rollout_model_seconds_count",
            {"stream": "transactions", "role": "challenger", "model_version": "tx-ro-2"},
        )
        == 4
    )
    # Cleared: the scorer stops shadowing on its next refresh.
    store.clear_challenger("transactions", by="ops", reason="done")
    assert not _on(with_ch.handle(_vectors(50, 9)), S.shadow_decision_topic, TransactionDecision)


def test_canary_share_routes_a_stable_30_percent_of_entities(
    store: ModelStore, models: dict[str, Path]
) -> None:
    store.promote("transactions", models["v1"], "ops", "champion")
    store.set_challenger(
        "transactions", models["v2"], mode="canary", share=0.3, by="ml", reason="r"
    )
    scorer = _scorer(store, CollectorRegistry(), rollout=True, judge_every_s=0.0)
    by_customer: dict[str, set[str]] = {}
    for seed in range(6):
        batch = _vectors(500, seed)
        out = scorer.handle(batch)
        live = _on(out, S.decision_topic, TransactionDecision)
        logged = _on(out, S.scored_log_topic, ScoredEvent)
        assert [d.event_id for d in live] == [_event(b).event_id for b in batch]  # order kept
        assert [d.model_version for d in live] == [s.model_version for s in logged]
        # The log says which slot decided (the monitor watches the champion's only).
        roles = {"tx-ro-1": "champion", "tx-ro-2": "canary"}
        assert [s.model_role for s in logged] == [roles[s.model_version] for s in logged]
        assert not _on(out, S.shadow_decision_topic, TransactionDecision)
        for b, d in zip(batch, live, strict=True):
            by_customer.setdefault(_event(b).customer_id, set()).add(d.model_version)
    # Each customer always gets the same model, and it is the routing function's choice.
    assert all(len(v) == 1 for v in by_customer.values())
    for customer, versions in by_customer.items():
        expected = "tx-ro-2" if in_canary(customer, 0.3, salt="tx-ro-2") else "tx-ro-1"
        assert versions == {expected}
    share = sum(v == {"tx-ro-2"} for v in by_customer.values()) / len(by_customer)
    assert len(by_customer) > 900 and 0.25 < share < 0.35
    assert scorer.rollout is not None and scorer.rollout.verdicts == []  # two sound models
    assert store.challenger("transactions") is not None


def test_bad_canary_is_rolled_back_alerted_counted_on_real_kafka(
    stack_settings: Settings, store: ModelStore, models: dict[str, Path]
) -> None:
    prefix = f"it-ro-{uuid.uuid4().hex[:8]}."
    bootstrap = stack_settings.kafka_bootstrap or ""
    src = prefix + S.feature_topic
    topics = [src, dlq_topic(src)] + [
        prefix + t
        for t in (S.decision_topic, S.scored_log_topic, S.shadow_decision_topic, DRIFT_ALERT_TOPIC)
    ]
    create_topics(make_admin(stack_settings), [TopicSpec(t, 3, 1) for t in topics])
    store.promote("transactions", models["v1"], "ops", "champion")
    store.set_challenger(
        "transactions", models["bad"], mode="canary", share=0.3, by="ml", reason="bad"
    )
    n = 3000
    feed = make_producer(stack_settings, client_id="it-ro-feed")
    for i, d in enumerate(_vectors(n, 42)):
        feed.send(src, encode(d.message), key=d.key)
        if i % 500 == 499:
            feed.flush(30)
    assert feed.flush(30) == 0

    registry = CollectorRegistry()
    scorer = _scorer(store, registry, rollout=True, prefix=prefix, judge_every_s=0.0)
    consumer = make_consumer(stack_settings, group_id=prefix + "scorer")
    consumer.subscribe([src])
    proc = StreamProcessor(
        consumer,
        make_producer(stack_settings, client_id="it-ro-scorer"),
        scorer.handle,
        service="scorer",
        max_batch=100,
        topic_prefix=prefix,
        metrics=StreamMetrics(registry),
    )
    deadline = time.monotonic() + 120
    while proc.stats.consumed < n and time.monotonic() < deadline:
        proc.step()
    consumer.close()
    assert proc.stats.consumed == n

    # 1. The store no longer holds the challenger; the log says who and why.
    assert store.challenger("transactions") is None
    cleared = store.challenger_log("transactions")[0]
    assert (cleared.action, cleared.by) == ("cleared", "canary-judge")
    assert "block rate" in cleared.reason
    # 2. One alert on alerts.drift, kind rollback, saying why.
    produced = registry.get_sample_value(
        "streamscore_records_produced_total",
        {"service": "scorer", "topic": prefix + DRIFT_ALERT_TOPIC},
    )
    assert produced == 1.0
    alerts = [
        decode(DriftAlert, m.value(), max_bytes=1 << 20)
        for m in read_all(bootstrap, prefix + DRIFT_ALERT_TOPIC, 1)
    ]
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.kind, a.signal, a.feature, a.model_version) == (
        "rollback",
        "decision_rate",
        "block",
        "tx-ro-blocks",
    )
    assert (
        a.mean is not None
        and a.mean > 0.9
        and a.baseline_mean is not None
        and a.baseline_mean < 0.2
    )
    assert "tx-ro-blocks rolled back" in a.reason
    # 3. The counter, with the first bound broken as its reason.
    assert (
        registry.get_sample_value(
            "streamscore_model_rollbacks_total",
            {"stream": "transactions", "reason": "decision_rate"},
        )
        == 1.0
    )
    # 4. Every event decided exactly once; after the rollback, only the champion decides.
    decisions = [
        decode(TransactionDecision, m.value(), max_bytes=1 << 20)
        for m in read_all(bootstrap, prefix + S.decision_topic, n)
    ]
    assert len(decisions) == n and len({d.event_id for d in decisions}) == n
    by_time = sorted(decisions, key=lambda d: d.decided_at)
    bad = [i for i, d in enumerate(by_time) if d.model_version == "tx-ro-blocks"]
    assert bad, "the canary decided some events before it was judged"
    assert all(d.model_version == "tx-ro-1" for d in by_time[bad[-1] + 1 :])
    assert n - len(bad) > n // 2  # the judge stopped it long before the end
    assert all(d.decision == "block" for d in by_time if d.model_version == "tx-ro-blocks")


def test_rollout_report_compares_shadow_with_champion_from_kafka(
    stack_settings: Settings, store: ModelStore, models: dict[str, Path]
) -> None:
    prefix = f"it-ro-{uuid.uuid4().hex[:8]}."
    create_topics(
        make_admin(stack_settings),
        [TopicSpec(prefix + t, 3, 1) for t in (S.decision_topic, S.shadow_decision_topic)],
    )
    store.promote("transactions", models["v1"], "ops", "champion")
    store.set_challenger(
        "transactions", models["bad"], mode="shadow", share=0.0, by="ml", reason="r"
    )
    scorer = _scorer(store, CollectorRegistry(), rollout=True, prefix=prefix)
    producer = make_producer(stack_settings, client_id="it-ro-report")
    n = 0
    for seed in range(3):
        batch = _vectors(200, seed)
        for o in scorer.handle(batch):
            if o.topic in (prefix + S.decision_topic, prefix + S.shadow_decision_topic):
                producer.send(o.topic, o.value, key=o.key)
        n += len(batch)
    assert producer.flush(30) == 0
    comparison, counts = shadow_report(stack_settings, "transactions", prefix=prefix)
    assert counts == {"shadow": n, "decisions": n, "paired": n}
    assert comparison is not None
    assert (comparison.champion.model_version, comparison.challenger.model_version) == (
        "tx-ro-1",
        "tx-ro-blocks",
    )
    assert comparison.challenger.mix["block"] == 1.0 and comparison.champion.mix["block"] < 0.2
    assert comparison.ks is not None and comparison.ks > 0.9  # scores near 1 vs spread out
    assert comparison.agreement == comparison.champion.mix["block"]
    assert "block rate" in render(comparison)


def test_a_plan_moves_shadow_to_canary_then_waits_for_approval(
    store: ModelStore, models: dict[str, Path]
) -> None:
    """Progression in the scorer: a clean shadow becomes canary at the plan's share, a clean
    canary is marked ready (once) and stays a canary until an operator promotes it."""
    s = "transactions"
    store.promote(s, models["v1"], "ops", "champion")
    plan = Plan(shadow_events=600, canary_events=600, canary_share=0.5)  # promote: approval
    store.set_challenger(s, models["v2"], mode="shadow", share=0.0, by="ml", reason="r", plan=plan)
    # Model-call latency is not what this test is about (a loaded machine's p99 varies).
    scorer = _scorer(
        store, CollectorRegistry(), rollout=True, judge_every_s=0.0,
        bounds=Bounds(latency_floor_ms=1000.0),
    )  # fmt: skip
    modes = []
    for seed in range(25):
        scorer.handle(_vectors(200, seed))
        ch = store.challenger(s)
        modes.append(None if ch is None else (ch.mode, ch.ready))
    ch = store.challenger(s)
    assert ch is not None and (ch.mode, ch.share, ch.ready, ch.plan) == ("canary", 0.5, True, plan)
    assert modes.index(("canary", False)) >= 2  # 600 shadow decisions: 3 batches at least
    active = store.active(s)
    assert active is not None and active.version == "tx-ro-1"  # the approval is an operator's
    log = list(reversed(store.challenger_log(s)))
    assert [(e.action, e.by) for e in log] == [
        ("set", "ml"),
        ("advanced", "rollout-progression"),
        ("ready", "rollout-progression"),
    ]
    assert "shadow clean over" in log[1].reason and "canary clean over" in log[2].reason
    assert scorer.rollout is not None and [st.move for st in scorer.rollout.steps] == [
        "to_canary",
        "await_approval",
    ]
    live = _on(scorer.handle(_vectors(400, 77)), S.decision_topic, TransactionDecision)
    assert {d.model_version for d in live} == {"tx-ro-1", "tx-ro-2"}  # still a canary
    # The approval: the scorer adopts the new champion between batches.
    store.promote_challenger(s, by="ops-carol", reason="canary clean")
    live = _on(scorer.handle(_vectors(100, 78)), S.decision_topic, TransactionDecision)
    assert {d.model_version for d in live} == {"tx-ro-2"}
