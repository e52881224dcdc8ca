"""The shadow report's figures: KS statistic as scipy computes it, mixes and flips."""

from __future__ import annotations

import numpy as np
import pytest

from streamscore.libs.rollout.report import compare, ks_statistic


def test_ks_statistic_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.beta(2, 5, size=int(rng.integers(5, 500))).tolist()
        b = rng.beta(2.5, 5, size=int(rng.integers(5, 500))).tolist()
        assert ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_mix_flips_and_missing_scores() -> None:
    pairs = [(("approve", 0.1, False), ("block", 0.99, False))] * 3 + [
        (("step_up", None, True), ("step_up", None, True))
    ]
    c = compare(pairs, ["approve", "step_up", "block"], versions=("a", "b"))
    assert c.flips == {"approve->block": 3} and c.agreement == 0.25
    assert c.champion.mix == {"approve": 0.75, "step_up": 0.25, "block": 0.0}
    assert c.champion.degraded_rate == 0.25 and c.ks == 1.0
    empty = compare([], ["approve"], versions=("a", "b"))
    assert empty.paired == 0 and empty.ks is None and empty.champion.score_quantiles is None
