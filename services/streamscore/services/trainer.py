"""``streamscore train``: examples → delay-aware split → XGBoost → test metrics → ONNX → MLflow.

Steps (each prints what it did; long ones print progress every few seconds):

1. **Examples.** ``--sim DIR`` (cold start): the training set of
   ``streamscore features offline`` (``DIR/training/<stream>.parquet``, built
   first when absent, stale or ``--rebuild``: the same computation as the
   stream processors, point-in-time correct), labelled with the simulator's
   ground truth ``truth_fraud``. ``--examples DIR``: every ``*.parquet`` under
   ``DIR`` in the layout of :mod:`streamscore.libs.training.examples`
   (the training set's columns with a ``label`` column; what the label
   joiner writes).
2. **Split** (:mod:`streamscore.libs.training.split`): training days, a gap of
   the label delay, test days (7/7/7 by default, the handbook's), ending on the
   last day of the data unless ``--train-start`` says where to start; test
   transactions of cards already known to be compromised are removed.
3. **Fit** an ``XGBClassifier`` with explicit hyper-parameters
   (:class:`~streamscore.libs.training.params.XGBParams`).
4. **Evaluate** on the test days: AUC ROC, average precision, CP@k per day.
5. **Export** with :func:`~streamscore.libs.model.export.export_model`: ONNX,
   the parity gate at the live policy thresholds (nothing is written when it
   fails), manifest with the data range and the metrics.
6. **Track**: one MLflow run (parameters, metrics, CP@k per test day, feature
   schema and its hash, data range, the model folder as artifact); with
   ``--register`` a new version of the registered model ``streamscore-<stream>``.

The exit code is 0 when a model folder was written, 1 when the input is
unusable (nothing to train on, one class only) or the gate failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import xgboost as xgb

from streamscore.libs.config import Settings
from streamscore.libs.features.definitions import feature_schema_hash
from streamscore.libs.model.export import ParityFailed, export_model
from streamscore.libs.model.manifest import ModelManifest
from streamscore.libs.policy.spec import load_policy
from streamscore.libs.topics import STREAMS
from streamscore.libs.training.examples import (
    LABEL,
    SCHEMA_HASH_KEY,
    SIM_LABEL,
    Examples,
    check_schema,
    from_table,
)
from streamscore.libs.training.metrics import (
    CardPrecision,
    average_precision,
    card_precision_top_k,
    roc_auc,
)
from streamscore.libs.training.params import XGBParams
from streamscore.libs.training.split import (
    DelaySplit,
    SplitRows,
    day_numbers,
    day_of,
    split_rows,
    warmup_days,
)
from streamscore.services.train_config import (
    TRAINABLE,
    TrainConfig,
    add_arguments,
    config_from_args,
)
from streamscore.services.train_report import format_summary, summary_dict

Progress = Callable[[str], None]
PROGRESS_EVERY_S = 3.0
GOLDEN_ROWS = 2_000
#: The registry gate of issue 7: ONNX within 1e-5 of native XGBoost (and zero decision flips,
#: which the gate always requires). The export default (1e-6) is tighter than the issue; a
#: 100-tree model trained here measured 1.25e-6 on one case (``+inf`` in one feature: float32
#: sums in another order), so the trainer gates at the issue's figure.
PARITY_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Quality:
    """Test-period figures of one model."""

    auc_roc: float
    average_precision: float
    card_precision: CardPrecision

    def as_metrics(self, prefix: str = "test_") -> dict[str, float]:
        k = self.card_precision.k
        return {
            f"{prefix}auc_roc": self.auc_roc,
            f"{prefix}average_precision": self.average_precision,
            f"{prefix}card_precision_at_{k}": self.card_precision.mean,
        }


@dataclass
class TrainResult:
    """What a run produced (the summary table prints it)."""

    config: TrainConfig
    source: dict[str, Any]
    split: DelaySplit
    counts: dict[str, int]
    quality: Quality
    model_dir: Path
    manifest: ModelManifest
    parity: dict[str, float]
    seconds: dict[str, float]
    run_id: str | None = None
    tracking_uri: str | None = None
    registered: tuple[str, str] | None = None


class TrainingError(Exception):
    """The examples cannot train a model (nothing in a period, one class only, bad layout)."""


# 1. Examples ---------------------------------------------------------------------------------


def _training_set_fresh(path: Path, events: Path, stream: str) -> bool:
    if not path.exists():
        return False
    if events.exists() and events.stat().st_mtime > path.stat().st_mtime:
        return False
    meta = pq.read_schema(path).metadata or {}
    return bool(meta.get(SCHEMA_HASH_KEY, b"").decode() == feature_schema_hash(stream))


def examples_from_sim(
    sim: Path, stream: str, *, rebuild: bool, progress: Progress
) -> tuple[Examples, dict[str, Any]]:
    """The simulator's files through the offline feature path, labelled with ``truth_fraud``."""
    from streamscore.services.training_set import (  # noqa: PLC0415
        build_training_set,
        topic_file,
        training_set_path,
    )

    path = training_set_path(sim, stream)
    events = topic_file(sim, STREAMS[stream].input_topic)
    built = False
    if rebuild or not _training_set_fresh(path, events, stream):
        progress(f"building the training set from {sim} (streaming feature definitions)")
        build_training_set(sim, sim, stream=stream, progress=progress)
        built = True
    else:
        progress(f"reusing the training set {path} (same feature schema, newer than the events)")
    table = pq.read_table(path)
    source = {"kind": "sim", "path": str(sim), "training_set": str(path), "built": built}
    scenario = (table.schema.metadata or {}).get(b"scenario")
    if scenario:
        source["scenario"] = json.loads(scenario).get("name", "")
    return from_table(table, stream, SIM_LABEL), source


