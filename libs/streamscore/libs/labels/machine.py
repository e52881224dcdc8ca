"""The label joiner's state machine: scored events wait for labels or their horizon.

Pure: it reads and writes a :class:`JoinStore` (Redis through a prefetched
batch view in the service, plain dicts in tests) and returns the examples to
emit. The rules, per scored event (its ``event_id``):

1. **First record wins.** A scored record for an id the store holds is a
   duplicate (the scorer is at-least-once; duplicates carry the same
   decision) and changes nothing. A record whose maturity bucket has already
   been closed is too late to join (``scored_late``, counted, dropped): that
   is also where a duplicate of a long-closed event ends.
2. **The effective label** is the latest label by (label time, label id). A
   label that is not later than the effective one (a redelivery, an older
   report read late) changes nothing (``label_duplicate``): applying a batch
   twice is a no-op, so a replay after a crash emits nothing twice.
3. **Examples.** The first label of a pending event emits its primary
   example (``positive`` or ``negative``, revision 0). If the horizon passes
   first, the primary is ``matured_negative``. After the primary, every
   change of the effective label's *value* emits a ``correction`` (next
   revision); a confirming label (a second report) emits nothing. ``late``
   marks a deciding label whose time is past the event's horizon.
4. **Orphans.** A label for an id the store does not hold is kept (the
   latest one per id) until its label time plus ``orphan_ttl``; when the
   scored record arrives first, it joins at once (``orphan_joined``). Past
   its lifetime it is dropped and counted (``orphan_expired``). A label
   whose target time says its event is already closed is ``label_too_late``.
5. **Time** is a watermark in stream time: the newest scored ``event_time``
   minus ``lateness``, capped at the caller's *hold* minus ``lateness``: the
   newest time delivered by the input partition furthest behind
   (:mod:`.clock`). So a scored log read ahead of its labels (a backlog, each
   partition at its own pace) does not mature events whose in-time labels are
   still unread. After each batch, :meth:`JoinMachine.advance` matures every
   bucket that has entirely passed the watermark, closes (forgets) buckets
   ``grace`` later and expires orphans: work proportional to the due events,
   never a scan.

>>> from streamscore.libs.labels.spec import HOUR_US, JoinSpec
>>> from streamscore.libs.labels.stores import DictStore
>>> from streamscore.libs.labels.records import Record, pack_values
>>> m, store = JoinMachine(JoinSpec(10 * HOUR_US, HOUR_US, 5 * HOUR_US, 0)), DictStore()
>>> def rec(t): return Record(t, 0, ["C1"], pack_values([0.5]), pack_values([1.0]))
>>> m.scored(store, "e1", rec(0))
('scored', [])
>>> _, [ex] = m.label(store, LabelFact(LabelRef(2 * HOUR_US, "cb1", True), "e1"))
>>> ex.kind, ex.revision, ex.value
('positive', 0, True)
>>> m.label(store, LabelFact(LabelRef(2 * HOUR_US, "cb1", True), "e1"))  # redelivered
('label_duplicate', [])
>>> m.scored(store, "e2", rec(HOUR_US))
('scored', [])
>>> m.scored(store, "tick", rec(13 * HOUR_US))  # moves the watermark past e2's horizon
('scored', [])
>>> outcomes, emitted = m.advance(store)
>>> [(e.event_id, e.kind) for e in emitted], outcomes["matured"]
([('e2', 'matured_negative')], 1)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal, Protocol

from streamscore.libs.contracts.examples import ExampleKind
from streamscore.libs.labels.facts import LabelFact, LabelRef
from streamscore.libs.labels.records import (
    LABELLED,
    MATURED,
    PENDING,
    Emitted,
    Orphan,
    Record,
)
from streamscore.libs.labels.spec import JoinSpec

Index = Literal["events", "orphans"]
#: Outcomes of inputs and of advancing time (the label values of the joiner's counters).
OUTCOMES = (
    "scored",
    "scored_duplicate",
    "scored_late",
    "label_applied",
    "label_duplicate",
    "label_orphaned",
    "label_too_late",
    "label_expired",
    "label_untargeted",
    "orphan_joined",
    "orphan_expired",
    "matured",
    "closed",
)


@dataclass
class Meta:
    """The joiner's clock, scan cursors and gauges (one per stream)."""

    #: Newest scored event time minus lateness (``None`` before the first record).
    watermark_us: int | None = None
    #: Last bucket matured / closed / whose orphans expired (``None``: none yet).
    matured_through: int | None = None
    closed_through: int | None = None
    orphans_through: int | None = None
    #: Records held (pending, labelled or matured, until closed); of them, pending; orphans.
    held: int = 0
    pending: int = 0
    orphans: int = 0


