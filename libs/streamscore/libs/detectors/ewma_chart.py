"""EWMA control chart (Roberts 1959) with time-varying limits, for a shift of the mean.

river has no EWMA chart: tests check its statistical behaviour instead of agreement.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from streamscore.libs.detectors import _baseline
from streamscore.libs.detectors._base import (
    DRIFT,
    CodeArray,
    Detector,
    FloatArray,
    IntArray,
    kernel,
)

# _f slots: baseline Welford (n, mean, m2), the EWMA, and the steps since the baseline.
_N, _MEAN, _M2, _Z, _T = range(5)


@kernel
def _reset_state(f: FloatArray, i: IntArray) -> None:
    f[_N] = 0.0
    f[_MEAN] = 0.0
    f[_M2] = 0.0
    f[_Z] = 0.0
    f[_T] = 0.0
    i[0] = 0
    i[1] = 0


@kernel
def _update(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    xs: FloatArray,
    out: CodeArray,
    f: FloatArray,
    i: IntArray,
    grace_period: int,
    lam: float,
    width: float,
) -> None:
    for j in range(xs.shape[0]):
        x = xs[j]
        if not math.isfinite(x):
            i[2] += 1
            out[j] = 0
            continue
        if i[0]:
            _reset_state(f, i)
        if f[_N] < grace_period:
            # 1. Learn the in-control mean and spread; the EWMA starts at that mean.
            _baseline.learn(f, x)
            f[_Z] = f[_MEAN]
            out[j] = 0
            continue
        sd = _baseline.std(f)
        f[_T] += 1.0
        f[_Z] = lam * x + (1.0 - lam) * f[_Z]
        # 2. Exact limits: mean ± width·σ·sqrt(λ/(2-λ)·(1-(1-λ)^(2t))).
        spread = sd * math.sqrt(lam / (2.0 - lam) * (1.0 - (1.0 - lam) ** (2.0 * f[_T])))
        i[0] = 1 if abs(f[_Z] - f[_MEAN]) > width * spread and spread > 0.0 else 0
        out[j] = DRIFT if i[0] else 0


class EWMAChart(Detector):
    """EWMA chart: ``z = λx + (1-λ)z``, a drift when ``z`` leaves mean ± L·σ_z.

    The first ``grace_period`` values after each reset estimate the in-control
    mean and standard deviation. With ``lam = 0.2`` and ``width = 3`` the
    in-control average run length of a known-parameter chart is about 560
    values, and small shifts (0.5-1σ) are caught sooner than by a Shewhart
    chart (Montgomery, table 9.11). Non-finite inputs are skipped and counted.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(5)
    >>> xs = np.concatenate([rng.normal(10, 2, 1000), rng.normal(13, 2, 200)])
    >>> hits = np.flatnonzero(EWMAChart(width=3.5).update_many(xs))
    >>> bool(1000 <= hits[0] <= 1015)
    True
    """

    _PARAMS = ("grace_period", "lam", "width")

    def __init__(self, grace_period: int = 200, lam: float = 0.2, width: float = 3.0) -> None:
        if not 0.0 < lam <= 1.0:
            raise ValueError("lam must be in (0, 1]")
        if grace_period < 2:
            raise ValueError("grace_period must be >= 2 (a standard deviation needs 2 values)")
        self.grace_period = grace_period
        self.lam = lam
        self.width = width
        self._f = np.zeros(5, dtype=np.float64)
        self._i = np.zeros(3, dtype=np.int64)
        _reset_state(self._f, self._i)
        self._bind()

    def _kernel(self) -> Callable[..., None]:
        return _update

    def _param_values(self) -> tuple[Any, ...]:
        return (int(self.grace_period), float(self.lam), float(self.width))
