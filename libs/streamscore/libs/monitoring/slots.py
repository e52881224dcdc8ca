"""Event-time slots: per (segment, slot) sums of every signal, closed in order by a watermark.

Each record adds its signal values to the open slot of its event time in each
of its segments. The scored-event log is ordered per partition only, and a
consumer catching up reads one partition far ahead of the others, so the
**watermark** is per partition: the newest event time each partition
delivered, and the stream's watermark is the oldest of them, over the
partitions heard from within ``idle_s`` (wall clock) — a partition that went
quiet does not hold the others back. A slot closes once the watermark is
``lateness_s`` past its end; slots close in order, every segment at once (a
segment without events in a slot gets an empty one).

A record for a slot already closed is **late**: counted, not added (its slot
was compared already). A record more than ``max_ahead_s`` ahead of both the
newest event time and its batch's median is set aside and counted as
**ahead** (a producer clock in 2099 must not close a century of slots), unless
most of its batch is ahead too: then the stream really jumped (it was
paused). A jump over more than ``max_gap_slots`` empty slots is reported as a
gap: there is nothing left to compare with, so the monitor starts its
comparisons afresh.

>>> import numpy as np
>>> book = SlotBook(signals=1, slot_s=60, lateness_s=0, max_ahead_s=3600)
>>> x = np.array([[1.0], [3.0], [np.nan]])
>>> t, part = np.array([0.0, 30.0, 70.0]), np.array([0, 0, 0])
>>> keep = book.accept(t, part, now=0.0)
>>> book.add(np.array([0, 0, 0]), t[keep], x[keep], x[keep])
>>> [(c.slot, c.sums[0].n.tolist(), c.sums[0].s.tolist()) for c in book.close(now=0.0)]
[(0, [2.0], [4.0])]
>>> book.accept(np.array([10.0]), np.array([0]), now=1.0).tolist(), book.late  # slot 0 closed
([False], 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass
class SlotSums:
    """Sums of one (segment, slot): count, sum and sum of squares of the transformed values
    (per signal; non-finite values not counted), the sum of the raw values and how many
    values were not zero (occurrences, for rates)."""

    n: FloatArray
    s: FloatArray
    q: FloatArray
    r: FloatArray
    nz: FloatArray

    @classmethod
    def empty(cls, signals: int) -> SlotSums:
        return cls(*(np.zeros(signals) for _ in range(5)))


@dataclass(frozen=True)
class Closed:
    """One closed slot: the sums of every segment that had events in it."""

    slot: int
    sums: dict[int, SlotSums]
    #: The slots before this one were skipped (a gap longer than ``max_gap_slots``).
    after_gap: bool = False


@dataclass
class SlotBook:
    """The open slots of one stream (see the module docstring)."""

    signals: int
    slot_s: int
    lateness_s: float
    max_ahead_s: float
    max_gap_slots: int = 1_000_000
    #: A partition silent for this long (wall clock, s) is not waited for.
    idle_s: float = 30.0
    #: Per partition: newest event time delivered, and when (wall clock) it last delivered.
    partitions: dict[int, tuple[float, float]] = field(default_factory=dict)
    #: Newest event time accepted from any partition.
    newest: float | None = None
    #: The watermark the last :meth:`close` used.
    watermark: float | None = None
    #: The next slot to close; ``None`` before the first event.
    next_close: int | None = None
    late: int = 0
    ahead: int = 0
    first_time: float | None = None
    open: dict[int, dict[int, SlotSums]] = field(default_factory=dict)

    def expect(self, partitions: Sequence[int], *, now: float) -> None:
        """Partitions the consumer was assigned: each holds the watermark back until it
        delivers, or stays silent for ``idle_s``."""
        for p in partitions:
            if p not in self.partitions:
                self.partitions[p] = (-np.inf, now)

    def accept(self, t: FloatArray, partition: IntArray, *, now: float) -> BoolArray:
        """Which records of a batch to add; advances the partitions' event times.

        ``now`` is a wall-clock reading (any monotonic seconds) for the idle rule.
        """
        keep: BoolArray = np.ones(len(t), dtype=np.bool_)
        if not len(t):
            return keep
        if self.newest is not None:
            # Beyond both the newest time so far and the batch's median by ``max_ahead_s``
            # (a batch read while catching up may span days of one partition).
            ref = max(self.newest, float(np.median(t)))
            ahead = t > ref + self.max_ahead_s
            if ahead.any() and 2 * int(ahead.sum()) <= len(t):
                self.ahead += int(ahead.sum())
                keep &= ~ahead
        if not keep.any():
            return keep
        if self.next_close is None:
            first = float(t[keep].min())
            self.next_close = int(np.floor(first / self.slot_s))
            self.first_time = first
        for p in np.unique(partition[keep]).tolist():
            mine = keep & (partition == p)
            newest = float(t[mine].max())
            before = self.partitions.get(p, (-np.inf, now))[0]
            self.partitions[p] = (max(before, newest), now)
        self.newest = max(self.newest if self.newest is not None else -np.inf, float(t[keep].max()))
        late = keep & (np.floor(t / self.slot_s) < self.next_close)
        self.late += int(late.sum())
        keep &= ~late
        return keep

    def add(self, segment: IntArray, t: FloatArray, x: FloatArray, raw: FloatArray) -> None:
        """Add accepted records: segment id, event time (s), transformed and raw values
        (rows × signals). Rows with a negative segment id are ignored (no such segment)."""
        keep: BoolArray = segment >= 0
        if not keep.any() or self.next_close is None:
            return
        segment, t, x, raw = segment[keep], t[keep], x[keep], raw[keep]
        slot = np.floor(t / self.slot_s).astype(np.int64)
        # One group per (segment, slot); sums per group and signal in one pass.
        key = np.stack([slot, segment], axis=1)
        groups, inverse = np.unique(key, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        finite = np.isfinite(x)
        x0 = np.where(finite, x, 0.0)
        r0 = np.where(np.isfinite(raw), raw, 0.0)
        k = len(groups)
        n = np.zeros((k, self.signals))
        s = np.zeros((k, self.signals))
        q = np.zeros((k, self.signals))
        r = np.zeros((k, self.signals))
        nz = np.zeros((k, self.signals))
        np.add.at(n, inverse, finite.astype(np.float64))
        np.add.at(nz, inverse, (x0 != 0.0).astype(np.float64))
        np.add.at(s, inverse, x0)
        np.add.at(q, inverse, x0 * x0)
        np.add.at(r, inverse, r0)
        for i, (sl, sg) in enumerate(groups.tolist()):
            slot_sums = self.open.setdefault(sl, {})
            acc = slot_sums.get(sg)
            if acc is None:
                slot_sums[sg] = SlotSums(n[i], s[i], q[i], r[i], nz[i])
            else:
                acc.n += n[i]
                acc.s += s[i]
                acc.q += q[i]
                acc.r += r[i]
                acc.nz += nz[i]

    def current_watermark(self, now: float) -> float | None:
        """The oldest newest-event-time of the partitions heard from within ``idle_s``."""
        active = [t for t, seen in self.partitions.values() if now - seen <= self.idle_s]
        if active:
            oldest = min(active)
            return None if oldest == -np.inf else oldest
        return self.newest

    def close(self, *, now: float) -> list[Closed]:
        """Every slot the watermark has passed by ``lateness_s``, in order."""
        self.watermark = self.current_watermark(now)
        if self.watermark is None or self.next_close is None:
            return []
        bound = int(np.floor((self.watermark - self.lateness_s) / self.slot_s))
        out: list[Closed] = []
        gap = False
        while self.next_close < bound:
            if self.next_close not in self.open:
                # Empty slots up to the next one with data: more than ``max_gap_slots`` of
                # them leave nothing to compare with, so skip them and say so.
                nxt = min((s for s in self.open if s > self.next_close), default=bound)
                if min(nxt, bound) - self.next_close > self.max_gap_slots:
                    self.next_close = min(nxt, bound)
                    gap = True
                    continue
            out.append(Closed(self.next_close, self.open.pop(self.next_close, {}), gap))
            gap = False
            self.next_close += 1
        return out
