"""Daily investigator capacity on the real Redis: two scorers share one day's top-k alerts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import numpy as np
import pytest
import redis
from prometheus_client import CollectorRegistry
from redis.backoff import NoBackoff
from redis.retry import Retry

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import decode
from streamscore.libs.contracts.decisions import TransactionDecision
from streamscore.libs.contracts.features import TransactionFeatures
from streamscore.libs.contracts.samples import sample_events
from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.policy.capacity import CAPACITY_PATH
from streamscore.services.capacity import RedisCapacity
from streamscore.services.metrics import DecisionMetrics
from streamscore.services.scorer import Scorer, default_policy
from streamscore.services.stream_processor import Decoded, Output

pytestmark = pytest.mark.integration
NAMES = model_features("transactions")
K = 3
DAY = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = msgspec.structs.replace(
    default_policy("transactions"), version="cap-it", alerts_per_day=K
)  # step_up from 0.35, block from 0.80


class AmountScore:
    """The score is the amount / 1000 (so a test chooses each event's score)."""

    version = "amount-score"
    feature_names = NAMES

    def predict(self, X: np.ndarray) -> np.ndarray:
        return X[:, NAMES.index("tx_amount")].astype(np.float64) / 1000


def _batch(scores: list[float], tag: str, day: datetime = DAY) -> list[Decoded]:
    out = []
    events = sample_events("transactions", len(scores), seed=3)
    for i, (sample, s) in enumerate(zip(events, scores, strict=False)):
        ev = msgspec.structs.replace(sample, event_id=f"{tag}-{i}", event_time=day)
        fv = TransactionFeatures(
            event=ev,
            values={"tx_amount": s * 1000},  # type: ignore[arg-type]
            feature_statuses={"customer_tx": "PRESENT", "terminal_risk": "PRESENT"},
            feature_freshness={},
            computed_at=day,
            schema_hash=feature_schema_hash("transactions"),
        )
        out.append(Decoded("features.transactions", 0, i, b"k", 0, fv))
    return out


def _decided(outputs: list[Output]) -> list[tuple[str, str, str]]:
    ds = [
        decode(TransactionDecision, o.value, max_bytes=1 << 20)
        for o in outputs
        if o.topic.endswith("decisions.transactions")
    ]
    return [(d.event_id, d.decision, d.policy_path) for d in ds]


def _scorer(client: redis.Redis, ns: str, registry: CollectorRegistry | None = None) -> Scorer:
    metrics = DecisionMetrics(registry) if registry is not None else None
    return Scorer(
        "transactions",
        policy=POLICY,
        model=AmountScore(),
        metrics=metrics,
        capacity=RedisCapacity(client, namespace=ns, metrics=metrics),
    )


def test_two_scorers_share_the_days_top_k(stack_settings: Settings) -> None:
    client = redis.Redis.from_url(stack_settings.redis_url or "")
    ns = f"it-cap-{uuid.uuid4().hex[:6]}"
    registry = CollectorRegistry()
    a, b = _scorer(client, ns, registry), _scorer(client, ns)

    # 1. Five alerts on scorer A: the day now holds k = 3 (0.95, 0.79, 0.78); below 0.78 the
    #    step_ups go, the block stays, approvals are untouched.
    first = _decided(a.handle(_batch([0.79, 0.78, 0.77, 0.76, 0.95, 0.1], "a")))
    assert [(d, p) for _e, d, p in first] == [
        ("step_up", "model"),
        ("step_up", "model"),
        ("approve", CAPACITY_PATH),
        ("approve", CAPACITY_PATH),
        ("block", "model"),
        ("approve", "model"),
    ]
    # 2. Scorer B sees the same day: its step_ups below 0.78 go, its block stays (and
    #    raises the k-th score to 0.79).
    second = _decided(b.handle(_batch([0.75, 0.4, 0.9], "b")))
    assert [(d, p) for _e, d, p in second] == [
        ("approve", CAPACITY_PATH),
        ("approve", CAPACITY_PATH),
        ("block", "model"),
    ]
    # 3. At-least-once: B replays A's batch; nothing is counted twice and every event gets
    #    its first decision (0.78 was let through, though now below the k-th score 0.79).
    assert _decided(b.handle(_batch([0.79, 0.78, 0.77, 0.76, 0.95, 0.1], "a"))) == first
    top = f"{ns}:capacity:{{transactions:20261123}}"
    assert client.zcard(top) == K
    assert client.zrange(top, 0, -1) == [b"a-0", b"b-2", b"a-4"]
    assert 0 < client.ttl(top) <= 2 * 24 * 3600
    # 4. Another day has its own capacity.
    other = _decided(a.handle(_batch([0.5], "c", DAY.replace(day=24))))
    assert other[0][1:] == ("step_up", "model")
    # Downgrades are counted, with the stream only as label.
    got = registry.get_sample_value(
        "streamscore_capacity_downgrades_total", {"stream": "transactions"}
    )
    assert got == 2  # A's own (B has no metrics here)
    assert "capacity" in {
        r.code
        for o in a.handle(_batch([0.5], "d"))
        if o.topic.endswith("decisions.transactions")
        for r in decode(TransactionDecision, o.value, max_bytes=1 << 20).reasons
    }


def test_random_order_keeps_the_top_scores(stack_settings: Settings) -> None:
    """Scores in random order over two scorers: whatever scores at least the day's final
    k-th alert score survives, whatever was downgraded scores below it."""
    client = redis.Redis.from_url(stack_settings.redis_url or "")
    ns = f"it-cap-{uuid.uuid4().hex[:6]}"
    scorers = [_scorer(client, ns), _scorer(client, ns)]
    rng = np.random.default_rng(7)
    scores = [int(s) / 1000 for s in rng.integers(360, 790, 60)]  # all step_up
    decided: dict[str, tuple[float, str]] = {}
    for j in range(0, 60, 6):
        chunk = scores[j : j + 6]
        out = _decided(scorers[(j // 6) % 2].handle(_batch(chunk, f"r{j}")))
        for (event_id, outcome, _p), s in zip(out, chunk, strict=True):
            decided[event_id] = (s, outcome)
    kth = sorted(scores, reverse=True)[K - 1]
    kept = [s for s, o in decided.values() if o == "step_up"]
    assert all(s < kth for s, o in decided.values() if o == "approve")
    assert all(o == "step_up" for s, o in decided.values() if s >= kth)
    assert sorted(scores, reverse=True)[:K] == sorted(kept, reverse=True)[:K]
    assert K <= len(kept) < 60


def test_redis_unavailable_fails_open_and_is_counted(stack_settings: Settings) -> None:
    dead = redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    registry = CollectorRegistry()
    scorer = _scorer(dead, "it-cap-dead", registry)
    for _ in range(2):
        out = _decided(scorer.handle(_batch([0.5, 0.95, 0.1], f"x{uuid.uuid4().hex[:4]}")))
        assert [d for _e, d, _p in out] == ["step_up", "block", "approve"]
    labels = {"stream": "transactions"}
    # Both batches unenforced and counted; the second did not wait for Redis (backoff).
    assert registry.get_sample_value("streamscore_capacity_unavailable_total", labels) == 2
    assert scorer.capacity is not None and scorer.capacity.unavailable == 2  # type: ignore[attr-defined]
