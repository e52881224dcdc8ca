"""The scoring session: options, shapes, casts, empty batches (FAULTS.md M6)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from streamscore.libs.model.session import InputError, ScoringSession, session_options
from streamscore.libs.scoring.decide import ScoreModel


@pytest.fixture(scope="module")
def session(onnx_bytes: bytes, spec: Any) -> ScoringSession:
    return ScoringSession(onnx_bytes, version="v1", feature_names=spec.names)


def test_options_are_deliberate() -> None:
    so = session_options()
    assert so.intra_op_num_threads == 1 and so.inter_op_num_threads == 1
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert str(so.graph_optimization_level).endswith("ORT_ENABLE_ALL")
    assert str(so.execution_mode).endswith("ORT_SEQUENTIAL")


def test_is_a_score_model(session: ScoringSession) -> None:
    model: ScoreModel = session
    assert model.version == "v1" and len(model.feature_names) == 20


def test_predict_matches_native(
    session: ScoringSession, model: xgb.XGBClassifier, data: Any
) -> None:
    X = data[0][:1000]
    p = session.predict(X)
    assert p.shape == (1000,) and p.dtype == np.float32
    assert np.abs(p - model.predict_proba(X)[:, 1]).max() <= 1e-6


def test_empty_batch_does_not_call_ort(onnx_bytes: bytes, spec: Any) -> None:
    session = ScoringSession(onnx_bytes, version="v1", feature_names=spec.names)
    session._session = None  # any call would raise
    assert session.predict(np.empty((0, 20), dtype=np.float32)).shape == (0,)


def test_float64_and_non_contiguous_are_cast(onnx_bytes: bytes, spec: Any, data: Any) -> None:
    s = ScoringSession(onnx_bytes, version="v1", feature_names=spec.names)
    X = data[0][:64]
    ref = s.predict(X)
    assert np.array_equal(s.predict(X.astype(np.float64)), ref)
    assert np.array_equal(s.predict(np.asfortranarray(X)), ref)
    wide = np.concatenate([X, X], axis=1)[:, ::2]  # a strided view
    assert not wide.flags.c_contiguous
    assert s.predict(wide).shape == (64,)
    ints = np.nan_to_num(X).astype(np.int64)
    assert np.array_equal(s.predict(ints), s.predict(ints.astype(np.float32)))


def test_float64_beyond_float32_becomes_inf_silently(onnx_bytes: bytes, spec: Any) -> None:
    s = ScoringSession(onnx_bytes, version="v1", feature_names=spec.names)
    X = np.full((2, 20), 1e39)
    with np.errstate(over="raise"):
        p = s.predict(X)
    assert np.array_equal(p, s.predict(np.full((2, 20), np.inf, dtype=np.float32)))


@pytest.mark.parametrize("shape", [(20,), (3, 19), (3, 21), (1, 2, 20)])
def test_wrong_shapes_are_rejected(onnx_bytes: bytes, spec: Any, shape: tuple[int, ...]) -> None:
    s = ScoringSession(onnx_bytes, version="v1", feature_names=spec.names)
    with pytest.raises(InputError, match=r"shape \(n, 20\)"):
        s.predict(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize(
    "values", [np.array([["1.0"] * 20]), np.array([[None] * 20]), np.zeros((1, 20), dtype=bool)]
)
def test_non_numeric_dtypes_are_rejected(onnx_bytes: bytes, spec: Any, values: np.ndarray) -> None:
    s = ScoringSession(onnx_bytes, version="v1", feature_names=spec.names)
    with pytest.raises(InputError, match="real numbers"):
        s.predict(values)
