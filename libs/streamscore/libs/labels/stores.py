"""Two :class:`~streamscore.libs.labels.machine.JoinStore` implementations without I/O.

* :class:`DictStore`: the whole state in dicts (tests, and the reference
  semantics of the Redis layout); :class:`ContextTable` interns contexts.
* :class:`BatchView`: the slice of the Redis state one batch touches, loaded
  up front by the service, with every change recorded as a write set
  (:attr:`BatchView.writes`) that the service applies in one atomic Redis
  transaction. Reading something that was not loaded is a bug and raises
  ``KeyError`` rather than silently answering "absent".

>>> v = BatchView(Meta(), records={"e1": None}, orphans={})
>>> v.record("e1") is None
True
>>> v.record("e2")
Traceback (most recent call last):
...
KeyError: 'record e2 was not loaded'
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from streamscore.libs.labels.machine import Index, Meta
from streamscore.libs.labels.records import Context, Orphan, Record


class ContextTable:
    """Contexts and their small ids (0, 1, 2, ... in order of first use), in memory."""

    def __init__(self) -> None:
        self.by_id: dict[int, Context] = {}
        self._ids: dict[Context, int] = {}

    def intern(self, ctx: Context) -> int:
        found = self._ids.get(ctx)
        if found is None:
            found = self._ids[ctx] = len(self._ids)
            self.by_id[found] = ctx
        return found

    def get(self, ctx_id: int) -> Context:
        return self.by_id[ctx_id]


class DictStore:
    """Everything in memory."""

    def __init__(self) -> None:
        self.meta = Meta()
        self.records: dict[str, Record] = {}
        self.orphans: dict[str, Orphan] = {}
        self.due: dict[Index, dict[int, list[str]]] = {"events": {}, "orphans": {}}

    def record(self, event_id: str) -> Record | None:
        return self.records.get(event_id)

    def put_record(self, event_id: str, rec: Record) -> None:
        self.records[event_id] = rec

    def drop_record(self, event_id: str) -> None:
        del self.records[event_id]

    def orphan(self, event_id: str) -> Orphan | None:
        return self.orphans.get(event_id)

    def put_orphan(self, event_id: str, orphan: Orphan) -> None:
        self.orphans[event_id] = orphan

    def drop_orphan(self, event_id: str) -> None:
        del self.orphans[event_id]

    def add_due(self, index: Index, bucket: int, event_id: str) -> None:
        self.due[index].setdefault(bucket, []).append(event_id)

    def due_buckets(self, index: Index, after: int | None, through: int) -> list[int]:
        return sorted(b for b in self.due[index] if (after is None or b > after) and b <= through)

    def due_ids(self, index: Index, bucket: int) -> list[str]:
        return list(self.due[index].get(bucket, ()))

    def drop_due(self, index: Index, bucket: int) -> None:
        self.due[index].pop(bucket, None)


@dataclass
class Writes:
    """What a batch changed, for one atomic write (last value per key wins)."""

    records: dict[str, Record | None] = field(default_factory=dict)
    orphans: dict[str, Orphan | None] = field(default_factory=dict)
    #: Ids appended to due lists, per index and bucket, in order.
    due_added: dict[Index, dict[int, list[str]]] = field(
        default_factory=lambda: {"events": defaultdict(list), "orphans": defaultdict(list)}
    )
    due_dropped: dict[Index, set[int]] = field(
        default_factory=lambda: {"events": set(), "orphans": set()}
    )


class BatchView:
    """A batch's loaded slice of the state, recording changes (see the module doc)."""

    def __init__(
        self,
        meta: Meta,
        *,
        records: dict[str, Record | None],
        orphans: dict[str, Orphan | None],
    ) -> None:
        self.meta = meta
        self._records = records
        self._orphans = orphans
        #: Due buckets loaded per index (bucket -> ids stored before this batch).
        self._due: dict[Index, dict[int, list[str]]] = {"events": {}, "orphans": {}}
        #: Ranges whose bucket lists were loaded: ``due_buckets`` may only ask within them.
        self._loaded_ranges: dict[Index, list[tuple[int | None, int]]] = {
            "events": [],
            "orphans": [],
        }
        self.writes = Writes()

    # -- loading (service side) -----------------------------------------------------------

    def load_records(self, found: dict[str, Record | None]) -> None:
        for k, v in found.items():
            self._records.setdefault(k, v)

    def load_orphans(self, found: dict[str, Orphan | None]) -> None:
        for k, v in found.items():
            self._orphans.setdefault(k, v)

    def load_due(
        self, index: Index, span: tuple[int | None, int], buckets: dict[int, list[str]]
    ) -> None:
        """The stored due lists of every bucket in ``span`` (``(after, through]``)."""
        self._loaded_ranges[index].append(span)
        for b, ids in buckets.items():
            self._due[index].setdefault(b, ids)

    # -- JoinStore ------------------------------------------------------------------------

    def record(self, event_id: str) -> Record | None:
        if event_id in self.writes.records:
            return self.writes.records[event_id]
        if event_id not in self._records:
            raise KeyError(f"record {event_id} was not loaded")
        return self._records[event_id]

    def put_record(self, event_id: str, rec: Record) -> None:
        self.writes.records[event_id] = rec

    def drop_record(self, event_id: str) -> None:
        self.writes.records[event_id] = None

    def orphan(self, event_id: str) -> Orphan | None:
        if event_id in self.writes.orphans:
            return self.writes.orphans[event_id]
        if event_id not in self._orphans:
            raise KeyError(f"orphan {event_id} was not loaded")
        return self._orphans[event_id]

    def put_orphan(self, event_id: str, orphan: Orphan) -> None:
        self.writes.orphans[event_id] = orphan

    def drop_orphan(self, event_id: str) -> None:
        self.writes.orphans[event_id] = None

    def add_due(self, index: Index, bucket: int, event_id: str) -> None:
        self.writes.due_added[index][bucket].append(event_id)

    def due_buckets(self, index: Index, after: int | None, through: int) -> list[int]:
        if not any(_covers(r, after, through) for r in self._loaded_ranges[index]):
            raise KeyError(f"{index} buckets ({after}, {through}] were not loaded")
        found = set(self._due[index]) | set(self.writes.due_added[index])
        found -= self.writes.due_dropped[index]
        return sorted(b for b in found if (after is None or b > after) and b <= through)

    def due_ids(self, index: Index, bucket: int) -> list[str]:
        if bucket in self.writes.due_dropped[index]:
            return []
        return self._due[index].get(bucket, []) + self.writes.due_added[index].get(bucket, [])

    def drop_due(self, index: Index, bucket: int) -> None:
        self.writes.due_dropped[index].add(bucket)
        self.writes.due_added[index].pop(bucket, None)


def _covers(span: tuple[int | None, int], after: int | None, through: int) -> bool:
    lo, hi = span
    return (lo is None or (after is not None and after >= lo)) and through <= hi
