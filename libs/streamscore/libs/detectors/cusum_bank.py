"""A bank of two-sided CUSUMs, one per segment, in contiguous arrays: one compiled call per batch.

Segment ``s`` behaves exactly like ``CUSUM(grace_period, k, h)`` fed with the
values of segment ``s`` in order (tested element for element): the state of
every segment lives in row ``s`` of two arrays, and :meth:`CUSUMBank.update_many`
walks a micro-batch of ``(segment, value)`` pairs in one Numba call, so a
batch of any mix of segments costs one call instead of one per segment.

**Multiple testing.** Thousands of segments watched at once raise false alarms
thousands of times as often as one. Given ``family_arl0`` — the wanted mean
number of *rounds* (one value from every segment) between two false alarms
anywhere in the bank, so that the bank alarms no more often than one chart
would — each segment's chart is set for an in-control run length of
``n_segments × family_arl0`` values (Bonferroni on the alarm rate), and
``h`` is solved from Siegmund's approximation of the two-sided CUSUM's
in-control run length, ``ARL0 ≈ (exp(2kb) − 2kb − 1) / (4k²)`` with
``b = h + 1.166`` (known parameters; the estimated baseline shortens it a
little, like the single chart's).

>>> round(siegmund_arl0(k=0.5, h=5.0))
469
>>> round(h_for_arl0(469.0, k=0.5), 2)
5.0
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from streamscore.libs.detectors._base import DRIFT, CodeArray, FloatArray, kernel

IntArray = npt.NDArray[np.int64]

# state columns: baseline n, mean, m2, S+, S-, reset pending
_N, _MEAN, _M2, _HI, _LO, _RESET = range(6)
_COLS = 6


def siegmund_arl0(*, k: float, h: float) -> float:
    """In-control average run length of a two-sided CUSUM (Siegmund's approximation)."""
    b = h + 1.166
    one_sided = (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)
    return one_sided / 2


def h_for_arl0(arl0: float, *, k: float) -> float:
    """The decision interval ``h`` giving an in-control run length of ``arl0`` (bisection)."""
    lo, hi = 0.0, 1.0
    while siegmund_arl0(k=k, h=hi) < arl0:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        if siegmund_arl0(k=k, h=mid) < arl0:
            lo = mid
        else:
            hi = mid
    return hi


@kernel
def _update(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    segments: IntArray,
    xs: FloatArray,
    out: CodeArray,
    state: npt.NDArray[np.float64],
    skipped: IntArray,
    grace_period: int,
    k: float,
    h: float,
) -> None:
    for j in range(xs.shape[0]):
        s = segments[j]
        x = xs[j]
        out[j] = 0
        if not math.isfinite(x):
            skipped[s] += 1
            continue
        st = state[s]
        if st[_RESET] != 0.0:
            for c in range(_COLS):
                st[c] = 0.0
        if st[_N] < grace_period:
            # 1. Learn the segment's in-control mean and spread (Welford), as CUSUM does.
            st[_N] += 1.0
            d = x - st[_MEAN]
            st[_MEAN] += d / st[_N]
            st[_M2] += d * (x - st[_MEAN])
            continue
        sd = math.sqrt(st[_M2] / (st[_N] - 1.0)) if st[_N] > 1.0 else 0.0
        z = (x - st[_MEAN]) / sd if sd > 0.0 else 0.0
        # 2. The two cumulative sums, floored at 0.
        st[_HI] = max(0.0, st[_HI] + z - k)
        st[_LO] = max(0.0, st[_LO] - z - k)
        # 3. A signal resets the segment on its next value (as the single chart).
        if st[_HI] > h or st[_LO] > h:
            st[_RESET] = 1.0
            out[j] = DRIFT


class CUSUMBank:
    """``n_segments`` independent two-sided CUSUMs (see the module docstring).

    Give ``h`` directly, or ``family_arl0`` to have it set for the whole bank.
    Non-finite values are skipped and counted per segment in ``n_skipped``.

    >>> from streamscore.libs.detectors import CUSUMBank as Bank  # the cached kernel's module
    >>> rng = np.random.default_rng(0)
    >>> bank = Bank(1000, family_arl0=10_000)
    >>> segs = rng.integers(0, 1000, 400_000)
    >>> xs = rng.normal(0, 1, segs.size) + 3.0 * (segs == 7) * (np.arange(segs.size) > 300_000)
    >>> hits = segs[bank.update_many(segs, xs) != 0]
    >>> bool((hits == 7).any()), int((hits != 7).sum()) <= 2
    (True, True)
    """

    def __init__(
        self,
        n_segments: int,
        *,
        grace_period: int = 200,
        k: float = 0.5,
        h: float | None = None,
        family_arl0: float | None = None,
    ) -> None:
        if (h is None) == (family_arl0 is None):
            raise ValueError("give h or family_arl0, not both")
        if n_segments < 1 or grace_period < 2:
            raise ValueError("need n_segments >= 1 and grace_period >= 2")
        self.n_segments = n_segments
        self.grace_period = grace_period
        self.k = k
        self.family_arl0 = family_arl0
        self.h = h if h is not None else h_for_arl0(n_segments * float(family_arl0 or 0), k=k)
        self._state = np.zeros((n_segments, _COLS), dtype=np.float64)
        self._skipped = np.zeros(n_segments, dtype=np.int64)

    def update_many(self, segments: npt.ArrayLike, xs: npt.ArrayLike) -> CodeArray:
        """Feed ``(segments[j], xs[j])`` in order; one ``uint8`` code per pair (``DRIFT`` bit)."""
        seg = np.ascontiguousarray(segments, dtype=np.int64)
        val = np.ascontiguousarray(xs, dtype=np.float64)
        if seg.shape != val.shape:
            raise ValueError("segments and values differ in length")
        if seg.size and (seg.min() < 0 or seg.max() >= self.n_segments):
            raise IndexError("a segment outside 0..n_segments-1")
        out = np.zeros(val.size, dtype=np.uint8)
        _update(seg, val, out, self._state, self._skipped, self.grace_period, self.k, self.h)
        return out

    @property
    def n_skipped(self) -> IntArray:
        """Non-finite values skipped, per segment (read-only copy)."""
        return self._skipped.copy()

    def __getstate__(self) -> dict[str, object]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
