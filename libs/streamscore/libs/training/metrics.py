"""Fraud-model quality: AUC ROC, average precision and card precision top-k per day.

The three metrics of the fraud-detection handbook (Le Borgne et al., chapter 4):

- :func:`roc_auc`: the probability that a fraud scores above a genuine
  transaction, ties counting one half (Mann-Whitney, average ranks);
- :func:`average_precision`: ``sum_n (R_n - R_{n-1}) P_n`` over the distinct
  score thresholds, highest first (scikit-learn's ``average_precision_score``,
  no interpolation);
- :func:`card_precision_top_k` (CP@k): per day, each card's score is the
  highest score of its transactions that day and it is fraudulent if any of
  them is; the ``k`` cards with the highest scores are the day's alerts and
  the day's precision is the share of them that are fraudulent, divided by
  ``k`` even when fewer cards were active. A fraudulent card alerted on one
  day is removed from the following days (the investigators blocked it), as
  the handbook's ``card_precision_top_k`` does. CP@k is the mean over days.

Scores must be finite; labels are booleans (or 0/1).

>>> y = np.array([0, 0, 1, 1])
>>> s = np.array([0.1, 0.4, 0.35, 0.8])
>>> roc_auc(y, s), round(average_precision(y, s), 4)
(0.75, 0.8333)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def _check(
    y_true: npt.ArrayLike, y_score: npt.ArrayLike
) -> tuple[npt.NDArray[np.bool_], FloatArray]:
    y = np.asarray(y_true).astype(np.bool_).reshape(-1)
    s = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if len(y) != len(s):
        msg = f"{len(y)} labels but {len(s)} scores"
        raise ValueError(msg)
    if not np.isfinite(s).all():
        msg = "scores must be finite"
        raise ValueError(msg)
    if y.all() or not y.any():
        msg = "needs both classes among the labels"
        raise ValueError(msg)
    return y, s


def roc_auc(y_true: npt.ArrayLike, y_score: npt.ArrayLike) -> float:
    """Area under the ROC curve (ties between a fraud and a genuine count 1/2).

    >>> roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9])
    0.875
    """
    y, s = _check(y_true, y_score)
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    # 1-based average rank of each tie group, spread over its members (sorted order).
    ranks = np.repeat(first + (counts + 1) / 2.0, counts)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    pos_rank_sum = float(ranks[y[order]].sum())
    return (pos_rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def average_precision(y_true: npt.ArrayLike, y_score: npt.ArrayLike) -> float:
    """Average precision: precision at each distinct threshold, weighted by the recall gained.

    >>> average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
    0.8333333333333333
    """
    y, s = _check(y_true, y_score)
    order = np.argsort(-s, kind="mergesort")
    ys, ss = y[order], s[order]
    # The last row of each group of equal scores: one threshold per distinct score.
    last = np.r_[np.flatnonzero(np.diff(ss)), len(ss) - 1]
    tps = np.cumsum(ys)[last].astype(np.float64)
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass(frozen=True)
class CardPrecision:
    """CP@k: the precision of each day's top-k cards and their mean."""

    k: int
    days: tuple[int, ...]
    per_day: tuple[float, ...]
    #: Fraudulent cards per day (after removing those detected earlier): CP@k's ceiling is
    #: ``min(k, frauds) / k``.
    fraud_cards: tuple[int, ...]

    @property
    def mean(self) -> float:
        """The mean of the daily precisions (0 when there is no day)."""
        return float(np.mean(self.per_day)) if self.per_day else 0.0


def card_precision_top_k(
    day: npt.ArrayLike,
    card: npt.ArrayLike,
    y_true: npt.ArrayLike,
    y_score: npt.ArrayLike,
    k: int = 100,
    *,
    remove_detected: bool = True,
) -> CardPrecision:
    """CP@k over the days present in ``day`` (any integer day numbering).

    Cards tied at the k-th score are taken in card order (the handbook's pandas
    sort leaves that order unspecified).

    >>> day = [0, 0, 0, 0, 1, 1, 1]
    >>> card = ["a", "a", "b", "c", "a", "b", "c"]
    >>> y = [0, 1, 0, 0, 1, 0, 1]
    >>> s = [0.9, 0.2, 0.5, 0.4, 0.9, 0.8, 0.1]
    >>> cp = card_precision_top_k(day, card, y, s, k=2)
    >>> cp.per_day, cp.mean, cp.fraud_cards
    ((0.5, 0.5), 0.5, (1, 1))

    Day 0: cards a (its highest score 0.9; one of its transactions is a fraud)
    and b (0.5) are alerted, one of two is fraudulent. Card a was caught, so
    day 1 has b (0.8) and c (0.1, fraud) only: both alerted, 1/2 again. With
    one alert a day, day 1 alerts b only:

    >>> card_precision_top_k(day, card, y, s, k=1).per_day
    (1.0, 0.0)
    """
    if k < 1:
        msg = f"k must be >= 1 (got {k})"
        raise ValueError(msg)
    d = np.asarray(day, dtype=np.int64).reshape(-1)
    c: npt.NDArray[Any] = np.asarray(card).reshape(-1)
    y = np.asarray(y_true).astype(np.bool_).reshape(-1)
    s = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if not (len(d) == len(c) == len(y) == len(s)):
        msg = "day, card, labels and scores differ in length"
        raise ValueError(msg)
    if not np.isfinite(s).all():
        msg = "scores must be finite"
        raise ValueError(msg)
    names, codes = np.unique(c, return_inverse=True)
    codes = codes.reshape(-1)
    detected = np.zeros(len(names), dtype=np.bool_)
    days: list[int] = []
    per_day: list[float] = []
    frauds: list[int] = []
    for today in np.unique(d):
        rows = (d == today) & ~detected[codes]
        day_codes = codes[rows]
        best = np.full(len(names), -np.inf)
        np.maximum.at(best, day_codes, s[rows])
        bad = np.zeros(len(names), dtype=np.bool_)
        np.logical_or.at(bad, day_codes, y[rows])
        active = np.unique(day_codes)
        # Highest score first; ties in card order (stable sort of the sorted card codes).
        ranked = active[np.argsort(-best[active], kind="mergesort")]
        top = ranked[:k]
        hits = top[bad[top]]
        days.append(int(today))
        per_day.append(len(hits) / k)
        frauds.append(int(bad[active].sum()))
        if remove_detected:
            detected[hits] = True
    return CardPrecision(k=k, days=tuple(days), per_day=tuple(per_day), fraud_cards=tuple(frauds))