def examples_from_dir(
    folder: Path, stream: str, progress: Progress
) -> tuple[Examples, dict[str, Any]]:
    """Every ``*.parquet`` under ``folder`` (or ``folder/<stream>``) in the examples layout.

    Files of another feature declaration (their ``features_schema_hash`` is not
    the live one: the label joiner writes those with the raw vector only) are
    skipped and counted, never read as if their columns meant today's features.
    Any other layout problem refuses the run.
    """
    if (folder / stream).is_dir():
        folder = folder / stream
    files = sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith("."))
    live = feature_schema_hash(stream)
    tables, skipped = [], []
    for f in files:
        schema = pq.read_schema(f)
        declared = (schema.metadata or {}).get(SCHEMA_HASH_KEY, live.encode()).decode()
        if declared != live:
            skipped.append(f)
            continue
        problems = check_schema(schema, stream, LABEL)
        if problems:
            raise TrainingError(f"{f}: " + "; ".join(problems))
        tables.append(pq.read_table(f))
    if skipped:
        progress(
            f"skipped {len(skipped)} file(s) of another feature declaration "
            f"(e.g. {skipped[0].name}); they need a model of their own declaration"
        )
    if not tables:
        raise TrainingError(f"no examples of the live feature declaration under {folder}")
    table = pa.concat_tables(tables, promote_options="permissive")
    source = {
        "kind": "examples",
        "path": str(folder),
        "files": len(tables),
        "skipped_other_declaration": len(skipped),
    }
    return from_table(table, stream, LABEL), source


# 2.-4. Split, fit, evaluate ------------------------------------------------------------------


def choose_split(cfg: TrainConfig, ex: Examples) -> DelaySplit:
    """``--train-start`` if given, else the split whose test period ends on the data's last day."""
    if cfg.train_start is not None:
        return DelaySplit(cfg.train_start, cfg.train_days, cfg.delay_days, cfg.test_days)
    last = day_of(int(day_numbers(ex.event_time_us).max()))
    return DelaySplit.ending(
        last, train_days=cfg.train_days, delay_days=cfg.delay_days, test_days=cfg.test_days
    )


