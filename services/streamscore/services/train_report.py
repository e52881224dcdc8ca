"""What a ``streamscore train`` run reports: the JSON summary (logged to MLflow) and the table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamscore.libs.training.split import day_of

if TYPE_CHECKING:
    from streamscore.services.trainer import TrainResult


def summary_dict(result: TrainResult) -> dict[str, Any]:
    """The run's figures as JSON (also logged to MLflow as ``summary.json``)."""
    q, cp = result.quality, result.quality.card_precision
    return {
        "model_version": result.manifest.model_version,
        "model_dir": str(result.model_dir),
        "split": result.split.describe(),
        "counts": result.counts,
        "metrics": q.as_metrics(),
        "card_precision_daily": {
            str(day_of(d)): p for d, p in zip(cp.days, cp.per_day, strict=True)
        },
        "parity": result.parity,
        "params": result.config.params.describe(),
        "source": result.source,
        "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
    }


def format_summary(result: TrainResult) -> str:
    """The summary table printed at the end of a run."""
    q, cp, c = result.quality, result.quality.card_precision, result.counts
    sp = result.split.describe()
    rows = [
        ("model", f"{result.manifest.model_name} {result.manifest.model_version}"),
        ("folder", str(result.model_dir)),
        ("source", f"{result.source['kind']} {result.source['path']}"),
        ("train", f"{sp['train']}  {c['train_rows']:,} rows, {c['train_positives']:,} positive"),
        ("gap (label delay)", f"{sp['gap']}  {c['gap_rows']:,} rows unused"),
        (
            "test",
            f"{sp['test']}  {c['test_rows']:,} rows, {c['test_positives']:,} positive, "
            f"{c['test_removed_known_compromised']:,} removed (known compromised cards)",
        ),
        ("AUC ROC", f"{q.auc_roc:.4f}"),
        ("average precision", f"{q.average_precision:.4f}"),
        (
            f"card precision@{cp.k}",
            f"{cp.mean:.4f}  (per day: {', '.join(f'{p:.2f}' for p in cp.per_day)})",
        ),
        (
            "parity gate",
            f"passed, max |diff| {result.parity.get('max_abs_diff', 0.0):.2e}, "
            f"{int(result.parity.get('flips', 0))} flips",
        ),
        (
            "hyper-parameters",
            ", ".join(
                f"{k}={v}"
                for k, v in result.config.params.describe().items()
                if k in ("n_estimators", "max_depth", "learning_rate", "tree_method")
            ),
        ),
    ]
    if result.run_id:
        rows.append(("mlflow run", f"{result.run_id} ({result.tracking_uri})"))
    if result.registered:
        rows.append(("registered", f"{result.registered[0]} version {result.registered[1]}"))
    rows.append(
        ("seconds", ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items())),
    )
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
