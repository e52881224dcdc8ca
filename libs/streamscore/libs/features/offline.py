"""The offline path: the same features, computed from recorded events and labels in memory.

:class:`OfflineFeatures` feeds a stream's events and its labels, in arrival
order, through :func:`~.compute.apply_event` and :func:`~.compute.apply_label`
with states held in a dict: exactly the code the stream processors run on
states held in Redis. Point-in-time correctness follows from the computation
itself: an event's windows end at its own time (no later event counts) and a
label counts only if it had arrived by then. When an event and a label have
the same time the label is applied first (it had arrived "by then").

A repeated event id yields the vector computed the first time (the stream
processors do the same from their dedupe record), so duplicates change no
feature and no training row. Like the processors' dedupe records, the vectors
are kept for ``dedupe_horizon_s`` of event time (a day by default), so memory
stays bounded over months of history.

>>> from datetime import UTC, datetime, timedelta
>>> from streamscore.libs.contracts.events import Transaction
>>> t0 = datetime(2026, 1, 5, 12, tzinfo=UTC)
>>> txs = [Transaction(event_id=f"e{i}", event_time=t0 + timedelta(hours=i), customer_id="C",
...        terminal_id="T", amount=10.0 * (i + 1)) for i in range(3)]
>>> off = OfflineFeatures("transactions")
>>> rows = [off.event(tx) for tx in txs + txs[:1]]  # the first one again, re-delivered
>>> [r.values["customer_nb_tx_1d"] for r in rows]
[1.0, 2.0, 3.0, 1.0]
>>> rows[3] is rows[0], off.duplicates
(True, 1)
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from streamscore.libs.contracts.base import Event
from streamscore.libs.features.compute import (
    EventResult,
    apply_event,
    apply_label,
    entity_id,
    label_groups,
    new_states,
)
from streamscore.libs.features.definitions import groups
from streamscore.libs.features.plan import plan_for
from streamscore.libs.windows.timebase import to_us


class OfflineFeatures:
    """In-memory feature computation for one stream."""

    def __init__(self, stream: str, *, dedupe_horizon_s: int = 24 * 3600) -> None:
        self.stream = stream
        self.groups = groups(stream)
        self.states = new_states(stream)
        self.horizon_us = dedupe_horizon_s * 1_000_000
        #: event id -> (event time µs, first result), in arrival order.
        self.emitted: OrderedDict[str, tuple[int, EventResult]] = OrderedDict()
        self.newest_us: int | None = None
        self.duplicates = 0
        self.labels: dict[str, int] = {}

    def event(self, event: Event) -> EventResult:
        """The features of one event (the first vector again for a repeated id)."""
        seen = self.emitted.get(event.event_id)
        if seen is not None:
            self.duplicates += 1
            return seen[1]
        states = []
        for g in self.groups:
            eid = entity_id(g, event)
            if eid is None:
                raise ValueError(f"{self.stream} event without {g.entity.join_key}")
            states.append(self.states[(g.name, eid)])
        result = apply_event(self.stream, event, *states)
        t = to_us(event.event_time)
        self.emitted[event.event_id] = (t, result)
        self.newest_us = t if self.newest_us is None else max(self.newest_us, t)
        while self.emitted:
            first_t, _ = next(iter(self.emitted.values()))
            if first_t >= self.newest_us - self.horizon_us:
                break
            self.emitted.popitem(last=False)
        return result

    def label(self, label: Any) -> None:
        """Record a label in every label-derived group it is about."""
        for g in label_groups(self.stream):
            eid = entity_id(g, label)
            outcome = "unplaced" if eid is None else None
            if eid is not None:
                outcome = apply_label(plan_for(g), self.states[(g.name, eid)], label)
            self.labels[outcome or "unplaced"] = self.labels.get(outcome or "unplaced", 0) + 1


def arrival_order(events: Iterable[Event], labels: Iterable[Any]) -> Iterator[tuple[bool, Any]]:
    """Events and labels merged by time, labels first on ties: ``(is_label, message)``.

    Both inputs must already be in time order (as recorded)."""

    def keyed(xs: Iterable[Any], is_label: bool) -> Iterator[tuple[int, int, bool, Any]]:
        rank = 0 if is_label else 1
        for x in xs:
            yield to_us(x.event_time), rank, is_label, x

    for _, _, is_label, x in heapq.merge(
        keyed(labels, True), keyed(events, False), key=lambda r: (r[0], r[1])
    ):
        yield is_label, x


def compute(
    stream: str, events: Iterable[Event], labels: Iterable[Any] = ()
) -> Iterator[tuple[Event, EventResult]]:
    """Every event of ``stream`` with its features, labels applied in arrival order."""
    off = OfflineFeatures(stream)
    for is_label, msg in arrival_order(events, labels):
        if is_label:
            off.label(msg)
        else:
            yield msg, off.event(msg)
