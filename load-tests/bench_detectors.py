"""``streamscore bench detectors``: ns per update of each Numba detector against river's.

For every detector with a river twin, on the same seeded stream (``n`` values;
a gaussian with a mean shift every ``n / 4`` values for PageHinkley and ADWIN, a
Bernoulli error stream whose rate alternates 0.1 / 0.3 for DDM, EDDM, HDDMA):

1. ours: ``update_many`` over the whole stream on a fresh detector, after
   ``warmup()`` (best of ``repeats``);
2. river 0.26: a Python loop of ``update`` reading ``drift_detected`` (and
   ``warning_detected``) after each value, once (it is the slow side);
3. ``agrees``: the per-element drift (and warning) flags are identical.

river's KSWIN runs scipy's ``ks_2samp`` on every update (~150 µs), so for
KSWIN both sides run on the first ``kswin_n`` values only (in conditions).

A second row per detector times our single-value ``update`` path (one kernel
call per value, what a per-event caller pays) on the first ``n_single`` values.

A third row counts false alarms of ours (default parameters) on a stationary
stream of ``stationary_n`` values, N(0, 1) or Bernoulli(0.2) (FAULTS.md D4;
river raises the same ones: the agreement tests pin that).

Half-Space Trees (anomaly scores, not drift flags): on ``hst_n`` rows of
``hst_features`` features (uniform in [0, 1], 2% of rows moved to a corner),
ours ``update_many`` (score then learn each row, best of ``repeats``) against
river's ``score_one`` + ``learn_one`` loop on dicts with integer keys, same
seed and defaults; ``agrees``: every score within 1e-9 of river's. A second
row times our single-vector ``update`` path.

Windowed population tests (KSDrift, CvMDrift, PSIDrift; reference of
``POP_REFERENCE`` N(0, 1) values, window ``POP_WINDOW``, a test every
``POP_STRIDE`` values, limit calibrated for ``arl0=10_000``): ours
``update_many`` on the ``n``-value stream above (best of ``repeats``) against
the natural baseline, a Python loop keeping the same sliding window in a
deque and calling scipy's ``ks_2samp`` / ``cramervonmises_2samp`` (numpy's PSI
for PSIDrift) at the same stride, on ``POP_SCIPY_N`` values (the slow side);
``agrees``: same alarms, and every test's statistic within 1e-9. A second row
is the wall time of the calibration (``n_sim=200`` simulated runs).

DESIGN.md §5 budget: batch ≥ 20× river (river's ADWIN core is compiled Rust;
there the issue asks for parity at least).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import deque
from importlib.metadata import version
from typing import Any

import numpy as np
import scipy.stats
from river import anomaly as river_anomaly
from river import drift as river_drift

from streamscore.libs.detectors import (
    ADWIN,
    CUSUM,
    DDM,
    EDDM,
    HDDMA,
    KSWIN,
    CUSUMBank,
    PageHinkley,
    warmup,
)
from streamscore.libs.detectors._base import Detector, WarningDetector
from streamscore.libs.detectors.cvm import CvMDrift
from streamscore.libs.detectors.half_space_trees import HalfSpaceTrees
from streamscore.libs.detectors.ks import KSDrift
from streamscore.libs.detectors.population import PopulationDetector
from streamscore.libs.detectors.psi import PSIDrift, psi_statistic

# (name, ours, river twin, binary stream, seeded)
PAIRS: list[tuple[str, type[Detector], Any, bool, bool]] = [
    ("PageHinkley", PageHinkley, river_drift.PageHinkley, False, False),
    ("ADWIN", ADWIN, river_drift.ADWIN, False, False),
    ("DDM", DDM, river_drift.binary.DDM, True, False),
    ("EDDM", EDDM, river_drift.binary.EDDM, True, False),
    ("HDDMA", HDDMA, river_drift.binary.HDDMA, True, False),
    ("KSWIN", KSWIN, river_drift.KSWIN, False, True),
]


def parse_args(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="streamscore bench detectors")
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kswin-n", type=int, default=20_000)
    p.add_argument("--stationary-n", type=int, default=1_000_000)
    p.add_argument("--hst-n", type=int, default=20_000)
    return vars(p.parse_args(argv))


def make_stream(n: int, seed: int, binary: bool) -> np.ndarray:
    """The seeded benchmark stream (see the module docstring)."""
    rng = np.random.default_rng(seed)
    phase = (np.arange(n) // max(n // 4, 1)) % 2
    if binary:
        return (rng.random(n) < np.where(phase == 0, 0.1, 0.3)).astype(np.float64)
    return rng.normal(0.0, 1.0, n) + 1.0 * phase


def _ours(make: Any, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    det = make()
    if isinstance(det, WarningDetector):
        return det.update_many_with_warnings(xs)
    return det.update_many(xs), np.zeros(xs.shape[0], dtype=bool)


def _river(det: Any, values: list[float], warnings: bool) -> tuple[np.ndarray, np.ndarray]:
    drifts = np.zeros(len(values), dtype=bool)
    warns = np.zeros(len(values), dtype=bool)
    for j, x in enumerate(values):
        det.update(x)
        drifts[j] = det.drift_detected
        if warnings:
            warns[j] = det.warning_detected
    return drifts, warns


def _single(make: Any, values: list[float]) -> int:
    det = make()
    update = det.update
    t0 = time.perf_counter_ns()
    for x in values:
        update(x)
        _ = det.drift_detected
    return time.perf_counter_ns() - t0


HST_FEATURES = 5


def hst_rows(n: int, seed: int, repeats: int, n_single: int) -> list[dict[str, Any]]:
    """Half-Space Trees, ours against river's (see the module docstring)."""
    rng = np.random.default_rng(seed)
    xs = rng.uniform(0.0, 1.0, (n, HST_FEATURES))
    moved = rng.random(n) < 0.02
    xs[moved] = rng.uniform(0.9, 1.0, (int(moved.sum()), HST_FEATURES))
    ours = HalfSpaceTrees(seed=seed).update_many(xs)
    best = None
    for _ in range(repeats):
        det = HalfSpaceTrees(seed=seed)
        t0 = time.perf_counter_ns()
        det.update_many(xs)
        elapsed = time.perf_counter_ns() - t0
        best = elapsed if best is None else min(best, elapsed)
    assert best is not None
    model = river_anomaly.HalfSpaceTrees(seed=seed)
    dicts = [dict(enumerate(row)) for row in xs.tolist()]
    theirs = np.zeros(n)
    t0 = time.perf_counter_ns()
    for j, x in enumerate(dicts):
        theirs[j] = model.score_one(x)
        model.learn_one(x)
    river_ns = (time.perf_counter_ns() - t0) / n
    ours_ns = best / n
    m = min(n_single, n)
    det = HalfSpaceTrees(seed=seed)
    t0 = time.perf_counter_ns()
    for row in xs[:m]:
        det.update(row)
        _ = det.score
    single_ns = (time.perf_counter_ns() - t0) / m
    name = f"river {version('river')} HalfSpaceTrees score_one+learn_one"
    return [
        {
            "metric": "HalfSpaceTrees ns/update",
            "value": round(ours_ns, 1),
            "unit": "ns",
            "baseline_name": name,
            "baseline": round(river_ns, 1),
            "ratio": round(river_ns / ours_ns, 1),
            "better": "lower",
            "agrees": bool(np.allclose(ours, theirs, rtol=0.0, atol=1e-9)),
        },
        {
            "metric": "HalfSpaceTrees ns/update, single update() calls",
            "value": round(single_ns, 1),
            "unit": "ns",
            "baseline_name": name,
            "baseline": round(river_ns, 1),
            "ratio": round(river_ns / single_ns, 2),
            "better": "lower",
        },
    ]


