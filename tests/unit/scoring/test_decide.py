"""From feature vectors to decision records: order, missing values, degraded rows, reasons."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.decisions import TransactionDecision
from streamscore.libs.contracts.events import Transaction
from streamscore.libs.contracts.features import TransactionFeatures
from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.policy.spec import load_policy
from streamscore.libs.scoring.decide import decide

ROOT = Path(__file__).resolve().parents[3]
POLICY = load_policy((ROOT / "policies" / "transactions.json").read_bytes())
NAMES = model_features("transactions")
T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


class AmountModel:
    """A stand-in model with the scoring protocol: a logistic curve of the amount."""

    version = "amount-logistic-1"
    feature_names: Sequence[str] = NAMES

    def predict(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.floating[Any]]:
        amount = X[:, NAMES.index("tx_amount")].astype(np.float64)
        return 1.0 / (1.0 + np.exp(-(amount / 100.0 - 3.0)))


class RecordingExplainer:
    def __init__(self) -> None:
        self.rows_seen = 0

    def top_reasons(self, X: npt.NDArray[np.float32], k: int) -> list[list[tuple[str, float]]]:
        self.rows_seen += len(X)
        return [[("tx_amount", float(x[0]))][:k] for x in X]


def vector(
    i: int, amount: float, *, status: str = "PRESENT", nb: float | None = 1.0
) -> TransactionFeatures:
    ev = Transaction(
        event_id=f"e{i}", event_time=T0, customer_id=f"C{i}", terminal_id="T1", amount=amount
    )
    values: dict[str, float | None] = {n: 0.5 for n in NAMES}
    values["tx_amount"] = amount
    values["customer_nb_tx_1d"] = nb
    return TransactionFeatures(
        event=ev,
        values=values,
        feature_statuses={"customer_tx": status, "terminal_risk": "PRESENT"},
        feature_freshness={"customer_tx": 3.0, "terminal_risk": 60.0},
        computed_at=T0,
        schema_hash=feature_schema_hash("transactions"),
    )


def run(
    vectors: list[TransactionFeatures],
    model: AmountModel | None = None,
    explainer: RecordingExplainer | None = None,
):  # type: ignore[no-untyped-def]
    return decide(
        vectors,
        stream="transactions",
        policy=POLICY,
        model=model,
        feature_names=NAMES,
        key_fields=["customer_id", "terminal_id"],
        now=T0,
        explainer=explainer,
    )


def test_decisions_follow_scores_and_validate() -> None:
    explainer = RecordingExplainer()
    out = run([vector(0, 10.0), vector(1, 300.0), vector(2, 900.0)], AmountModel(), explainer)
    got = [(d.decision, d.policy_path) for d in out.decisions]
    assert got == [("approve", "model"), ("step_up", "model"), ("block", "model")]
    assert {d.model_version for d in out.decisions} == {"amount-logistic-1"}
    assert {d.policy_version for d in out.decisions} == {POLICY.version}
    # Contributions only for the rows that are not approvals.
    assert explainer.rows_seen == 2
    assert out.decisions[0].reasons == []
    assert out.decisions[2].reasons[0].code == "tx_amount"
    for d in out.decisions:
        assert decode(TransactionDecision, encode(d), max_bytes=1 << 20) == d


def test_missing_values_are_nan_never_zero() -> None:
    out = run([vector(0, 10.0, nb=None)], AmountModel())
    col = list(out.feature_names).index("customer_nb_tx_1d")
    assert np.isnan(out.X[0, col])
    assert out.missing_cells == 1


@pytest.mark.parametrize("status", ["OUTSIDE_MAX_AGE", "ERROR"])
def test_stale_or_unavailable_features_degrade(status: str) -> None:
    d = run([vector(0, 10.0, status=status)], AmountModel()).decisions[0]
    assert (d.decision, d.degraded) == ("step_up", f"features:{status}:customer_tx")
    assert d.policy_path.startswith("degraded:")
    assert d.score is not None  # the model still scored


def test_new_entity_is_not_degraded() -> None:
    d = run([vector(0, 10.0, status="NOT_FOUND")], AmountModel()).decisions[0]
    assert (d.decision, d.degraded) == ("approve", None)


def test_without_a_model_every_row_is_degraded_and_unscored() -> None:
    out = run([vector(0, 10.0), vector(1, 20000.0)])
    assert [(d.decision, d.policy_path, d.score, d.model_version) for d in out.decisions] == [
        ("step_up", "degraded:no_score", None, "none"),
        ("block", "rule:amount_over_limit", None, "none"),
    ]


def test_replay_is_deterministic() -> None:
    vs = [vector(i, float(a)) for i, a in enumerate([5, 250, 700, 40, 12000])]
    a = [encode(d) for d in run(vs, AmountModel(), RecordingExplainer()).decisions]
    b = [encode(d) for d in run(vs, AmountModel(), RecordingExplainer()).decisions]
    assert a == b