def check_split(rows: SplitRows, y: npt.NDArray[np.bool_], split: DelaySplit) -> None:
    """Refuse a split with an empty or one-class training or test period."""
    for name, mask in (("training", rows.train), ("test", rows.test)):
        n, pos = int(mask.sum()), int(y[mask].sum())
        if n == 0 or pos in (0, n):
            msg = (
                f"the {name} period of {split.describe()} has {n:,} examples, {pos:,} positive: "
                "it needs both classes (move --train-start or give more days)"
            )
            raise TrainingError(msg)


class ProgressCallback(xgb.callback.TrainingCallback):
    """XGBoost callback: a line every few seconds with the trees built so far."""

    def __init__(self, total: int, progress: Progress) -> None:
        super().__init__()
        self.total, self.progress = total, progress
        self.started = self.last = time.monotonic()

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            rate = (epoch + 1) / (now - self.started)
            self.progress(f"fit: {epoch + 1}/{self.total} trees ({rate:.1f} trees/s)")
        return False  # never stop early: the tree count is a stated hyper-parameter


def fit(
    params: XGBParams, X: npt.NDArray[np.float32], y: npt.NDArray[np.bool_], progress: Progress
) -> xgb.XGBClassifier:
    """An ``XGBClassifier`` fitted on ``X, y`` (progress every few seconds)."""
    model = xgb.XGBClassifier(
        **params.kwargs(), callbacks=[ProgressCallback(params.n_estimators, progress)]
    )
    model.fit(X, y.astype(np.int32))
    # The callback is not part of the model: drop it before export.
    model.set_params(callbacks=None)
    return model


def evaluate(
    scores: npt.NDArray[np.float64],
    y: npt.NDArray[np.bool_],
    day: npt.NDArray[np.int64],
    card: npt.NDArray[Any],
    k: int,
) -> Quality:
    """AUC ROC, AP and CP@k of scores on labelled rows."""
    return Quality(
        auc_roc=roc_auc(y, scores),
        average_precision=average_precision(y, scores),
        card_precision=card_precision_top_k(day, card, y, scores, k),
    )


def scores_of(model: xgb.XGBClassifier, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """P(fraud) of each row."""
    return np.asarray(model.predict_proba(X)[:, 1], dtype=np.float64)


def golden_rows(ex: Examples, rows: SplitRows, n: int = GOLDEN_ROWS) -> npt.NDArray[np.float32]:
    """Rows for the parity gate: every test positive and a fixed sample of the rest."""
    rng = np.random.default_rng(0)
    pos = np.flatnonzero(rows.test & ex.y)
    rest = np.flatnonzero(rows.train | rows.test)
    take = rng.choice(rest, size=min(len(rest), max(0, n - len(pos))), replace=False)
    idx = np.sort(np.r_[pos[:n], take])
    return np.ascontiguousarray(ex.X[idx])


# 5.-6. Export and tracking -------------------------------------------------------------------


def default_version(stream: str, now: datetime | None = None) -> str:
    """``<stream>-YYYYMMDD-HHMMSS`` (UTC).

    >>> default_version("transactions", datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC))
    'transactions-20260301-120005'
    """
    return f"{stream}-{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}"


def _thresholds(cfg: TrainConfig) -> list[float]:
    if cfg.policy is not None:
        return list(load_policy(cfg.policy.read_bytes()).thresholds)
    from streamscore.services.scorer import default_policy  # noqa: PLC0415

    return list(default_policy(cfg.stream).thresholds)


def _utc(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))