POP_REFERENCE, POP_WINDOW, POP_STRIDE, POP_ARL0, POP_SCIPY_N = 5_000, 200, 20, 10_000, 10_000


def _scipy_population(
    statistic: Any, ref: np.ndarray, xs: np.ndarray, limit: float
) -> tuple[np.ndarray, np.ndarray]:
    """The population test as a Python loop: deque window, ``statistic(ref, window)`` per test."""
    flags = np.zeros(xs.shape[0], dtype=bool)
    scores = np.full(xs.shape[0], np.nan)
    window: deque[float] = deque(maxlen=POP_WINDOW)
    filled = 0  # values since the start or the last restart
    for j, x in enumerate(xs.tolist()):
        if j and flags[j - 1]:
            window.clear()  # restart after a drift
            filled = 0
        window.append(x)
        filled += 1
        if filled >= POP_WINDOW and (filled - POP_WINDOW) % POP_STRIDE == 0:
            scores[j] = statistic(ref, np.array(window))
            flags[j] = scores[j] > limit
    return flags, scores


def population_rows(n: int, seed: int, repeats: int) -> list[dict[str, Any]]:
    """KSDrift, CvMDrift, PSIDrift against a scipy (numpy) loop (see the module docstring)."""
    ref = np.random.default_rng(seed + 2).normal(0.0, 1.0, POP_REFERENCE)
    xs = make_stream(n, seed, False)
    short = make_stream(POP_SCIPY_N, seed, False)
    twins: list[tuple[type[PopulationDetector], Any, str]] = [
        (KSDrift, lambda a, b: scipy.stats.ks_2samp(a, b).statistic, "ks_2samp"),
        (
            CvMDrift,
            lambda a, b: scipy.stats.cramervonmises_2samp(a, b).statistic,
            "cramervonmises_2samp",
        ),
        (PSIDrift, psi_statistic, "numpy psi_statistic"),
    ]
    rows: list[dict[str, Any]] = []
    for cls, statistic, twin in twins:
        t0 = time.perf_counter()
        limit = cls.calibrate(ref, POP_WINDOW, POP_STRIDE, POP_ARL0, n_sim=200, seed=seed)
        calibration_s = time.perf_counter() - t0

        def make(cls: type[PopulationDetector] = cls, limit: float = limit) -> PopulationDetector:
            return cls(reference=ref, window_size=POP_WINDOW, stride=POP_STRIDE, threshold=limit)

        best = None
        for _ in range(repeats):
            det = make()
            t0 = time.perf_counter()
            det.update_many(xs)
            elapsed = time.perf_counter() - t0
            best = elapsed if best is None else min(best, elapsed)
        assert best is not None
        t0 = time.perf_counter()
        theirs, their_scores = _scipy_population(statistic, ref, short, limit)
        scipy_ns = (time.perf_counter() - t0) * 1e9 / POP_SCIPY_N
        det = make()
        ours = np.zeros(POP_SCIPY_N, dtype=bool)
        our_scores = np.full(POP_SCIPY_N, np.nan)
        for j, x in enumerate(short.tolist()):
            det.update(x)
            ours[j] = det.drift_detected
            if not np.isnan(their_scores[j]):
                our_scores[j] = det.score
        ours_ns = best * 1e9 / n
        scored = ~np.isnan(their_scores)
        close = np.abs(our_scores - their_scores)[scored] <= 1e-9
        agrees = np.array_equal(ours, theirs) and bool(np.all(close))
        scipy_version = "" if cls is PSIDrift else f" (scipy {version('scipy')})"
        baseline = f"Python loop + {twin}{scipy_version}"
        rows += [
            {
                "metric": f"{cls.__name__} ns/update",
                "value": round(ours_ns, 1),
                "unit": "ns",
                "baseline_name": baseline,
                "baseline": round(scipy_ns, 1),
                "ratio": round(scipy_ns / ours_ns, 1),
                "better": "lower",
                "agrees": bool(agrees),
                "detections": int(ours.sum()),
            },
            {
                "metric": f"{cls.__name__} calibration seconds (arl0 {POP_ARL0}, 200 runs)",
                "value": round(calibration_s, 2),
                "unit": "s",
                "better": "lower",
                "limit": round(limit, 5),
            },
        ]
    return rows


