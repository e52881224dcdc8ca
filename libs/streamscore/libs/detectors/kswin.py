"""KSWIN, Kolmogorov-Smirnov windowing (river's ``drift.KSWIN`` in Numba)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from streamscore.libs.detectors._base import (
    DRIFT,
    CodeArray,
    Detector,
    FloatArray,
    IntArray,
    kernel,
)

# _f slots
_P_VALUE = 0
# _i slots (0 drift, 1 warning, 2 skipped are shared with every detector)
_COUNT, _START, _MTI, _MTI0 = 3, 4, 5, 6

# MT19937, as CPython's ``random.Random`` (``_randommodule.c``).
_MT_N = 624
_MT_M = 397
_MATRIX_A = 0x9908B0DF
_UPPER = 0x80000000
_LOWER = 0x7FFFFFFF

# scipy.stats.ks_2samp(method="auto") is exact up to this sample size.
_MAX_EXACT_N = 10_000


@kernel
def _genrand_uint32(mt: IntArray, i: IntArray) -> int:
    """Next 32-bit output of the Mersenne Twister held in ``mt`` (index in ``i[_MTI]``)."""
    if i[_MTI] >= _MT_N:
        for kk in range(_MT_N - _MT_M):
            y = (mt[kk] & _UPPER) | (mt[kk + 1] & _LOWER)
            mt[kk] = mt[kk + _MT_M] ^ (y >> 1) ^ (_MATRIX_A if y & 1 else 0)
        for kk in range(_MT_N - _MT_M, _MT_N - 1):
            y = (mt[kk] & _UPPER) | (mt[kk + 1] & _LOWER)
            mt[kk] = mt[kk + (_MT_M - _MT_N)] ^ (y >> 1) ^ (_MATRIX_A if y & 1 else 0)
        y = (mt[_MT_N - 1] & _UPPER) | (mt[0] & _LOWER)
        mt[_MT_N - 1] = mt[_MT_M - 1] ^ (y >> 1) ^ (_MATRIX_A if y & 1 else 0)
        i[_MTI] = 0
    y = mt[i[_MTI]]
    i[_MTI] += 1
    y ^= y >> 11
    y ^= (y << 7) & 0x9D2C5680
    y ^= (y << 15) & 0xEFC60000
    y ^= y >> 18
    return int(y)


@kernel
def _randbelow(n: int, mt: IntArray, i: IntArray) -> int:
    """CPython's ``Random._randbelow_with_getrandbits(n)`` for ``0 < n < 2**32``."""
    k = 0
    m = n
    while m:
        k += 1
        m >>= 1
    r = _genrand_uint32(mt, i) >> (32 - k)
    while r >= n:
        r = _genrand_uint32(mt, i) >> (32 - k)
    return r


@kernel
def _prob_outside_square(n: int, h: int) -> float:
    """scipy's ``_compute_prob_outside_square``: P(D_{n,n} >= h/n), same operation order."""
    p = 0.0
    k = n // h
    while k >= 0:
        p1 = 1.0
        for j in range(h):
            p1 = float(n - k * h - j) * p1 / float(n + k * h + j + 1)
        p = p1 * (1.0 - p)
        k -= 1
    return 2.0 * p


@kernel
def _ks_h(a: FloatArray, b: FloatArray) -> int:
    """``n * D`` of the two-sample KS statistic of equal-size samples ``a`` and ``b``."""
    n = a.shape[0]
    sa = np.sort(a)
    sb = np.sort(b)
    ia = 0
    ib = 0
    h = 0
    while ia < n or ib < n:
        # the next distinct value; both empirical CDFs are taken right of it
        v = sa[ia] if ib >= n or (ia < n and sa[ia] <= sb[ib]) else sb[ib]
        while ia < n and sa[ia] <= v:
            ia += 1
        while ib < n and sb[ib] <= v:
            ib += 1
        h = max(h, abs(ia - ib))
    return h


