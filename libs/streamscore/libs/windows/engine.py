"""The event-time window state of one entity: add events, read windows.

Rules, in the order ``add`` applies them (it returns the :class:`Outcome`):

1. ``INVALID``: a non-finite value is not merged (the caller routes it to the DLQ).
2. ``DUPLICATE``: with ``dedupe``, an ``event_id`` already accepted into the
   same tile (the tile of its event time) is a no-op. Re-delivering a batch
   (at-least-once replay, FAULTS F1) therefore leaves every aggregate
   unchanged: ids are kept as long as their tile is, and an event whose tile
   was already evicted is older than the grace period, so rule 3 drops it.
3. ``LATE_DROPPED``: the *watermark* is the largest event time accepted so far.
   An event is accepted iff ``time >= watermark - grace``. A later one is not
   merged; it is counted in :attr:`EntityWindows.late_events` and reported to
   the caller (metric, DLQ or side output). A replayed late event is late
   again and counted again.
4. ``ACCEPTED``: merged into its tile; the watermark becomes
   ``max(watermark, time)``; tiles older than the retention horizon
   (``watermark - grace - max(W + d)``, see :class:`~.config.WindowConfig`) are
   evicted, so the state per entity is bounded.

Reads are defined for ``t >= watermark - grace`` (any time an event could still
be accepted at); older reads raise :class:`StaleReadError` because their tiles
may be gone. A feature processor reads *after* adding the event for windows
that include it (``(t - W, t]``) and reads :meth:`EntityWindows.since_last`
*before* adding it ("time since the previous event").

Without ``dedupe``, replay safety is the caller's: store the consumed offset
of each partition atomically with the serialised state and skip offsets at or
below it.

>>> from streamscore.libs.windows.timebase import DAY, HOUR, MINUTE
>>> cfg = WindowConfig(tile_us=HOUR, windows=(Window(DAY),), grace_us=10 * MINUTE)
>>> e = EntityWindows(cfg)
>>> e.add(2 * DAY, 10.0, event_id="a"), e.add(2 * DAY + HOUR, 20.0, event_id="b")
(<Outcome.ACCEPTED: 'accepted'>, <Outcome.ACCEPTED: 'accepted'>)
>>> e.add(2 * DAY, 10.0, event_id="a")  # re-delivered
<Outcome.DUPLICATE: 'duplicate'>
>>> e.add(2 * DAY + 55 * MINUTE, 30.0), e.add(2 * DAY, 40.0)  # within grace; beyond it
(<Outcome.ACCEPTED: 'accepted'>, <Outcome.LATE_DROPPED: 'late_dropped'>)
>>> m = e.read(2 * DAY + HOUR, Window(DAY))
>>> m.count, m.mean, e.late_events
(3, 20.0, 1)
>>> e.read(4 * DAY, Window(DAY)).get("mean"), e.read(4 * DAY, Window(DAY)).get("count", "zero")
(None, 0.0)
"""

from __future__ import annotations

import math
from enum import Enum

from streamscore.libs.windows.config import WindowConfig
from streamscore.libs.windows.distinct import Distinct
from streamscore.libs.windows.hashing import Key, hash64
from streamscore.libs.windows.last import LastSeen
from streamscore.libs.windows.moments import Moments
from streamscore.libs.windows.raw_events import TileEvents
from streamscore.libs.windows.tiles import MomentTiles
from streamscore.libs.windows.window import Window


