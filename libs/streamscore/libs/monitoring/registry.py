"""Detector kinds by name: configuration picks one, calibration sets its threshold.

The monitor feeds every detector the same kind of input: one value per closed
event-time slot, a standardised difference that is about N(0, 1) while nothing
changes (:mod:`.comparison`). A kind's builder therefore needs no scale, only
a :class:`Calibration`: how many values warm it up (the reference) and the
mean run length between false alarms wanted from *one* test.

**Multiple testing.** A stream runs ``m`` tests (segments × signals). Asking
each for a run length of ``m × A`` slots makes false alarms of the whole
stream about ``1/A`` per slot (Bonferroni on rates: the union of ``m``
rare-event processes). :func:`calibration` does that product, so a plan with
more segments gets higher thresholds, not more alerts.

Thresholds per kind, from the wanted run length ``L``:

* ``cusum``, ``page_hinkley``: allowance ``k`` (default 0.5 σ) and the ``h``
  whose two-sided in-control run length is ``L`` by Siegmund's approximation
  ``ARL ≈ (e^{2kb} - 2kb - 1) / 2k²`` per side, ``b = h + 1.166``
  (:func:`cusum_threshold`). Page-Hinkley without forgetting (``alpha = 1``)
  is a CUSUM around the running mean, so it takes the same ``h``.
* ``ewma_chart``: width ``Φ⁻¹(1 - 1/2L)`` (a Shewhart bound on the EWMA's
  asymptotic spread; the EWMA's autocorrelation makes the real run length
  longer, so this errs towards fewer alarms).
* ``adwin`` (``delta = 1/L``) and ``kswin`` (``alpha = 1/L``): per-value
  error rates.
* ``ks``, ``psi``, ``cvm`` (the windowed population tests): a sliding window
  of ``window_size`` slots (default 6) against the reference slots, their
  limit calibrated by Monte Carlo to ``arl0 = min(L, max_arl0)``. The
  calibration's cost grows with ``arl0``, so it is capped (default 10^4
  slots per test): these kinds are weaker on false alarms than the CUSUM and
  are an opt-in (``detector=`` in the plan).

Other kinds register with :func:`register`.

>>> round(cusum_threshold(465.0, 0.5), 1)  # Montgomery's table: h = 5 gives about 465
5.0
>>> cal = calibration(run_length_slots=8760, tests=30, warmup=12)
>>> det = make_detector("cusum", cal)
>>> type(det).__name__, det.grace_period, round(det.h, 2)
('CUSUM', 12, 11.31)
>>> {"adwin", "cusum", "ewma_chart", "kswin", "page_hinkley"} <= set(REGISTRY)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from streamscore.libs import detectors as _detectors
from streamscore.libs.detectors import ADWIN, CUSUM, KSWIN, Detector, EWMAChart, PageHinkley

#: Siegmund's correction of the CUSUM threshold for a discrete-time walk.
_SIEGMUND = 1.166


@dataclass(frozen=True)
class Calibration:
    """What a detector of one test is built for."""

    #: Wanted mean number of values between false alarms of this one test.
    run_length: float
    #: Values fed first to warm it up (the reference comparisons): never alarms.
    warmup: int


Builder = Callable[[Calibration, Mapping[str, float]], Detector]


@dataclass(frozen=True)
class DetectorKind:
    """A named detector constructor: ``build(calibration, params)``."""

    name: str
    summary: str
    build: Builder


def calibration(*, run_length_slots: float, tests: int, warmup: int) -> Calibration:
    """Calibrate one of ``tests`` tests: together they alarm every ``run_length_slots``."""
    if run_length_slots <= 1 or tests < 1:
        raise ValueError("run_length_slots > 1 and tests >= 1 are required")
    return Calibration(run_length=run_length_slots * tests, warmup=warmup)


def _siegmund_arl(h: float, k: float) -> float:
    a = 2.0 * k * (h + _SIEGMUND)
    return (math.exp(a) - a - 1.0) / (2.0 * k * k)


def cusum_threshold(run_length: float, k: float = 0.5) -> float:
    """The two-sided CUSUM ``h`` (in σ) whose in-control mean run length is ``run_length``.

    Each side is a one-sided CUSUM; two sides alarm twice as often, so each side
    gets Siegmund's ``h`` for twice the run length.
    """
    target = 2.0 * run_length
    lo, hi = 0.0, 200.0
    for _ in range(100):  # the run length grows monotonically with h: bisect
        mid = (lo + hi) / 2
        if _siegmund_arl(mid, k) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _cusum(cal: Calibration, params: Mapping[str, float]) -> Detector:
    k = float(params.get("k", 0.5))
    return CUSUM(grace_period=max(2, cal.warmup), k=k, h=cusum_threshold(cal.run_length, k))


def _page_hinkley(cal: Calibration, params: Mapping[str, float]) -> Detector:
    k = float(params.get("k", 0.5))
    return PageHinkley(
        min_instances=max(1, cal.warmup),
        delta=k,
        threshold=cusum_threshold(cal.run_length, k),
        alpha=1.0,
        mode="both",
    )


def _ewma(cal: Calibration, params: Mapping[str, float]) -> Detector:
    width = NormalDist().inv_cdf(1.0 - 1.0 / (2.0 * cal.run_length))
    return EWMAChart(
        grace_period=max(2, cal.warmup), lam=float(params.get("lam", 0.2)), width=width
    )


def _adwin(cal: Calibration, params: Mapping[str, float]) -> Detector:
    return ADWIN(delta=1.0 / cal.run_length, grace_period=max(5, cal.warmup))


def _kswin(cal: Calibration, params: Mapping[str, float]) -> Detector:
    window = int(params.get("window_size", 48))
    return KSWIN(
        alpha=1.0 / cal.run_length,
        window_size=window,
        stat_size=int(params.get("stat_size", window // 4)),
        seed=int(params.get("seed", 0)),
    )


def _population(cls: Any) -> Builder:
    def build(cal: Calibration, params: Mapping[str, float]) -> Detector:
        window = int(params.get("window_size", 6))
        detector: Detector = cls(
            reference_size=max(cal.warmup, 2 * window),
            window_size=window,
            stride=int(params.get("stride", 1)),
            arl0=min(cal.run_length, float(params.get("max_arl0", 10_000))),
            n_sim=int(params.get("n_sim", 200)),
            seed=int(params.get("seed", 0)),
        )
        return detector

    return build


REGISTRY: dict[str, DetectorKind] = {}


def register(kind: DetectorKind) -> None:
    """Add (or replace) a detector kind."""
    REGISTRY[kind.name] = kind


for _kind in (
    DetectorKind("cusum", "two-sided CUSUM of the standardised differences", _cusum),
    DetectorKind("page_hinkley", "Page-Hinkley around the running mean, both ways", _page_hinkley),
    DetectorKind("ewma_chart", "EWMA chart of the standardised differences", _ewma),
    DetectorKind("adwin", "ADWIN adaptive window on the differences", _adwin),
    DetectorKind("kswin", "Kolmogorov-Smirnov windows on the differences", _kswin),
):
    register(_kind)

# The windowed population tests, where the detector library has them.
for _name, _cls, _summary in (
    ("ks", "KSDrift", "windowed KS test against the reference slots"),
    ("psi", "PSIDrift", "windowed PSI against the reference slots"),
    ("cvm", "CvMDrift", "windowed Cramér-von Mises test against the reference slots"),
):
    if hasattr(_detectors, _cls):
        register(DetectorKind(_name, _summary, _population(getattr(_detectors, _cls))))


def make_detector(
    name: str, cal: Calibration, params: Mapping[str, float] | None = None
) -> Detector:
    """A fresh detector of kind ``name`` for one test."""
    try:
        kind = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown detector kind {name!r}; known: {sorted(REGISTRY)}") from None
    return kind.build(cal, params or {})
