"""Isolation forest refitted on each window of a stream (Liu, Ting & Zhou, 2008), in Numba."""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from streamscore.libs.detectors._anomaly import SCORE, SKIPPED, VectorAnomalyDetector
from streamscore.libs.detectors._base import FloatArray, IntArray, kernel

UIntArray = npt.NDArray[np.uint64]

# _i slots (0 flag, unused here; 1 skipped; 2 n_features, as every vector detector)
_FILLED, _FITTED = 3, 4

_EULER = 0.5772156649015329

# splitmix64 (Steele, Lea & Flood 2014): a 64-bit state, one add and two xor-shift-multiplies.
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


@kernel
def _uniform(rng: UIntArray) -> float:
    """Next splitmix64 draw of ``rng[0]`` as a float in ``[0, 1)`` (53 bits)."""
    z = rng[0] + _GAMMA
    rng[0] = z
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z ^= z >> _S31
    return float(z >> _S11) * (1.0 / 9007199254740992.0)


@kernel
def _below(rng: UIntArray, n: int) -> int:
    """A draw in ``[0, n)`` (``n`` is at most a window: the 2**-53 granularity is no bias)."""
    return min(int(_uniform(rng) * n), n - 1)


@kernel
def _average_path(n: int) -> float:
    """c(n): average path length of an unsuccessful search in a binary search tree of n keys."""
    if n > 2:
        return 2.0 * (math.log(n - 1.0) + _EULER) - 2.0 * (n - 1.0) / n
    if n == 2:
        return 1.0
    return 0.0


@kernel
def _sample(rng: UIntArray, pool: IntArray, rows: IntArray) -> None:
    """``len(rows)`` of the window's row numbers without replacement (partial Fisher-Yates)."""
    n = pool.shape[0]
    for k in range(n):
        pool[k] = k
    for k in range(rows.shape[0]):
        r = k + _below(rng, n - k)
        pool[k], pool[r] = pool[r], pool[k]
        rows[k] = pool[k]


@kernel
def _usable_features(  # noqa: PLR0917 - a Numba kernel takes its arrays positionally
    window: FloatArray,
    rows: IntArray,
    start: int,
    end: int,
    lo: FloatArray,
    hi: FloatArray,
    usable: IntArray,
) -> int:
    """The range ``lo``/``hi`` of every feature over ``rows[start:end]``; the non-constant ones."""
    d = window.shape[1]
    for c in range(d):
        lo[c] = window[rows[start], c]
        hi[c] = lo[c]
    for k in range(start + 1, end):
        for c in range(d):
            v = window[rows[k], c]
            lo[c] = min(lo[c], v)
            hi[c] = max(hi[c], v)
    n_usable = 0
    for c in range(d):
        if hi[c] > lo[c]:
            usable[n_usable] = c
            n_usable += 1
    return n_usable


