"""What a stream simulator yields: a contract event with its simulated ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from streamscore.libs.contracts.base import Event

#: Scenario clocks start here unless a scenario says otherwise (a Monday, 00:00 UTC).
DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SimRecord:
    """One simulated message for ``topic``.

    ``truth`` holds what the simulation knows and a real system would not
    (e.g. whether a transaction is a fraud and by which scenario). It is written
    to the offline files for evaluation and never published to Kafka.
    """

    topic: str
    event: Event
    truth: dict[str, object] = field(default_factory=dict)

    @property
    def time(self) -> datetime:
        return self.event.event_time


def at(start: datetime, seconds: float) -> datetime:
    """The scenario time ``seconds`` after ``start``, to the microsecond."""
    return start + timedelta(microseconds=round(seconds * 1e6))