@kernel
def _draw(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    win: FloatArray,
    start: int,
    use_pool: bool,
    pool: IntArray,
    taken: npt.NDArray[np.bool_],
    sampled: FloatArray,
    recent: FloatArray,
    mt: IntArray,
    i: IntArray,
) -> None:
    """Fill ``sampled`` as river does, ``recent`` with the last ``stat_size`` values.

    ``random.sample(range(size - stat_size), stat_size)`` with CPython's
    algorithm (a list pool, or rejection against a set), then those positions
    of the window (oldest first, starting at ``start`` in the ring buffer).
    """
    size = win.shape[0]
    n_pool = pool.shape[0]
    stat_size = sampled.shape[0]
    if use_pool:
        for t in range(n_pool):
            pool[t] = t
        for t in range(stat_size):
            r = _randbelow(n_pool - t, mt, i)
            sampled[t] = win[(start + pool[r]) % size]
            pool[r] = pool[n_pool - t - 1]
    else:
        taken[:] = False
        for t in range(stat_size):
            r = _randbelow(n_pool, mt, i)
            while taken[r]:
                r = _randbelow(n_pool, mt, i)
            taken[r] = True
            sampled[t] = win[(start + r) % size]
    for t in range(stat_size):
        recent[t] = win[(start + n_pool + t) % size]


@kernel
def _update(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    xs: FloatArray,
    out: CodeArray,
    f: FloatArray,
    i: IntArray,
    win: FloatArray,
    mt: IntArray,
    mt0: IntArray,
    alpha: float,
    stat_size: int,
    use_pool: bool,
) -> None:
    size = win.shape[0]
    n_pool = size - stat_size
    pool = np.empty(n_pool, dtype=np.int64)
    taken = np.zeros(n_pool, dtype=np.bool_)
    sampled = np.empty(stat_size, dtype=np.float64)
    recent = np.empty(stat_size, dtype=np.float64)
    for j in range(xs.shape[0]):
        x = xs[j]
        if not math.isfinite(x):
            i[2] += 1
            out[j] = 0
            continue
        if i[0]:
            # river resets everything, the random generator included (re-seeded).
            i[0] = 0
            i[_COUNT] = 0
            i[_START] = 0
            f[_P_VALUE] = 0.0
            mt[:] = mt0
            i[_MTI] = i[_MTI0]
        # Append to the ring buffer (a deque with maxlen=window_size in river).
        if i[_COUNT] < size:
            win[(i[_START] + i[_COUNT]) % size] = x
            i[_COUNT] += 1
        else:
            win[i[_START]] = x
            i[_START] = (i[_START] + 1) % size
        if i[_COUNT] < size:
            out[j] = 0
            continue
        _draw(win, i[_START], use_pool, pool, taken, sampled, recent, mt, i)
        # scipy.stats.ks_2samp(method="auto"), exact branch for n1 == n2.
        h = _ks_h(sampled, recent)
        statistic = h * 1.0 / stat_size
        p_value = 1.0 if h == 0 else min(max(_prob_outside_square(stat_size, h), 0.0), 1.0)
        f[_P_VALUE] = p_value
        drift = p_value <= alpha and statistic > 0.1
        i[0] = 1 if drift else 0
        out[j] = DRIFT if drift else 0


