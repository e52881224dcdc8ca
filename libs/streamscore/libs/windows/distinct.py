"""Distinct count: an exact set of key hashes up to a threshold, HyperLogLog beyond.

Keys are stored as their stable 64-bit hashes (:func:`~.hashing.hash64`), so the
exact part is exact up to a 64-bit hash collision (probability about
``n² / 2**65``, negligible). Once more than ``threshold`` (default 64) distinct
hashes are held, the set is folded into a :class:`~.hll.HyperLogLog` of
precision ``p`` and the count becomes an estimate (:attr:`Distinct.is_exact`
turns ``False``). Merging keeps the set while the union stays small.

>>> from streamscore.libs.windows.hashing import hash64
>>> d = Distinct(threshold=4)
>>> for k in ("a", "b", "a", "c"):
...     d.add_hash(hash64(k))
>>> d.count(), d.is_exact
(3, True)
>>> e = Distinct(threshold=4)
>>> for k in ("c", "d", "e"):
...     e.add_hash(hash64(k))
>>> d.merge(e)
>>> d.count(), d.is_exact
(5, False)
>>> Distinct.from_bytes(d.to_bytes()).count()
5
"""

from __future__ import annotations

import numpy as np

from streamscore.libs.windows.hll import HyperLogLog

DEFAULT_THRESHOLD = 64
DEFAULT_P = 12
_EXACT = b"E"
_HLL = b"H"


class Distinct:
    """A mergeable distinct-count sketch (exact set, then HyperLogLog)."""

    __slots__ = ("hashes", "hll", "p", "threshold")

    def __init__(self, threshold: int = DEFAULT_THRESHOLD, p: int = DEFAULT_P) -> None:
        self.threshold = threshold
        self.p = p
        self.hashes: set[int] | None = set()
        self.hll: HyperLogLog | None = None

    @property
    def is_exact(self) -> bool:
        return self.hll is None

    def add_hash(self, h: int) -> None:
        if self.hashes is not None:
            self.hashes.add(h)
            if len(self.hashes) > self.threshold:
                self._fold()
        else:
            assert self.hll is not None
            self.hll.add_hash(h)

    def _fold(self) -> None:
        hll = HyperLogLog(self.p)
        for h in self.hashes or ():
            hll.add_hash(h)
        self.hashes, self.hll = None, hll

    def merge(self, other: Distinct) -> None:
        """``self`` becomes the sketch of the union of both."""
        if other.hashes is not None:
            for h in other.hashes:
                self.add_hash(h)
            return
        assert other.hll is not None
        if self.hll is None:
            self._fold()
        assert self.hll is not None
        self.hll.merge(other.hll)

    def count(self) -> int:
        """The number of distinct keys: exact, or the HyperLogLog estimate rounded."""
        if self.hashes is not None:
            return len(self.hashes)
        assert self.hll is not None
        return round(self.hll.estimate())

    def to_bytes(self) -> bytes:
        """``E`` + sorted uint64 hashes, or ``H`` + the HyperLogLog bytes."""
        if self.hashes is not None:
            return _EXACT + np.array(sorted(self.hashes), dtype="<u8").tobytes()
        assert self.hll is not None
        return _HLL + self.hll.to_bytes()

    @classmethod
    def from_bytes(
        cls, data: bytes, threshold: int = DEFAULT_THRESHOLD, p: int = DEFAULT_P
    ) -> Distinct:
        d = cls(threshold, p)
        if data[:1] == _EXACT:
            d.hashes = set(np.frombuffer(data, dtype="<u8", offset=1).tolist())
        else:
            d.hashes, d.hll = None, HyperLogLog.from_bytes(data[1:])
            d.p = d.hll.p
        return d
