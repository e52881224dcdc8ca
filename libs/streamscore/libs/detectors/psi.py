"""Windowed Population Stability Index over quantile bins of a fixed reference, ARL-calibrated."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from streamscore.libs.detectors import population as pop
from streamscore.libs.detectors._base import CodeArray, FloatArray, IntArray, as_stream, kernel


def _edges(ref: FloatArray, n_bins: int) -> FloatArray:
    """Inner bin edges from the sorted reference, padded with +inf to ``n_bins - 1``.

    The ``k / n_bins`` quantiles (``k = 1 .. n_bins - 1``, the "inverted CDF"
    definition, so edges are reference values), deduplicated: bins are
    ``(-inf, e1], (e1, e2], ..., (e_last, inf)``, and an atom of a discrete
    distribution lies in one bin. Padding edges give bins empty on both sides,
    which add nothing to the index.
    """
    n = ref.shape[0]
    idx = np.ceil(np.arange(1, n_bins) * n / n_bins).astype(np.int64) - 1
    inner = np.unique(ref[idx])
    edges = np.full(n_bins - 1, math.inf, dtype=np.float64)
    edges[: inner.shape[0]] = inner
    return edges


def _proportions(sorted_values: FloatArray, edges: FloatArray, eps: float) -> FloatArray:
    """Share of ``sorted_values`` in each bin, floored at ``eps``."""
    upto = np.searchsorted(sorted_values, edges, side="right")
    counts = np.diff(np.concatenate([[0], upto, [sorted_values.shape[0]]]))
    shares: FloatArray = np.maximum(counts / sorted_values.shape[0], eps)
    return shares


def psi_statistic(
    reference: npt.ArrayLike, sample: npt.ArrayLike, n_bins: int = 10, eps: float = 1e-4
) -> float:
    """PSI of ``sample`` against ``reference``, as ``PSIDrift`` computes it (numpy, for checks).

    ``sum((a - e) * ln(a / e))`` over the reference's quantile bins, ``e`` and
    ``a`` the reference and sample shares floored at ``eps``.

    >>> psi_statistic([1, 2, 3, 4], [4, 3, 2, 1], n_bins=2)
    0.0
    >>> round(psi_statistic([1, 2, 3, 4], [1, 4, 4, 4], n_bins=2), 4)
    0.2747
    >>> round(psi_statistic([1, 2, 3, 4], [3, 4, 4, 4], n_bins=2), 2)  # an empty bin: eps
    4.6
    """
    ref = np.sort(as_stream(reference))
    edges = _edges(ref, n_bins)
    e = _proportions(ref, edges, eps)
    a = _proportions(np.sort(as_stream(sample)), edges, eps)
    return float(np.sum((a - e) * np.log(a / e)))


@kernel
def _bin(x: float, edges: FloatArray) -> int:
    """Index of the bin of ``x``: the number of edges below it."""
    lo = 0
    hi = edges.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if edges[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@kernel
def _psi(hist: IntArray, expected: FloatArray, m: int, eps: float) -> float:
    s = 0.0
    for k in range(hist.shape[0]):
        a = max(hist[k] / m, eps)
        s += (a - expected[k]) * math.log(a / expected[k])
    return s


@kernel
def _update(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    xs: FloatArray,
    out: CodeArray,
    f: FloatArray,
    i: IntArray,
    ref: FloatArray,
    ring: FloatArray,
    edges: FloatArray,
    expected: FloatArray,
    hist: IntArray,
    stride: int,
    eps: float,
    stats: FloatArray,
) -> int:
    size = ring.shape[0]
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
            hist[:] = 0
        if i[pop.NREF] < ref.shape[0]:
            if pop.learn(x, i, ref):
                return j + 1
            continue
        pos = i[pop.POS]
        if i[pop.FILLED] >= size:
            hist[_bin(ring[pos], edges)] -= 1
        ring[pos] = x
        hist[_bin(x, edges)] += 1
        if pop.advance(i, size, stride):
            pop.decide(_psi(hist, expected, size, eps), j, out, f, i, stats)
    return -1


class PSIDrift(pop.PopulationDetector):
    """Population Stability Index between a fixed reference and a sliding window.

    The reference is cut into ``n_bins`` bins at its quantiles (edges are
    reference values; tied edges merge, so a discrete score gets at most one
    bin per atom); every ``stride`` values ``PSI = sum((a - e) ln(a / e))``
    over the bins, with ``e`` and ``a`` the reference's and the window's
    shares, each floored at ``eps`` so that an empty bin counts as a share of
    ``eps`` (a bin the window leaves empty adds about ``e ln(e / eps)``, 0.69
    for ``e = 0.1`` and ``eps = 1e-4``). It is compared with a limit
    calibrated for an in-control average run length of ``arl0`` values, not
    with the usual 0.1 / 0.25 rules of thumb, whose false-alarm rate depends
    on the window size. Reference, window, restart after a drift, calibration
    and the NaN policy: ``streamscore.libs.detectors.population``; ``score``
    is the last PSI.

    Parameters are those of ``KSDrift``, and

    n_bins
        Number of quantile bins of the reference (fewer when edges tie).
    eps
        Floor of the bin shares (empty bins).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> det = PSIDrift(reference=rng.normal(0, 1, 2000), window_size=200, stride=20,
    ...                arl0=5_000, n_sim=50)
    >>> hits = np.flatnonzero(det.update_many(rng.normal(1, 1, 300)))
    >>> int(hits[0])
    199
    """

    _PARAMS = (*pop.PopulationDetector._PARAMS, "n_bins", "eps")
    _STATE = (*pop.PopulationDetector._STATE, "_edges", "_expected", "_hist")

    _edges: FloatArray
    _expected: FloatArray
    _hist: IntArray

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
        n_bins: int = 10,
        eps: float = 1e-4,
    ) -> None:
        if n_bins < 2:
            raise ValueError("n_bins must be at least 2")
        if not 0.0 < eps < 1.0:
            raise ValueError("eps must be in (0, 1)")
        self.n_bins = n_bins
        self.eps = eps
        super().__init__(
            reference_size, window_size, stride, arl0, threshold, n_sim, seed, reference
        )

    def _statistic_state(self) -> None:
        self._edges = np.full(self.n_bins - 1, math.inf, dtype=np.float64)
        self._expected = np.full(self.n_bins, 1.0 / self.n_bins, dtype=np.float64)
        self._hist = np.zeros(self.n_bins, dtype=np.int64)

    def _load_reference(self) -> None:
        self._edges[:] = _edges(self._ref, self.n_bins)
        self._expected[:] = _proportions(self._ref, self._edges, self.eps)

    def _empty_window(self) -> None:
        super()._empty_window()
        self._hist[:] = 0

    def _options(self) -> dict[str, Any]:
        return {"n_bins": self.n_bins, "eps": self.eps}

    def _param_values(self) -> tuple[Any, ...]:
        return (int(self.stride), float(self.eps))

    def _kernel(self) -> Callable[..., Any]:
        return _update
