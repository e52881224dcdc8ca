"""One stream's watch: scored events in, detections out (the pure core of ``streamscore monitor``).

Per batch of scored events:

1. Columns: one value per event and signal — the score, one indicator per
   decision outcome, the share of missing model inputs, each watched
   feature (non-finite or absent: skipped by that signal only). A record
   whose ``feature_names_hash`` is not the stream's live feature schema (a
   model with another input) contributes no feature values; it is counted.
   A record a canary decided (``model_role``) contributes its inputs but not
   its score or outcome: the scorers' judge compares the canary with the
   champion; here the champion's outputs are watched, not the mix.
2. Each event goes to the segment ``all`` and to one segment per rule of the
   plan (:mod:`.segments`), into the event-time slot of its ``event_time``
   (:mod:`.slots`).
3. The slots the watermark has passed close, and every segment compares them
   (:mod:`.comparison`): the detections come back.

The first ``settle_s`` of event time are not compared (a cold stream's
windowed features are still filling); a segment first met later starts
comparing a ``lag`` after it appears. When the champion changes (a newer
champion record names another model version), the score and outcome tests
restart from the slot after the change: their baselines are the new model's
own, from a ``lag`` later, as after a gap; a new policy version restarts the
outcome tests the same way. Model inputs keep their baselines. The whole state
pickles (detectors included), so a service can save it and resume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.monitoring.comparison import Detection, SegmentComparisons
from streamscore.libs.monitoring.plan import StreamPlan
from streamscore.libs.monitoring.registry import Calibration, calibration
from streamscore.libs.monitoring.segments import Segments
from streamscore.libs.monitoring.slots import (
    BoolArray,
    Closed,
    FloatArray,
    IntArray,
    SlotBook,
    SlotSums,
)


@dataclass
class WatchStats:
    """Counters of a watch's life (for metrics and tests)."""

    events: int = 0
    #: Records whose feature schema is not the stream's (their features are skipped).
    unknown_schema: int = 0
    #: Records a canary decided (inputs watched, outputs not).
    canary: int = 0
    #: Champion or policy changes that restarted output tests.
    restarts: int = 0
    slots_closed: int = 0
    detections: int = 0
    gaps: int = 0


@dataclass(frozen=True)
class Columns:
    """A batch as signal columns: raw values (rows × signals), event times and key values."""

    time_s: FloatArray
    raw: FloatArray
    keys: dict[str, list[str | None]] = field(default_factory=dict)


def symlog(x: FloatArray) -> FloatArray:
    """``sign(x)·log(1 + |x|)``: heavy tails compressed, sign and order kept.

    >>> symlog(np.array([-9.0, 0.0, 99.0])).round(3).tolist()
    [-2.303, 0.0, 4.605]
    """
    out: FloatArray = np.sign(x) * np.log1p(np.abs(x))
    return out


