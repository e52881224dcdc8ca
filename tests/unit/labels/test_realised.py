"""Realised performance: the metrics against scikit-learn, cohorts realised or estimated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score

from streamscore.libs.labels.realised import delay_cdf, realised_report

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HORIZON = timedelta(days=10)


def final_table(
    rng: np.random.Generator, days: int, per_day: int, *, delay_days: float
) -> pa.Table:
    n = days * per_day
    t = [T0 + timedelta(days=i // per_day, seconds=int(rng.integers(0, 86_000))) for i in range(n)]
    y = rng.random(n) < 0.1
    score = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1).astype(np.float32).astype(float)
    delays = rng.exponential(delay_days, n)
    label_time = [ti + timedelta(days=float(d)) if yi else None
                  for ti, yi, d in zip(t, y, delays, strict=True)]  # fmt: skip
    return pa.table({
        "event_id": [f"e{i}" for i in range(n)],
        "event_time": pa.array(t, pa.timestamp("us", tz="UTC")),
        "customer_id": [f"C{int(c)}" for c in rng.integers(0, per_day // 2, n)],
        "model_version": ["m-1" if i % 3 else "m-2" for i in range(n)],
        "score": pa.array([None if i % 50 == 0 else float(s) for i, s in enumerate(score)]),
        "label": y,
        "label_time": pa.array(label_time, pa.timestamp("us", tz="UTC")),
    })  # fmt: skip


def test_realised_cohorts_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    table = final_table(rng, days=5, per_day=400, delay_days=2)
    rep = realised_report(table, "transactions", watermark=T0 + timedelta(days=40),
                          horizon=HORIZON, thresholds=[0.35, 0.8], k=20)  # fmt: skip
    assert {f.status for f in rep.days} == {"realised"} and len(rep.days) == 10
    d = table.to_pydict()
    for f in rep.days:
        rows = [
            i
            for i, t in enumerate(d["event_time"])
            if t.date().isoformat() == f.day
            and d["model_version"][i] == f.model_version
            and d["score"][i] is not None
        ]
        y = np.array([d["label"][i] for i in rows])
        s = np.array([d["score"][i] for i in rows])
        assert f.auc == pytest.approx(roc_auc_score(y, s))
        assert f.average_precision == pytest.approx(average_precision_score(y, s))
        for j, t in enumerate([0.35, 0.8]):
            assert f.precision[j] == pytest.approx(precision_score(y, s >= t, zero_division=0))
            assert f.recall[j] == pytest.approx(recall_score(y, s >= t))
        assert 0 <= (f.card_precision_at_k or 0) <= 1 and f.label_completeness == 1.0
    assert {(f.model_version, f.status) for f in rep.summary} == {
        ("m-1", "realised"),
        ("m-2", "realised"),
    }


def test_young_cohorts_are_estimates_with_their_completeness() -> None:
    rng = np.random.default_rng(1)
    table = final_table(rng, days=30, per_day=200, delay_days=3)
    w = T0 + timedelta(days=30)
    # What the joiner would know at w: labels that arrived by then, unlabelled otherwise.
    lt = table.column("label_time").to_pylist()
    known = [t is not None and t <= w for t in lt]
    seen = table.set_column(5, "label", pa.array(known)).set_column(
        6, "label_time", pa.array([t if k else None for t, k in zip(lt, known, strict=True)],
                                  pa.timestamp("us", tz="UTC")))  # fmt: skip
    rep = realised_report(
        seen, "transactions", watermark=w, horizon=HORIZON, thresholds=[0.5], k=10
    )
    est = {f.day: f for f in rep.days if f.status == "estimate" and f.model_version == "m-1"}
    assert len(est) == 10  # days 20-29: their end + the 10 d horizon is still ahead of w
    last = est[max(est)]
    assert last.label_completeness is not None and 0 < last.label_completeness < 0.5
    # Precision scaled by 1/completeness lands near the true precision of that day.
    truth = realised_report(table, "transactions", watermark=w + timedelta(days=60),
                            horizon=HORIZON, thresholds=[0.5], k=10)  # fmt: skip
    pooled_true = next(f for f in truth.summary if f.model_version == "m-1")
    pooled_est = next(f for f in rep.summary if f.model_version == "m-1" and f.status == "estimate")
    assert pooled_est.label_completeness is not None and pooled_est.label_completeness < 1
    assert pooled_true.precision[0] is not None and pooled_est.precision[0] is not None
    assert abs(pooled_est.precision[0] - pooled_true.precision[0]) < 0.15


def test_delay_cdf() -> None:
    f = delay_cdf(np.array([1, 2, 3, 4]))
    assert f is not None and f(np.array([0, 2, 10])).tolist() == [0.0, 0.5, 1.0]
    assert delay_cdf(np.array([], dtype=np.int64)) is None
