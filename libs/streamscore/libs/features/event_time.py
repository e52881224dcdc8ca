"""Plausible event times: an event dated far ahead of, or long before, the processing
clock is refused before it touches any state.

Why it matters: an entity's windows advance with the newest event time they
have accepted (the watermark, :mod:`streamscore.libs.windows.engine`). One event
dated 2099 would move a customer's watermark to 2099, and every later genuine
event of that customer would be dropped as late: one bad record would silence
an entity's features for good. An event dated 1970 (seconds read as
milliseconds, a zero default) is no fraud signal either.

The rule, with ``now`` the processing wall clock:

- ``event_time > now + max_ahead_s`` → ``event_time_future`` (``max_ahead_s``
  0 turns it off: the demo's accelerated clock publishes days ahead of now);
- ``event_time < EARLIEST`` (2000-01-01), always → ``event_time_past``;
- ``event_time < now - max_age_s`` when ``max_age_s`` is set (0: off, the
  default, since replays and backfills of old data are legitimate) →
  ``event_time_past``.

A refused event goes to its topic's DLQ with reason ``semantic`` (the stream
path) or is refused with 422 (the sync API), the detail naming the rule.

>>> from datetime import UTC, datetime
>>> b = EventTimeBounds(max_ahead_s=3600)
>>> now = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
>>> b.check(int((now + 600) * 1e6), now)  # 10 min ahead: within the bound
>>> try:
...     b.check(int(datetime(2099, 1, 1, tzinfo=UTC).timestamp() * 1e6), now)
... except FeatureInputError as err:
...     print(err.reason, err.field)
event_time_future event_time
>>> try:
...     b.check(0, now)
... except FeatureInputError as err:
...     print(err.reason, err.detail)
event_time_past 1970-01-01T00:00:00+00:00 is before 2000-01-01T00:00:00+00:00
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from streamscore.libs.config import Settings
from streamscore.libs.features.compute import FeatureInputError

#: No event of any stream is older than this.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_EARLIEST_US = int(EARLIEST.timestamp() * 1_000_000)
#: Default tolerance for producer clocks running ahead (a day: far beyond skew).
DEFAULT_MAX_AHEAD_S = 86_400.0


def _iso(t_us: int) -> str:
    return datetime.fromtimestamp(t_us / 1e6, tz=UTC).isoformat()


@dataclass(frozen=True)
class EventTimeBounds:
    """How far from the processing clock an event time may be (seconds; 0 = no bound)."""

    max_ahead_s: float = DEFAULT_MAX_AHEAD_S
    max_age_s: float = 0.0

    @classmethod
    def of(cls, settings: Settings) -> EventTimeBounds:
        """The bounds set by ``STREAMSCORE_EVENT_TIME_MAX_AHEAD_S`` / ``_MAX_AGE_S``."""
        return cls(settings.event_time_max_ahead_s, settings.event_time_max_age_s)

    def check(self, t_us: int, now_s: float) -> None:
        """Raise :class:`FeatureInputError` if ``t_us`` (µs) is implausible at ``now_s``."""
        if t_us < _EARLIEST_US:
            raise FeatureInputError(
                "event_time_past", "event_time", f"{_iso(t_us)} is before {EARLIEST.isoformat()}"
            )
        now_us = now_s * 1_000_000
        if self.max_ahead_s and t_us > now_us + self.max_ahead_s * 1_000_000:
            ahead = (t_us - now_us) / 1e6
            raise FeatureInputError(
                "event_time_future",
                "event_time",
                f"{_iso(t_us)} is {ahead:.0f} s ahead of the processing clock"
                f" (limit {self.max_ahead_s:.0f} s)",
            )
        if self.max_age_s and t_us < now_us - self.max_age_s * 1_000_000:
            age = (now_us - t_us) / 1e6
            raise FeatureInputError(
                "event_time_past",
                "event_time",
                f"{_iso(t_us)} is {age:.0f} s behind the processing clock"
                f" (limit {self.max_age_s:.0f} s)",
            )
