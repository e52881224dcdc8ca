"""Which events a window "ending at ``t``" covers: exact and tile-aligned definitions.

A :class:`Window` has a length ``W`` and a delay ``d`` (both microseconds; ``d``
shifts the window back, as for label-derived features). For a read at time ``t``
let ``lo = t - d - W`` and ``hi = t - d``.

* ``exact`` (default) covers the events with ``lo < time <= hi``, i.e. the
  half-open interval ``(t - d - W, t - d]``. With ``d = 0`` this includes an
  event at exactly ``t`` (the handbook's customer features count the current
  transaction), and it is what pandas' time-based ``rolling(W)`` computes; the
  handbook's delayed terminal windows (``rolling(d+W) - rolling(d)``) are
  ``(t - d - W, t - d]`` too. It is computed from the aggregates of the tiles
  lying wholly inside the interval plus the kept raw events of at most two
  partly covered edge tiles.
* ``aligned`` covers whole tiles: tile ``k`` (times ``[kT, (k+1)T)``) is in the
  window when its *start* ``kT`` lies in ``(lo, hi]``. ``W`` must be a multiple
  of ``T``; the window is then exactly ``W / T`` tiles, i.e. the events with
  ``(floor(lo/T) + 1)·T <= time < (floor(hi/T) + 1)·T``. It needs no raw
  events, but it may include events later than ``t`` that fall in ``t``'s own
  tile (out-of-order arrivals, or any offline recomputation), so it is not
  point-in-time exact.
* ``tumbling`` covers the epoch-aligned bucket ``[jW, (j+1)W)`` holding
  ``hi`` (``j = floor(hi/W)``), whole tiles up to ``hi``'s tile: the tiles ``k``
  with ``jW <= kT <= hi``. ``W`` must be a multiple of ``T``. Read with a delay
  of ``W`` for "the previous complete bucket".

>>> from streamscore.libs.windows.timebase import DAY, HOUR
>>> w = Window(DAY)
>>> w.bounds(10 * DAY)
(777600000000, 864000000000)
>>> Window(DAY, mode="aligned").aligned_tiles(10 * DAY + 1, HOUR)  # 24 tiles
(217, 240)
>>> Window(DAY, mode="tumbling").aligned_tiles(10 * DAY + 5 * HOUR, HOUR)  # today so far
(240, 245)
>>> Window(2 * HOUR).split(5 * HOUR + 30, HOUR)  # full tiles 4, and edges 3 and 5
(4, 4, (3, 5))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["exact", "aligned", "tumbling"]


@dataclass(frozen=True)
class Window:
    """A window of ``length_us`` ending ``delay_us`` before the read time."""

    length_us: int
    delay_us: int = 0
    mode: Mode = "exact"

    def __post_init__(self) -> None:
        if self.length_us <= 0 or self.delay_us < 0:
            raise ValueError("a window needs length_us > 0 and delay_us >= 0")

    @property
    def span_us(self) -> int:
        """How far back from the read time the window reaches: ``W + d``."""
        return self.length_us + self.delay_us

    def bounds(self, t_us: int) -> tuple[int, int]:
        """``(lo, hi)``: the exact window is ``lo < time <= hi``."""
        hi = t_us - self.delay_us
        return hi - self.length_us, hi

    def aligned_tiles(self, t_us: int, tile_us: int) -> tuple[int, int]:
        """First and last tile of an ``aligned`` (or ``tumbling``) window."""
        lo, hi = self.bounds(t_us)
        if self.mode == "tumbling":
            return (hi // self.length_us) * self.length_us // tile_us, hi // tile_us
        return lo // tile_us + 1, hi // tile_us

    def split(self, t_us: int, tile_us: int) -> tuple[int, int, tuple[int, ...]]:
        """The exact window as full tiles ``[first, last]`` plus partly covered edge tiles.

        ``first > last`` means no full tile. The edge tiles (at most two) must be
        read from raw events, keeping those with ``lo < time <= hi``.
        """
        lo, hi = self.bounds(t_us)
        first = (lo + tile_us) // tile_us  # ceil((lo + 1) / T)
        last = (hi + 1) // tile_us - 1  # the last tile ending at or before hi
        edges = sorted({k for k in ((lo + 1) // tile_us, hi // tile_us) if not first <= k <= last})
        return first, last, tuple(edges)
