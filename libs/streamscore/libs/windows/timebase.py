"""Event time in integer microseconds since the Unix epoch, and the tiles that cut it.

The window engine never reads a clock: every time is an event timestamp the
caller passes in, as an ``int`` of microseconds since 1970-01-01T00:00:00Z.
Integers make window edges exact (no float rounding at ``t - W``).

Tiles are epoch-aligned: tile ``k`` of size ``T`` holds the times
``[k*T, (k+1)*T)``.

>>> from datetime import UTC, datetime
>>> to_us(datetime(2026, 1, 1, 1, 30, tzinfo=UTC))
1767231000000000
>>> tile_index(to_us(datetime(2026, 1, 1, 1, 30, tzinfo=UTC)), HOUR)
490897
>>> tile_index(-1, HOUR)  # floor division: before the epoch still works
-1
"""

from __future__ import annotations

from datetime import UTC, datetime

SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(t: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact, no float on the way).

    >>> to_us(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC))
    1000005
    """
    if t.tzinfo is None:
        raise ValueError("event times must be timezone-aware (UTC)")
    return (t - _EPOCH) // _US_DELTA


def seconds(us: int) -> float:
    """Microseconds as float seconds (for features such as "seconds since last").

    >>> seconds(1_500_000)
    1.5
    """
    return us / SECOND


def tile_index(t_us: int, tile_us: int) -> int:
    """The tile holding ``t_us``: ``floor(t_us / tile_us)``."""
    return t_us // tile_us


_US_DELTA = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH
