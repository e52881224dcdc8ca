"""Per-tile moments of one entity in a fixed ring of numpy slots.

Tile ``k`` lives in slot ``k % slots``; a slot remembers which tile it holds,
and is reset when a newer tile takes it over. The engine sizes the ring so a
slot is only reused once its old tile is beyond the retention horizon, which
bounds the state per entity. Reading merges the slots whose tile index is in a
range (Chan's merge, one compiled pass): O(slots), not O(events).

>>> r = MomentTiles(slots=4)
>>> r.add(7, 1.0); r.add(7, 3.0); r.add(8, 5.0)
>>> r.read(7, 8).mean, r.read(8, 8).count, r.read(9, 12).count
(3.0, 1, 0)
>>> r.add(11, 2.0)  # takes over tile 7's slot
>>> r.read(7, 11).count
2
"""

from __future__ import annotations

import math

import numpy as np

from streamscore.libs.windows._kernels import add_value, read_range
from streamscore.libs.windows.moments import Moments

#: The tile index of a slot that holds no tile.
NO_TILE = np.iinfo(np.int64).min
#: Rows of :attr:`MomentTiles.f`.
SUM, MEAN, M2, MIN, MAX = range(5)


class MomentTiles:
    """A ring of ``slots`` tiles: ``tile`` index and ``count`` (int64), and ``f`` (float64 rows
    sum, mean, m2, min, max) per slot."""

    __slots__ = ("count", "f", "slots", "tile")

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.tile = np.full(slots, NO_TILE, dtype=np.int64)
        self.count = np.zeros(slots, dtype=np.int64)
        self.f = np.zeros((5, slots), dtype=np.float64)
        self.f[MIN] = math.inf
        self.f[MAX] = -math.inf

    def add(self, k: int, x: float) -> None:
        """Welford's update of tile ``k`` with value ``x``."""
        add_value(self.tile, self.count, self.f, k % self.slots, k, x)

    def read(self, first: int, last: int) -> Moments:
        """The merged moments of tiles ``first..last`` (inclusive)."""
        m = Moments()
        if first > last:
            return m
        n, s, mean, m2, lo, hi = read_range(self.tile, self.count, self.f, first, last)
        if n:
            m.count, m.sum, m.mean_, m.m2, m.min_, m.max_ = n, s, mean, m2, lo, hi
        return m

    def live(self, oldest: int) -> np.ndarray[tuple[int], np.dtype[np.bool_]]:
        """The slots holding a non-empty tile at or after ``oldest``."""
        return (self.tile >= oldest) & (self.count > 0)
