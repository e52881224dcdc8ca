"""How far the joiner's clock may go while some input partitions are still behind.

The joiner reads the scored log and the labels from several partitions, each
at its own pace: a consumer typically drains one partition's backlog before
the next. The newest time seen anywhere is therefore no proof that older
records are all read. The rule (the watermark of stream processors, with
idle partitions ignored):

1. Per partition, remember the newest time it delivered (event time on the
   log, label time on the labels).
2. A partition that has been read to its end holds nothing back (it may be
   idle for long: an empty partition must not stop the clock).
3. A partition with unread records holds the clock at its newest time (its
   next records are about that old); one that has delivered nothing yet
   holds it at the beginning of time.

:meth:`PartitionClock.hold` is the minimum of those holds, ``None`` when
nothing holds; the machine subtracts its lateness and caps its watermark
there.

>>> c = PartitionClock()
>>> c.observe(("scored", 0), 100); c.observe(("labels", 0), 40)
>>> c.hold(lagging=[("labels", 0)])
40
>>> c.hold(lagging=[]) is None, c.hold(lagging=[("labels", 1)]) == BEGINNING
(True, True)
"""

from __future__ import annotations

from collections.abc import Iterable

#: The hold of a lagging partition that has delivered nothing yet.
BEGINNING = -(2**62)


class PartitionClock:
    """Newest time per partition, and the hold of the lagging ones (module doc)."""

    def __init__(self) -> None:
        self.newest: dict[tuple[str, int], int] = {}

    def observe(self, partition: tuple[str, int], t_us: int) -> None:
        if t_us > self.newest.get(partition, BEGINNING):
            self.newest[partition] = t_us

    def hold(self, lagging: Iterable[tuple[str, int]]) -> int | None:
        holds = [self.newest.get(p, BEGINNING) for p in lagging]
        return min(holds) if holds else None
