"""The labels an entity has received, for label-derived features ("fraud risk").

A label says, at its arrival time, whether a labelled event (the target, which
happened at ``target_time``) was positive. Rules:

1. A label counts for a read at time ``t`` only if it had arrived by then
   (``arrival <= t``): the stream never sees a label from its future, and the
   offline path, replaying the same ledger, neither.
2. Per target, the latest label (by arrival time, then label id) that had
   arrived by ``t`` decides: a ``reversed`` chargeback after a report makes the
   target negative again; a second report changes nothing.
3. The same label id twice is a no-op (redelivery).
4. Targets older than the horizon (the longest window plus its delay plus
   grace) behind the entity's newest *event* can never be read again: the
   caller evicts them (:meth:`LabelLedger.evict`) and a label arriving for one
   is refused (:attr:`LabelLedger.too_old`). Eviction follows the events, not
   the labels, so a label stream consumed ahead of the events evicts nothing
   that an event still to come will read.

>>> from streamscore.libs.windows import DAY, Window
>>> led = LabelLedger(horizon_us=40 * DAY)
>>> led.add("cb1", target="tx1", target_time=DAY, arrival=20 * DAY, positive=True)
True
>>> led.add("cb0", target="tx0", target_time=DAY, arrival=50 * DAY, positive=True, now=45 * DAY)
False
>>> led.add("cb1", target="tx1", target_time=DAY, arrival=20 * DAY, positive=True)  # again
False
>>> w = Window(7 * DAY, delay_us=7 * DAY)
>>> led.positives(10 * DAY, w), led.positives(21 * DAY, Window(30 * DAY))
(0, 1)
>>> _ = led.add("cb1-rev", target="tx1", target_time=DAY, arrival=25 * DAY, positive=False)
>>> led.positives(24 * DAY, Window(30 * DAY)), led.positives(26 * DAY, Window(30 * DAY))
(1, 0)
"""

from __future__ import annotations

from bisect import insort
from typing import Any

from streamscore.libs.windows.window import Window

#: Per target: [target_time, [(arrival, label id, positive), ... sorted]].
Entry = list[Any]


class LabelLedger:
    """Arrived labels of one entity, bounded by ``horizon_us``."""

    __slots__ = ("changed", "horizon_us", "targets", "too_old")

    def __init__(self, horizon_us: int) -> None:
        self.horizon_us = horizon_us
        self.targets: dict[str, Entry] = {}
        self.too_old = 0
        self.changed = False

    def add(
        self,
        label_id: str,
        *,
        target: str,
        target_time: int,
        arrival: int,
        positive: bool,
        now: int | None = None,
    ) -> bool:
        """Record one label; ``False`` when it was a no-op (seen, or too old to matter).

        ``now`` is the entity's newest event time (``None``: no event yet)."""
        if now is not None and target_time < now - self.horizon_us:
            self.too_old += 1
            self.changed = True
            return False
        entry = self.targets.get(target)
        if entry is None:
            entry = self.targets[target] = [target_time, []]
        labels: list[tuple[int, str, bool]] = entry[1]
        if any(lid == label_id for _, lid, _ in labels):
            return False
        insort(labels, (arrival, label_id, positive))
        self.changed = True
        return True

    def evict(self, now: int) -> None:
        """Forget targets that no read at or after ``now - grace`` can reach."""
        cutoff = now - self.horizon_us
        old = [k for k, (tt, _) in self.targets.items() if tt < cutoff]
        for target in old:
            del self.targets[target]
        self.changed = self.changed or bool(old)

    def positives(self, t_us: int, window: Window) -> int:
        """Targets in ``window`` ending at ``t_us`` whose latest label by ``t_us`` is positive."""
        lo, hi = window.bounds(t_us)
        n = 0
        for target_time, labels in self.targets.values():
            if lo < target_time <= hi:
                state = None
                for arrival, _, positive in labels:
                    if arrival > t_us:
                        break
                    state = positive
                n += bool(state)
        return n

    def to_list(self) -> list[Any]:
        items = sorted(self.targets.items())
        return [self.too_old, [[k, tt, [list(x) for x in ls]] for k, (tt, ls) in items]]

    @classmethod
    def from_list(cls, horizon_us: int, data: list[Any]) -> LabelLedger:
        led = cls(horizon_us)
        led.too_old, items = data
        for k, tt, ls in items:
            led.targets[k] = [tt, [(a, lid, bool(p)) for a, lid, p in ls]]
        return led