def bank_rows(seed: int, repeats: int, segments: int = 10_000, n: int = 10_000_000) -> list[Any]:
    """A bank of ``segments`` CUSUMs (1,000 values each, 200 of them learning the baseline),
    random segments per update, one call per batch of 10,000,
    against a loop of single-chart ``CUSUM.update`` calls (one per update) on the first 50,000;
    ``agrees``: identical codes on those 50,000."""
    rng = np.random.default_rng(seed)
    segs = rng.integers(0, segments, n)
    xs = rng.normal(0, 1, n)
    best = float("inf")
    for _ in range(repeats):
        bank = CUSUMBank(segments, family_arl0=10_000)
        t0 = time.perf_counter()
        for i in range(0, n, 10_000):
            bank.update_many(segs[i : i + 10_000], xs[i : i + 10_000])
        best = min(best, time.perf_counter() - t0)
    m = 50_000
    bank = CUSUMBank(segments, family_arl0=10_000)
    codes = bank.update_many(segs[:m], xs[:m])
    charts: dict[int, CUSUM] = {}
    single = np.zeros(m, dtype=np.uint8)
    t0 = time.perf_counter()
    for j, (s_, x) in enumerate(zip(segs[:m].tolist(), xs[:m].tolist(), strict=True)):
        chart = charts.get(s_)
        if chart is None:
            chart = charts[s_] = CUSUM(h=bank.h)
        chart.update(x)
        single[j] = 1 if chart.drift_detected else 0
    loop_ns = (time.perf_counter() - t0) / m * 1e9
    ours_ns = best / n * 1e9
    return [
        {
            "metric": f"CUSUM bank, {segments:,} segments: updates/s (one call per 10,000)",
            "value": round(n / best),
            "unit": "updates/s",
            "baseline_name": "a CUSUM per segment, one update() call per value",
            "baseline": round(1e9 / loop_ns),
            "ratio": round(loop_ns / ours_ns, 1),
            "better": "higher",
            "agrees": bool(np.array_equal(codes, single)),
        }
    ]