@kernel
def _fit(  # noqa: PLR0917 - a Numba kernel takes its state positionally
    window: FloatArray,
    rng: UIntArray,
    feature: IntArray,
    threshold: FloatArray,
    children: IntArray,
    path: FloatArray,
    sample_size: int,
    max_depth: int,
) -> None:
    """Grow every tree on a random sample (without replacement) of the window."""
    n, d = window.shape
    pool = np.empty(n, dtype=np.int64)
    rows = np.empty(sample_size, dtype=np.int64)
    lo = np.empty(d, dtype=np.float64)
    hi = np.empty(d, dtype=np.float64)
    usable = np.empty(d, dtype=np.int64)
    stack = np.empty((children.shape[1], 4), dtype=np.int64)  # node, start, end, depth
    for t in range(feature.shape[0]):
        # 1. Sample the tree's rows.
        _sample(rng, pool, rows)
        # 2. Grow depth-first; node ids are allocated in pairs, children[t, k] is the left one
        #    (for a leaf: itself).
        n_nodes = 1
        top = 1
        stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = 0, 0, sample_size, 0
        while top:
            top -= 1
            node, start, end, depth = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
            n_usable = 0
            if end - start > 1 and depth < max_depth:
                n_usable = _usable_features(window, rows, start, end, lo, hi, usable)
            if n_usable == 0:
                # 3. A leaf: its path length is its depth plus c(size), the expected
                #    depth of the isolation tree its rows would have needed. It points to
                #    itself and never passes its +inf threshold (see _update).
                children[t, node] = node
                feature[t, node] = 0
                threshold[t, node] = math.inf
                path[t, node] = depth + _average_path(end - start)
                continue
            # 4. Split on a feature drawn among those not constant in the node, at a point
            #    of [lo, hi); rows <= split go left, so both sides keep at least one row.
            c = usable[_below(rng, n_usable)]
            split = lo[c] + _uniform(rng) * (hi[c] - lo[c])
            if split >= hi[c]:
                split = lo[c]
            mid = start
            for k in range(start, end):
                if window[rows[k], c] <= split:
                    rows[k], rows[mid] = rows[mid], rows[k]
                    mid += 1
            feature[t, node] = c
            threshold[t, node] = split
            children[t, node] = n_nodes
            stack[top, 0], stack[top, 1], stack[top, 2] = n_nodes + 1, mid, end
            stack[top, 3] = depth + 1
            stack[top + 1, 0], stack[top + 1, 1], stack[top + 1, 2] = n_nodes, start, mid
            stack[top + 1, 3] = depth + 1
            top += 2
            n_nodes += 2


@kernel
def _update(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    xs: FloatArray,
    out: FloatArray,
    f: FloatArray,
    i: IntArray,
    rng: UIntArray,
    window: FloatArray,
    feature: IntArray,
    threshold: FloatArray,
    children: IntArray,
    path: FloatArray,
    sample_size: int,
    max_depth: int,
) -> None:
    n_trees = feature.shape[0]
    norm = _average_path(sample_size) * n_trees
    node = np.zeros(n_trees, dtype=np.int64)
    for j in range(xs.shape[0]):
        finite = True
        for c in range(xs.shape[1]):
            if not math.isfinite(xs[j, c]):
                finite = False
                break
        if not finite:
            i[SKIPPED] += 1
            out[j] = math.nan
            continue
        # 1. Score with the forest of the last complete window: 2 ** (-E[h(x)] / c(psi)).
        score = 0.0
        if i[_FITTED]:
            # Every tree walks max_depth steps, level by level across the trees, branch-free
            # (a leaf points to itself and never passes its +inf threshold), so the trees'
            # walks overlap instead of stalling on each unpredictable branch.
            node[:] = 0
            for _ in range(max_depth):
                for t in range(n_trees):
                    k = node[t]
                    node[t] = children[t, k] + (xs[j, feature[t, k]] > threshold[t, k])
            total = 0.0
            for t in range(n_trees):
                total += path[t, node[t]]
            score = 2.0 ** (-total / norm)
        f[SCORE] = score
        out[j] = score
        # 2. Learn: append to the window; a full window replaces the forest and starts anew.
        window[i[_FILLED], :] = xs[j, :]
        i[_FILLED] += 1
        if i[_FILLED] == window.shape[0]:
            _fit(window, rng, feature, threshold, children, path, sample_size, max_depth)
            i[_FILLED] = 0
            i[_FITTED] = 1


