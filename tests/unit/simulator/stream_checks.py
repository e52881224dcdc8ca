"""Checks shared by the stream simulators' tests: bytes, laziness, bounded memory."""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Iterable, Iterator
from datetime import timedelta

from streamscore.libs.contracts.codec import encode
from streamscore.libs.simulator.records import SimRecord


def record_bytes(records: Iterable[SimRecord]) -> list[bytes]:
    """The encoded events, for byte-for-byte comparisons."""
    return [encode(r.event) for r in records]


def head_span(records: Iterator[SimRecord], n: int = 100) -> timedelta:
    """Event-time span of the first ``n`` records (a lazy generator yields them from day one)."""
    head = list(itertools.islice(records, n))
    assert len(head) == n
    return head[-1].time - head[0].time


def peak_bytes(records: Iterator[SimRecord]) -> int:
    """Peak traced memory while consuming ``records`` without keeping them."""
    tracemalloc.start()
    try:
        for _ in records:
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
