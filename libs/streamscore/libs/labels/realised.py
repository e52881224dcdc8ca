"""Realised model performance as labels mature, and an estimate for cohorts still maturing.

Input: one row per scored event with its final label (the highest revision of
its labelled examples, :func:`~streamscore.libs.labels.dataset.final_labels`).
A **cohort** is a model version and a UTC event day. At watermark ``W`` a day
is *realised* once its last instant plus the horizon is behind ``W`` (every
event of it has matured: its labels are final); otherwise its figures are an
*estimate*.

Per cohort (the metrics are :mod:`streamscore.libs.training.metrics`'s, the
handbook's): AUC ROC, average precision, card precision top-k (the day's ``k``
cards with the highest score, share fraudulent, over ``k``) and precision /
recall of ``score >= t`` at each live policy threshold. Events without a score
(degraded decisions) are counted, not scored.

**The estimate.** Labels of a young cohort are incomplete: some positives
have not been reported yet and sit among the "negatives". From realised
cohorts, the label delay distribution ``F`` (the share of positives whose
label came within ``a`` of the event) gives the cohort's expected
completeness ``c`` = the mean of ``F(W - event_time)`` over its events. The
precision-like figures are scaled up by ``1 / c`` (capped at 1): true
positives among the alerts grow as labels arrive, the alerts do not; recall,
AUC and average precision are reported as observed (a label arriving
independently of the score leaves them unbiased in expectation). Every figure
of such a cohort is marked ``estimate`` with its ``label_completeness``.

>>> import pyarrow as pa
>>> from datetime import UTC, datetime, timedelta
>>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
>>> rows = pa.table({
...     "event_id": ["a", "b", "c", "d"], "event_time": [t0] * 4,
...     "customer_id": ["C1", "C2", "C3", "C4"], "model_version": ["m1"] * 4,
...     "score": [0.9, 0.2, 0.7, 0.1], "label": [True, False, False, False],
...     "label_time": [t0 + timedelta(days=3), None, None, None]})
>>> rep = realised_report(rows, "transactions", watermark=t0 + timedelta(days=200),
...     horizon=timedelta(days=120), thresholds=[0.5], k=2)
>>> d = rep.days[0]
>>> d.status, d.auc, d.card_precision_at_k, d.precision[0], d.recall[0]
('realised', 1.0, 0.5, 0.5, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from streamscore.libs.training.examples import card_key
from streamscore.libs.training.metrics import average_precision, card_precision_top_k, roc_auc

Status = Literal["realised", "estimate"]
_US = 1_000_000


@dataclass(frozen=True)
class Figures:
    """The metrics of one cohort (or a pool of cohorts)."""

    model_version: str
    status: Status
    examples: int
    scored: int
    positives: int
    auc: float | None
    average_precision: float | None
    card_precision_at_k: float | None
    #: Per live threshold, in the policy's order.
    precision: list[float | None]
    recall: list[float | None]
    #: Expected share of the eventual positives already labelled (1 when realised).
    label_completeness: float | None
    day: str | None = None
    days: int = 1


@dataclass
class Report:
    """Per cohort figures and, per model version and status, the pooled window."""

    stream: str
    watermark: str
    horizon_days: float
    k: int
    thresholds: list[float]
    days: list[Figures] = field(default_factory=list)
    summary: list[Figures] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ts_us(col: pa.ChunkedArray) -> npt.NDArray[np.int64]:
    arr = col.cast(pa.timestamp("us", tz="UTC")).fill_null(-1).cast(pa.int64())
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64)


def _safe(fn: Any, y: npt.NDArray[np.bool_], s: npt.NDArray[np.float64]) -> float | None:
    return float(fn(y, s)) if 0 < y.sum() < len(y) else None


def delay_cdf(delays_us: npt.NDArray[np.int64]) -> Any:
    """``F(age)``: the share of label delays at most ``age`` (``None`` without data)."""
    d = np.sort(delays_us)
    if len(d) == 0:
        return None

    def f(age_us: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        return np.searchsorted(d, age_us, side="right") / len(d)

    return f


@dataclass(frozen=True)
class _Columns:
    """The final-label table as arrays, with what the watermark says about each row."""

    day: npt.NDArray[np.int64]
    card: npt.NDArray[Any]
    label: npt.NDArray[np.bool_]
    score: npt.NDArray[np.float64]
    has_score: npt.NDArray[np.bool_]
    t_us: npt.NDArray[np.int64]
    model_version: npt.NDArray[Any]
    matured: npt.NDArray[np.bool_]
    w_us: int
    #: ``F(age)`` of :func:`delay_cdf`, ``None`` before any realised positive.
    cdf: Any

    @classmethod
    def of(cls, final: pa.Table, stream: str, w_us: int, h_us: int) -> _Columns:
        t_us = _ts_us(final.column("event_time"))
        day = t_us // (86_400 * _US)
        label = np.asarray(final.column("label").to_numpy(zero_copy_only=False), dtype=np.bool_)
        score_col = final.column("score")
        label_t = _ts_us(final.column("label_time"))
        matured = (day + 1) * 86_400 * _US + h_us <= w_us
        # The label delays of realised cohorts: the completeness curve of young ones.
        known = matured & label & (label_t >= 0)
        return cls(
            day=day,
            card=_objects(final, card_key(stream)),
            label=label,
            score=np.asarray(
                score_col.fill_null(0.0).to_numpy(zero_copy_only=False), dtype=np.float64
            ),
            has_score=np.asarray(
                score_col.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_
            ),
            t_us=t_us,
            model_version=_objects(final, "model_version"),
            matured=matured,
            w_us=w_us,
            cdf=delay_cdf(label_t[known] - t_us[known]),
        )


def _objects(table: pa.Table, name: str) -> npt.NDArray[Any]:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=object)


def _cohort(
    c: _Columns,
    rows: npt.NDArray[np.bool_],
    *,
    version: str,
    status: Status,
    thresholds: Sequence[float],
    k: int,
    day_name: str | None = None,
) -> Figures:
    """The figures of the ``rows`` (one cohort or a pool of them)."""
    completeness: float | None = 1.0
    if status == "estimate":
        ages = c.w_us - c.t_us[rows]
        completeness = None if c.cdf is None else float(np.mean(c.cdf(ages)))
    sel = rows & c.has_score
    days, cards, y, s = c.day[sel], c.card[sel], c.label[sel], c.score[sel]
    scale = 1.0 if status == "realised" or not completeness else 1.0 / completeness
    precision: list[float | None] = []
    recall: list[float | None] = []
    for t in thresholds:
        alert = s >= t
        tp = int((alert & y).sum())
        precision.append(min(1.0, tp * scale / int(alert.sum())) if alert.any() else None)
        recall.append(tp / int(y.sum()) if y.any() else None)
    cp: float | None = None
    if len(s):
        per_day = [
            card_precision_top_k(
                days[days == d], cards[days == d], y[days == d], s[days == d], k
            ).per_day[0]
            for d in np.unique(days)
        ]
        cp = min(1.0, float(np.mean(per_day)) * scale)
    return Figures(
        model_version=version,
        status=status,
        examples=int(rows.sum()),
        scored=len(s),
        positives=int(y.sum()),
        auc=_safe(roc_auc, y, s),
        average_precision=_safe(average_precision, y, s),
        card_precision_at_k=cp,
        precision=precision,
        recall=recall,
        label_completeness=completeness,
        day=day_name,
        days=len(np.unique(c.day[rows])),
    )


def realised_report(
    final: pa.Table,
    stream: str,
    *,
    watermark: datetime,
    horizon: timedelta,
    thresholds: Sequence[float],
    k: int = 100,
    window_days: int = 7,
) -> Report:
    """The report of the final labels in ``final`` (see the module doc).

    ``summary`` pools, per model version, the last ``window_days`` realised days
    (``realised``) and every day still maturing (``estimate``).
    """
    report = Report(
        stream,
        watermark.astimezone(UTC).isoformat(),
        horizon / timedelta(days=1),
        k,
        list(thresholds),
    )
    if final.num_rows == 0:
        return report
    w_us = int(watermark.timestamp() * _US)
    c = _Columns.of(final, stream, w_us, int(horizon / timedelta(microseconds=1)))
    realised_days = sorted(set(c.day[c.matured].tolist()))[-window_days:]
    for version in sorted(set(c.model_version.tolist())):
        of_mv = c.model_version == version
        for d in sorted(set(c.day[of_mv].tolist())):
            rows = of_mv & (c.day == d)
            status: Status = "realised" if c.matured[rows][0] else "estimate"
            name = date.fromordinal(_EPOCH_ORD + d).isoformat()
            figures = _cohort(
                c, rows, version=version, status=status, thresholds=thresholds, k=k, day_name=name
            )
            report.days.append(figures)
        pools: dict[Status, npt.NDArray[np.bool_]] = {
            "realised": of_mv & np.isin(c.day, realised_days),
            "estimate": of_mv & ~c.matured,
        }
        for pool, rows in pools.items():
            if rows.any():
                report.summary.append(
                    _cohort(c, rows, version=version, status=pool, thresholds=thresholds, k=k)
                )
    return report


_EPOCH_ORD = date(1970, 1, 1).toordinal()