def run(
    n: int = 200_000,
    seed: int = 0,
    repeats: int = 3,
    n_single: int = 50_000,
    kswin_n: int = 20_000,
    stationary_n: int = 1_000_000,
    hst_n: int = 20_000,
) -> dict[str, Any]:
    """Measure every detector; return the DESIGN.md §5 JSON shape."""
    warmup()
    rows: list[dict[str, Any]] = []
    for name, cls, twin, binary, seeded in PAIRS:
        kwargs = {"seed": seed} if seeded else {}
        size = min(n, kswin_n) if cls is KSWIN else n
        xs = make_stream(size, seed, binary)
        values = xs.tolist()

        def ours(cls: type[Detector] = cls, kwargs: dict[str, Any] = kwargs) -> Detector:
            return cls(**kwargs)

        best = None
        ours_flags = _ours(ours, xs)
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            _ours(ours, xs)
            elapsed = time.perf_counter_ns() - t0
            best = elapsed if best is None else min(best, elapsed)
        assert best is not None
        warnings = issubclass(cls, WarningDetector)
        t0 = time.perf_counter_ns()
        river_flags = _river(twin(**kwargs), values, warnings)
        river_ns = (time.perf_counter_ns() - t0) / size
        ours_ns = best / size
        agrees = all(np.array_equal(a, b) for a, b in zip(ours_flags, river_flags, strict=True))
        rows.append(
            {
                "metric": f"{name} ns/update",
                "value": round(ours_ns, 2),
                "unit": "ns",
                "baseline_name": f"river {version('river')} {name}",
                "baseline": round(river_ns, 1),
                "ratio": round(river_ns / ours_ns, 1),
                "better": "lower",
                "agrees": bool(agrees),
                "detections": int(ours_flags[0].sum()),
            }
        )
        m = min(n_single, size)
        single_ns = _single(ours, values[:m]) / m
        rows.append(
            {
                "metric": f"{name} ns/update, single update() calls",
                "value": round(single_ns, 1),
                "unit": "ns",
                "baseline_name": f"river {version('river')} {name}",
                "baseline": round(river_ns, 1),
                "ratio": round(river_ns / single_ns, 2),
                "better": "lower",
            }
        )
        rng = np.random.default_rng(seed + 1)
        if binary:
            calm = (rng.random(stationary_n) < 0.2).astype(np.float64)
        else:
            calm = rng.normal(0.0, 1.0, stationary_n)
        rows.append(
            {
                "metric": f"{name} false alarms per 1e6 stationary values",
                "value": round(float(ours().update_many(calm).sum()) * 1e6 / stationary_n, 1),
                "unit": "alarms",
                "better": "lower",
            }
        )
    rows += hst_rows(hst_n, seed, repeats, n_single)
    rows += population_rows(n, seed, repeats)
    rows += bank_rows(seed, repeats)
    return {
        "bench": "detectors",
        "conditions": {
            "n": n,
            "seed": seed,
            "repeats_ours": repeats,
            "n_single": min(n_single, n),
            "kswin_n": min(kswin_n, n),
            "kswin_seed": seed,
            "stationary_n": stationary_n,
            "hst_n": hst_n,
            "hst_features": HST_FEATURES,
            "numba": version("numba"),
            "numpy": version("numpy"),
            "river": version("river"),
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "rows": rows,
    }


if __name__ == "__main__":
    argv = sys.argv[1:]
    as_json = "--json" in argv
    result = run(**parse_args([a for a in argv if a != "--json"]))
    if as_json:
        print(json.dumps(result))
    else:
        from streamscore.services.bench import format_table

        print(format_table(result))
