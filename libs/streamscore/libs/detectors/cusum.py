"""Two-sided tabular CUSUM on standardised values (Page 1954; Montgomery's tabular form).

river has no CUSUM: tests check its statistical behaviour (detection delay,
in-control run length) instead of agreement.
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

# _f slots: baseline Welford (n, mean, m2), then the two cumulative sums.
_N, _MEAN, _M2, _HI, _LO = range(5)


@kernel
def _reset_state(f: FloatArray, i: IntArray) -> None:
    f[_N] = 0.0
    f[_MEAN] = 0.0
    f[_M2] = 0.0
    f[_HI] = 0.0
    f[_LO] = 0.0
    i[0] = 0
    i[1] = 0


@kernel
def _update(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    xs: FloatArray,
    out: CodeArray,
    f: FloatArray,
    i: IntArray,
    grace_period: int,
    k: float,
    h: float,
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
            # 1. Learn the in-control mean and spread from the first values after a reset.
            _baseline.learn(f, x)
            out[j] = 0
            continue
        sd = _baseline.std(f)
        z = (x - f[_MEAN]) / sd if sd > 0.0 else 0.0
        # 2. Accumulate standardised deviations beyond the allowance k, floored at 0.
        f[_HI] = max(0.0, f[_HI] + z - k)
        f[_LO] = max(0.0, f[_LO] - z - k)
        # 3. Signal when either sum passes h; the next value starts afresh (river-style).
        i[0] = 1 if (f[_HI] > h or f[_LO] > h) else 0
        out[j] = DRIFT if i[0] else 0


class CUSUM(Detector):
    """Two-sided CUSUM for a shift of the mean, in units of the in-control standard deviation.

    After each reset the first ``grace_period`` values estimate the in-control
    mean and standard deviation; then ``S+ = max(0, S+ + z - k)`` and
    ``S- = max(0, S- - z - k)`` with ``z`` the standardised value, and a drift
    is signalled when either exceeds ``h``. With ``k = 0.5`` (tuned to a shift
    of one standard deviation) and ``h = 5``, the in-control average run
    length of a known-parameter chart is about 465 values and a 2σ shift is
    caught after about 4 values (Montgomery, *Introduction to Statistical
    Quality Control*, table 9.3); estimating the baseline from ``grace_period``
    values shortens the in-control run length somewhat. Raise ``h`` to trade
    delay for fewer false alarms.

    Non-finite inputs are skipped and counted in ``n_skipped``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> xs = np.concatenate([rng.normal(0, 1, 1000), rng.normal(3, 1, 200)])
    >>> det = CUSUM(h=8.0)
    >>> hits = np.flatnonzero(det.update_many(xs))
    >>> bool(1000 <= hits[0] <= 1010)
    True
    """

    _PARAMS = ("grace_period", "k", "h")

    def __init__(self, grace_period: int = 200, k: float = 0.5, h: float = 5.0) -> None:
        if grace_period < 2:
            raise ValueError("grace_period must be >= 2 (a standard deviation needs 2 values)")
        self.grace_period = grace_period
        self.k = k
        self.h = h
        self._f = np.zeros(5, dtype=np.float64)
        self._i = np.zeros(3, dtype=np.int64)
        _reset_state(self._f, self._i)
        self._bind()

    def _kernel(self) -> Callable[..., None]:
        return _update

    def _param_values(self) -> tuple[Any, ...]:
        return (int(self.grace_period), float(self.k), float(self.h))
