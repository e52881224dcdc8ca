"""Numba kernels of :class:`~.tiles.MomentTiles` (private; tested through it).

A read is one pass over the ring's slots instead of a dozen numpy calls, which
brings a 30-day read over hourly tiles from ~17 µs to ~2 µs. ``cache=True``
keeps the compiled code across processes; :func:`~streamscore.libs.windows.warmup`
compiles them at service start-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

F = TypeVar("F", bound=Callable[..., Any])
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def _kernel(func: F) -> F:
    return cast(F, numba.njit(cache=True, fastmath=False)(func))


@_kernel
def add_value(  # noqa: PLR0917 - a Numba kernel takes its state positionally
    tile: IntArray,
    count: IntArray,
    f: FloatArray,
    slot: int,
    k: int,
    x: float,
) -> None:
    """Welford's update of slot ``slot`` (reset first if it held another tile than ``k``).

    ``f`` rows: 0 sum, 1 mean, 2 m2, 3 min, 4 max.
    """
    if tile[slot] != k:
        tile[slot] = k
        count[slot] = 0
        f[0, slot] = 0.0
        f[1, slot] = 0.0
        f[2, slot] = 0.0
        f[3, slot] = math.inf
        f[4, slot] = -math.inf
    n = count[slot] + 1
    count[slot] = n
    mean = f[1, slot]
    d = x - mean
    mean += d / n
    f[0, slot] += x
    f[1, slot] = mean
    f[2, slot] += d * (x - mean)
    f[3, slot] = min(f[3, slot], x)
    f[4, slot] = max(f[4, slot], x)


@_kernel
def read_range(
    tile: IntArray, count: IntArray, f: FloatArray, first: int, last: int
) -> tuple[int, float, float, float, float, float]:
    """Chan merge of the slots holding tiles ``first..last``: (n, sum, mean, m2, min, max)."""
    n = 0
    s = 0.0
    nm = 0.0
    lo = math.inf
    hi = -math.inf
    for i in range(tile.shape[0]):
        k = tile[i]
        if first <= k <= last and count[i] > 0:
            c = count[i]
            n += c
            s += f[0, i]
            nm += c * f[1, i]
            lo = min(lo, f[3, i])
            hi = max(hi, f[4, i])
    if n == 0:
        return 0, 0.0, 0.0, 0.0, math.inf, -math.inf
    mean = nm / n
    m2 = 0.0
    for i in range(tile.shape[0]):
        k = tile[i]
        if first <= k <= last and count[i] > 0:
            d = f[1, i] - mean
            m2 += f[2, i] + count[i] * d * d
    return n, s, mean, m2, lo, hi


@_kernel
def welford_between(  # noqa: PLR0917 - a Numba kernel takes its state positionally
    times: IntArray,
    values: FloatArray,
    lo: int,
    hi: int,
    n: int,
    s: float,
    mean: float,
    m2: float,
    vmin: float,
    vmax: float,
) -> tuple[int, float, float, float, float, float]:
    """Welford's update with the values whose time is in ``(lo, hi]``, in stored order.

    Continues from the moments given (n, sum, mean, m2, min, max); the
    operations are those of :meth:`~.moments.Moments.add`, so the result is
    bit-identical to adding the same values one by one in Python.
    """
    for i in range(times.shape[0]):
        t = times[i]
        if lo < t <= hi:
            x = values[i]
            n += 1
            s += x
            d = x - mean
            mean += d / n
            m2 += d * (x - mean)
            vmin = min(vmin, x)
            vmax = max(vmax, x)
    return n, s, mean, m2, vmin, vmax


@_kernel
def latest_at_or_before(times: IntArray, t: int) -> tuple[bool, int]:
    """Whether any time is ``<= t``, and the largest such time."""
    found = False
    best = 0
    for i in range(times.shape[0]):
        x = times[i]
        if x <= t and (not found or x > best):
            found = True
            best = x
    return found, best
