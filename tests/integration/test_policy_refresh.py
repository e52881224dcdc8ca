"""A policy changed in the store (as the API does) is adopted between batches, without restart."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import numpy as np
import pytest
import redis

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import decode
from streamscore.libs.contracts.decisions import TransactionDecision
from streamscore.libs.contracts.features import TransactionFeatures
from streamscore.libs.contracts.samples import sample_events
from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.policy.spec import Policy
from streamscore.services.policy_store import PolicyStore
from streamscore.services.scorer import Scorer, default_policy
from streamscore.services.stream_processor import Decoded

pytestmark = pytest.mark.integration
NAMES = model_features("transactions")


class Constant:
    """Every row scores 0.5 (enough to see which thresholds decide)."""

    version = "constant-0.5"
    feature_names = NAMES

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), 0.5)


def _batch(n: int, seed: int) -> list[Decoded]:
    now = datetime.now(tz=UTC)
    out = []
    for i, ev in enumerate(sample_events("transactions", n, seed=seed)):
        fv = TransactionFeatures(
            event=ev,
            values={"tx_amount": 10.0},  # type: ignore[arg-type]
            feature_statuses={"customer_tx": "PRESENT", "terminal_risk": "PRESENT"},
            feature_freshness={},
            computed_at=now,
            schema_hash=feature_schema_hash("transactions"),
        )
        out.append(Decoded("features.transactions", 0, i, b"k", 0, fv))
    return out


def _decisions(outputs: list) -> list[TransactionDecision]:  # type: ignore[type-arg]
    return [
        decode(TransactionDecision, o.value, max_bytes=1 << 20)
        for o in outputs
        if o.topic.endswith("decisions.transactions")
    ]


def test_scorer_adopts_the_store_policy_between_batches(stack_settings: Settings) -> None:
    client = redis.Redis.from_url(stack_settings.redis_url or "")
    stream = f"it{uuid.uuid4().hex[:6]}"  # a private key space in the shared Redis
    store = PolicyStore(client)
    base = default_policy("transactions")
    scorer = Scorer(
        "transactions",
        policy=base,
        model=Constant(),
        policy_source=lambda: store.active(stream),
        policy_refresh_s=0.0,
    )
    first = _decisions(scorer.handle(_batch(50, 1)))
    assert {(d.decision, d.policy_version) for d in first} == {("step_up", base.version)}

    # Thresholds raised above 0.5 in the store: the next batch approves, with the new version.
    stricter: Policy = msgspec.structs.replace(
        base, version=f"{base.version}-it", stream=stream, thresholds=[0.6, 0.9]
    )
    store.activate(stricter)
    scorer._policy_source = lambda: (
        msgspec.structs.replace(p, stream="transactions") if (p := store.active(stream)) else None
    )
    second = _decisions(scorer.handle(_batch(50, 2)))
    assert {(d.decision, d.policy_version) for d in second} == {("approve", stricter.version)}

    # The store unreachable: the current policy keeps deciding, the error is counted.
    def broken() -> Policy | None:
        raise redis.ConnectionError("store down")

    scorer._policy_source = broken
    third = _decisions(scorer.handle(_batch(50, 3)))
    assert {d.policy_version for d in third} == {stricter.version}
    assert scorer.policy_errors == 1
    # ... and it is not asked again at once (a dead store's timeouts stay off the hot path).
    scorer.handle(_batch(10, 4))
    assert scorer.policy_errors == 1
