"""Aggregations behind ``streamscore report``: percentiles, time bins, mixes over time.

Pure functions over numpy arrays (times in seconds since the epoch, UTC); the
service module :mod:`streamscore.services.report` reads the inputs and draws.

Percentiles are numpy's default (linear interpolation between order
statistics, the same as ``statistics.quantiles(method="inclusive")``).

>>> d = distribution(np.array([0.001, 0.002, 0.003, 0.004, np.nan]))
>>> d.count, round(d.p50, 6), d.max
(4, 0.0025, 0.004)
>>> b = time_bins(np.array([0.0, 3599.0]), target=6)
>>> b.width, b.n, b.start
(600.0, 6, 0.0)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Bin widths (seconds) a time axis may use: readable steps from 1 s to 7 days.
NICE_WIDTHS = (
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
    60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
    3600.0, 7200.0, 10800.0, 21600.0, 43200.0,
    86400.0, 172800.0, 604800.0,
)  # fmt: skip


@dataclass(frozen=True)
class Distribution:
    """Count, mean, p50/p95/p99 and max of the finite values (``None`` when there are none)."""

    count: int
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


def distribution(values: npt.ArrayLike) -> Distribution:
    """The summary of ``values``; NaN and infinities are not counted."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return Distribution(0, None, None, None, None, None)
    p50, p95, p99 = (float(v) for v in np.quantile(x, [0.5, 0.95, 0.99]))
    return Distribution(len(x), float(x.mean()), p50, p95, p99, float(x.max()))


@dataclass(frozen=True)
class Bins:
    """``n`` equal time bins of ``width`` seconds from ``start`` (aligned to the width)."""

    start: float
    width: float
    n: int

    def edges(self) -> FloatArray:
        """The ``n + 1`` bin edges."""
        return self.start + self.width * np.arange(self.n + 1, dtype=np.float64)

    def centres(self) -> FloatArray:
        """The ``n`` bin centres."""
        return self.start + self.width * (np.arange(self.n, dtype=np.float64) + 0.5)

    def index(self, times: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """The bin of each time (the last bin includes its right edge)."""
        t = np.asarray(times, dtype=np.float64)
        i = np.floor((t - self.start) / self.width).astype(np.int64)
        return np.clip(i, 0, self.n - 1)


def time_bins(times: npt.ArrayLike, *, target: int = 60) -> Bins:
    """At most about ``target`` bins of a :data:`NICE_WIDTHS` width covering ``times``."""
    t = np.asarray(times, dtype=np.float64)
    t = t[np.isfinite(t)]
    if len(t) == 0:
        return Bins(0.0, 1.0, 1)
    lo, hi = float(t.min()), float(t.max())
    for width in NICE_WIDTHS:
        bins = _aligned(lo, hi, width)
        if bins.n <= target:
            return bins
    weeks = math.ceil((hi - lo) / (NICE_WIDTHS[-1] * max(1, target - 1)))
    return _aligned(lo, hi, NICE_WIDTHS[-1] * weeks)


def _aligned(lo: float, hi: float, width: float) -> Bins:
    start = math.floor(lo / width) * width
    return Bins(start, width, max(1, math.floor((hi - start) / width) + 1))


@dataclass(frozen=True)
class QuantilesOverTime:
    """Per bin: how many finite values, and each quantile (NaN where a bin is empty)."""

    bins: Bins
    counts: npt.NDArray[np.int64]
    quantiles: dict[float, FloatArray]


def quantiles_over_time(
    times: npt.ArrayLike,
    values: npt.ArrayLike,
    bins: Bins,
    qs: Sequence[float] = (0.5, 0.95, 0.99),
) -> QuantilesOverTime:
    """Quantiles of ``values`` per time bin of their ``times``."""
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(v)
    idx, v = bins.index(t[keep]), v[keep]
    counts = np.bincount(idx, minlength=bins.n).astype(np.int64)
    out = {q: np.full(bins.n, np.nan) for q in qs}
    order = np.argsort(idx, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(counts)))
    sorted_v = v[order]
    for b in np.flatnonzero(counts):
        chunk = sorted_v[bounds[b] : bounds[b + 1]]
        for q, value in zip(qs, np.quantile(chunk, qs), strict=True):
            out[q][b] = value
    return QuantilesOverTime(bins, counts, out)


@dataclass(frozen=True)
class MixOverTime:
    """Counts per bin (rows) and category (columns, sorted by overall count, descending)."""

    bins: Bins
    categories: list[str]
    counts: npt.NDArray[np.int64]

    def shares(self) -> FloatArray:
        """Each bin's counts as shares of the bin (NaN for an empty bin)."""
        totals = self.counts.sum(axis=1, keepdims=True).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(totals > 0, self.counts / totals, np.nan)


