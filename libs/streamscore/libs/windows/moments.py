"""Mergeable moments of a numeric field: count, sum, mean, variance, min, max.

Per tile the mean and the sum of squared deviations ``m2`` are kept with
Welford's update; tiles are merged with Chan et al.'s parallel formula, which
is numerically stable (no ``sum(x**2) - n*mean**2`` cancellation). ``sum`` is
kept separately so sums of integers (counts of flags) stay exact.

An empty set of values is explicit: ``mean``, ``var``, ``std``, ``min`` and
``max`` are ``None``; :meth:`Moments.get` turns that into ``0.0`` only when the
caller asks for ``empty="zero"``.

>>> m = Moments()
>>> for x in (2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0):
...     m.add(x)
>>> (m.count, m.sum, m.mean, m.var_pop, m.min, m.max)
(8, 40.0, 5.0, 4.0, 2.0, 9.0)
>>> a, b = Moments.of([2.0, 4.0, 4.0]), Moments.of([4.0, 5.0, 5.0, 7.0, 9.0])
>>> a.merge(b)
>>> (a.count, a.mean, a.var_pop)
(8, 5.0, 4.0)
>>> Moments().get("mean"), Moments().get("mean", empty="zero"), Moments().get("count")
(None, 0.0, None)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

Stat = Literal["count", "sum", "mean", "var", "std", "var_pop", "std_pop", "min", "max"]
#: What an empty window yields: ``None`` (missing) or ``0.0`` (explicitly asked for).
Empty = Literal["missing", "zero"]


class Moments:
    """Count, sum, mean, ``m2`` (sum of squared deviations), min and max of some values."""

    __slots__ = ("count", "m2", "max_", "mean_", "min_", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0.0
        self.mean_ = 0.0
        self.m2 = 0.0
        self.min_ = math.inf
        self.max_ = -math.inf

    @classmethod
    def of(cls, xs: Iterable[float]) -> Moments:
        """The moments of ``xs``, added one by one."""
        m = cls()
        for x in xs:
            m.add(x)
        return m

    def add(self, x: float) -> None:
        """Welford's update with one value."""
        self.count += 1
        self.sum += x
        d = x - self.mean_
        self.mean_ += d / self.count
        self.m2 += d * (x - self.mean_)
        self.min_ = min(self.min_, x)
        self.max_ = max(self.max_, x)

    def merge(self, other: Moments) -> None:
        """Chan's parallel merge: ``self`` becomes the moments of both sets."""
        if other.count == 0:
            return
        if self.count == 0:
            self.count, self.sum, self.mean_ = other.count, other.sum, other.mean_
            self.m2, self.min_, self.max_ = other.m2, other.min_, other.max_
            return
        n = self.count + other.count
        d = other.mean_ - self.mean_
        self.mean_ += d * other.count / n
        self.m2 += other.m2 + d * d * self.count * other.count / n
        self.count = n
        self.sum += other.sum
        self.min_ = min(self.min_, other.min_)
        self.max_ = max(self.max_, other.max_)

    @property
    def mean(self) -> float | None:
        return self.mean_ if self.count else None

    @property
    def min(self) -> float | None:
        return self.min_ if self.count else None

    @property
    def max(self) -> float | None:
        return self.max_ if self.count else None

    def variance(self, ddof: int = 1) -> float | None:
        """``m2 / (count - ddof)``; ``None`` when ``count <= ddof``."""
        if self.count <= ddof:
            return None
        return max(self.m2, 0.0) / (self.count - ddof)

    @property
    def var(self) -> float | None:
        """Sample variance (``ddof=1``, as pandas' ``std``/``var``)."""
        return self.variance(1)

    @property
    def std(self) -> float | None:
        v = self.variance(1)
        return None if v is None else math.sqrt(v)

    @property
    def var_pop(self) -> float | None:
        """Population variance (``ddof=0``)."""
        return self.variance(0)

    @property
    def std_pop(self) -> float | None:
        v = self.variance(0)
        return None if v is None else math.sqrt(v)

    def get(self, stat: Stat, empty: Empty = "missing") -> float | None:
        """One statistic; on an empty set ``None``, or ``0.0`` when ``empty="zero"``.

        ``count`` of an empty set is also ``None`` unless ``empty="zero"``, so
        "no data" is never confused with a measured zero by accident.
        """
        if stat == "count":
            value: float | None = float(self.count) if self.count else None
        elif stat == "sum":
            value = self.sum if self.count else None
        else:
            value = getattr(self, stat)
        if value is None and empty == "zero":
            return 0.0
        return value

    def __repr__(self) -> str:
        return f"Moments(count={self.count}, sum={self.sum!r}, mean={self.mean!r}, m2={self.m2!r})"