class Outcome(Enum):
    """What :meth:`EntityWindows.add` did with an event."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE_DROPPED = "late_dropped"
    INVALID = "invalid"


class StaleReadError(ValueError):
    """A read older than ``watermark - grace``: its tiles may already be evicted."""


class EntityWindows:
    """Tiles of moments (and optionally raw events, distinct sketches, event ids) of one entity."""

    def __init__(self, config: WindowConfig) -> None:
        self.config = config
        self.watermark: int | None = None
        self.late_events = 0
        self.duplicates = 0
        self.moments = MomentTiles(config.slots)
        self.events: dict[int, TileEvents] = {}
        self.distinct: dict[int, Distinct] = {}
        #: Per tile, the accepted event ids in arrival order (a dict as an ordered set).
        self.ids: dict[int, dict[str, None]] = {}
        self.last = LastSeen(config.last_k)
        self._oldest = -(2**62)  # oldest retained tile index
        #: Tiles holding accepted events; and, since :meth:`take_changes`, the
        #: tiles changed and the tiles evicted (for incremental writes, see codec).
        self.live: set[int] = set()
        self.dirty: set[int] = set()
        self.evicted: set[int] = set()

    # -- writing ---------------------------------------------------------
    def add(
        self, t_us: int, value: float = 0.0, *, key: Key | None = None, event_id: str | None = None
    ) -> Outcome:
        """Merge one event at event time ``t_us`` (see the module rules)."""
        if not math.isfinite(value):
            return Outcome.INVALID
        cfg = self.config
        k = t_us // cfg.tile_us
        if cfg.dedupe and event_id is not None:
            seen = self.ids.get(k)
            if seen is not None and event_id in seen:
                self.duplicates += 1
                return Outcome.DUPLICATE
        wm = self.watermark
        if wm is not None and t_us < wm - cfg.grace_us:
            self.late_events += 1
            return Outcome.LATE_DROPPED
        self.moments.add(k, value)
        h = None
        if cfg.distinct and key is not None:
            h = hash64(key)
            d = self.distinct.get(k)
            if d is None:
                d = self.distinct[k] = Distinct(cfg.distinct_threshold, cfg.hll_p)
            d.add_hash(h)
        if cfg.keep_events:
            evs = self.events.get(k)
            if evs is None:
                evs = self.events[k] = TileEvents()
            evs.append(t_us, value, h)
        if cfg.dedupe and event_id is not None:
            ids = self.ids.get(k)
            if ids is None:
                ids = self.ids[k] = {}
            ids[event_id] = None
        self.last.add(t_us, value)
        self.live.add(k)
        self.dirty.add(k)
        if wm is None or t_us > wm:
            self.watermark = t_us
            self._evict()
        return Outcome.ACCEPTED

    @property
    def oldest_tile(self) -> int:
        """The oldest tile index still retained."""
        return self._oldest

    def _evict(self) -> None:
        assert self.watermark is not None
        oldest = (self.watermark - self.config.horizon_us) // self.config.tile_us
        if oldest <= self._oldest:
            return
        before, self._oldest = self._oldest, oldest
        # The tiles to drop lie in [before, oldest): walk that range when it is shorter than
        # the live set (the usual step of a tile or a few), else scan the live set.
        if oldest - before < len(self.live):
            gone = [k for k in range(before, oldest) if k in self.live]
        else:
            gone = [k for k in self.live if k < oldest]
        for k in gone:
            self.live.discard(k)
            self.dirty.discard(k)
            self.evicted.add(k)
            self.events.pop(k, None)
            self.distinct.pop(k, None)
            self.ids.pop(k, None)

    def take_changes(self) -> tuple[set[int], set[int]]:
        """The tiles changed and the tiles evicted since the last call (then forgotten)."""
        changed, evicted = self.dirty, self.evicted
        self.dirty, self.evicted = set(), set()
        return changed, evicted

    # -- reading ---------------------------------------------------------
    def _check(self, t_us: int, window: Window) -> None:
        if window.span_us > self.config.max_span_us:
            raise ValueError(f"{window} reaches further back than the configured windows")
        if window.mode == "exact" and not self.config.keep_events:
            raise ValueError("exact windows need keep_events=True")
        if self.watermark is not None and t_us < self.watermark - self.config.grace_us:
            raise StaleReadError(f"read at {t_us} is older than watermark {self.watermark} - grace")

    def _split(self, t_us: int, window: Window) -> tuple[int, int, tuple[int, ...]]:
        """:meth:`Window.split`, with the newest edge tile read whole when nothing in it is newer.

        Reading at or after the watermark (the usual case: the event just added),
        the tile holding the window's end has no event after the end, so its
        aggregate is exactly the window's part of it — no pass over its events.
        """
        tile = self.config.tile_us
        first, last, edges = window.split(t_us, tile)
        lo, hi = window.bounds(t_us)
        k = hi // tile
        if (
            k in edges
            and k == last + 1
            and k * tile > lo
            and self.watermark is not None
            and hi >= self.watermark
        ):
            return first, k, tuple(e for e in edges if e != k)
        return first, last, edges

    def read(self, t_us: int, window: Window) -> Moments:
        """Count, sum, mean, variance, min and max of the values in ``window`` ending at ``t_us``.

        Empty windows are explicit: ``count == 0`` and ``mean``/``min``/... are ``None``.
        """
        self._check(t_us, window)
        tile = self.config.tile_us
        if window.mode != "exact":
            return self.moments.read(*window.aligned_tiles(t_us, tile))
        first, last, edges = self._split(t_us, window)
        m = self.moments.read(first, last)
        if edges:
            lo, hi = window.bounds(t_us)
            edge = Moments()
            for k in edges:
                if (evs := self.events.get(k)) is not None:
                    evs.moments_between(lo, hi, into=edge)
            m.merge(edge)
        return m

    def read_distinct(self, t_us: int, window: Window) -> Distinct:
        """The distinct keys in ``window`` ending at ``t_us`` (``.count()``, ``.is_exact``)."""
        cfg = self.config
        if not cfg.distinct:
            raise ValueError("this engine keeps no distinct sketches (distinct=False)")
        self._check(t_us, window)
        out = Distinct(cfg.distinct_threshold, cfg.hll_p)
        if window.mode != "exact":
            first, last = window.aligned_tiles(t_us, cfg.tile_us)
            edges: tuple[int, ...] = ()
        else:
            first, last, edges = self._split(t_us, window)
        for k, d in self.distinct.items():
            if first <= k <= last:
                out.merge(d)
        lo, hi = window.bounds(t_us)
        for k in edges:
            if (evs := self.events.get(k)) is not None:
                for h in evs.hashes_between(lo, hi):
                    out.add_hash(h)
        return out

    def last_at(self, t_us: int) -> tuple[int, float] | None:
        """The latest accepted event at or before ``t_us``: ``(time, value)`` or ``None``."""
        return self.last.last_at(t_us)

    def since_last(self, t_us: int, max_age_us: int | None = None) -> int | None:
        """Microseconds since the latest event at or before ``t_us``; ``None`` if none
        (or if it is older than ``max_age_us``)."""
        d = self.last.since_last(t_us)
        if d is None or (max_age_us is not None and d > max_age_us):
            return None
        return d
