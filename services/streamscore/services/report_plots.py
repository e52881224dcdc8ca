"""The plots of ``streamscore report`` (step 3 of :mod:`streamscore.services.report`).

Each function draws with matplotlib on the Agg backend (no display) and
returns an ``<img>`` tag holding the PNG as base64, so the report is one
self-contained file. The numbers come from
:mod:`streamscore.libs.reporting.aggregate`.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # before pyplot: no display, PNGs only

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from streamscore.libs.reporting.aggregate import (
    AlertPoint,
    RealisedSeries,
    histograms_by_group,
    mix_over_time,
    quantiles_over_time,
    time_bins,
)


@dataclass(frozen=True)
class StreamData:
    """The columns of one stream's scored-event log the report uses (times in epoch s)."""

    stream: str
    event_time_s: np.ndarray
    #: ``decided_at - event_time`` from the integer microseconds (exact).
    latency_s: np.ndarray
    decisions: list[str]
    degraded: list[bool]
    scores: np.ndarray
    model_versions: list[str]


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="" src="data:image/png;base64,{data}">'


def _time_axis(ax: Any) -> None:
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _panels(n: int, height: float = 2.6) -> tuple[Figure, list[Any]]:
    fig, axes = plt.subplots(n, 1, figsize=(10, height * n), squeeze=False)
    return fig, [a[0] for a in axes]


def plot_latency(data: Sequence[StreamData]) -> tuple[str, str]:
    """Latency histogram with percentile lines, and latency quantiles over time."""
    fig, axes = _panels(len(data))
    for ax, d in zip(axes, data, strict=True):
        ms = d.latency_s * 1000
        ms = ms[np.isfinite(ms)]
        lo, hi = max(float(ms.min()), 1e-3), max(float(ms.max()), 1e-2)
        edges = np.geomspace(lo, hi * 1.0001, 60) if hi > lo * 1.01 else 30
        ax.hist(np.clip(ms, lo, None), bins=edges, color="#4C72B0")
        ax.set_xscale("log")
        for q, colour in ((50, "green"), (95, "orange"), (99, "red")):
            v = float(np.percentile(ms, q))
            ax.axvline(v, color=colour, linestyle="--", label=f"p{q} {v:.3g} ms")
        ax.set_title(f"{d.stream}: decided_at − event_time (ms, log scale)")
        ax.set_ylabel("events")
        ax.legend(loc="upper right", fontsize=8)
    hist = _png(fig)
    fig, axes = _panels(len(data))
    for ax, d in zip(axes, data, strict=True):
        bins = time_bins(d.event_time_s)
        over = quantiles_over_time(d.event_time_s, d.latency_s * 1000, bins)
        x = _mpl_dates(bins.centres())
        for level, colour in ((0.5, "green"), (0.95, "orange"), (0.99, "red")):
            ax.plot(x, over.quantiles[level], color=colour, marker=".", label=f"p{level * 100:.0f}")
        ax.set_yscale("log")
        ax.set_title(f"{d.stream}: latency per {bins.width:.0f} s of event time (ms)")
        ax.legend(loc="upper right", fontsize=8)
        _time_axis(ax)
    return hist, _png(fig)


def _mpl_dates(seconds: np.ndarray) -> Any:
    us = np.asarray(np.asarray(seconds) * 1e6, dtype="int64").astype("datetime64[us]")
    return mdates.date2num(us)  # type: ignore[no-untyped-call]


def plot_mix(data: Sequence[StreamData]) -> str:
    """Decision shares per time bin (stacked), one panel per stream."""
    fig, axes = _panels(len(data))
    for ax, d in zip(axes, data, strict=True):
        bins = time_bins(d.event_time_s)
        mix = mix_over_time(d.event_time_s, d.decisions, bins)
        shares = np.nan_to_num(mix.shares())
        ax.stackplot(_mpl_dates(bins.centres()), shares.T, labels=mix.categories, alpha=0.85)
        ax.set_ylim(0, 1)
        ax.set_title(f"{d.stream}: decision shares per {bins.width:.0f} s of event time")
        ax.legend(loc="upper left", fontsize=8, ncol=len(mix.categories))
        _time_axis(ax)
    return _png(fig)


def plot_scores(data: Sequence[StreamData]) -> str:
    """Score histograms per model version (density, 50 bins on [0, 1])."""
    fig, axes = _panels(len(data))
    edges = np.linspace(0, 1, 51)
    for ax, d in zip(axes, data, strict=True):
        for version, counts in histograms_by_group(d.scores, d.model_versions, edges).items():
            if counts.sum():
                ax.stairs(counts / counts.sum(), edges, label=f"{version} ({counts.sum():,})")
        ax.set_title(f"{d.stream}: score distribution per model version (share of events)")
        ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


_KIND_COLOURS = {"drift": "#DD8452", "retrain_trigger": "red", "rollback": "purple"}


def plot_drift(points: Sequence[AlertPoint]) -> str:
    """One row per (stream, signal): evidence span as a bar, confirmation as a marker."""
    rows = sorted({(p.stream, p.signal if p.feature is None else p.feature) for p in points})
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.5))
    for p in points:
        y = rows.index((p.stream, p.signal if p.feature is None else p.feature))
        start, end = _mpl_dates(np.array([p.first_evidence_s, p.confirmed_s]))
        colour = _KIND_COLOURS.get(p.kind, "grey")
        ax.plot([start, end], [y, y], color=colour, linewidth=4, alpha=0.5)
        ax.plot([end], [y], marker="v", color=colour, markersize=9)
    ax.set_yticks(range(len(rows)), [f"{s} · {sig}" for s, sig in rows])
    ax.set_title(
        "Alerts: evidence window → confirmation "
        "(orange drift, red retrain trigger, purple model rollback)"
    )
    _time_axis(ax)
    return _png(fig)


_REALISED_STYLES = (("auc", "-"), ("average_precision", "--"), ("card_precision_at_k", ":"))


def plot_realised(series: Sequence[RealisedSeries]) -> str:
    """Per stream: AUC / AP / CP@k per cohort day (hollow markers: estimates) and completeness."""
    streams = sorted({s.stream for s in series})
    fig, axes = _panels(len(streams), height=3.0)
    for ax, stream in zip(axes, streams, strict=True):
        for s in (s for s in series if s.stream == stream):
            x = [datetime.fromisoformat(d) for d in s.days]
            for metric, style in (
                ("auc", "-"),
                ("average_precision", "--"),
                ("card_precision_at_k", ":"),
            ):
                y = [math.nan if v is None else v for v in s.metrics[metric]]
                line = ax.plot(x, y, style, label=f"{s.model_version} {metric}")[0]
                est = [i for i, st in enumerate(s.status) if st == "estimate"]
                ax.plot(
                    [x[i] for i in est],
                    [y[i] for i in est],
                    "o",
                    mfc="none",
                    color=line.get_color(),
                )
            comp = [0.0 if v is None else v for v in s.metrics["label_completeness"]]
            ax.bar(x, comp, width=0.8, alpha=0.15, color="grey")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{stream}: realised metrics per cohort day (bars: label completeness)")
        ax.legend(loc="lower left", fontsize=7, ncol=3)
    return _png(fig)
