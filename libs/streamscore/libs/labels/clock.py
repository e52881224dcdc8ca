"""How far the joiner's clock may go while some input partitions are still behind.

The joiner reads the scored log and the labels from several partitions, each
at its own pace: a consumer typically drains one partition's backlog before
the next. The newest time seen anywhere is therefore no proof that older
records are all read. The rule (the watermark of stream processors, with
idle partitions ignored after a timeout, as Flink's source idleness):

1. Per partition, remember the newest time it delivered (event time on the
   log, label time on the labels) and when (wall clock) it last delivered.
2. A partition with unread records holds the clock at its newest time (its
   next records are about that old); one that has delivered nothing yet
   holds it at the beginning of time.
3. A partition read to its end keeps holding the clock the same way until it
   has delivered nothing for ``idle_s``; then it holds nothing back (an idle
   or empty partition must not stop the clock). Why not release it at once:
   "read to its end" is a snapshot (the end offsets are refreshed about once a
   second), and a producer's records to one topic may land after its later
   records to another, so a labels partition that has just caught up may get
   the label of an event whose horizon the scored log would already pass.

:meth:`PartitionClock.hold` is the minimum of those holds, ``None`` when
nothing holds; the machine subtracts its lateness and caps its watermark
there.

>>> c = PartitionClock(idle_s=5.0)
>>> c.start([("scored", 0), ("labels", 0), ("labels", 1)], now=0.0)
>>> c.observe(("scored", 0), 100, now=1.0); c.observe(("labels", 0), 40, now=1.0)
>>> c.hold(lagging=[], now=2.0) == BEGINNING  # labels 1: nothing yet, not idle yet
True
>>> c.hold(lagging=[], now=5.5)  # labels 1 idle; labels 0 and scored not yet
40
>>> c.hold(lagging=[], now=6.5) is None, c.hold(lagging=[("labels", 0)], now=9.0)
(True, 40)
"""

from __future__ import annotations

from collections.abc import Iterable

#: The hold of a lagging partition that has delivered nothing yet.
BEGINNING = -(2**62)


class PartitionClock:
    """Newest time per partition, and the hold of the lagging and recent ones (module doc)."""

    def __init__(self, *, idle_s: float = 5.0) -> None:
        if idle_s < 0:
            msg = f"idle_s must be >= 0, not {idle_s}"
            raise ValueError(msg)
        self.idle_s = idle_s
        self.newest: dict[tuple[str, int], int] = {}
        #: Wall-clock time of each partition's last delivery (or of the start).
        self.active_at: dict[tuple[str, int], float] = {}

    def start(self, partitions: Iterable[tuple[str, int]], *, now: float) -> None:
        """Count the partitions as active from ``now`` (an empty one holds for ``idle_s``)."""
        for p in partitions:
            self.active_at[p] = now

    def observe(self, partition: tuple[str, int], t_us: int, *, now: float) -> None:
        self.active_at[partition] = now
        if t_us > self.newest.get(partition, BEGINNING):
            self.newest[partition] = t_us

    def hold(self, lagging: Iterable[tuple[str, int]], *, now: float) -> int | None:
        recent = {p for p, at in self.active_at.items() if now - at < self.idle_s}
        holds = [self.newest.get(p, BEGINNING) for p in recent.union(lagging)]
        return min(holds) if holds else None
