"""When the scored-log sink closes a file: segments of one partition, cut by size, age or offset.

A **segment** is every offset consumed from one partition of ``scored.<stream>``
between two commits; it becomes one file per UTC day of its rows, all named
after the segment's offset range (:mod:`.layout`). :class:`PartitionSegments`
decides where segments end. Pure: the caller passes the clock reading.

1. A segment is sealed as soon as it holds ``max_rows`` rows or ``max_bytes``
   bytes of record values (the records are counted deterministically, so the
   same offsets always seal at the same place under the same policy).
2. A segment is sealed once it is ``max_age_s`` old (:meth:`due`), so that
   files appear and offsets are committed within seconds at low rates.
3. **Cut points** make re-consumption reproduce earlier files: a file found
   on disk for offsets ``[a, b]`` that were never committed (the sink died
   between renaming it into place and committing) gives the cut ``b``. The
   re-consumed segment is sealed exactly after offset ``b`` and so gets the
   same name as the file it replaces. While a cut is pending the age limit is
   stretched to ``recovery_max_age_s`` (a guard: the records up to ``b`` are on
   the topic and arrive at backlog speed). Cuts behind a segment's first
   offset (records gone with retention) are dropped.
4. A dead-lettered record (``row=None``) advances the offsets without a row:
   a segment of only dead letters seals, writes no file and is committed.
5. Memory: a sink seals every open segment without a pending cut once they
   hold ``max_open_rows`` rows together (a backlog read at full speed would
   otherwise fill every partition's segment before its age limit).

>>> p = PartitionSegments(0, RollPolicy(max_rows=2, max_age_s=5.0), cuts=[11])
>>> p.add(10, "r10", nbytes=100, now=0.0) is None
True
>>> sealed = p.add(11, "r11", nbytes=100, now=0.1)   # the cut, before max_rows
>>> (sealed.first_offset, sealed.last_offset, sealed.rows)
(10, 11, ['r10', 'r11'])
>>> p.add(12, None, nbytes=100, now=1.0) is None     # a dead letter: no row
True
>>> p.due(now=5.5) is None, p.due(now=6.0).rows      # 5 s after its first record
(True, [])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class RollPolicy:
    """When a segment is sealed (its files written and its offsets committed)."""

    max_rows: int = 50_000
    max_bytes: int = 32 * 1024 * 1024
    max_age_s: float = 5.0
    #: Age limit while a recovery cut point is pending (see the module doc, step 3).
    recovery_max_age_s: float = 60.0
    #: Rows held in open segments across all partitions of one sink; past it they are
    #: all sealed (step 5). A decoded row takes about 2 KB of memory.
    max_open_rows: int = 100_000

    def __post_init__(self) -> None:
        limits = (self.max_rows, self.max_bytes, self.max_open_rows)
        if min(limits) < 1 or self.max_age_s <= 0:
            msg = f"roll limits must be positive: {self}"
            raise ValueError(msg)


@dataclass
class Segment(Generic[R]):
    """Offsets ``first_offset..last_offset`` of one partition and their rows."""

    partition: int
    first_offset: int
    last_offset: int
    opened_at: float
    rows: list[R] = field(default_factory=list)
    nbytes: int = 0


class PartitionSegments(Generic[R]):
    """The open segment of one partition and the cut points it must honour."""

    def __init__(self, partition: int, policy: RollPolicy, *, cuts: Iterable[int] = ()) -> None:
        self.partition = partition
        self.policy = policy
        self._cuts = sorted(set(cuts))
        self._open: Segment[R] | None = None

    @property
    def open_segment(self) -> Segment[R] | None:
        """The segment being filled, if any."""
        return self._open

    @property
    def pending_cuts(self) -> list[int]:
        """Recovery cut points not reached yet, ascending."""
        return list(self._cuts)

    def add(self, offset: int, row: R | None, *, nbytes: int, now: float) -> Segment[R] | None:
        """Take the record at ``offset``; returns the segment it sealed, if any."""
        seg = self._open
        if seg is None:
            seg = self._open = Segment(self.partition, offset, offset, now)
            # Cuts behind the first offset belong to records no longer consumed.
            self._cuts = [c for c in self._cuts if c >= offset]
        seg.last_offset = offset
        seg.nbytes += nbytes
        if row is not None:
            seg.rows.append(row)
        if self._cuts and offset >= self._cuts[0]:
            self._cuts = [c for c in self._cuts if c > offset]
            return self.seal()
        if len(seg.rows) >= self.policy.max_rows or seg.nbytes >= self.policy.max_bytes:
            return self.seal()
        return None

    def due(self, now: float) -> Segment[R] | None:
        """Seal and return the open segment if it is too old, else ``None``."""
        seg = self._open
        if seg is None:
            return None
        limit = self.policy.recovery_max_age_s if self._cuts else self.policy.max_age_s
        return self.seal() if now - seg.opened_at >= limit else None

    def seal(self) -> Segment[R] | None:
        """Seal the open segment now (shutdown, partition revoked); ``None`` if empty."""
        seg, self._open = self._open, None
        return seg
