"""Event-time windows from tiles: count, sum, mean, variance, min, max, distinct, last.

A pure library: no clock, no I/O. Times are ``int`` microseconds since the
epoch (:mod:`.timebase`). One :class:`EntityWindows` holds the state of one
entity; :class:`WindowConfig` says the tile size, the windows it serves, the
grace period and options; :class:`Window` defines exactly which events a window
ending at ``t`` covers (``exact``: ``(t - d - W, t - d]``; ``aligned``: whole
tiles; ``tumbling``: the epoch-aligned bucket so far). :mod:`.codec` turns the
state into a Redis hash of bytes/ints, whole or incrementally. Call :func:`warmup` at
service start-up so the Numba kernels are compiled (or loaded from Numba's
cache) before the first live event.

>>> cfg = WindowConfig(tile_us=HOUR, windows=(Window(DAY),), distinct=True)
>>> e = EntityWindows(cfg)
>>> for i, term in enumerate(("t1", "t2", "t1")):
...     _ = e.add(DAY + i * MINUTE, 10.0 * (i + 1), key=term, event_id=f"e{i}")
>>> t = DAY + 2 * MINUTE
>>> e.read(t, Window(DAY)).mean, e.read_distinct(t, Window(DAY)).count()
(20.0, 2)
>>> e2 = from_fields(cfg, to_fields(e))
>>> e2.read(DAY + 2 * MINUTE, Window(DAY)).mean
20.0
"""

from __future__ import annotations

from streamscore.libs.windows.codec import changes, from_fields, to_fields
from streamscore.libs.windows.config import WindowConfig
from streamscore.libs.windows.distinct import Distinct
from streamscore.libs.windows.engine import EntityWindows, Outcome, StaleReadError
from streamscore.libs.windows.hashing import hash64
from streamscore.libs.windows.hll import HyperLogLog
from streamscore.libs.windows.last import LastSeen
from streamscore.libs.windows.moments import Empty, Moments, Stat
from streamscore.libs.windows.raw_events import TileEvents
from streamscore.libs.windows.timebase import DAY, HOUR, MINUTE, SECOND, seconds, to_us
from streamscore.libs.windows.window import Window

__all__ = [
    "DAY",
    "HOUR",
    "MINUTE",
    "SECOND",
    "Distinct",
    "Empty",
    "EntityWindows",
    "HyperLogLog",
    "LastSeen",
    "Moments",
    "Outcome",
    "StaleReadError",
    "Stat",
    "Window",
    "WindowConfig",
    "changes",
    "from_fields",
    "hash64",
    "seconds",
    "to_fields",
    "to_us",
    "warmup",
]


def warmup() -> None:
    """Compile (or load from cache) the tile and raw-event kernels."""
    e = EntityWindows(WindowConfig(tile_us=HOUR, windows=(Window(DAY),)))
    e.add(DAY, 1.0)
    e.read(DAY, Window(DAY))
    evs = TileEvents()
    evs.append(DAY, 1.0, None)
    evs.moments_between(0, DAY)
    evs.latest_at_or_before(DAY)