class StreamWatch:
    """The monitor's state for one stream (module docstring)."""

    #: The champion's (model, policy) versions of the newest champion record, and the
    #: first slot each output test may use after the last change (class defaults: a
    #: snapshot saved before these existed restores without them).
    decider: tuple[str, str] | None = None
    restart_from: dict[int, int] | None = None

    def __init__(self, plan: StreamPlan) -> None:
        self.plan = plan
        self.signals = plan.signals()
        self.calibration: Calibration = calibration(
            run_length_slots=plan.run_length_s / plan.slot_s,
            tests=plan.tests,
            warmup=plan.reference_slots,
        )
        names = model_features(plan.stream)
        self._feature_pos = [
            names.index(s.name) for s in self.signals if s.kind == "feature" and s.name
        ]
        self._n_features = len(names)
        self._schema = feature_schema_hash(plan.stream)
        self._symlog: BoolArray = np.array([s.transform == "symlog" for s in self.signals])
        self.segments = Segments(plan)
        self.book = SlotBook(
            signals=len(self.signals),
            slot_s=plan.slot_s,
            lateness_s=plan.lateness_s,
            max_ahead_s=plan.max_ahead_s,
            max_gap_slots=2 * plan.lag_slots + 1,
        )
        self.comparisons: dict[int, SegmentComparisons] = {}
        self.stats = WatchStats()
        #: The model version of the newest record seen (``none``: no model).
        self.model_version = "none"
        self._newest = -math.inf

    # -- step 1 ---------------------------------------------------------------------------

    def columns(self, events: Sequence[ScoredEvent]) -> Columns:
        """Signal columns of a batch (step 1)."""
        outcomes = self.plan.outcomes
        n, g = len(events), len(self.signals)
        raw = np.full((n, g), np.nan)
        times = np.empty(n)
        first_feature = 2 + len(outcomes)
        keys: dict[str, list[str | None]] = {r.key: [] for r in self.plan.segments}
        for i, ev in enumerate(events):
            times[i] = ev.event_time.timestamp()
            raw[i, 0] = np.nan if ev.score is None else ev.score
            raw[i, 1 : 1 + len(outcomes)] = [ev.decision == o for o in outcomes]
            values = ev.values
            if values:
                raw[i, 1 + len(outcomes)] = sum(v is None for v in values) / len(values)
            if ev.feature_names_hash == self._schema and len(values) == self._n_features:
                raw[i, first_feature:] = [
                    np.nan if values[p] is None else values[p] for p in self._feature_pos
                ]
            else:
                self.stats.unknown_schema += 1
            for k, col in keys.items():
                col.append(ev.keys.get(k))
            if ev.model_role == "canary":
                raw[i, : 1 + len(outcomes)] = np.nan
                self.stats.canary += 1
            elif times[i] >= self._newest:
                self._newest = times[i]
                self._champion(ev, times[i])
        return Columns(times, raw, keys)

    def _champion(self, ev: ScoredEvent, t: float) -> None:
        """Note the newest champion record's versions; a change restarts output tests."""
        new = (ev.model_version, ev.policy_version)
        old, self.decider, self.model_version = self.decider, new, ev.model_version
        if old is None or old == new:
            return
        kinds = ("score", "decision_rate") if old[0] != new[0] else ("decision_rate",)
        cols = [i for i, sig in enumerate(self.signals) if sig.kind in kinds]
        slot = math.floor(t / self.plan.slot_s) + 1  # output tests restart from the next slot
        if self.restart_from is None:
            self.restart_from = {}
        for g in cols:
            self.restart_from[g] = max(self.restart_from.get(g, slot), slot)
        for comp in self.comparisons.values():
            comp.restart(cols, slot)
        self.stats.restarts += 1

    # -- steps 2 and 3 --------------------------------------------------------------------

    def update(
        self,
        events: Sequence[ScoredEvent],
        partitions: Sequence[int] | None = None,
        *,
        now: float = 0.0,
    ) -> list[Detection]:
        """Add a batch; returns the detections of the slots it closed.

        ``partitions``: the Kafka partition of each record (the watermark is per
        partition); ``now``: a wall-clock reading, for partitions gone idle.
        """
        cols = self.columns(events)
        part = np.zeros(len(events), dtype=np.int64) if partitions is None else partitions
        return self.update_columns(cols, np.asarray(part, dtype=np.int64), now=now)

    def update_columns(
        self, cols: Columns, partitions: IntArray | None = None, *, now: float = 0.0
    ) -> list[Detection]:
        """Steps 2-3 on prepared columns."""
        n = len(cols.time_s)
        part = np.zeros(n, dtype=np.int64) if partitions is None else partitions
        keep = self.book.accept(cols.time_s, part, now=now)
        self.stats.events += n
        if keep.any():
            t, raw = cols.time_s[keep], cols.raw[keep]
            x = raw.copy()
            x[:, self._symlog] = symlog(x[:, self._symlog])
            self.book.add(np.zeros(len(t), dtype=np.int64), t, x, raw)
            for rule in self.plan.segments:
                values = cols.keys.get(rule.key, [None] * n)
                kept = [v for v, k in zip(values, keep.tolist(), strict=True) if k]
                self.book.add(self.segments.ids(rule, kept), t, x, raw)
        closed = self.book.close(now=now)
        if not closed:
            return []
        self.stats.slots_closed += len(closed)
        found: list[Detection] = []
        start = 0
        for i, c in enumerate(closed):
            if c.after_gap:  # nothing to compare with: every test starts afresh
                found += self._close_run(closed[start:i])
                start = i
                self.stats.gaps += 1
                for comp in self.comparisons.values():
                    comp.reset(usable_from=c.slot)
        found += self._close_run(closed[start:])
        self.stats.detections += len(found)
        return found

    def _settle_slot(self) -> int:
        first = self.book.first_time or 0.0
        return math.ceil((first + self.plan.settle_s) / self.plan.slot_s)

    def _close_run(self, run: Sequence[Closed]) -> list[Detection]:
        if not run:
            return []
        for sid in range(len(self.segments.names)):
            if sid not in self.comparisons:
                self.comparisons[sid] = SegmentComparisons(
                    self.segments.names[sid],
                    self.plan,
                    self.signals,
                    self.calibration,
                    usable_from=max(self._settle_slot(), run[0].slot),
                )
                for g, slot in (self.restart_from or {}).items():
                    self.comparisons[sid].restart([g], slot)
        found: list[Detection] = []
        for sid, comp in self.comparisons.items():
            slots: list[tuple[int, SlotSums | None]] = [(c.slot, c.sums.get(sid)) for c in run]
            found += comp.close(slots)
        return found

    @property
    def watermark(self) -> float | None:
        """The watermark slots were last closed at (s since the epoch)."""
        return self.book.watermark

    def phases(self) -> dict[str, int]:
        """How many tests are waiting for a baseline (settle, lag, reference) or testing."""
        testing = sum(t.detector is not None for c in self.comparisons.values() for t in c.tests)
        total = sum(len(c.tests) for c in self.comparisons.values())
        return {"testing": testing, "warming": total - testing}
