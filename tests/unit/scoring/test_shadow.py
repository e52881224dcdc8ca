"""A shadow policy decides a scored batch again: same scores and features, no effect."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import numpy as np

from streamscore.libs.contracts.features import TransactionFeatures
from streamscore.libs.contracts.samples import sample_events
from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.policy.budget import DegradedBudget
from streamscore.libs.policy.spec import load_policy
from streamscore.libs.scoring.decide import decide, shadow_outcomes

NAMES = model_features("transactions")
ROOT_POLICY = b"""{"stream": "transactions", "version": "%s",
  "outcomes": ["approve", "step_up", "block"], "thresholds": [%s],
  "degraded": {"floor": "step_up", "max_approvals_per_minute": 1}}"""


class AmountScore:
    version = "amount"
    feature_names = NAMES

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, X: np.ndarray) -> np.ndarray:
        self.calls += 1
        return X[:, NAMES.index("tx_amount")].astype(np.float64) / 1000


def test_shadow_decides_the_same_scores_without_touching_the_active_decisions() -> None:
    now = datetime.now(tz=UTC)
    vectors = [
        TransactionFeatures(
            event=ev,
            values={"tx_amount": amount},  # type: ignore[arg-type]
            feature_statuses={"customer_tx": "PRESENT"},
            feature_freshness={},
            computed_at=now,
            schema_hash=feature_schema_hash("transactions"),
        )
        for ev, amount in zip(
            sample_events("transactions", 3, seed=1), [100.0, 500.0, 950.0], strict=False
        )
    ]
    active = load_policy(ROOT_POLICY % (b"a", b"0.35, 0.8"))
    shadow = load_policy(ROOT_POLICY % (b"s", b"0.6, 0.9"))
    model = AmountScore()
    kw = {"stream": "transactions", "feature_names": NAMES, "key_fields": [], "now": now}
    scored = decide(vectors, policy=active, model=model, **kw)  # type: ignore[arg-type]
    before = msgspec.json.encode(scored.decisions)
    active_budget, shadow_budget = (
        DegradedBudget(max_approvals_per_minute=1),
        DegradedBudget(max_approvals_per_minute=1),
    )
    got = shadow_outcomes(
        vectors, scored, policy=shadow, key_fields=[], now=now, budget=shadow_budget
    )
    assert [d.decision for d in scored.decisions] == ["approve", "step_up", "block"]
    assert [d.outcome for d in got] == ["approve", "approve", "block"]
    assert {d.policy_path for d in got} == {"model"}
    # No model call, nothing in the active decisions or budget changed.
    assert model.calls == 1
    assert msgspec.json.encode(scored.decisions) == before
    assert active_budget.granted_total == 0 and active_budget.refused == 0
