"""A small fraud-like model shared by the model tests (seeded, trains in < 1 s)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from streamscore.libs.model.export import export_model, to_onnx

N_FEATURES = 20
NAMES = tuple(f"feat_{i:02d}" for i in range(N_FEATURES))
THRESHOLDS = (0.5, 0.9)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 8, tzinfo=UTC)


def make_data(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian features, 5 % missing, ~6 % positives depending on a few features."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    X[rng.random(X.shape) < 0.05] = np.nan
    Z = np.nan_to_num(X)
    logit = -4 + 1.5 * Z[:, 0] + Z[:, 1] * Z[:, 2] + 0.8 * np.isnan(X[:, 3]) + 0.5 * Z[:, 4]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return X, y


def train(n_estimators: int = 100, max_depth: int = 5, **kwargs: object) -> xgb.XGBClassifier:
    X, y = make_data()
    model = xgb.XGBClassifier(
        n_estimators=n_estimators, max_depth=max_depth, n_jobs=1, random_state=0, **kwargs
    )
    return model.fit(X, y)


@dataclass(frozen=True)
class Spec:
    """Constants and helpers of the shared model (test modules cannot import conftest)."""

    names: tuple[str, ...] = NAMES
    thresholds: tuple[float, ...] = THRESHOLDS
    t0: datetime = T0
    t1: datetime = T1
    make_data: Callable[..., tuple[np.ndarray, np.ndarray]] = make_data
    train: Callable[..., xgb.XGBClassifier] = train


@pytest.fixture(scope="session")
def spec() -> Spec:
    return Spec()


@pytest.fixture(scope="session")
def data() -> tuple[np.ndarray, np.ndarray]:
    return make_data()


@pytest.fixture(scope="session")
def model() -> xgb.XGBClassifier:
    return train()


@pytest.fixture(scope="session")
def onnx_bytes(model: xgb.XGBClassifier) -> bytes:
    return to_onnx(model, N_FEATURES)


@pytest.fixture(scope="session")
def exported_dir(
    tmp_path_factory: pytest.TempPathFactory,
    model: xgb.XGBClassifier,
    data: tuple[np.ndarray, np.ndarray],
) -> Path:
    out = tmp_path_factory.mktemp("exported") / "m1"
    export_model(
        model,
        out,
        model_name="fraud",
        model_version="1",
        stream="transactions",
        feature_names=NAMES,
        trained_from=T0,
        trained_to=T1,
        golden=data[0][:300],
        thresholds=THRESHOLDS,
        metrics={"auc": 0.9},
    )
    return out


@pytest.fixture
def model_dir(tmp_path: Path, exported_dir: Path) -> Path:
    """A fresh copy of an exported model folder (tests tamper with it)."""
    return Path(shutil.copytree(exported_dir, tmp_path / "m1"))
