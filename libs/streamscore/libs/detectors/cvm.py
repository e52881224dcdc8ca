"""Windowed two-sample Cramér-von Mises test against a fixed reference, ARL-calibrated."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from streamscore.libs.detectors import population as pop
from streamscore.libs.detectors._base import CodeArray, FloatArray, IntArray, as_stream, kernel
from streamscore.libs.detectors._sorted_window import push, search


def _reference_ties(ref: FloatArray) -> float:
    """``sum((r**3 - r) / 12)`` over the tie groups (sizes ``r``) of the sorted reference."""
    _, counts = np.unique(ref, return_counts=True)
    r = counts.astype(np.float64)
    return float(((r**3 - r) / 12.0).sum())


@kernel
def _cvm(ref: FloatArray, win: FloatArray, ref_ties: float) -> float:
    """Two-sample Cramér-von Mises ``T`` of sorted ``ref`` and ``win`` (scipy's, midranks for ties).

    scipy: ``U = n * sum((rank(ref_j) - j)**2) + m * sum((rank(win_i) - i)**2)``
    over the pooled midranks, ``T = U / (n m N) - (4 n m - 1) / (6 N)``. For a
    tie group at a value with ``r`` reference and ``c`` window copies, ``R``
    reference and ``C`` window values below it, the deviations of its
    reference copies are ``C + c/2 + ((r+1)/2 - t)``, ``t = 1..r``, summing to
    ``r (C + c/2)**2 + (r**3 - r)/12`` squared; the window copies likewise
    give ``c (R + r/2)**2 + (c**3 - c)/12``. Reference values between two
    window values share ``C``, so walking the distinct window values (galloping
    in the reference) gives ``U`` in O(m log(n/m)); ``ref_ties`` is the
    reference's own tie term. Every partial sum is a multiple of 1/4 held
    exactly in float64 for windows and references up to ~10^5.
    """
    n = ref.shape[0]
    m = win.shape[0]
    s_ref = 0.0  # sum over reference groups of r (C + c/2)**2
    s_win = 0.0  # sum over window groups of c (R + r/2)**2 + (c**3 - c)/12
    le_prev = 0
    c_prev = 0
    k = 0
    while k < m:
        v = win[k]
        e = k + 1
        while e < m and win[e] == v:
            e += 1
        c = float(e - k)
        lt = search(ref, v, le_prev, False)
        le = search(ref, v, lt, True)
        r = float(le - lt)
        s_ref += float(lt - le_prev) * float(c_prev) ** 2  # between the window values
        s_ref += r * (c_prev + c / 2.0) ** 2
        s_win += c * (lt + r / 2.0) ** 2 + (c**3 - c) / 12.0
        le_prev = le
        c_prev = e
        k = e
    s_ref += float(n - le_prev) * float(m) ** 2
    u = n * (s_ref + ref_ties) + m * s_win
    nm = n * m
    big_n = n + m
    return float(u / (nm * big_n) - (4 * nm - 1) / (6 * big_n))


def cvm_statistic(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """``scipy.stats.cramervonmises_2samp(a, b).statistic``, computed by this module's kernel.

    >>> round(cvm_statistic([1.0, 2.0, 3.0], [2.0, 2.0, 4.0, 5.0]), 12)
    0.154761904762
    """
    sa = np.sort(as_stream(a))
    return float(_cvm(sa, np.sort(as_stream(b)), _reference_ties(sa)))


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
            pop.decide(_cvm(ref, win, f[pop.EXTRA]), j, out, f, i, stats)
    return -1


class CvMDrift(pop.PopulationDetector):
    """Two-sample Cramér-von Mises statistic between a fixed reference and a sliding window.

    Every ``stride`` values, ``T`` (scipy's ``cramervonmises_2samp(...)
    .statistic``, midranks for ties) is compared with a limit calibrated for
    an in-control average run length of ``arl0`` values, not with a p-value.
    ``T`` integrates the squared CDF difference over the pooled sample, so it
    reacts to changes of scale and in the tails more than KS does. With ties
    (scipy's midrank formula) ``T`` also carries the spread of midranks within
    tie groups, an offset growing with the reference size that the calibrated
    limit absorbs (a rounded score with 5 000 reference values: limit ~4.7
    against ~0.86 for continuous data). Reference,
    window, restart after a drift, calibration and the NaN policy:
    ``streamscore.libs.detectors.population``; ``score`` is the last ``T``.

    Parameters are those of ``KSDrift``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> det = CvMDrift(reference=rng.normal(0, 1, 2000), window_size=200, stride=20,
    ...                arl0=5_000, n_sim=50)
    >>> hits = np.flatnonzero(det.update_many(rng.normal(0, 2, 300)))
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

    def _load_reference(self) -> None:
        self._f[pop.EXTRA] = _reference_ties(self._ref)

    def _kernel(self) -> Callable[..., Any]:
        return _update
