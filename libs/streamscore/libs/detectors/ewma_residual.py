"""EWMA residual: each value's deviation from an exponentially weighted mean, in weighted SDs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from streamscore.libs.detectors._anomaly import FLAG, SCORE, SKIPPED, UnivariateAnomalyDetector
from streamscore.libs.detectors._base import FloatArray, IntArray, kernel

# _f slots (0 score is shared with every anomaly detector)
_MEAN, _VAR = 1, 2
# _i slots (0 flag, 1 skipped are shared with every anomaly detector)
_COUNT = 2


@kernel
def _update(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    xs: FloatArray,
    out: FloatArray,
    f: FloatArray,
    i: IntArray,
    alpha: float,
    grace_period: int,
    threshold: float,
) -> None:
    for j in range(xs.shape[0]):
        x = xs[j]
        if not math.isfinite(x):
            i[SKIPPED] += 1
            out[j] = math.nan
            continue
        # 1. Score the residual against the mean and variance before x (0 in the grace period).
        dev = x - f[_MEAN]
        score = 0.0
        if i[_COUNT] >= grace_period:
            sd = math.sqrt(f[_VAR])
            if sd > 0.0:
                score = dev / sd
            elif dev != 0.0:
                score = math.copysign(math.inf, dev)
        f[SCORE] = score
        i[FLAG] = 1 if abs(score) > threshold else 0
        out[j] = score
        # 2. Learn x (Finch 2009, "Incremental calculation of weighted mean and variance").
        if i[_COUNT] == 0:
            f[_MEAN] = x
            f[_VAR] = 0.0
        else:
            incr = alpha * dev
            f[_MEAN] += incr
            f[_VAR] = (1.0 - alpha) * (f[_VAR] + dev * incr)
        i[_COUNT] += 1


class EWMAResidual(UnivariateAnomalyDetector):
    """Residual of one sensor against its exponentially weighted mean, in weighted SDs.

    Each value ``x`` is scored ``(x - m) / sqrt(v)`` with ``m`` and ``v`` the
    exponentially weighted mean and variance of the values before it (weight
    ``alpha`` on the newest), then learned. The first value starts ``m`` (and
    ``v = 0``); after ``t`` more, ``m`` and ``v`` are exactly the mean and the
    variance with weights ``(1 - alpha) ** t`` on the first value and
    ``alpha * (1 - alpha) ** (t - k)`` on value ``k``. Signed score;
    ``anomaly_detected`` is ``abs(score) > threshold``. ``0`` during the first
    ``grace_period`` values; a zero variance makes any other value ``±inf``.

    Cheaper and quicker to adapt than ``RobustZScore`` (``O(1)`` per value, a
    memory of about ``1 / alpha`` values) but not robust: an outlier inflates
    ``v`` for a while, masking the ones right after it. Use it on smooth
    sensors, ``RobustZScore`` where outliers come in bursts.

    Non-finite values are skipped (score NaN, counted in ``n_skipped``, not
    learned). There is no river twin: tests compare with the explicit weighted
    sums computed by numpy.

    Parameters
    ----------
    alpha
        Weight of the newest value, in ``(0, 1]``.
    grace_period
        Values learned before the first score.
    threshold
        ``anomaly_detected`` when ``abs(score)`` exceeds it.

    Examples
    --------
    >>> import numpy as np
    >>> from streamscore.libs.detectors import EWMAResidual
    >>> rng = np.random.default_rng(0)
    >>> xs = rng.normal(20.0, 0.5, 300)
    >>> xs[250] = 25.0
    >>> det = EWMAResidual(alpha=0.05, grace_period=30, threshold=4.0)
    >>> scores, flags = det.update_many_with_flags(xs)
    >>> np.flatnonzero(flags).tolist()
    [250]
    """

    _PARAMS = ("alpha", "grace_period", "threshold")

    def __init__(self, alpha: float = 0.05, grace_period: int = 30, threshold: float = 4.0) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        if grace_period < 1:
            raise ValueError("grace_period must be >= 1")
        self.alpha = alpha
        self.grace_period = grace_period
        self.threshold = threshold
        self._f = np.zeros(3, dtype=np.float64)
        self._i = np.zeros(3, dtype=np.int64)
        self._bind()

    def _kernel(self) -> Callable[..., None]:
        return _update

    def _param_values(self) -> tuple[Any, ...]:
        return (float(self.alpha), int(self.grace_period), float(self.threshold))

    @classmethod
    def warmup(cls) -> None:
        """Compile (or load from Numba's cache) the kernel: batch and single paths."""
        det = cls(grace_period=1)
        det.update_many(np.array([0.0, 1.0, np.nan, 0.0]))
        det.update(0.0)
