"""The raw events of one tile, kept as columns: times, values, key hashes, has-key flags.

An exact window reads its partly covered edge tiles from the raw events. They
are held as ``array`` columns (int64 times, float64 values, uint64 hashes and
one byte per event saying whether it had a key), the layout of a tile field in
:mod:`.codec`. So writing a tile is a copy of its columns' bytes and loading it
is the same copy back, instead of a Python pass that built or took apart a
tuple per event; and the edge reads run in one Numba pass over the columns.
Those passes made a busy entity's events cost more the more events its tile
held: 3,000 events in one hour tile (a sensor read every 1.2 s) cost
1.3 ms per added event, re-encoding included.

>>> evs = TileEvents()
>>> evs.append(10, 1.5, None); evs.append(20, 2.5, 7); evs.append(30, 4.0, 9)
>>> len(evs), list(evs)
(3, [(10, 1.5, None), (20, 2.5, 7), (30, 4.0, 9)])
>>> evs.moments_between(10, 30).mean, evs.hashes_between(0, 25), evs.latest_at_or_before(25)
(3.25, [7], 20)
>>> TileEvents.from_bytes(*evs.to_bytes()) == evs
True
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterator

import numpy as np

from streamscore.libs.windows._kernels import latest_at_or_before, welford_between
from streamscore.libs.windows.moments import Moments

_BIG_ENDIAN = sys.byteorder == "big"
#: One raw event: (time, value, key hash or None).
RawEvent = tuple[int, float, int | None]


class TileEvents:
    """The raw events of one tile, in the order they were accepted."""

    __slots__ = ("has_key", "hashes", "times", "values")

    def __init__(self) -> None:
        self.times = array("q")
        self.values = array("d")
        self.hashes = array("Q")
        self.has_key = bytearray()

    def append(self, t_us: int, value: float, key_hash: int | None) -> None:
        self.times.append(t_us)
        self.values.append(value)
        self.hashes.append(0 if key_hash is None else key_hash)
        self.has_key.append(key_hash is not None)

    def __len__(self) -> int:
        return len(self.times)

    def __iter__(self) -> Iterator[RawEvent]:
        for t, x, h, k in zip(self.times, self.values, self.hashes, self.has_key, strict=True):
            yield t, x, (h if k else None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TileEvents):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    # -- reads (the numpy views live only during the call: a column with a
    # -- view exported cannot grow) -----------------------------------------
    def moments_between(self, lo: int, hi: int, into: Moments | None = None) -> Moments:
        """``into`` (or new moments) plus the values of events ``lo < time <= hi``, in order."""
        m = Moments() if into is None else into
        if not self.times:
            return m
        m.count, m.sum, m.mean_, m.m2, m.min_, m.max_ = welford_between(
            np.frombuffer(self.times, dtype=np.int64),
            np.frombuffer(self.values, dtype=np.float64),
            lo,
            hi,
            m.count,
            m.sum,
            m.mean_,
            m.m2,
            m.min_,
            m.max_,
        )
        return m

    def hashes_between(self, lo: int, hi: int) -> list[int]:
        """The key hashes of events ``lo < time <= hi`` that had a key, in order."""
        if not self.times:
            return []
        t = np.frombuffer(self.times, dtype=np.int64)
        keep = (t > lo) & (t <= hi) & (np.frombuffer(self.has_key, dtype=np.uint8) != 0)
        return np.frombuffer(self.hashes, dtype=np.uint64)[keep].tolist()  # type: ignore[no-any-return]

    def latest_at_or_before(self, t_us: int) -> int | None:
        """The largest event time ``<= t_us``, or ``None``."""
        if not self.times:
            return None
        found, t = latest_at_or_before(np.frombuffer(self.times, dtype=np.int64), t_us)
        return int(t) if found else None

    # -- bytes ------------------------------------------------------------
    def to_bytes(self) -> tuple[bytes, bytes, bytes, bytes]:
        """Little-endian int64 times, float64 values, uint64 hashes; one flag byte per event."""
        cols = (self.times, self.values, self.hashes)
        if _BIG_ENDIAN:
            cols = tuple(_swapped(c) for c in cols)  # type: ignore[assignment]
        return cols[0].tobytes(), cols[1].tobytes(), cols[2].tobytes(), bytes(self.has_key)

    @classmethod
    def from_bytes(cls, times: bytes, values: bytes, hashes: bytes, has_key: bytes) -> TileEvents:
        """The inverse of :meth:`to_bytes` (columns of one length, else ``ValueError``)."""
        out = cls()
        out.times.frombytes(times)
        out.values.frombytes(values)
        out.hashes.frombytes(hashes)
        out.has_key = bytearray(has_key)
        if _BIG_ENDIAN:
            for c in (out.times, out.values, out.hashes):
                c.byteswap()
        n = len(out.times)
        if not len(out.values) == len(out.hashes) == len(out.has_key) == n:
            raise ValueError("raw event columns of different lengths")
        return out


def _swapped(a: array) -> array:  # type: ignore[type-arg]
    b = array(a.typecode, a)
    b.byteswap()
    return b
