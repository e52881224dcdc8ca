"""Half-Space Trees (river's ``anomaly.HalfSpaceTrees`` in Numba, on feature vectors)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from streamscore.libs.detectors._anomaly import SCORE, SKIPPED, VectorAnomalyDetector
from streamscore.libs.detectors._base import FloatArray, IntArray, kernel

# _i slots (0 flag, unused here; 1 skipped; 2 n_features, as every vector detector)
_COUNTER, _FIRST_WINDOW = 3, 4

# river's ``make_padded_tree(padding=0.15)``.
_PADDING = 0.15


@kernel
def _update(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    xs: FloatArray,
    out: FloatArray,
    f: FloatArray,
    i: IntArray,
    mt: IntArray,
    feature: IntArray,
    threshold: FloatArray,
    l_mass: IntArray,
    r_mass: IntArray,
    height: int,
    window_size: int,
    size_limit: float,
    max_score: float,
) -> None:
    n_trees = feature.shape[0]
    node = np.zeros(n_trees, dtype=np.int64)
    sums = np.zeros(n_trees, dtype=np.float64)
    live = np.zeros(n_trees, dtype=np.bool_)
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
        # 1. Score against the reference masses and learn into the latest ones, in one
        #    walk: learning only touches l_mass, scoring only reads r_mass, and both
        #    follow the same root-to-leaf path (nodes in heap order: children 2k+1, 2k+2).
        #    Level by level across the trees, branch-free, so the trees' walks overlap.
        scoring = i[_FIRST_WINDOW] == 0
        node[:] = 0
        sums[:] = 0.0
        live[:] = scoring
        depth_pow = 1.0
        for _ in range(height):
            for t in range(n_trees):
                k = node[t]
                l_mass[t, k] += 1
                if live[t]:
                    r = r_mass[t, k]
                    sums[t] += r * depth_pow
                    # river stops summing below 0.1 * window_size (the paper's constant)
                    live[t] = not r < size_limit
                node[t] = 2 * k + 1 + (xs[j, feature[t, k]] >= threshold[t, k])
            depth_pow *= 2.0
        total = 0.0
        for t in range(n_trees):
            k = node[t]
            l_mass[t, k] += 1
            if live[t]:
                sums[t] += r_mass[t, k] * depth_pow
            total += sums[t]
        # 2. Normalise to [0, 1] and flip: high means anomalous (0 during the first window).
        score = 1.0 - total / max_score if scoring else 0.0
        f[SCORE] = score
        out[j] = score
        # 3. Every window_size learned vectors, the latest masses become the reference.
        i[_COUNTER] += 1
        if i[_COUNTER] == window_size:
            r_mass[:, :] = l_mass
            l_mass[:, :] = 0
            i[_FIRST_WINDOW] = 0
            i[_COUNTER] = 0


def _grow(  # noqa: PLR0917 - mirrors river's recursion
    limits: list[tuple[float, float]],
    height: int,
    rng: random.Random,
    feature: IntArray,
    threshold: FloatArray,
    node: int,
) -> None:
    """river's ``make_padded_tree``: the same ``rng`` calls in the same (pre-)order.

    The split of heap node ``node`` goes to ``feature[node]``/``threshold[node]``;
    leaves draw nothing.
    """
    if height == 0:
        return
    on = rng.choices(
        population=list(range(len(limits))),
        weights=[limits[i][1] - limits[i][0] for i in range(len(limits))],
    )[0]
    a = limits[on][0]
    b = limits[on][1]
    at = rng.uniform(a + _PADDING * (b - a), b - _PADDING * (b - a))
    feature[node] = on
    threshold[node] = at
    tmp = limits[on]
    limits[on] = (tmp[0], at)
    _grow(limits, height - 1, rng, feature, threshold, 2 * node + 1)
    limits[on] = tmp
    limits[on] = (at, tmp[1])
    _grow(limits, height - 1, rng, feature, threshold, 2 * node + 2)
    limits[on] = tmp


class HalfSpaceTrees(VectorAnomalyDetector):
    """Half-Space Trees (Tan, Ting & Liu, 2011), the kernel compiled with Numba.

    An ensemble of ``n_trees`` random trees of ``height`` splits; each split
    halves the current box of one feature (chosen with probability
    proportional to the box's width) at a point drawn away from its edges.
    Each node counts the vectors passing through it over a tumbling window of
    ``window_size`` vectors; the counts of the previous window are the
    reference ("mass") a vector is scored against: the less mass along its
    path, the more anomalous. Scores are in ``[0, 1]``, high is anomalous, and
    ``0`` during the first window. Features are expected in ``limits``
    (default ``[0, 1]`` each, as in river; min-max scale beforehand).

    Same parameters, defaults, random draws and arithmetic as river 0.26
    ``anomaly.HalfSpaceTrees``, given vectors in a fixed feature order where
    river gets dicts (feature ``k`` is river's key ``k``; river orders features
    by ``sorted(x)``, so feed it integer keys). The trees are built in Python
    with ``random.Random(seed)``, making exactly river's calls in river's
    order; the walks run in Numba over flat arrays. So ``update(x)`` gives
    river's ``score_one(x)`` followed by ``learn_one(x)``, score for score.

    Non-finite policy: a vector with any NaN or ±inf component is not scored
    (score NaN) and not learned, and is counted in ``n_skipped``, so scores
    are river's on the stream without those vectors. (river itself would send
    a NaN down every right branch and learn it as a normal vector.) River's
    route for a *missing* feature has no counterpart here: vectors are dense.

    Parameters
    ----------
    n_trees
        Number of trees.
    height
        Height of each tree (``2 ** (height + 1) - 1`` nodes).
    window_size
        Number of vectors per window of masses.
    limits
        ``(low, high)`` range of each feature, in feature order; default
        ``(0, 1)`` for every feature.
    seed
        Random seed (an int, or ``None`` for one from the OS).

    Examples
    --------
    >>> import numpy as np
    >>> from streamscore.libs.detectors import HalfSpaceTrees
    >>> rng = np.random.default_rng(7)
    >>> X = rng.uniform(0.4, 0.6, size=(600, 2))
    >>> X[550] = [0.05, 0.95]
    >>> hst = HalfSpaceTrees(n_trees=10, height=6, window_size=100, seed=42)
    >>> scores = hst.update_many(X)
    >>> float(scores[0]), int(np.argmax(scores))
    (0.0, 550)
    >>> bool(scores[550] > 0.9 > scores[100:550].max())
    True
    """

    _PARAMS = ("n_trees", "height", "window_size", "limits", "seed")
    _STATE = ("_f", "_i", "_mt", "_feature", "_threshold", "_l_mass", "_r_mass")

    _mt: IntArray
    _feature: IntArray
    _threshold: FloatArray
    _l_mass: IntArray
    _r_mass: IntArray

    def __init__(
        self,
        n_trees: int = 10,
        height: int = 8,
        window_size: int = 250,
        limits: Sequence[tuple[float, float]] | None = None,
        seed: int | None = None,
    ) -> None:
        if n_trees < 1 or height < 1 or window_size < 1:
            raise ValueError("n_trees, height and window_size must be >= 1")
        bounds = None
        if limits is not None:
            bounds = tuple((float(lo), float(hi)) for lo, hi in limits)
            if not bounds or any(not lo < hi for lo, hi in bounds):
                raise ValueError("limits must be non-empty (low, high) pairs with low < high")
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.limits = bounds
        self.seed = seed
        self._f = np.zeros(1, dtype=np.float64)
        self._i = np.zeros(5, dtype=np.int64)
        self._i[_FIRST_WINDOW] = 1
        # The generator's state, as random.Random(seed) leaves it (seeded from the OS for
        # None): the trees are drawn from it at the first vector, as river does.
        version, internal, gauss = random.Random(seed).getstate()
        assert version == 3 and gauss is None
        self._mt = np.array(internal, dtype=np.int64)
        n_internal, n_nodes = 2**height - 1, 2 ** (height + 1) - 1
        self._feature = np.zeros((0, n_internal), dtype=np.int64)
        self._threshold = np.zeros((0, n_internal), dtype=np.float64)
        self._l_mass = np.zeros((0, n_nodes), dtype=np.int64)
        self._r_mass = np.zeros((0, n_nodes), dtype=np.int64)
        if bounds is not None:
            self._allocate(len(bounds))
        else:
            self._bind()

    def _allocate(self, n_features: int) -> None:
        """Draw the trees (river's draws, in river's order) for ``n_features`` features."""
        if self.limits is not None and n_features != len(self.limits):
            msg = f"expected {len(self.limits)} features (one per limit), got {n_features}"
            raise ValueError(msg)
        limits = list(self.limits) if self.limits is not None else [(0.0, 1.0)] * n_features
        rng = random.Random()
        rng.setstate((3, tuple(int(v) for v in self._mt), None))
        n_internal, n_nodes = 2**self.height - 1, 2 ** (self.height + 1) - 1
        self._feature = np.zeros((self.n_trees, n_internal), dtype=np.int64)
        self._threshold = np.zeros((self.n_trees, n_internal), dtype=np.float64)
        for t in range(self.n_trees):
            _grow(limits, self.height, rng, self._feature[t], self._threshold[t], 0)
        self._l_mass = np.zeros((self.n_trees, n_nodes), dtype=np.int64)
        self._r_mass = np.zeros((self.n_trees, n_nodes), dtype=np.int64)
        self._mt = np.array(rng.getstate()[1], dtype=np.int64)
        self._i[2] = n_features
        self._bind()

    def _kernel(self) -> Callable[..., None]:
        return _update

    def _param_values(self) -> tuple[Any, ...]:
        n_nodes = 2 ** (self.height + 1) - 1
        return (
            int(self.height),
            int(self.window_size),
            0.1 * self.window_size,
            float(self.n_trees * self.window_size * n_nodes),
        )

    @classmethod
    def warmup(cls) -> None:
        """Compile (or load from Numba's cache) the kernel: batch and single paths."""
        det = cls(n_trees=2, height=2, window_size=2, seed=0)
        det.update_many(np.array([[0.1, 0.2], [np.nan, 0.0], [0.3, 0.4], [0.5, 0.6]]))
        det.update(np.array([0.5, 0.5]))
