"""Move simulated records in time: every timestamp of a record shifted by one offset.

A scenario starts at its own date; a live demo wants it to start now. Shifting
*every* time field (``event_time``, a chargeback's ``target_event_time``, a
failure's ``failure_time``) by the same offset keeps all that matters — the
order, the gaps, the label delays, the windows — and only changes the dates.

>>> from datetime import UTC, datetime, timedelta
>>> from streamscore.libs.contracts.labels import Chargeback
>>> from streamscore.libs.simulator.records import SimRecord
>>> t = datetime(2026, 1, 1, tzinfo=UTC)
>>> cb = Chargeback(event_id="c1", event_time=t + timedelta(days=30), target_event_id="t1",
...     customer_id="C", terminal_id="T", fraud=True, status="reported", target_event_time=t)
>>> moved = shifted(SimRecord("labels.chargebacks", cb), timedelta(days=365))
>>> moved.event.event_time - moved.event.target_event_time, moved.event.target_event_time.year
(datetime.timedelta(days=30), 2027)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import msgspec

from streamscore.libs.simulator.records import SimRecord


def shifted(record: SimRecord, offset: timedelta) -> SimRecord:
    """``record`` with every datetime field of its event moved by ``offset``."""
    ev = record.event
    changes = {
        name: value + offset
        for name in ev.__struct_fields__
        if isinstance(value := getattr(ev, name), datetime)
    }
    return replace(record, event=msgspec.structs.replace(ev, **changes))


def starting_at(records: Iterable[SimRecord], start: datetime) -> Iterator[SimRecord]:
    """The records moved so that the first one happens at ``start`` (lazily)."""
    offset: timedelta | None = None
    for r in records:
        if offset is None:
            offset = start - r.event.event_time
        yield shifted(r, offset)
