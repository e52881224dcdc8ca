"""Realised performance from the examples dataset: a JSON report and Prometheus gauges.

The joiner calls :func:`publish_report` every ``--report-interval`` seconds
(and at shutdown); ``streamscore joiner --report-only`` runs it once.

1. Read the dataset's days that can still change a figure: from the oldest
   day of the realised window (``window_days`` before the newest matured day)
   to the watermark; keep each event's final label.
2. Compute :func:`~streamscore.libs.labels.realised.realised_report` with the
   live policy's thresholds (the active one in the policy store, else the
   shipped ``policies/<stream>.json``).
3. Write ``<root>/<stream>/_report.json`` (temp file, fsync, rename) and set
   ``streamscore_realised_performance{stream, model_version, metric, cohort}``;
   series of model versions that left the window are removed.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import redis

from streamscore.libs.config import Settings
from streamscore.libs.labels.dataset import final_labels, read_examples
from streamscore.libs.labels.layout import JoinKeys
from streamscore.libs.labels.realised import Figures, Report, realised_report
from streamscore.libs.labels.spec import JoinSpec, from_us
from streamscore.libs.policy.spec import load_policy
from streamscore.libs.training.examples import card_key
from streamscore.services.clients import make_redis
from streamscore.services.durable_files import ensure_dir, publish, sync_dir
from streamscore.services.join_state import RedisJoinState
from streamscore.services.metrics import JoinerMetrics
from streamscore.services.policy_store import PolicyStore

REPORT_FILE = "_report.json"
REPO_POLICIES = Path(__file__).resolve().parents[3] / "policies"
_COLUMNS = ("event_id", "event_time", "model_version", "score", "label", "label_time", "revision")


def live_thresholds(stream: str, client: redis.Redis | None) -> list[float]:
    """The active policy's thresholds (policy store), else the shipped policy's."""
    if client is not None:
        try:
            active = PolicyStore(client).active(stream)
        except redis.RedisError:
            active = None
        if active is not None:
            return list(active.thresholds)
    return list(load_policy((REPO_POLICIES / f"{stream}.json").read_bytes()).thresholds)


def compute(
    root: Path,
    stream: str,
    spec: JoinSpec,
    watermark_us: int,
    *,
    thresholds: list[float],
    k: int = 100,
    window_days: int = 7,
) -> Report:
    """Steps 1-2 of the module doc."""
    wm = from_us(watermark_us)
    horizon = timedelta(microseconds=spec.horizon_us)
    first = (wm - horizon - timedelta(days=window_days + 1)).date()
    table = read_examples(root, stream, first, wm.date(), columns=(*_COLUMNS, card_key(stream)))
    return realised_report(
        final_labels(table),
        stream,
        watermark=wm,
        horizon=horizon,
        thresholds=thresholds,
        k=k,
        window_days=window_days,
    )


def _metrics(f: Figures, thresholds: list[float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {
        "auc": f.auc,
        "average_precision": f.average_precision,
        "card_precision_at_k": f.card_precision_at_k,
        "examples": float(f.examples),
        "positives": float(f.positives),
        "label_completeness": f.label_completeness,
    }
    for i, _t in enumerate(thresholds, start=1):
        out[f"precision_at_t{i}"] = f.precision[i - 1]
        out[f"recall_at_t{i}"] = f.recall[i - 1]
    return out


class ReportExporter:
    """Keeps the gauges of one stream in step with the latest report."""

    def __init__(self, metrics: JoinerMetrics, stream: str) -> None:
        self.metrics = metrics
        self.stream = stream
        self._series: set[tuple[str, str, str]] = set()

    def export(self, report: Report) -> None:
        now: set[tuple[str, str, str]] = set()
        for f in report.summary:
            for name, value in _metrics(f, report.thresholds).items():
                if value is None:
                    continue
                key: tuple[str, str, str] = (f.model_version, name, f.status)
                self.metrics.realised.labels(self.stream, *key).set(value)
                now.add(key)
        for key in self._series - now:
            self.metrics.realised.remove(self.stream, *key)
        self._series = now


def publish_report(
    root: Path,
    stream: str,
    spec: JoinSpec,
    watermark_us: int | None,
    *,
    thresholds: list[float],
    exporter: ReportExporter | None = None,
    k: int = 100,
) -> Report | None:
    """Steps 1-3 of the module doc (``None`` before the first scored event)."""
    if watermark_us is None:
        return None
    report = compute(root, stream, spec, watermark_us, thresholds=thresholds, k=k)
    folder = ensure_dir(root / stream)
    body = json.dumps(report.to_dict(), indent=1, default=_json_default).encode()
    publish(folder, REPORT_FILE, lambda p: p.write_bytes(body), temp_prefix=".report-")
    sync_dir(folder)
    if exporter is not None:
        exporter.export(report)
    return report


def _json_default(o: object) -> object:
    if isinstance(o, datetime):
        return o.isoformat()
    raise TypeError(type(o).__name__)


def report_once(
    settings: Settings, stream: str, spec: JoinSpec, root: Path, topic_prefix: str = ""
) -> Report | None:
    """``streamscore joiner --report-only``: the report at the live joiner's watermark.

    Reads the joiner's clock from Redis without claiming its state (a running
    joiner is not fenced).
    """
    client = make_redis(settings, timeout_s=10)
    state = RedisJoinState(client, JoinKeys(topic_prefix, stream), ttl_s=1)
    state.load()
    return publish_report(
        root,
        stream,
        spec,
        state.meta.watermark_us,
        thresholds=live_thresholds(stream, client),
    )
