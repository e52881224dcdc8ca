"""Windowed two-sample Kolmogorov-Smirnov test against a fixed reference, ARL-calibrated."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from streamscore.libs.detectors import population as pop
from streamscore.libs.detectors._base import CodeArray, FloatArray, IntArray, as_stream, kernel
from streamscore.libs.detectors._sorted_window import push, search

# scipy.stats.ks_2samp(method="auto") takes its exact branch up to this sample size, which
# rounds the statistic to the lattice of multiples of 1 / lcm(n, m).
_MAX_EXACT_N = 10_000


@kernel
def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


@kernel
def _ks(ref: FloatArray, win: FloatArray) -> float:
    """Two-sample KS statistic ``D`` of sorted ``ref`` and sorted ``win``, bit for bit scipy's.

    scipy evaluates ``F_ref(x) - F_win(x)`` (right-continuous empirical CDFs)
    at every pooled value. Between two consecutive distinct window values the
    window's CDF is constant and the reference's grows, so the extremes there
    are at the window value itself and at the last reference value before the
    next one: walking the distinct window values, with galloping searches in
    the reference, visits every extreme in O(m log(n/m)).

    scipy's ``method="auto"`` returns ``h / lcm(n, m)`` (``h`` an integer)
    when both sizes are at most 10 000, else the largest float difference
    ``count / n - count / m``: both are tracked, the first in exact integers.
    """
    n = ref.shape[0]
    m = win.shape[0]
    g = _gcd(n, m)
    lcm = (n // g) * m
    wn = m // g  # lcm / n
    wm = n // g  # lcm / m
    hi = 0.0  # the last pooled value gives 1 - 1 = 0
    lo = 0.0
    h_hi = 0
    h_lo = 0
    le_prev = 0  # reference values <= the previous distinct window value
    c_prev = 0  # window values <= it
    k = 0
    while k < m:
        v = win[k]
        e = k + 1
        while e < m and win[e] == v:
            e += 1
        lt = search(ref, v, le_prev, False)
        le = search(ref, v, lt, True)
        # the last reference value below v (if any): window CDF still at c_prev
        d = lt / n - c_prev / m
        hi = max(hi, d)
        lo = min(lo, d)
        h = lt * wn - c_prev * wm
        h_hi = max(h_hi, h)
        h_lo = min(h_lo, h)
        # v itself
        d = le / n - e / m
        hi = max(hi, d)
        lo = min(lo, d)
        h = le * wn - e * wm
        h_hi = max(h_hi, h)
        h_lo = min(h_lo, h)
        le_prev = le
        c_prev = e
        k = e
    if max(n, m) <= _MAX_EXACT_N:
        return float(max(h_hi, -h_lo) * 1.0 / lcm)
    low = min(max(-lo, 0.0), 1.0)
    return float(low if low > hi else hi)


def ks_statistic(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """``scipy.stats.ks_2samp(a, b).statistic`` (two-sided), computed by this module's kernel.

    >>> ks_statistic([1.0, 2.0, 3.0], [2.0, 2.0, 4.0, 5.0])
    0.5
    """
    return float(_ks(np.sort(as_stream(a)), np.sort(as_stream(b))))


@kernel
def _update(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    xs: FloatArray,
    out: CodeArray,
    f: FloatArray,
    i: IntArray,
    ref: FloatArray,
    ring: FloatArray,
    win: FloatArray,
    stride: int,
    stats: FloatArray,
) -> int:
    for j in range(xs.shape[0]):
        x = xs[j]
        out[j] = 0
        if not math.isfinite(x):
            i[2] += 1
            continue
        if i[pop.PENDING]:
            return j
        if i[0]:
            pop.restart(i)
        if i[pop.NREF] < ref.shape[0]:
            if pop.learn(x, i, ref):
                return j + 1
            continue
        push(x, i[pop.FILLED], i[pop.POS], ring, win)
        if pop.advance(i, ring.shape[0], stride):
            pop.decide(_ks(ref, win), j, out, f, i, stats)
    return -1


class KSDrift(pop.PopulationDetector):
    """Two-sample Kolmogorov-Smirnov statistic between a fixed reference and a sliding window.

    Every ``stride`` values, ``D = sup |F_ref - F_window|`` (scipy's
    ``ks_2samp(...).statistic``, ties included) is compared with a limit
    calibrated for an in-control average run length of ``arl0`` values, not
    with a p-value: with a p-value, a large volume of tests makes false alarms
    frequent. Reference, window, restart after a drift, calibration and the
    NaN policy: ``streamscore.libs.detectors.population``.

    Sensitive to any change of the distribution (location, scale, shape), most
    to shifts of the bulk; ``score`` is the last ``D``.

    Parameters
    ----------
    reference_size
        Values forming the reference (the first ones seen), unless
        ``reference`` is given.
    window_size
        Values in the sliding test window.
    stride
        Values between tests (``window_size`` for tumbling windows).
    arl0
        Target in-control average run length, in values (see the module
        ``population``).
    threshold
        Alarm limit for ``D``; ``None`` calibrates it for ``arl0``.
    n_sim
        Simulated runs for the calibration.
    seed
        Seed of the calibration's resampling.
    reference
        Reference values; then ``reference_size`` is not used and the
        calibration runs in the constructor.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> det = KSDrift(reference=rng.normal(0, 1, 2000), window_size=200, stride=20,
    ...               arl0=5_000, n_sim=50)
    >>> round(det.limit, 3)
    0.117
    >>> hits = np.flatnonzero(det.update_many(rng.normal(1, 1, 300)))
    >>> int(hits[0])
    199
    """

    _STATE = (*pop.PopulationDetector._STATE, "_win")

    _win: FloatArray

    def __init__(  # noqa: PLR0917 - river-style constructor
        self,
        reference_size: int = 5000,
        window_size: int = 200,
        stride: int = 20,
        arl0: float = 10_000,
        threshold: float | None = None,
        n_sim: int = 200,
        seed: int = 0,
        reference: Iterable[float] | None = None,
    ) -> None:
        super().__init__(
            reference_size, window_size, stride, arl0, threshold, n_sim, seed, reference
        )

    def _statistic_state(self) -> None:
        self._win = np.zeros(self.window_size, dtype=np.float64)

    def _kernel(self) -> Callable[..., Any]:
        return _update
