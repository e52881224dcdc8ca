"""Configuration of a window engine: tile size, the windows it serves, grace, options.

The windows listed are the ones the engine must be able to read; together with
the grace period they fix the retention horizon and so the bounded state per
entity: tiles are kept for ``grace + max(W + d) + T`` behind the watermark.

>>> from streamscore.libs.windows.timebase import DAY, HOUR, MINUTE
>>> from streamscore.libs.windows.window import Window
>>> c = WindowConfig(tile_us=HOUR, windows=(Window(DAY), Window(7 * DAY)), grace_us=5 * MINUTE)
>>> c.slots
171
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from streamscore.libs.windows.distinct import DEFAULT_P, DEFAULT_THRESHOLD
from streamscore.libs.windows.last import DEFAULT_K
from streamscore.libs.windows.window import Window


@dataclass(frozen=True)
class WindowConfig:
    """Constructor arguments are the whole configuration.

    * ``tile_us``: tile size ``T`` (e.g. one hour for day-scale windows).
    * ``windows``: the windows to be read; ``aligned``/``tumbling`` ones need ``W % T == 0``.
    * ``grace_us``: how far behind the watermark an event may be and still count.
    * ``keep_events``: keep raw ``(time, value, key hash)`` per tile, needed by
      ``exact`` windows (memory O(events in the horizon)); reads stay O(tiles).
    * ``distinct``: keep a distinct-count sketch per tile of the events' keys.
    * ``dedupe``: remember event ids per tile so a re-delivered event is a no-op.
    * ``last_k``: how many most-recent events :class:`~.last.LastSeen` keeps.
    * ``distinct_threshold``, ``hll_p``: exact-set size before HyperLogLog, and its precision.
    """

    tile_us: int
    windows: tuple[Window, ...]
    grace_us: int = 0
    keep_events: bool = True
    distinct: bool = False
    dedupe: bool = True
    last_k: int = DEFAULT_K
    distinct_threshold: int = DEFAULT_THRESHOLD
    hll_p: int = DEFAULT_P

    def __post_init__(self) -> None:
        if self.tile_us <= 0 or self.grace_us < 0:
            raise ValueError("tile_us must be > 0 and grace_us >= 0")
        if not self.windows:
            raise ValueError("at least one window is needed")
        for w in self.windows:
            if w.mode != "exact" and w.length_us % self.tile_us:
                raise ValueError(f"{w.mode} window {w} is not a multiple of the tile size")
            if w.mode == "exact" and not self.keep_events:
                raise ValueError(f"exact window {w} needs keep_events=True")

    @cached_property
    def max_span_us(self) -> int:
        """The longest ``W + d`` of the windows."""
        return max(w.span_us for w in self.windows)

    @cached_property
    def horizon_us(self) -> int:
        """How far behind the watermark tiles are kept: ``grace + max(W + d)``."""
        return self.grace_us + self.max_span_us

    @property
    def slots(self) -> int:
        """Ring size: every tile that may be written or read fits without collision."""
        return self.horizon_us // self.tile_us + 3
