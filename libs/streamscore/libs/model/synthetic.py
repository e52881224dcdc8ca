"""A real, small transaction model trained on synthetic rows: for tests, benchmarks and demos
that need an ONNX model with the live feature schema before any history exists.

The rows follow the transaction features' order: gamma-distributed values, a
log-normal ``tx_amount``, 5 % missing cells; the label's odds grow with the
amount. The model is an ``XGBClassifier`` exported with the parity gate by
:func:`~streamscore.libs.model.export.export_model`, so it loads like any other.
It says nothing about fraud: the learned model comes from ``streamscore train``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from streamscore.libs.features.definitions import model_features
from streamscore.libs.model.export import export_model

STREAM = "transactions"


def synthetic_rows(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    """``n`` model inputs of the transaction features (amount log-normal, 5 % missing)."""
    names = model_features(STREAM)
    X = rng.gamma(2.0, 2.0, size=(n, len(names))).astype(np.float32)
    X[:, names.index("tx_amount")] = rng.lognormal(3.5, 1.0, size=n)
    X[rng.random(X.shape) < 0.05] = np.nan
    return X


def train_synthetic_model(
    out: Path,
    *,
    version: str,
    thresholds: list[float],
    name: str = "synthetic",
    trees: int = 60,
    depth: int = 4,
    rows: int = 20_000,
    seed: int = 0,
) -> npt.NDArray[np.float32]:
    """Train and export a model folder at ``out``; returns the training rows."""
    import xgboost as xgb  # noqa: PLC0415 - heavy; only those who train pay for it

    rng = np.random.default_rng(seed)
    X = synthetic_rows(rng, rows)
    amount = np.nan_to_num(X[:, model_features(STREAM).index("tx_amount")])
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-(amount / 60 - 4)))).astype(int)
    model = xgb.XGBClassifier(n_estimators=trees, max_depth=depth, n_jobs=1, random_state=0)
    model.fit(X, y)
    export_model(
        model,
        out,
        model_name=name,
        model_version=version,
        stream=STREAM,
        feature_names=model_features(STREAM),
        trained_from=datetime(2026, 1, 1, tzinfo=UTC),
        trained_to=datetime(2026, 2, 1, tzinfo=UTC),
        golden=X[:2000],
        thresholds=thresholds,
    )
    return X
