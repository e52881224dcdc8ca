"""The report's aggregations against brute-force loops and the standard library."""

from __future__ import annotations

import random
import statistics
from typing import Any

import numpy as np
import pytest

from streamscore.libs.reporting.aggregate import (
    Bins,
    distribution,
    drift_timeline,
    histograms_by_group,
    mix_over_time,
    quantiles_over_time,
    realised_series,
    summarise,
    time_bins,
)


def _pct(values: list[float], p: int) -> float:
    """Linear-interpolation percentile from the standard library (an independent method)."""
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def test_distribution_equals_the_standard_library() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(-6, 1) for _ in range(2001)]
    d = distribution([*values, float("nan"), float("inf")])
    assert d.count == len(values)
    assert d.mean == pytest.approx(statistics.fmean(values), rel=1e-12)
    for p, got in ((50, d.p50), (95, d.p95), (99, d.p99)):
        assert got == pytest.approx(_pct(values, p), rel=1e-12)
    assert d.max == max(values)
    assert distribution([]).count == 0 and distribution([]).p99 is None


def test_time_bins_cover_every_time_with_a_readable_width() -> None:
    times = np.array([1_700_000_123.4, 1_700_003_700.0, 1_700_001_000.0])
    b = time_bins(times, target=60)
    assert b.width == 120.0  # 60 s would need 61 aligned bins for these 3577 s
    assert b.start % b.width == 0 and b.start <= times.min()
    assert b.edges()[-1] > times.max()
    idx = b.index(times)
    assert all(b.edges()[i] <= t < b.edges()[i + 1] for i, t in zip(idx, times, strict=True))
    assert time_bins(np.array([5.0])).n == 1
    many_days = time_bins(np.array([0.0, 400 * 86_400.0]), target=10)
    assert many_days.n <= 10 and many_days.edges()[-1] > 400 * 86_400


def test_quantiles_over_time_equal_a_loop_per_bin() -> None:
    rng = random.Random(5)
    times = [rng.uniform(0, 600) for _ in range(3000)]
    values = [rng.expovariate(200) for _ in times]
    bins = Bins(0.0, 60.0, 10)
    got = quantiles_over_time(times, values, bins, qs=(0.5, 0.99))
    for b in range(10):
        chunk = [v for t, v in zip(times, values, strict=True) if b * 60 <= t < (b + 1) * 60]
        assert got.counts[b] == len(chunk)
        assert got.quantiles[0.5][b] == pytest.approx(_pct(chunk, 50), rel=1e-12)
        assert got.quantiles[0.99][b] == pytest.approx(_pct(chunk, 99), rel=1e-12)
    empty = quantiles_over_time([5.0], [1.0], Bins(0.0, 10.0, 3))
    assert empty.counts.tolist() == [1, 0, 0] and np.isnan(empty.quantiles[0.5][1])


def test_mix_over_time_counts_and_shares() -> None:
    times = [0, 1, 2, 10, 11, 25]
    labels = ["approve", "block", "approve", "approve", "step_up", "block"]
    mix = mix_over_time(times, labels, Bins(0.0, 10.0, 3))
    assert mix.categories == ["approve", "block", "step_up"]
    assert mix.counts.tolist() == [[2, 1, 0], [1, 0, 1], [0, 1, 0]]
    assert mix.shares()[0].tolist() == pytest.approx([2 / 3, 1 / 3, 0])
    assert mix.shares().sum(axis=1).tolist() == pytest.approx([1, 1, 1])


def test_histograms_by_group_equal_numpy_per_group() -> None:
    scores = [0.1, 0.2, 0.95, float("nan"), 0.5, 0.55]
    versions = ["v1", "v1", "v1", "v1", "v2", "v2"]
    h = histograms_by_group(scores, versions, np.linspace(0, 1, 5))
    assert h["v1"].tolist() == [2, 0, 0, 1] and h["v2"].tolist() == [0, 0, 2, 0]


def test_summarise_one_stream() -> None:
    s = summarise(
        "transactions",
        event_time_s=[10.0, 20.0, 30.0, 40.0],
        latency_s=[0.002, 0.004, 0.001, 0.010],
        decisions=["approve", "approve", "block", "step_up"],
        degraded=[False, True, False, False],
        scores=[0.1, float("nan"), 0.9, 0.5],
        model_versions=["m1", "none", "m2", "m2"],
    )
    assert s.events == 4 and s.first_event_s == 10.0 and s.last_event_s == 40.0
    assert s.decisions == {"approve": 2, "block": 1, "step_up": 1}
    assert s.model_versions == {"m2": 2, "m1": 1, "none": 1}
    assert s.degraded_share == 0.25 and s.scored == 3
    assert s.mean_score == pytest.approx(0.5)
    assert s.latency_s.max == pytest.approx(0.010)
    assert s.latency_s.p50 == pytest.approx(_pct([0.002, 0.004, 0.001, 0.010], 50))


def test_drift_timeline_and_realised_series() -> None:
    alerts: list[dict[str, Any]] = [
        {"stream": "logins", "kind": "drift", "signal": "score", "segment": "all",
         "feature": None, "first_evidence_at": 50, "confirmed_at": 90, "effect_sds": 0.4,
         "related": [{}], "reason": "score moved"},
        {"stream": "transactions", "kind": "retrain_trigger", "signal": "feature",
         "segment": "all", "feature": "tx_amount", "first_evidence_at": 10,
         "confirmed_at": 20, "effect_sds": 1.0, "related": [], "reason": "inputs moved"},
    ]  # fmt: skip
    points = drift_timeline(alerts, float)
    assert [p.stream for p in points] == ["transactions", "logins"]
    assert points[1].related == 1 and points[0].feature == "tx_amount"

    report = {
        "stream": "transactions",
        "days": [
            {"model_version": "m1", "day": "2026-03-02", "status": "estimate", "auc": 0.8,
             "average_precision": None, "card_precision_at_k": 0.2, "label_completeness": 0.5},
            {"model_version": "m1", "day": "2026-03-01", "status": "realised", "auc": 0.9,
             "average_precision": 0.6, "card_precision_at_k": 0.3, "label_completeness": 1.0},
        ],
    }  # fmt: skip
    (series,) = realised_series(report)
    assert series.days == ["2026-03-01", "2026-03-02"]
    assert series.status == ["realised", "estimate"]
    assert series.metrics["auc"] == [0.9, 0.8]
    assert series.metrics["average_precision"] == [0.6, None]