def mix_over_time(times: npt.ArrayLike, labels: Sequence[str], bins: Bins) -> MixOverTime:
    """How often each label occurs per time bin."""
    t = np.asarray(times, dtype=np.float64)
    cats, inverse = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    keep = np.isfinite(t)
    idx = bins.index(t[keep])
    counts = np.zeros((bins.n, len(cats)), dtype=np.int64)
    np.add.at(counts, (idx, inverse[keep]), 1)
    order = np.argsort(-counts.sum(axis=0), kind="stable")
    return MixOverTime(bins, [str(c) for c in cats[order]], counts[:, order])


def histograms_by_group(
    values: npt.ArrayLike, groups: Sequence[str], edges: npt.ArrayLike
) -> dict[str, npt.NDArray[np.int64]]:
    """Histogram counts of the finite ``values`` per group, on shared ``edges``."""
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(groups, dtype=object).astype(str)
    e = np.asarray(edges, dtype=np.float64)
    out: dict[str, npt.NDArray[np.int64]] = {}
    for name in sorted(set(g.tolist())):
        x = v[(g == name) & np.isfinite(v)]
        out[name] = np.histogram(x, bins=e)[0].astype(np.int64)
    return out


@dataclass(frozen=True)
class StreamSummary:
    """The summary table's row of one stream."""

    stream: str
    events: int
    first_event_s: float | None
    last_event_s: float | None
    latency_s: Distribution
    decisions: dict[str, int]
    degraded: int
    scored: int
    mean_score: float | None
    model_versions: dict[str, int]

    @property
    def degraded_share(self) -> float | None:
        return self.degraded / self.events if self.events else None


def summarise(
    stream: str,
    *,
    event_time_s: npt.ArrayLike,
    latency_s: npt.ArrayLike,
    decisions: Sequence[str],
    degraded: Sequence[bool],
    scores: npt.ArrayLike,
    model_versions: Sequence[str],
) -> StreamSummary:
    """Counts, latency distribution, mixes and score mean of one stream."""
    t = np.asarray(event_time_s, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    finite = s[np.isfinite(s)]
    return StreamSummary(
        stream=stream,
        events=len(t),
        first_event_s=float(t.min()) if len(t) else None,
        last_event_s=float(t.max()) if len(t) else None,
        latency_s=distribution(latency_s),
        decisions=_counts(decisions),
        degraded=int(np.count_nonzero(np.asarray(degraded, dtype=bool))),
        scored=len(finite),
        mean_score=float(finite.mean()) if len(finite) else None,
        model_versions=_counts(model_versions),
    )


def _counts(labels: Iterable[str]) -> dict[str, int]:
    pairs = sorted(Counter(str(x) for x in labels).items(), key=lambda p: (-p[1], p[0]))
    return dict(pairs)


@dataclass(frozen=True)
class AlertPoint:
    """One drift alert on the timeline (event times of its evidence and confirmation)."""

    stream: str
    kind: str
    signal: str
    segment: str
    feature: str | None
    first_evidence_s: float
    confirmed_s: float
    effect_sds: float
    related: int
    reason: str


def drift_timeline(alerts: Iterable[Mapping[str, Any]], to_s: Any) -> list[AlertPoint]:
    """Alerts (``alerts/drift_alert`` records as mappings) ordered by confirmation time.

    ``to_s`` turns a record's timestamp value into epoch seconds.
    """
    points = [
        AlertPoint(
            stream=str(a["stream"]),
            kind=str(a["kind"]),
            signal=str(a["signal"]),
            segment=str(a["segment"]),
            feature=a.get("feature"),
            first_evidence_s=float(to_s(a["first_evidence_at"])),
            confirmed_s=float(to_s(a["confirmed_at"])),
            effect_sds=float(a["effect_sds"]),
            related=len(a.get("related") or []),
            reason=str(a["reason"]),
        )
        for a in alerts
    ]
    return sorted(points, key=lambda p: (p.confirmed_s, p.stream, p.signal))


#: Metrics of a realised report's cohorts that the report plots.
REALISED_METRICS = ("auc", "average_precision", "card_precision_at_k", "label_completeness")


@dataclass(frozen=True)
class RealisedSeries:
    """Per model version: the cohort days in order, their status and each metric."""

    stream: str
    model_version: str
    days: list[str]
    status: list[str]
    metrics: dict[str, list[float | None]]


def realised_series(report: Mapping[str, Any]) -> list[RealisedSeries]:
    """The per-day cohorts of a joiner realised report (``_report.json``), per model version."""
    by_version: dict[str, list[Mapping[str, Any]]] = {}
    for cohort in report.get("days", []):
        by_version.setdefault(str(cohort["model_version"]), []).append(cohort)
    out = []
    for version in sorted(by_version):
        cohorts = sorted(by_version[version], key=lambda c: str(c.get("day")))
        out.append(
            RealisedSeries(
                stream=str(report.get("stream", "")),
                model_version=version,
                days=[str(c.get("day")) for c in cohorts],
                status=[str(c["status"]) for c in cohorts],
                metrics={m: [_opt(c.get(m)) for c in cohorts] for m in REALISED_METRICS},
            )
        )
    return out


def _opt(v: Any) -> float | None:
    return None if v is None else float(v)
