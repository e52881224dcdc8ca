"""ADWIN, adaptive windowing (river's ``drift.ADWIN`` in Numba, with fixed-capacity buckets)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from streamscore.libs.detectors._base import (
    DRIFT,
    CodeArray,
    Detector,
    FloatArray,
    IntArray,
    kernel,
)

# Exponential histogram levels: level ``l`` holds buckets of 2**l elements, so 64
# levels cover any window an int64 counter can reach.
_LEVELS = 64

# _f slots
_TOTAL, _VARIANCE, _WIDTH = range(3)
# _i slots (0 drift, 1 warning, 2 skipped are shared with every detector), then
# the number of buckets held at each level from _COUNTS on.
_N_LEVELS, _TICK, _COUNTS = 3, 4, 5


@kernel
def _reset_state(f: FloatArray, i: IntArray, buckets: FloatArray) -> None:
    """Empty window. ``buckets[0]`` holds bucket totals, ``buckets[1]`` their variances."""
    f[:] = 0.0
    buckets[:, :, :] = 0.0
    i[0] = 0
    i[1] = 0
    i[3:] = 0  # slot 2, the skip counter, survives resets
    i[_N_LEVELS] = 1


@kernel
def _compress_level(buckets: FloatArray, counts: IntArray, level: int, n: int) -> None:
    """Drop the ``n`` oldest buckets of ``level`` (shift left, zero the tail)."""
    c = counts[level]
    for k in range(c - n):
        buckets[0, level, k] = buckets[0, level, k + n]
        buckets[1, level, k] = buckets[1, level, k + n]
    for k in range(max(c - n, 0), c):
        buckets[0, level, k] = 0.0
        buckets[1, level, k] = 0.0
    counts[level] = c - n


@kernel
def _insert(x: float, f: FloatArray, i: IntArray, buckets: FloatArray, max_buckets: int) -> None:
    counts = i[_COUNTS:]
    buckets[0, 0, counts[0]] = x
    buckets[1, 0, counts[0]] = 0.0
    counts[0] += 1
    # Streaming variance (Babcock et al.), river's operation order.
    f[_WIDTH] += 1.0
    width = f[_WIDTH]
    inc = 0.0
    if width > 1.0:
        d = x - f[_TOTAL] / (width - 1.0)
        inc = (width - 1.0) * d * d / width
    f[_VARIANCE] += inc
    f[_TOTAL] += x
    # Merge the two oldest buckets of every full level into the next level.
    level = 0
    while counts[level] == max_buckets + 1 and level + 1 < _LEVELS:
        n1 = 2.0**level
        t0 = buckets[0, level, 0]
        t1 = buckets[0, level, 1]
        mu1 = t0 / n1
        mu2 = t1 / n1
        v12 = buckets[1, level, 0] + buckets[1, level, 1] + n1 * 0.5 * (mu1 - mu2) * (mu1 - mu2)
        if level + 1 >= i[_N_LEVELS]:
            i[_N_LEVELS] = level + 2
        nxt = counts[level + 1]
        buckets[0, level + 1, nxt] = t0 + t1
        buckets[1, level + 1, nxt] = v12
        counts[level + 1] = nxt + 1
        _compress_level(buckets, counts, level, 2)
        if counts[level + 1] <= max_buckets:
            break
        level += 1


@kernel
def _delete_oldest(f: FloatArray, i: IntArray, buckets: FloatArray) -> None:
    counts = i[_COUNTS:]
    last = i[_N_LEVELS] - 1
    n = 2.0**last
    u = buckets[0, last, 0]
    v = buckets[1, last, 0]
    mu = u / n
    f[_WIDTH] -= n
    f[_TOTAL] -= u
    width = f[_WIDTH]
    mu_window = f[_TOTAL] / width
    f[_VARIANCE] -= v + n * width * (mu - mu_window) * (mu - mu_window) / (n + width)
    _compress_level(buckets, counts, last, 1)
    if counts[last] == 0:
        i[_N_LEVELS] = last


@kernel
def _cut(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    n0: float, n1: float, delta_mean: float, f: FloatArray, delta: float, min_window_length: float
) -> bool:
    width = f[_WIDTH]
    delta_prime = math.log(2.0 * math.log(width) / delta)
    m_recip = 1.0 / (n0 - min_window_length + 1.0) + 1.0 / (n1 - min_window_length + 1.0)
    epsilon = (
        math.sqrt(2.0 * m_recip * (f[_VARIANCE] / width) * delta_prime)
        + 2.0 / 3.0 * delta_prime * m_recip
    )
    return abs(delta_mean) > epsilon


@kernel
def _detect(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    f: FloatArray,
    i: IntArray,
    buckets: FloatArray,
    delta: float,
    clock: int,
    min_window_length: float,
    grace_period: float,
) -> bool:
    change = False
    i[_TICK] += 1
    if i[_TICK] % clock != 0 or not f[_WIDTH] > grace_period:
        return False
    counts = i[_COUNTS:]
    reduce_width = True
    while reduce_width:
        reduce_width = False
        n0 = 0.0
        n1 = f[_WIDTH]
        u0 = 0.0
        u1 = f[_TOTAL]
        done = False
        # Cut points from the oldest bucket (highest level, index 0) to the newest.
        for level in range(i[_N_LEVELS] - 1, -1, -1):
            size = 2.0**level
            c = counts[level]
            for k in range(c):
                n0 += size
                n1 -= size
                t = buckets[0, level, k]
                u0 += t
                u1 -= t
                if level == 0 and k == c - 1:
                    done = True
                    break
                delta_mean = (u0 / n0) - (u1 / n1)
                if (
                    n1 >= min_window_length
                    and n0 >= min_window_length
                    and _cut(n0, n1, delta_mean, f, delta, min_window_length)
                ):
                    reduce_width = True
                    change = True
                    if f[_WIDTH] > 0.0:
                        _delete_oldest(f, i, buckets)
                        done = True
                        break
            if done:
                break
    return change


@kernel
def _update(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    xs: FloatArray,
    out: CodeArray,
    f: FloatArray,
    i: IntArray,
    buckets: FloatArray,
    delta: float,
    clock: int,
    max_buckets: int,
    min_window_length: float,
    grace_period: float,
) -> None:
    for j in range(xs.shape[0]):
        x = xs[j]
        if not math.isfinite(x):
            i[2] += 1
            out[j] = 0
            continue
        if i[0]:
            _reset_state(f, i, buckets)
        _insert(x, f, i, buckets, max_buckets)
        drift = _detect(f, i, buckets, delta, clock, min_window_length, grace_period)
        i[0] = 1 if drift else 0
        out[j] = DRIFT if drift else 0


class ADWIN(Detector):
    r"""ADaptive WINdowing drift detector (Bifet & Gavaldà 2007), compiled with Numba.

    Keeps a variable-length window of recent values compressed into an
    exponential histogram (at most ``max_buckets`` buckets of each size
    ``2**l``; ADWIN2). Every ``clock`` updates, once the window holds more than
    ``grace_period`` values, every split of the window into an older part
    ``W0`` and a newer part ``W1`` (both at least ``min_window_length`` long) is
    tested; while some split has ``|mean(W0) - mean(W1)| > epsilon_cut`` the
    oldest bucket is dropped, and a drift is signalled.

    Same parameters, defaults and arithmetic as river 0.26 ``drift.ADWIN``
    (whose core is compiled Rust, a port of its earlier Cython
    ``adwin_c.pyx``), so both detect at the same indices. The buckets live in
    a fixed ``(2, 64, max_buckets + 1)`` array instead of a growable deque.

    Differences from the paper, kept for agreement with river: as river 0.26
    does, the whole window is discarded on the update *after* a detection
    (the paper only drops the stale prefix and keeps the rest); the cut uses
    ``n - min_window_length + 1`` in the harmonic mean and
    ``delta' = ln(2 ln(width) / delta)``.

    Non-finite inputs (NaN, ±inf) are skipped and counted in ``n_skipped``
    (see ``streamscore.libs.detectors``); they do not advance the clock.

    Parameters
    ----------
    delta
        Significance value.
    clock
        How often (in updates) to check for a change; 1 checks on every update.
    max_buckets
        Maximum number of buckets of each size before two are merged (at least 2;
        river also accepts 1, where its deletion can meet an empty level).
    min_window_length
        Minimum length of each of the two sub-windows of a cut.
    grace_period
        Number of values the window must exceed before any check.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> stream = np.concatenate([rng.integers(0, 2, 1000), rng.integers(4, 8, 1000)])
    >>> adwin = ADWIN()
    >>> np.flatnonzero(adwin.update_many(stream)).tolist()
    [1023]
    >>> adwin.width, round(adwin.estimation, 2)
    (976.0, 5.5)
    """

    _PARAMS = ("delta", "clock", "max_buckets", "min_window_length", "grace_period")
    _STATE = ("_f", "_i", "_buckets")

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        if clock < 1:
            raise ValueError("'clock' must be at least 1.")
        if max_buckets < 2:
            raise ValueError("'max_buckets' must be at least 2.")
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self._f = np.zeros(3, dtype=np.float64)
        self._i = np.zeros(_COUNTS + _LEVELS, dtype=np.int64)
        self._buckets = np.zeros((2, _LEVELS, max_buckets + 1), dtype=np.float64)
        _reset_state(self._f, self._i, self._buckets)
        self._bind()

    def _kernel(self) -> Callable[..., None]:
        return _update

    def _param_values(self) -> tuple[Any, ...]:
        return (
            float(self.delta),
            int(self.clock),
            int(self.max_buckets),
            float(self.min_window_length),
            float(self.grace_period),
        )

    @property
    def width(self) -> float:
        """Number of values in the current window."""
        return float(self._f[_WIDTH])

    @property
    def total(self) -> float:
        """Sum of the values in the current window."""
        return float(self._f[_TOTAL])

    @property
    def variance(self) -> float:
        """Sum of squared deviations from the mean in the window (river's ``variance``)."""
        return float(self._f[_VARIANCE])

    @property
    def estimation(self) -> float:
        """Mean of the values in the current window (0.0 when empty)."""
        width = self.width
        return 0.0 if width == 0 else self.total / width
