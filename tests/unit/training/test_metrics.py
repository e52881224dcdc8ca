"""Quality metrics: AUC ROC and AP against scikit-learn, CP@k against hand-computed days
and a brute-force transcription of its definition."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from streamscore.libs.training.metrics import (
    average_precision,
    card_precision_top_k,
    roc_auc,
)


def _data(seed: int, n: int, decimals: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.05
    y[:2] = [True, False]  # both classes, always
    s = rng.random(n) + 0.4 * y
    if decimals is not None:
        s = np.round(s, decimals)  # many ties
    return y, s


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("decimals", [None, 2, 1])
def test_auc_and_ap_equal_sklearn(seed: int, decimals: int | None) -> None:
    y, s = _data(seed, 3_000, decimals)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_extremes_and_refusals() -> None:
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc(y, [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert roc_auc(y, [0.5] * 4) == 0.5
    assert average_precision(y, [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert average_precision(y, [0.5] * 4) == 0.5  # one threshold: precision = prevalence
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="both classes"):
        average_precision([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        roc_auc(y, [0.1, np.nan, 0.3, 0.4])
    with pytest.raises(ValueError, match="labels but"):
        roc_auc(y, [0.1])


def test_card_precision_by_hand() -> None:
    # Three days, k = 2. Scores per card are the day's maximum; a card is
    # fraudulent on a day if any of its transactions that day is.
    day = [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    card = ["a", "a", "b", "c", "d", "a", "b", "c", "d", "b", "c", "d"]
    y = [0, 1, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1]
    s = [0.2, 0.9, 0.8, 0.3, 0.1, 0.9, 0.7, 0.6, 0.1, 0.2, 0.3, 0.25]
    cp = card_precision_top_k(day, card, y, s, k=2)
    # Day 0: a 0.9 (fraud), b 0.8, c 0.3 (fraud), d 0.1 -> top a, b: 1/2; a is caught.
    # Day 1: a removed; b 0.7, c 0.6 (fraud), d 0.1 (fraud) -> top b, c: 1/2; c is caught.
    # Day 2: c removed; b 0.2, d 0.25 (fraud) -> top d, b: 1/2.
    assert cp.per_day == (0.5, 0.5, 0.5)
    assert cp.fraud_cards == (2, 2, 1)
    assert cp.days == (0, 1, 2)
    assert cp.mean == pytest.approx(0.5)
    # Without removal, day 1 has a again: a 0.9 (fraud), b 0.7 -> 1/2; day 2 unchanged
    # except c comes back: c 0.3 and d 0.25 (fraud) -> 1/2.
    keep = card_precision_top_k(day, card, y, s, k=2, remove_detected=False)
    assert keep.per_day == (0.5, 0.5, 0.5)
    assert keep.fraud_cards == (2, 3, 1)
    # k larger than the cards of a day: every card is alerted, the precision still divides
    # by k. Day 0 catches a and c, day 1 (b, d) catches d, day 2 has b only.
    assert card_precision_top_k(day, card, y, s, k=10).per_day == (0.2, 0.1, 0.0)


def test_card_precision_ties_in_card_order() -> None:
    cp = card_precision_top_k([5, 5, 5], ["z", "y", "x"], [1, 0, 0], [0.5, 0.5, 0.5], k=1)
    assert cp.per_day == (0.0,)  # x comes first among the tied cards
    assert card_precision_top_k([5, 5], ["a", "b"], [1, 0], [0.5, 0.5], k=1).per_day == (1.0,)


def _cp_brute_force(
    day: list[int], card: list[str], y: list[bool], s: list[float], k: int
) -> float:
    detected: set[str] = set()
    daily = []
    for today in sorted(set(day)):
        best: dict[str, float] = defaultdict(lambda: -np.inf)
        bad: dict[str, bool] = defaultdict(bool)
        for d, c, yy, ss in zip(day, card, y, s, strict=True):
            if d == today and c not in detected:
                best[c] = max(best[c], ss)
                bad[c] = bad[c] or yy
        top = sorted(best, key=lambda c: (-best[c], c))[:k]
        hits = [c for c in top if bad[c]]
        detected.update(hits)
        daily.append(len(hits) / k)
    return float(np.mean(daily))


@pytest.mark.parametrize("seed", range(5))
def test_card_precision_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 2_000
    day = rng.integers(0, 7, n).tolist()
    card = [f"C{c:03d}" for c in rng.integers(0, 300, n)]
    y = (rng.random(n) < 0.05).tolist()
    s = np.round(rng.random(n) + 0.3 * np.array(y), 2).tolist()  # ties included
    got = card_precision_top_k(day, card, y, s, k=20).mean
    assert got == pytest.approx(_cp_brute_force(day, card, y, s, 20), abs=1e-12)
