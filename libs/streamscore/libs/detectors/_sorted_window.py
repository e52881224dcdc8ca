"""A sliding window kept sorted, and searches in sorted arrays (kernels of the population tests).

The window is two arrays of ``window_size`` values: ``ring`` in arrival order
(``ring[pos]`` is the oldest once the window is full) and ``win``, the same
values sorted. A new value replaces the oldest in both: one binary search finds
the oldest in ``win``, then the values between its slot and the new value's slot
shift by one, so an update costs O(log m) comparisons plus the shift.
"""

from __future__ import annotations

from streamscore.libs.detectors._base import FloatArray, kernel


@kernel
def search(a: FloatArray, x: float, lo: int, right: bool) -> int:
    """``np.searchsorted(a, x, side)`` for sorted ``a``, knowing the answer is at least ``lo``.

    Galloping from ``lo`` (steps 1, 2, 4, ...) then bisecting, so walking a
    sorted sample through a much larger sorted reference costs O(log gap) per
    value, not O(log n).
    """
    n = a.shape[0]
    step = 1
    hi = lo
    # Every a[k] with k < lo passes the test; stop once a[hi] fails (or hi runs out).
    while hi < n and (a[hi] <= x if right else a[hi] < x):
        lo = hi + 1
        hi += step
        step *= 2
    hi = min(hi, n)
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] <= x if right else a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@kernel
def push(x: float, filled: int, pos: int, ring: FloatArray, win: FloatArray) -> None:
    """Add ``x`` to the window holding ``filled`` values whose oldest is at ``ring[pos]``.

    While the window is filling (``filled < len(ring)``), ``pos == filled`` and
    ``x`` is inserted among ``win[:filled]``; once full, ``x`` replaces
    ``ring[pos]``. The caller advances ``filled`` and ``pos``. Slots are found
    by binary search and the values between them moved by one slice assignment
    (Numba copies overlapping slices safely; 2-4x faster than an element loop).
    """
    size = ring.shape[0]
    if filled < size:
        k = search(win[:filled], x, 0, True)
        win[k + 1 : filled + 1] = win[k:filled]
        win[k] = x
        ring[pos] = x
        return
    old = ring[pos]
    ring[pos] = x
    k = search(win, old, 0, False)  # win[k] == old
    if x > old:
        p = search(win, x, k, False) - 1  # the last slot below x, once old is gone
        win[k:p] = win[k + 1 : p + 1]
        win[p] = x
    else:
        p = search(win[:k], x, 0, True)  # the first slot above x, before old
        win[p + 1 : k + 1] = win[p:k]
        win[p] = x
