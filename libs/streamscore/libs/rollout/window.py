"""A sliding window of one cohort's recent decisions: counts by outcome, failures, model-call
times, over at least the last ``size`` events (whole batches are dropped from the old end).

>>> w = CohortWindow(size=100)
>>> for _ in range(30):
...     w.add(outcomes={"approve": 9, "block": 1}, errors=0, latency_ms=1.0)
>>> s = w.stats()
>>> s.events, dict(s.outcomes), s.latency_p99_ms
(100, {'approve': 90, 'block': 10}, 1.0)
>>> w.add(outcomes={}, errors=5, latency_ms=9.0)
>>> w.stats().errors, w.stats().events
(5, 105)
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass

from streamscore.libs.rollout.judge import CohortStats


@dataclass(frozen=True)
class _Batch:
    events: int
    outcomes: Counter[str]
    errors: int
    latency_ms: float | None


def p99(values: list[float]) -> float | None:
    """Nearest-rank 99th percentile (``None`` for no values).

    >>> p99([float(i) for i in range(1, 101)])
    99.0
    """
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


class CohortWindow:
    """The last ``size`` events (at least) of one cohort, by whole batches."""

    def __init__(self, size: int = 5000) -> None:
        self.size = size
        self._batches: deque[_Batch] = deque()
        self._events = 0

    def add(self, *, outcomes: Mapping[str, int], errors: int, latency_ms: float | None) -> None:
        """One batch (or sub-batch) of this cohort: its outcome counts, failed rows, call time."""
        events = sum(outcomes.values()) + errors
        if events == 0:
            return
        self._batches.append(_Batch(events, Counter(outcomes), errors, latency_ms))
        self._events += events
        while self._batches and self._events - self._batches[0].events >= self.size:
            self._events -= self._batches.popleft().events

    def stats(self) -> CohortStats:
        """The window as the judge reads it (latency: p99 of the model-call times)."""
        total: Counter[str] = Counter()
        for b in self._batches:
            total.update(b.outcomes)
        lat = [b.latency_ms for b in self._batches if b.latency_ms is not None]
        return CohortStats(
            events=self._events,
            outcomes=dict(total),
            errors=sum(b.errors for b in self._batches),
            latency_p99_ms=p99(lat),
        )

    def clear(self) -> None:
        self._batches.clear()
        self._events = 0