def _day_start(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def train(cfg: TrainConfig, settings: Settings, progress: Progress = print) -> TrainResult:
    """Run steps 1-6 (see the module docstring)."""
    if cfg.stream not in TRAINABLE:
        raise TrainingError(f"training is defined for {', '.join(TRAINABLE)} (not {cfg.stream})")
    if (cfg.sim is None) == (cfg.examples is None):
        raise TrainingError("give exactly one of --sim DIR or --examples DIR")
    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    if cfg.sim is not None:
        ex, source = examples_from_sim(cfg.sim, cfg.stream, rebuild=cfg.rebuild, progress=progress)
    else:
        assert cfg.examples is not None
        ex, source = examples_from_dir(cfg.examples, cfg.stream, progress)
    seconds["examples"] = time.monotonic() - t0
    if len(ex) == 0:
        raise TrainingError("no examples")
    data_from, data_to = _utc(int(ex.event_time_us.min())), _utc(int(ex.event_time_us.max()))
    progress(f"examples: {len(ex):,} rows, {int(ex.y.sum()):,} positive, {data_from} .. {data_to}")

    # 2. Split.
    split = choose_split(cfg, ex)
    rows = split_rows(split, ex.event_time_us, ex.card, ex.y)
    check_split(rows, ex.y, split)
    history = (split.train_start - data_from.date()).days
    if cfg.sim is not None and history < warmup_days(cfg.stream):
        progress(
            f"warning: {history} days of history before the training start; the features need "
            f"{warmup_days(cfg.stream)} to fill their windows (early windows are truncated)"
        )
    counts = {
        "examples": len(ex),
        "train_rows": int(rows.train.sum()),
        "train_positives": int(ex.y[rows.train].sum()),
        "gap_rows": int(rows.gap.sum()),
        "test_rows": int(rows.test.sum()),
        "test_positives": int(ex.y[rows.test].sum()),
        "test_removed_known_compromised": int(rows.removed.sum()),
        "replaced_labels": ex.replaced,
    }
    progress(
        "split: train {train}, gap {gap}, test {test}; ".format(**split.describe())
        + f"{counts['test_removed_known_compromised']:,} test rows of known compromised cards "
        "removed"
    )

    # 3. Fit.
    t1 = time.monotonic()
    progress(f"fit: {cfg.params.n_estimators} trees on {counts['train_rows']:,} rows")
    model = fit(cfg.params, ex.X[rows.train], ex.y[rows.train], progress)
    seconds["fit"] = time.monotonic() - t1

    # 4. Evaluate on the test days.
    t2 = time.monotonic()
    quality = evaluate(
        scores_of(model, ex.X[rows.test]),
        ex.y[rows.test],
        rows.day[rows.test],
        ex.card[rows.test],
        cfg.top_k,
    )
    seconds["evaluate"] = time.monotonic() - t2

    # 5. Export behind the parity gate.
    t3 = time.monotonic()
    version = cfg.version or default_version(cfg.stream)
    out = cfg.out or settings.models_root / cfg.stream / version
    metrics = {**quality.as_metrics(), **{k: float(v) for k, v in counts.items()}}
    manifest, report = export_model(
        model,
        out,
        model_name=cfg.model_name,
        model_version=version,
        stream=cfg.stream,
        feature_names=ex.feature_names,
        trained_from=_day_start(split.train_start),
        trained_to=_day_start(split.train_end),
        golden=golden_rows(ex, rows),
        thresholds=_thresholds(cfg),
        metrics=metrics,
        tolerance=PARITY_TOLERANCE,
    )
    seconds["export"] = time.monotonic() - t3
    progress(
        f"export: {out} (parity gate passed: max |diff| {report.max_abs_diff:.2e}, "
        f"{report.flips} flips at {list(report.thresholds)})"
    )
    result = TrainResult(
        config=cfg,
        source=source,
        split=split,
        counts=counts,
        quality=quality,
        model_dir=Path(out),
        manifest=manifest,
        parity=report.summary(),
        seconds=seconds,
    )

    # 6. MLflow.
    if cfg.track:
        t4 = time.monotonic()
        track(result, settings, data_range=(data_from, data_to), progress=progress)
        seconds["mlflow"] = time.monotonic() - t4
    seconds["total"] = time.monotonic() - t0
    return result


def track(
    result: TrainResult,
    settings: Settings,
    *,
    data_range: tuple[datetime, datetime],
    progress: Progress,
) -> None:
    """Log the run to MLflow and, with ``--register``, register the model folder."""
    from streamscore.services import tracking  # noqa: PLC0415

    cfg, m = result.config, result.manifest
    cp = result.quality.card_precision
    schema = {
        "stream": cfg.stream,
        "feature_names": list(m.feature_names),
        "feature_dtypes": list(m.feature_dtypes),
        "feature_schema_hash": m.feature_schema_hash,
        "features_schema_hash": feature_schema_hash(cfg.stream),
    }
    tags = {
        "streamscore.stream": cfg.stream,
        "streamscore.model_version": m.model_version,
        "streamscore.source": str(result.source["kind"]),
        "feature_schema_hash": m.feature_schema_hash,
        "features_schema_hash": feature_schema_hash(cfg.stream),
        "data_from": data_range[0].isoformat(),
        "data_to": data_range[1].isoformat(),
        "onnx_sha256": m.onnx_sha256,
        "parity_passed": "true",
    }
    params = {
        **{f"xgb.{k}": v for k, v in cfg.params.describe().items()},
        **{f"split.{k}": v for k, v in result.split.describe().items()},
        "stream": cfg.stream,
        "top_k": cfg.top_k,
        "label": SIM_LABEL if result.source["kind"] == "sim" else LABEL,
        "source": result.source,
        "n_features": len(m.feature_names),
        "data_from": data_range[0].isoformat(),
        "data_to": data_range[1].isoformat(),
    }
    metrics = {
        **result.quality.as_metrics(),
        **{k: float(v) for k, v in result.counts.items()},
        **{f"parity_{k}": float(v) for k, v in result.parity.items()},
        **{f"seconds_{k}": v for k, v in result.seconds.items()},
    }
    client = tracking.open_client(settings)
    run = tracking.log_run(
        client,
        settings,
        tracking.RunSpec(
            experiment=cfg.experiment or cfg.model_name,
            run_name=m.model_version,
            params=params,
            metrics=metrics,
            tags=tags,
            series={
                f"test_card_precision_at_{cp.k}_daily": list(
                    enumerate(cp.per_day)
                ),  # step = test day
            },
            documents={"feature_schema.json": schema, "summary.json": summary_dict(result)},
            folders={"model": result.model_dir},
        ),
    )
    result.run_id, result.tracking_uri = run.run_id, run.tracking_uri
    progress(f"mlflow: run {run.run_id} in {run.tracking_uri}")
    if cfg.register:
        number = tracking.register_version(
            client,
            cfg.model_name,
            run,
            "model",
            tags={
                "streamscore.model_version": m.model_version,
                "feature_schema_hash": m.feature_schema_hash,
                "onnx_sha256": m.onnx_sha256,
            },
            description=f"{m.model_version}: trained {result.split.describe()['train']}, "
            f"tested {result.split.describe()['test']}",
        )
        result.registered = (cfg.model_name, number)
        progress(f"mlflow: registered {cfg.model_name} version {number}")


# Command line ----------------------------------------------------------------------------------


def run_train(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """``streamscore train``: train, print the summary table; the exit code."""
    if args.register and args.no_mlflow:
        print("train: --register needs MLflow (drop --no-mlflow)", file=sys.stderr)
        return 2
    try:
        result = train(config_from_args(args), settings or Settings())
    except (TrainingError, FileNotFoundError, ValueError) as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 1
    except ParityFailed as exc:
        print(f"train: {exc} (nothing written)", file=sys.stderr)
        return 1
    print(format_summary(result))
    return 0


def main_train(argv: Sequence[str] | None = None) -> int:
    """``streamscore train`` as a standalone entry point."""
    parser = argparse.ArgumentParser(prog="streamscore train", description=__doc__)
    add_arguments(parser)
    return run_train(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main_train())
