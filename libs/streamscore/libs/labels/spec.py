"""How long the label joiner waits for labels, per stream: horizons, grace, orphan lifetime.

Every duration is in **stream time** (microseconds of event time), never wall
time: the joiner's clock is a watermark driven by the scored events' own
``event_time``, so a simulated world on an accelerated clock matures as fast as
its events move.

* ``horizon``: a scored event without a label by ``event_time + horizon`` is a
  matured negative (120 days for chargebacks, the card schemes' limit).
* ``grace``: the event's record is kept this much longer, so a label that
  arrives late (or is read late, behind a backlog) still yields a correction.
* ``orphan_ttl``: a label whose event is unknown is kept this long after its
  label time (the decision may still come), then dropped and counted.
* ``lateness``: the watermark trails the newest scored ``event_time`` by this
  much (partitions of the log are not aligned in time).
* ``bucket``: maturity is scanned per bucket of this width (a bucket matures
  once it has entirely passed the watermark: at most ``bucket`` late).

>>> spec = default_spec("transactions")
>>> spec.horizon_us // DAY_US, spec.grace_us // DAY_US
(120, 14)
>>> parse_duration("36h") == 36 * HOUR_US, parse_duration("1.5d") == 36 * HOUR_US
(True, True)
>>> default_spec("clickstream", horizon="12h").horizon_us == 12 * HOUR_US
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
_UNITS = {"s": SECOND_US, "m": MINUTE_US, "h": HOUR_US, "d": DAY_US}
_DURATION = re.compile(r"^(?P<n>[0-9]+(\.[0-9]+)?)(?P<unit>[smhd])$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(t: datetime) -> int:
    """Microseconds since the epoch of an aware instant (exact integer arithmetic).

    >>> to_us(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC))
    1000005
    """
    if t.tzinfo is None:
        raise ValueError("event times must be timezone-aware (UTC)")
    return (t - _EPOCH) // timedelta(microseconds=1)


def from_us(t_us: int) -> datetime:
    """The UTC instant of :func:`to_us`'s microseconds.

    >>> from_us(to_us(datetime(2026, 3, 1, 12, tzinfo=UTC))).isoformat()
    '2026-03-01T12:00:00+00:00'
    """
    return _EPOCH + timedelta(microseconds=t_us)


def parse_duration(text: str) -> int:
    """``"90s"``, ``"10m"``, ``"36h"``, ``"120d"`` (decimals allowed) in microseconds."""
    m = _DURATION.match(text.strip())
    if m is None:
        msg = f"not a duration: {text!r} (want e.g. 90s, 10m, 36h, 120d)"
        raise ValueError(msg)
    return round(float(m["n"]) * _UNITS[m["unit"]])


@dataclass(frozen=True)
class JoinSpec:
    """The joiner's time limits for one stream (see the module doc)."""

    horizon_us: int
    grace_us: int
    orphan_ttl_us: int
    lateness_us: int = 10 * MINUTE_US
    bucket_us: int = HOUR_US

    def __post_init__(self) -> None:
        if self.horizon_us <= 0 or self.bucket_us <= 0:
            msg = f"horizon and bucket must be positive: {self}"
            raise ValueError(msg)
        if min(self.grace_us, self.orphan_ttl_us, self.lateness_us) < 0:
            msg = f"grace, orphan_ttl and lateness must be >= 0: {self}"
            raise ValueError(msg)

    def bucket(self, t_us: int) -> int:
        """The bucket an instant falls in."""
        return t_us // self.bucket_us

    def maturity_bucket(self, event_time_us: int) -> int:
        """The bucket of an event's horizon end (its maturity and, later, its close)."""
        return self.bucket(event_time_us + self.horizon_us)


#: Defaults per stream: horizon, grace, orphan lifetime (label delays in the simulator:
#: chargebacks up to 120 days, takeovers up to 7, maintenance records up to 4, conversions 2).
DEFAULTS: dict[str, JoinSpec] = {
    "transactions": JoinSpec(120 * DAY_US, 14 * DAY_US, 30 * DAY_US),
    "logins": JoinSpec(14 * DAY_US, 3 * DAY_US, 7 * DAY_US),
    "sensor_readings": JoinSpec(5 * DAY_US, 1 * DAY_US, 2 * DAY_US),
    "clickstream": JoinSpec(3 * DAY_US, 1 * DAY_US, 2 * DAY_US),
}


def default_spec(
    stream: str,
    *,
    horizon: str | None = None,
    grace: str | None = None,
    orphan_ttl: str | None = None,
    lateness: str | None = None,
    bucket: str | None = None,
) -> JoinSpec:
    """The stream's defaults, with any duration given (``"36h"``) replacing its default."""
    spec = DEFAULTS[stream]
    given = {
        "horizon_us": horizon,
        "grace_us": grace,
        "orphan_ttl_us": orphan_ttl,
        "lateness_us": lateness,
        "bucket_us": bucket,
    }
    changes = {k: parse_duration(v) for k, v in given.items() if v is not None}
    return replace(spec, **changes) if changes else spec