class IsolationForest(VectorAnomalyDetector):
    """Streaming isolation forest: refitted on each tumbling window, scoring the next one.

    Vectors are collected in windows of ``window_size``; when a window is
    full, a forest of ``n_trees`` isolation trees is grown on it (each on
    ``sample_size`` rows drawn without replacement, to depth
    ``ceil(log2(sample_size))``; each split on a random feature not constant
    in the node, at a uniform point of its range) and scores the vectors of
    the next window, each before it is learned. The score is Liu et al.'s
    ``s(x) = 2 ** (-E[h(x)] / c(sample_size))``: ``h`` the path length (leaf
    depth plus ``c(leaf size)``), ``c(n)`` the average path length of an
    unsuccessful binary-search-tree search; it is in ``(0, 1)``, around 0.5 and
    below for ordinary points, towards 1 for anomalies. ``0`` before the first
    window is complete.

    The update that completes a window also grows the forest, inside the same
    kernel call: about ``n_trees * sample_size * log2(sample_size) *
    n_features`` steps (~1 ms with the defaults), once per ``window_size``
    vectors. Anomalies in a window are learned too (the subsample and the
    isolation of rare points keep their influence small).

    Random draws come from a splitmix64 generator seeded with ``seed`` (from
    the OS for ``None``) and kept in the state, so the same seed gives the same
    scores, and a pickled detector continues with the same draws. Non-finite
    vectors are skipped (score NaN, counted in ``n_skipped``, not learned).
    There is no river twin; tests check the statistical behaviour.

    Parameters
    ----------
    n_trees
        Number of isolation trees.
    sample_size
        Rows per tree (psi); at most ``window_size``.
    window_size
        Vectors per window: the forest is refitted every ``window_size`` vectors.
    seed
        Random seed (an int, or ``None`` for one from the OS).

    Examples
    --------
    >>> import numpy as np
    >>> from streamscore.libs.detectors import IsolationForest
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(0.0, 1.0, size=(1200, 3))
    >>> X[1100] = [6.0, -6.0, 6.0]
    >>> forest = IsolationForest(window_size=1000, seed=1)
    >>> scores = forest.update_many(X)
    >>> float(scores[999]), int(np.argmax(scores))
    (0.0, 1100)
    >>> bool(0.0 < scores[1000:].min() and scores[1100] > 0.75 > np.median(scores[1000:]))
    True
    """

    _PARAMS = ("n_trees", "sample_size", "window_size", "seed")
    _STATE = ("_f", "_i", "_rng", "_window", "_feature", "_threshold", "_children", "_path")

    _rng: UIntArray
    _window: FloatArray
    _feature: IntArray
    _threshold: FloatArray
    _children: IntArray
    _path: FloatArray

    def __init__(
        self,
        n_trees: int = 100,
        sample_size: int = 256,
        window_size: int = 1024,
        seed: int | None = None,
    ) -> None:
        if n_trees < 1:
            raise ValueError("n_trees must be >= 1")
        if not 2 <= sample_size <= window_size:
            raise ValueError("need 2 <= sample_size <= window_size")
        self.n_trees = n_trees
        self.sample_size = sample_size
        self.window_size = window_size
        self.seed = seed
        self._f = np.zeros(1, dtype=np.float64)
        self._i = np.zeros(5, dtype=np.int64)
        start = secrets.randbits(64) if seed is None else seed % 2**64
        self._rng = np.array([start], dtype=np.uint64)
        n_slots = 2 * sample_size - 1
        self._window = np.zeros((window_size, 0), dtype=np.float64)
        self._feature = np.zeros((n_trees, n_slots), dtype=np.int64)
        self._threshold = np.zeros((n_trees, n_slots), dtype=np.float64)
        self._children = np.zeros((n_trees, n_slots), dtype=np.int64)
        self._path = np.zeros((n_trees, n_slots), dtype=np.float64)
        self._bind()

    def _allocate(self, n_features: int) -> None:
        self._window = np.zeros((self.window_size, n_features), dtype=np.float64)
        self._i[2] = n_features
        self._bind()

    def _kernel(self) -> Callable[..., None]:
        return _update

    def _param_values(self) -> tuple[Any, ...]:
        return (int(self.sample_size), math.ceil(math.log2(self.sample_size)))

    @classmethod
    def warmup(cls) -> None:
        """Compile (or load from Numba's cache) the kernel: batch and single paths, one refit."""
        det = cls(n_trees=2, sample_size=2, window_size=2, seed=0)
        det.update_many(np.array([[0.1, 0.2], [np.nan, 0.0], [0.3, 0.4], [0.5, 0.6]]))
        det.update(np.array([0.5, 0.5]))
