"""Labels waiting for their arrival time, released in order as the scenario clock advances."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any, Generic, Protocol, TypeVar


class Timed(Protocol):
    """Anything with an arrival time that orders by it."""

    @property
    def arrival_s(self) -> float: ...

    def __lt__(self, other: Any, /) -> bool: ...


T = TypeVar("T", bound=Timed)


class ArrivalQueue(Generic[T]):
    """A min-heap of pending labels keyed by arrival time (seconds since the scenario start).

    >>> from dataclasses import dataclass
    >>> @dataclass(order=True)
    ... class L:
    ...     arrival_s: float
    >>> q = ArrivalQueue()
    >>> for t in (5.0, 1.0, 3.0):
    ...     q.push(L(t))
    >>> [l.arrival_s for l in q.due(3.0)], len(q)
    ([1.0, 3.0], 1)
    """

    def __init__(self) -> None:
        self._heap: list[T] = []

    def push(self, item: T) -> None:
        heapq.heappush(self._heap, item)

    def due(self, now_s: float) -> Iterator[T]:
        """Pop every item whose arrival is at or before ``now_s``, earliest first."""
        while self._heap and self._heap[0].arrival_s <= now_s:
            yield heapq.heappop(self._heap)

    def __len__(self) -> int:
        return len(self._heap)
