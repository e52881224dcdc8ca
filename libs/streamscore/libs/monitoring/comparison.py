"""Per segment: each closed slot against the same slot on earlier days, one detector per signal.

For a closed slot ``t`` and each signal, with ``m`` a slot's mean of the
transformed values, ``ñ = min(n, n_cap)`` its capped count and ``σ`` the
per-event standard deviation pooled within the last ``lag`` slots (a day):

1. The **baseline** is the same slot on up to ``baseline_days`` earlier days
   (``t - lag``, ``t - 2·lag`` ...): their median once there are three or
   more (a burst on one of those days does not move it), else their mean.
   Comparing the same hours cancels daily seasonality.
2. ``z = (m_t - base_t) / (σ · sqrt(1/ñ_t + 1/ñ_base))``, ``ñ_base`` the
   capped counts of the baseline slots (times 2/π for a median). Slots need
   ``min_slot_events`` values and must lie at or after the test's
   ``usable_from`` slot; the slot or its baseline must hold ``min_occurrences``
   non-zero values (a rate of 0.2 % is not compared on 40 events: one
   occurrence more or less is not a change).
3. The first ``reference_slots`` values of ``z`` measure the test's
   over-dispersion ``φ`` (:func:`overdispersion`): bursty or slowly moving
   signals vary more than independent events would.
4. The detector gets ``clip(z / sqrt(φ), ±clip)``: about N(0, 1) while
   nothing changes, whatever the volume, and no single slot moves it by more
   than ``clip``. The reference values warm it up; the later ones test.
5. On a detection the test is **re-baselined**: its detector is dropped and
   comparisons restart a day later against days after the change only, so one
   change gives one detection, not a detection per slot.

Capping ``ñ`` sets the smallest change worth an alarm: a shift of ``d``
per-event standard deviations moves ``z`` by about ``d·sqrt(n_cap/2)`` (one
baseline day); below the detector's allowance ``k`` (0.5) it never
accumulates. With ``n_cap = 50`` that is ``d ≈ 0.1``. A step change keeps
``z`` high until the baseline median has moved past it (about half of
``baseline_days``), which bounds how long evidence can accumulate.

**Evidence** of a detection (:class:`Detection`): a one-sided CUSUM of the
detector's inputs over the last ``lag`` slots, in the direction of the
change, locates where it started (the slot after its last zero): from there
to the detection slot is the evidence window, whose mean difference with its
baselines, in ``σ``, is the effect size.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from streamscore.libs.detectors import Detector
from streamscore.libs.monitoring.plan import Signal, StreamPlan
from streamscore.libs.monitoring.registry import Calibration, make_detector
from streamscore.libs.monitoring.slots import FloatArray, IntArray, SlotSums

#: Allowance of the evidence CUSUM (σ): the slot where a change started.
_EVIDENCE_K = 0.5


def overdispersion(zs: FloatArray, *, autocorrelation: bool = False) -> float:
    """``φ``: how much more reference comparisons vary than N(0, 1) would, at least 1 (step 3).

    A robust spread (MAD / 0.6745, squared), so that one burst in the reference
    does not blunt the test for good. With ``autocorrelation`` it is multiplied
    by the AR(1) factor ``(1 + ρ) / (1 - ρ)`` of the lag-1 autocorrelation.

    >>> rng = np.random.default_rng(1)
    >>> calm, bursty = rng.normal(0, 1, 24), rng.normal(0, 3, 24)
    >>> round(overdispersion(calm), 1), round(overdispersion(bursty), 1)
    (1.0, 2.8)
    """
    mad = float(np.median(np.abs(zs - np.median(zs)))) / 0.6745
    factor = 1.0
    if autocorrelation:
        c = zs - zs.mean()
        denom = float((c * c).sum())
        rho = float((c[1:] * c[:-1]).sum()) / denom if denom > 0 else 0.0
        rho = min(max(rho, 0.0), 0.9)
        factor = (1.0 + rho) / (1.0 - rho)
    return max(1.0, mad * mad * factor)


@dataclass(frozen=True)
class Detection:
    """A confirmed change of one signal in one segment."""

    segment: str
    signal: Signal
    detector: str
    #: The slot whose comparison confirmed it, and the slot where evidence starts.
    slot: int
    first_slot: int
    #: Event times (s since the epoch): evidence start and confirmation (slot ends).
    first_evidence_s: float
    confirmed_s: float
    #: The detector's input at confirmation (standardised, clipped).
    statistic: float
    #: Mean shift of the evidence window against the same hours a day earlier, in σ.
    effect_sds: float
    evidence_events: int
    baseline_events: int
    #: Mean of the raw values over the evidence window and over its baseline.
    mean: float | None
    baseline_mean: float | None

    @property
    def direction(self) -> str:
        return "up" if self.effect_sds >= 0 else "down"


@dataclass
class _Test:
    """The state of one (segment, signal) test."""

    usable_from: int
    reference: list[tuple[int, float]] = field(default_factory=list)
    phi: float | None = None
    detector: Detector | None = None
    #: A detector alarm waiting for confirmation: (alarm slot, statistic, direction).
    candidate: tuple[int, float, float] | None = None
    confirm_slots: list[int] = field(default_factory=list)


class SegmentComparisons:
    """The tests of one segment (one per signal) and their slot history."""

    def __init__(
        self,
        name: str,
        plan: StreamPlan,
        signals: Sequence[Signal],
        calibration: Calibration,
        usable_from: int,
    ) -> None:
        self.name = name
        self.plan = plan
        self.signals = tuple(signals)
        self.calibration = calibration
        g = len(self.signals)
        self.lag = plan.lag_slots
        self.days = plan.baseline_days
        self.size = self.days * self.lag + 1
        self.slot_ids: IntArray = np.full(self.size, -1, dtype=np.int64)
        self.n: FloatArray = np.zeros((self.size, g))
        self.mean: FloatArray = np.zeros((self.size, g))
        self.m2: FloatArray = np.zeros((self.size, g))
        self.raw: FloatArray = np.zeros((self.size, g))
        self.nz: FloatArray = np.zeros((self.size, g))
        #: Per slot: its baseline (transformed and raw means) and the detector input (NaN: none).
        self.base: FloatArray = np.full((self.size, g), np.nan)
        self.base_raw: FloatArray = np.full((self.size, g), np.nan)
        self.base_n: FloatArray = np.zeros((self.size, g))
        self.base_nz: FloatArray = np.zeros((self.size, g))
        self.fed: FloatArray = np.full((self.size, g), np.nan)
        self.tests = [_Test(usable_from) for _ in range(g)]

    # -- slot history ---------------------------------------------------------------------

    def _row(self, slot: int) -> int | None:
        r = slot % self.size
        return r if self.slot_ids[r] == slot else None

    def _store(self, slot: int, sums: SlotSums | None) -> int:
        r = slot % self.size
        self.slot_ids[r] = slot
        self.fed[r] = self.base[r] = self.base_raw[r] = np.nan
        self.base_n[r] = self.base_nz[r] = 0.0
        if sums is None:
            self.n[r] = self.mean[r] = self.m2[r] = self.raw[r] = self.nz[r] = 0.0
            return r
        n = sums.n
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, sums.s / n, 0.0)
            raw = np.where(n > 0, sums.r / n, 0.0)
        self.n[r] = n
        self.mean[r] = mean
        self.m2[r] = np.maximum(sums.q - n * mean * mean, 0.0)
        self.raw[r] = raw
        self.nz[r] = sums.nz
        return r

    def _rows(self, first: int, last: int) -> list[int]:
        rows = [self._row(s) for s in range(first, last + 1)]
        return [r for r in rows if r is not None]

    def _sigma(self, slot: int) -> FloatArray:
        """Per-event standard deviation of each signal, pooled within the last ``lag`` slots."""
        rows = self._rows(slot - self.lag + 1, slot)
        n = self.n[rows]
        dof = (n - 1.0).clip(min=0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            sigma: FloatArray = np.sqrt(self.m2[rows].sum(axis=0) / dof)
        return sigma

    def _baseline(self, slot: int, row: int) -> None:
        """Step 1 for every signal: the baseline of ``slot``, stored in its row."""
        g = len(self.signals)
        usable = np.array([t.usable_from for t in self.tests])
        means = np.full((self.days, g), np.nan)
        raws = np.full((self.days, g), np.nan)
        occurrences = np.full((self.days, g), np.nan)
        counts = np.zeros((self.days, g))
        for j in range(1, self.days + 1):
            prev = self._row(slot - j * self.lag)
            if prev is None:
                continue
            ok = (self.n[prev] >= self.plan.min_slot_events) & (slot - j * self.lag >= usable)
            means[j - 1] = np.where(ok, self.mean[prev], np.nan)
            raws[j - 1] = np.where(ok, self.raw[prev], np.nan)
            occurrences[j - 1] = np.where(ok, self.nz[prev], np.nan)
            counts[j - 1] = np.where(ok, np.minimum(self.n[prev], self.plan.n_cap), 0.0)
        days = np.isfinite(means).sum(axis=0)
        median = days >= 3
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no baseline yet
            self.base[row] = np.where(
                median, np.nanmedian(means, axis=0), np.nanmean(means, axis=0)
            )
            self.base_raw[row] = np.where(
                median, np.nanmedian(raws, axis=0), np.nanmean(raws, axis=0)
            )
            self.base_nz[row] = np.nanmedian(occurrences, axis=0)
        self.base_n[row] = counts.sum(axis=0) * np.where(median, 2.0 / np.pi, 1.0)

    def _z(self, slot: int, row: int) -> FloatArray:
        """Steps 1-2 for every signal (NaN where the comparison is not possible)."""
        self._baseline(slot, row)
        n_now, n_base = self.n[row], self.base_n[row]
        usable = np.array([slot >= t.usable_from for t in self.tests])
        seen = np.fmax(self.nz[row], self.base_nz[row]) >= self.plan.min_occurrences
        ok = (n_now >= self.plan.min_slot_events) & (n_base > 0) & usable & seen
        sigma = self._sigma(slot)
        with np.errstate(invalid="ignore", divide="ignore"):
            se = sigma * np.sqrt(1.0 / np.minimum(n_now, self.plan.n_cap) + 1.0 / n_base)
            z: FloatArray = (self.mean[row] - self.base[row]) / se
        z[~(ok & (se > 0) & np.isfinite(z))] = np.nan
        return z

    def latest_inputs(self) -> dict[str, float]:
        """The detector input of each signal at the newest closed slot (signals fed there)."""
        if (self.slot_ids < 0).all():
            return {}
        r = int(np.argmax(self.slot_ids))
        return {
            sig.id: float(x)
            for sig, x in zip(self.signals, self.fed[r].tolist(), strict=True)
            if np.isfinite(x)
        }

    # -- closing slots --------------------------------------------------------------------

    def reset(self, usable_from: int) -> None:
        """Forget every test's baseline (after a gap): comparisons restart a day later."""
        self.slot_ids[:] = -1
        self.tests = [_Test(usable_from) for _ in self.signals]

    def restart(self, signals: Iterable[int], usable_from: int) -> None:
        """Forget the tests of ``signals`` (column indices): their baselines use slots from
        ``usable_from`` on only, as after a gap (a new champion's scores are not the old one's).
        """
        for g in signals:
            if self.tests[g].usable_from < usable_from:
                self.tests[g] = _Test(usable_from)

    def close(self, slots: Sequence[tuple[int, SlotSums | None]]) -> list[Detection]:
        """Store closed slots (in order) and run steps 1-5; returns the detections."""
        pending: list[list[tuple[int, float]]] = [[] for _ in self.signals]
        for slot, sums in slots:
            row = self._store(slot, sums)
            z = self._z(slot, row)
            for g in np.flatnonzero(np.isfinite(z)).tolist():
                pending[g].append((slot, float(z[g])))
        found = []
        for g, values in enumerate(pending):
            if values:
                d = self._feed(g, values)
                if d is not None:
                    found.append(d)
        return found

    def _feed(self, g: int, values: list[tuple[int, float]]) -> Detection | None:
        """Steps 3-6 for one signal's new comparisons (in slot order)."""
        test, plan = self.tests[g], self.plan
        if test.phi is None:  # step 3: still measuring the reference
            room = plan.reference_slots - len(test.reference)
            test.reference += values[:room]
            if len(test.reference) < plan.reference_slots:
                return None
            test.phi = overdispersion(np.array([z for _, z in test.reference]))
            test.detector = make_detector(plan.detector, self.calibration, plan.detector_params)
            values, test.reference = test.reference + values[room:], []
        assert test.detector is not None
        slots = [s for s, _ in values]
        xs = np.clip(np.array([z for _, z in values]) / np.sqrt(test.phi), -plan.clip, plan.clip)
        for s, x in zip(slots, xs.tolist(), strict=True):
            r = self._row(s)
            if r is not None:
                self.fed[r, g] = x
        if test.candidate is None:
            hits = np.flatnonzero(test.detector.update_many(xs))  # step 4
            if not len(hits):
                return None
            i = int(hits[0])
            recent = xs[max(0, i - 5) : i + 1]
            sign = 1.0 if recent.sum() >= 0 else -1.0
            test.candidate = (slots[i], float(xs[i]), sign)
            slots = slots[i + 1 :]
        return self._confirm(g, slots)

    def _confirm(self, g: int, slots: list[int]) -> Detection | None:
        """Step 5: the alarm stands if fresh slots still differ by ``min_effect_sds``."""
        test, plan = self.tests[g], self.plan
        assert test.candidate is not None
        need = max(1, -(-plan.confirm_s // plan.slot_s))
        test.confirm_slots += slots[: need - len(test.confirm_slots)]
        if len(test.confirm_slots) < need:
            return None
        alarm, statistic, sign = test.candidate
        last = test.confirm_slots[-1]
        start = self._evidence_start(g, alarm, sign)
        effect = self._effect(g, range(start, last + 1), last)
        self.tests[g] = _Test(usable_from=last + 1)  # step 6: re-baselined either way
        if effect * sign < plan.min_effect_sds:
            return None  # a streak, not a change: with the fresh slots the shift is too small
        if self.signals[g].direction == "up" and sign < 0:
            return None  # a one-sided signal moved the harmless way
        return self._evidence(g, start, last, statistic, effect)

    def _effect(self, g: int, slots: Iterable[int], at: int) -> float:
        """Mean difference of ``slots`` with their baselines, in σ at slot ``at``."""
        rows = [r for r in (self._row(s) for s in slots) if r is not None]
        n = self.n[rows, g]
        diff = self.mean[rows, g] - self.base[rows, g]
        ok = np.isfinite(diff) & (n > 0)
        sigma = float(self._sigma(at)[g])
        if not ok.any() or not sigma > 0:
            return 0.0
        return float((diff[ok] * n[ok]).sum() / n[ok].sum()) / sigma

    def _evidence_start(self, g: int, alarm: int, sign: float) -> int:
        """Where the change started: after the last zero of a one-sided CUSUM of the inputs."""
        rows = self._rows(alarm - self.lag + 1, alarm)
        start, cusum = alarm, 0.0
        for r in rows:
            x = float(self.fed[r, g])
            if not np.isfinite(x):
                continue
            if cusum == 0.0:
                start = int(self.slot_ids[r])
            cusum = max(0.0, cusum + sign * x - _EVIDENCE_K)
        return start

    def _evidence(
        self, g: int, start: int, last: int, statistic: float, effect: float
    ) -> Detection:
        """The detection: its window from ``start`` to ``last`` and what it shows."""
        window = [
            r
            for r in self._rows(start, last)
            if np.isfinite(self.fed[r, g]) and np.isfinite(self.base[r, g])
        ]
        n_now = self.n[window, g]

        def weighted(values: FloatArray) -> float | None:
            w = float(n_now.sum())
            return float((values * n_now).sum() / w) if w > 0 else None

        slot_s = self.plan.slot_s
        return Detection(
            segment=self.name,
            signal=self.signals[g],
            detector=self.plan.detector,
            slot=last,
            first_slot=start,
            first_evidence_s=float(start * slot_s),
            confirmed_s=float((last + 1) * slot_s),
            statistic=statistic,
            effect_sds=effect,
            evidence_events=int(n_now.sum()),
            baseline_events=round(float(self.base_n[window, g].sum())),
            mean=weighted(self.raw[window, g]),
            baseline_mean=weighted(self.base_raw[window, g]),
        )
