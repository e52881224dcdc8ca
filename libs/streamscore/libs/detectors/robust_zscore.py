"""Robust z-score of each value against the median and MAD of the values before it."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from streamscore.libs.detectors._anomaly import FLAG, SCORE, SKIPPED, UnivariateAnomalyDetector
from streamscore.libs.detectors._base import FloatArray, IntArray, kernel

# 1 / Phi^-1(3/4): makes the MAD a consistent estimator of a normal standard deviation.
MAD_TO_SD = 1.482602218505602

# _i slots (0 flag, 1 skipped are shared with every anomaly detector)
_COUNT, _OLDEST = 2, 3


@kernel
def _median_and_mad(s: FloatArray) -> tuple[float, float]:
    """Median of the sorted ``s`` and median of ``|s - median|``, as numpy computes them.

    The deviations left of the median (``median - s[k]``, growing leftwards)
    and right of it (growing rightwards) are two sorted runs: merging them up
    to the middle finds the MAD in ``len(s) / 2`` steps without sorting.
    """
    n = s.shape[0]
    m = n // 2
    if n % 2:
        med = s[m]
        lo, hi = m, m + 1
    else:
        med = (s[m - 1] + s[m]) / 2.0
        lo, hi = m - 1, m
    prev = 0.0
    cur = 0.0
    for _ in range(m + 1):
        prev = cur
        if hi >= n or (lo >= 0 and med - s[lo] <= s[hi] - med):
            cur = med - s[lo]
            lo -= 1
        else:
            cur = s[hi] - med
            hi += 1
    mad = cur if n % 2 else (prev + cur) / 2.0
    return med, mad


@kernel
def _update(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    xs: FloatArray,
    out: FloatArray,
    f: FloatArray,
    i: IntArray,
    ring: FloatArray,
    ordered: FloatArray,
    threshold: float,
    min_scale: float,
) -> None:
    w = ring.shape[0]
    for j in range(xs.shape[0]):
        x = xs[j]
        if not math.isfinite(x):
            i[SKIPPED] += 1
            out[j] = math.nan
            continue
        n = i[_COUNT]
        # 1. Score against the window before x (0 until it is full).
        score = 0.0
        if n == w:
            med, mad = _median_and_mad(ordered)
            scale = max(MAD_TO_SD * mad, min_scale)
            dev = x - med
            if scale > 0.0:
                score = dev / scale
            elif dev != 0.0:
                score = math.copysign(math.inf, dev)
        f[SCORE] = score
        i[FLAG] = 1 if abs(score) > threshold else 0
        out[j] = score
        # 2. Learn: drop the oldest value from the sorted copy, insert x (shifting between).
        if n == w:
            old = ring[i[_OLDEST]]
            pos = np.searchsorted(ordered, old)
            for k in range(pos, w - 1):
                ordered[k] = ordered[k + 1]
            n -= 1
        k = n
        while k > 0 and ordered[k - 1] > x:
            ordered[k] = ordered[k - 1]
            k -= 1
        ordered[k] = x
        ring[i[_OLDEST]] = x
        i[_OLDEST] = (i[_OLDEST] + 1) % w
        i[_COUNT] = n + 1


class RobustZScore(UnivariateAnomalyDetector):
    """Robust z-score of one sensor: ``(x - median) / (1.4826 * MAD)`` over a sliding window.

    Each value is scored against the exact median and median absolute
    deviation (MAD) of the ``window_size`` values before it, then joins the
    window (the oldest leaves). The MAD, scaled by ``1 / Phi^-1(3/4) ~ 1.4826``,
    estimates the standard deviation of normal data, so the score reads like a
    z-score but a few outliers in the window barely move it (breakdown point
    50%). The score is signed (positive above the median); ``anomaly_detected``
    is ``abs(score) > threshold``, 3.5 by default (Iglewicz & Hoaglin's cut-off
    for the modified z-score). Scores are ``0`` until the window is full.

    A window whose MAD is 0 (more than half its values equal, as with counts)
    makes every other value infinitely far: the score is ``±inf`` (``0`` at the
    median itself), unless ``min_scale`` (in units of ``x``) floors the scale.

    Each update costs ``O(window_size)`` (a sorted copy of the window is kept
    by insertion; the MAD is a merge of two sorted runs).

    Non-finite values are skipped (score NaN, counted in ``n_skipped``, not
    learned). There is no river twin: tests compare with numpy's ``median``
    over each window.

    Parameters
    ----------
    window_size
        Number of past values the median and MAD are taken over.
    threshold
        ``anomaly_detected`` when ``abs(score)`` exceeds it.
    min_scale
        Floor of the scale ``1.4826 * MAD``; ``0`` keeps the textbook score.

    Examples
    --------
    >>> import numpy as np
    >>> from streamscore.libs.detectors import RobustZScore
    >>> xs = np.array([10.0, 11.0, 9.0, 10.0, 12.0, 10.0, 30.0, 10.5])
    >>> det = RobustZScore(window_size=5)
    >>> [round(float(s), 2) for s in det.update_many(xs)]
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 13.49, 0.34]
    >>> det.anomaly_detected, det.update_many_with_flags([30.0])[1].tolist()
    (False, [True])
    """

    _PARAMS = ("window_size", "threshold", "min_scale")
    _STATE = ("_f", "_i", "_ring", "_ordered")

    _ring: FloatArray
    _ordered: FloatArray

    def __init__(
        self, window_size: int = 100, threshold: float = 3.5, min_scale: float = 0.0
    ) -> None:
        if window_size < 1:
            raise ValueError("window_size must be >= 1")
        if not min_scale >= 0.0:
            raise ValueError("min_scale must be >= 0")
        self.window_size = window_size
        self.threshold = threshold
        self.min_scale = min_scale
        self._f = np.zeros(1, dtype=np.float64)
        self._i = np.zeros(4, dtype=np.int64)
        self._ring = np.zeros(window_size, dtype=np.float64)
        self._ordered = np.zeros(window_size, dtype=np.float64)
        self._bind()

    def _kernel(self) -> Callable[..., None]:
        return _update

    def _param_values(self) -> tuple[Any, ...]:
        return (float(self.threshold), float(self.min_scale))

    @classmethod
    def warmup(cls) -> None:
        """Compile (or load from Numba's cache) the kernel: batch and single paths."""
        det = cls(window_size=2)
        det.update_many(np.array([0.0, 1.0, np.nan, 0.0]))
        det.update(0.0)
