"""One shape for the four label contracts: what the joiner needs to know about a label.

A label (chargeback, account takeover, maintenance record, conversion) says,
at its ``event_time`` (when it became known), whether an earlier event was
positive. The joiner keeps, per event, the **latest** label by label time, then
label id (:class:`LabelRef` orders that way); a redelivered label is never
later than itself, so applying it again changes nothing.

Positivity is the feature layer's (:func:`streamscore.libs.features.compute.label_positive`):
``fraud`` (a ``reversed`` chargeback says ``fraud=False``), ``confirmed``,
``converted``; a failure record is a failure.

>>> from datetime import datetime, timezone
>>> from streamscore.libs.contracts.labels import Chargeback
>>> t = datetime(2026, 2, 1, tzinfo=timezone.utc)
>>> cb = Chargeback(event_id="cb1", event_time=t, target_event_id="tx1", customer_id="C1",
...     terminal_id="T1", fraud=False, status="reversed")
>>> fact = fact_of(cb)
>>> fact.target_event_id, fact.label.positive, fact.target_time_us is None
('tx1', False, True)
>>> later = LabelRef(fact.label.time_us + 1, "cb0", True)
>>> later.key > fact.label.key
True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec

from streamscore.libs.contracts.base import Message
from streamscore.libs.labels.spec import to_us


class LabelRef(msgspec.Struct, frozen=True, array_like=True):
    """A label as the joiner stores it: when it became known, its id, what it says."""

    time_us: int
    label_id: str
    positive: bool

    @property
    def key(self) -> tuple[int, str]:
        """The order of labels for one event: label time, then label id (the later wins)."""
        return (self.time_us, self.label_id)


@dataclass(frozen=True)
class LabelFact:
    """A decoded label, reduced to what the join needs."""

    label: LabelRef
    #: The labelled event, when the label names it (``None``: cannot be joined by id).
    target_event_id: str | None
    #: The labelled event's ``event_time`` when the label carries it (chargeback v2).
    target_time_us: int | None = None


def positive_of(label: Message) -> bool:
    """Whether a label says "positive" (fraud, takeover, failure, conversion)."""
    for name in ("fraud", "confirmed", "converted"):
        if hasattr(label, name):
            return bool(getattr(label, name))
    return True  # a failure record is a failure


def fact_of(label: Message) -> LabelFact:
    """The :class:`LabelFact` of any label contract."""
    event_time: datetime = getattr(label, "event_time")  # noqa: B009 (every label is an Event)
    target_time: datetime | None = getattr(label, "target_event_time", None)
    return LabelFact(
        label=LabelRef(to_us(event_time), str(getattr(label, "event_id")), positive_of(label)),  # noqa: B009
        target_event_id=getattr(label, "target_event_id", None),
        target_time_us=None if target_time is None else to_us(target_time),
    )