class KSWIN(Detector):
    r"""Kolmogorov-Smirnov Windowing drift detector (Raab et al. 2020), compiled with Numba.

    Keeps a sliding window of the last ``window_size`` values. Once it is
    full, every update compares its last ``stat_size`` values with
    ``stat_size`` values drawn at random (without replacement) from the rest of
    the window by a two-sample Kolmogorov-Smirnov test; a drift is signalled
    when the p-value is at most ``alpha`` and the statistic exceeds 0.1.

    Same parameters, defaults, random draws and arithmetic as river 0.26
    ``drift.KSWIN``, so both detect at the same indices with the same
    ``seed``: the draws reproduce CPython's ``random.Random(seed).sample``
    (Mersenne Twister seeded through ``random.Random``'s own seeding), and
    the p-value is scipy's exact ``ks_2samp`` formula for two samples of equal
    size. As in river, everything (random generator included) is reset on the
    update *after* a detection.

    Differences, for agreement with river: the paper tests the whole window
    against the recent part; river adds the ``statistic > 0.1`` condition.
    Where scipy's exact formula leaves [0, 1] by rounding (only when the
    statistic is at most ``1 / stat_size``, which can never signal), scipy
    falls back to an asymptotic p-value and this class clips: ``p_value`` may
    differ there, detections cannot. With ``seed=None`` the generator is
    seeded once from the OS and re-used on every reset (river re-seeds from
    the OS on every reset).

    Non-finite inputs (NaN, ±inf) are skipped and counted in ``n_skipped``
    (see ``streamscore.libs.detectors``), also in the initial ``window``.

    Parameters
    ----------
    alpha
        Probability of the test statistic (p-value threshold).
    window_size
        Size of the sliding window.
    stat_size
        Size of the two samples compared (at most ``window_size / 2`` and
        ``10_000``).
    seed
        Random seed (an int, or ``None`` for one from the OS).
    window
        Values already observed, to start from a filled window.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> stream = np.concatenate([rng.integers(0, 2, 1000), rng.integers(4, 8, 1000)])
    >>> kswin = KSWIN(alpha=0.0001, seed=42)
    >>> np.flatnonzero(kswin.update_many(stream)).tolist()
    [1016]
    """

    _PARAMS = ("alpha", "window_size", "stat_size", "seed", "window")
    _STATE = ("_f", "_i", "_win", "_mt", "_mt0")

    def __init__(
        self,
        alpha: float = 0.005,
        window_size: int = 100,
        stat_size: int = 30,
        seed: int | None = None,
        window: Iterable[float] | None = None,
    ) -> None:
        if alpha < 0 or alpha > 1:
            raise ValueError("Alpha must be between 0 and 1.")
        if not 1 <= stat_size <= window_size - stat_size:
            raise ValueError("stat_size must be at least 1 and at most window_size / 2.")
        if stat_size > _MAX_EXACT_N:
            raise ValueError(f"stat_size above {_MAX_EXACT_N} is not supported.")
        if window_size >= 2**31:
            raise ValueError("window_size must be below 2**31.")
        initial = None if window is None else tuple(float(v) for v in window)
        self.alpha = alpha
        self.window_size = window_size
        self.stat_size = stat_size
        self.seed = seed
        self.window = initial
        state = random.Random(seed).getstate()[1]
        self._mt0 = np.array(state[:_MT_N], dtype=np.int64)
        self._mt = self._mt0.copy()
        self._f = np.zeros(1, dtype=np.float64)
        self._i = np.zeros(7, dtype=np.int64)
        self._i[_MTI] = self._i[_MTI0] = state[_MT_N]
        self._win = np.zeros(window_size, dtype=np.float64)
        if initial:
            values = np.array(initial, dtype=np.float64)
            finite = values[np.isfinite(values)][-window_size:]
            self._win[: finite.shape[0]] = finite
            self._i[_COUNT] = finite.shape[0]
            self._i[2] = int((~np.isfinite(values)).sum())
        self._bind()

    def _kernel(self) -> Callable[..., None]:
        return _update

    def _param_values(self) -> tuple[Any, ...]:
        n_pool = int(self.window_size) - int(self.stat_size)
        k = int(self.stat_size)
        # CPython's random.sample: a list pool when it is smaller than a k-set.
        setsize = 21
        if k > 5:
            setsize += 4 ** math.ceil(math.log(k * 3, 4))
        return (float(self.alpha), k, n_pool <= setsize)

    @property
    def p_value(self) -> float:
        """p-value of the last test (0.0 before the window is first full)."""
        return float(self._f[_P_VALUE])
