"""Merge time-ordered record streams into one, in event-time order, lazily."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

from streamscore.libs.simulator.records import SimRecord


def merge(streams: Iterable[Iterator[SimRecord]]) -> Iterator[SimRecord]:
    """One iterator over all ``streams`` by event time; ties keep the order of ``streams``.

    Each input must itself be in event-time order; memory holds one record per stream.

    >>> from datetime import UTC, datetime
    >>> from streamscore.libs.contracts.events import Click
    >>> def c(i, s):
    ...     return SimRecord("t", Click(event_id=i, event_time=datetime(2026, 1, 1, 0, 0, s,
    ...                      tzinfo=UTC), user_id="u", session_id="s", action="search", page="/"))
    >>> [r.event.event_id for r in merge([iter([c("a", 1), c("c", 3)]), iter([c("b", 2)])])]
    ['a', 'b', 'c']
    """
    return heapq.merge(*streams, key=lambda r: r.event.event_time)