class JoinStore(Protocol):
    """Where the machine keeps its state (Redis in the service, dicts in tests)."""

    meta: Meta

    def record(self, event_id: str) -> Record | None: ...
    def put_record(self, event_id: str, rec: Record) -> None: ...
    def drop_record(self, event_id: str) -> None: ...
    def orphan(self, event_id: str) -> Orphan | None: ...
    def put_orphan(self, event_id: str, orphan: Orphan) -> None: ...
    def drop_orphan(self, event_id: str) -> None: ...
    def add_due(self, index: Index, bucket: int, event_id: str) -> None: ...
    def due_buckets(self, index: Index, after: int | None, through: int) -> list[int]: ...
    def due_ids(self, index: Index, bucket: int) -> list[str]: ...
    def drop_due(self, index: Index, bucket: int) -> None: ...


@dataclass(frozen=True)
class Targets:
    """Buckets to process after a batch: ``(after, through]`` per scan, ``None`` when idle."""

    mature: tuple[int | None, int] | None
    close: tuple[int | None, int] | None
    orphans: tuple[int | None, int] | None


def _range(cursor: int | None, target: int) -> tuple[int | None, int] | None:
    return (cursor, target) if cursor is None or target > cursor else None


class JoinMachine:
    """The rules of the module doc for one stream's :class:`JoinSpec`."""

    def __init__(self, spec: JoinSpec) -> None:
        self.spec = spec

    # -- inputs ---------------------------------------------------------------------------

    def scored(self, store: JoinStore, event_id: str, rec: Record) -> tuple[str, list[Emitted]]:
        """A scored record (rule 1); returns its outcome and what to emit."""
        meta, spec = store.meta, self.spec
        wm = rec.t_us - spec.lateness_us
        if meta.watermark_us is None or wm > meta.watermark_us:
            meta.watermark_us = wm
        bucket = spec.maturity_bucket(rec.t_us)
        if meta.closed_through is not None and bucket <= meta.closed_through:
            return "scored_late", []
        if store.record(event_id) is not None:
            return "scored_duplicate", []
        store.add_due("events", bucket, event_id)
        meta.held += 1
        meta.pending += 1
        out: list[Emitted] = []
        outcome = "scored"
        orphan = store.orphan(event_id)
        if orphan is not None:
            store.drop_orphan(event_id)
            meta.orphans -= 1
            self._relabel(store, event_id, rec, orphan.label, out)
            outcome = "orphan_joined"
        if (
            rec.state == PENDING
            and meta.matured_through is not None
            and bucket <= meta.matured_through
        ):
            self._mature(store, event_id, rec, out)
        store.put_record(event_id, rec)
        return outcome, out

    def label(self, store: JoinStore, fact: LabelFact) -> tuple[str, list[Emitted]]:
        """A label (rules 2 to 4); returns its outcome and what to emit."""
        target = fact.target_event_id
        if target is None:
            return "label_untargeted", []
        rec = store.record(target)
        if rec is not None:
            out: list[Emitted] = []
            changed = self._relabel(store, target, rec, fact.label, out)
            if changed:
                store.put_record(target, rec)
            return ("label_applied" if changed else "label_duplicate"), out
        return self._orphan(store, target, fact), []

    def _orphan(self, store: JoinStore, target: str, fact: LabelFact) -> str:
        meta, spec = store.meta, self.spec
        closed = meta.closed_through
        if (
            fact.target_time_us is not None
            and closed is not None
            and spec.maturity_bucket(fact.target_time_us) <= closed
        ):
            return "label_too_late"
        held = store.orphan(target)
        if held is not None:
            if fact.label.key <= held.label.key:
                return "label_duplicate"
            store.put_orphan(target, Orphan(fact.label, held.expires_us))
            return "label_orphaned"
        expires = fact.label.time_us + spec.orphan_ttl_us
        bucket = spec.bucket(expires)
        if meta.orphans_through is not None and bucket <= meta.orphans_through:
            return "label_expired"
        store.put_orphan(target, Orphan(fact.label, expires))
        store.add_due("orphans", bucket, target)
        meta.orphans += 1
        return "label_orphaned"

    def _relabel(
        self, store: JoinStore, event_id: str, rec: Record, label: LabelRef, out: list[Emitted]
    ) -> bool:
        """Make ``label`` effective if it is the latest; emit what changed. ``False``: no-op."""
        if rec.label is not None and label.key <= rec.label.key:
            return False
        before = rec.label.positive if rec.label is not None else False
        rec.label = label
        horizon_end = rec.t_us + self.spec.horizon_us
        late = label.time_us > horizon_end
        if rec.state == PENDING:
            rec.state = LABELLED
            store.meta.pending -= 1
            kind: ExampleKind = "positive" if label.positive else "negative"
            rec.revision = 0
            out.append(Emitted(event_id, kind, 0, label, late, _copy(rec), horizon_end))
        elif label.positive != before:
            rec.revision += 1
            out.append(
                Emitted(event_id, "correction", rec.revision, label, late, _copy(rec), horizon_end)
            )
        return True

    def _mature(self, store: JoinStore, event_id: str, rec: Record, out: list[Emitted]) -> None:
        rec.state = MATURED
        rec.revision = 0
        store.meta.pending -= 1
        horizon_end = rec.t_us + self.spec.horizon_us
        out.append(Emitted(event_id, "matured_negative", 0, None, False, _copy(rec), horizon_end))

    # -- time -----------------------------------------------------------------------------

    def clock(self, meta: Meta, *, hold_us: int | None = None) -> int | None:
        """The watermark of rule 5 (``None``: nothing may mature yet)."""
        wm = meta.watermark_us
        if wm is None or hold_us is None:
            return wm
        return min(wm, hold_us - self.spec.lateness_us)

    def targets(self, meta: Meta, *, hold_us: int | None = None) -> Targets:
        """The buckets :meth:`advance` will process at the current watermark."""
        wm = self.clock(meta, hold_us=hold_us)
        if wm is None:
            return Targets(None, None, None)
        b, grace = self.spec.bucket_us, self.spec.grace_us
        # A bucket is due once it has entirely passed: (b + 1) * width <= watermark.
        passed = wm // b - 1
        closable = (wm - grace) // b - 1
        return Targets(
            _range(meta.matured_through, passed),
            _range(meta.closed_through, closable),
            _range(meta.orphans_through, passed),
        )

    def advance(
        self, store: JoinStore, *, hold_us: int | None = None
    ) -> tuple[Counter[str], list[Emitted]]:
        """Mature, close and expire what the watermark has passed (rule 5)."""
        meta = store.meta
        t = self.targets(meta, hold_us=hold_us)
        outcomes: Counter[str] = Counter()
        out: list[Emitted] = []
        # 1. Mature before closing: a bucket is closed only after it matured (grace >= 0).
        if t.mature is not None:
            for bucket in store.due_buckets("events", *t.mature):
                for event_id in store.due_ids("events", bucket):
                    rec = store.record(event_id)
                    if rec is not None and rec.state == PENDING:
                        self._mature(store, event_id, rec, out)
                        store.put_record(event_id, rec)
                        outcomes["matured"] += 1
            meta.matured_through = t.mature[1]
        # 2. Close: forget the records (labels for them from now on are late or orphans).
        if t.close is not None:
            for bucket in store.due_buckets("events", *t.close):
                for event_id in store.due_ids("events", bucket):
                    if store.record(event_id) is not None:
                        store.drop_record(event_id)
                        meta.held -= 1
                        outcomes["closed"] += 1
                store.drop_due("events", bucket)
            meta.closed_through = t.close[1]
        # 3. Expire orphans whose lifetime ended in the bucket (a later label may have
        #    replaced one, keeping its first expiry: the check is on the stored orphan).
        if t.orphans is not None:
            for bucket in store.due_buckets("orphans", *t.orphans):
                for event_id in store.due_ids("orphans", bucket):
                    orphan = store.orphan(event_id)
                    if orphan is not None and self.spec.bucket(orphan.expires_us) == bucket:
                        store.drop_orphan(event_id)
                        meta.orphans -= 1
                        outcomes["orphan_expired"] += 1
                store.drop_due("orphans", bucket)
            meta.orphans_through = t.orphans[1]
        return outcomes, out


def _copy(rec: Record) -> Record:
    """A snapshot of a record for an emitted example (the live record keeps changing)."""
    return Record(
        rec.t_us, rec.ctx, list(rec.keys), rec.score, rec.values, rec.label, rec.state, rec.revision
    )
