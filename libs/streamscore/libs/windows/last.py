"""Last value and time since the last event, robust to out-of-order arrival.

The ``k`` most recent events (by event time) are kept, sorted. ``last_at(t)`` is
the latest kept event with time ``<= t`` (ties: the one added last), so a
feature processor that reads *before* adding the current event gets "the
entity's previous event" even when the current event arrived out of order.
The answer is exact whenever ``t`` is not older than the ``k``-th most recent
event; older reads return ``None`` (unknown or none), like an empty window.

>>> s = LastSeen(k=4)
>>> for t, v in ((10, 1.0), (30, 3.0), (20, 2.0)):
...     s.add(t, v)
>>> s.last_at(25), s.last_at(100), s.last_at(5)
((20, 2.0), (30, 3.0), None)
>>> s.since_last(40)
10
>>> LastSeen.from_bytes(s.to_bytes()).last_at(25)
(20, 2.0)
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np

DEFAULT_K = 8


class LastSeen:
    """The ``k`` most recent ``(event time, value)`` pairs of one entity."""

    __slots__ = ("k", "times", "values")

    def __init__(self, k: int = DEFAULT_K) -> None:
        if k < 1:
            raise ValueError("k must be >= 1")
        self.k = k
        self.times: list[int] = []
        self.values: list[float] = []

    def add(self, t_us: int, value: float = 0.0) -> None:
        i = bisect_right(self.times, t_us)
        if i == 0 and len(self.times) >= self.k:
            return  # older than everything kept: can never be a "last"
        self.times.insert(i, t_us)
        self.values.insert(i, value)
        if len(self.times) > self.k:
            del self.times[0]
            del self.values[0]

    def last_at(self, t_us: int) -> tuple[int, float] | None:
        """The latest event at or before ``t_us``: ``(time, value)``, or ``None``."""
        i = bisect_right(self.times, t_us)
        if i == 0:
            return None
        return self.times[i - 1], self.values[i - 1]

    def since_last(self, t_us: int) -> int | None:
        """Microseconds from the latest event at or before ``t_us`` to ``t_us``, or ``None``."""
        last = self.last_at(t_us)
        return None if last is None else t_us - last[0]

    def to_bytes(self) -> bytes:
        """``k`` (uint16), then the int64 times, then the float64 values (little-endian)."""
        return (
            int(self.k).to_bytes(2, "little")
            + np.array(self.times, dtype="<i8").tobytes()
            + np.array(self.values, dtype="<f8").tobytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> LastSeen:
        s = cls(int.from_bytes(data[:2], "little"))
        n = (len(data) - 2) // 16
        s.times = np.frombuffer(data, dtype="<i8", count=n, offset=2).tolist()
        s.values = np.frombuffer(data, dtype="<f8", count=n, offset=2 + 8 * n).tolist()
        return s
