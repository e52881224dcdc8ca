"""ONNX Runtime against native XGBoost: the gate, converter pitfalls (FAULTS.md M1, M2, M6, M11)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import xgboost as xgb

from streamscore.libs.model.export import ExportError, ParityFailed, export_model, to_onnx
from streamscore.libs.model.parity import SPECIAL_VALUES, check_parity, split_edges


def test_gate_passes_with_figures(
    model: xgb.XGBClassifier, onnx_bytes: bytes, data: Any, spec: Any
) -> None:
    X, _ = data
    report = check_parity(model, onnx_bytes, X[:1000], spec.thresholds, feature_names=spec.names)
    assert report.passed, report.failures
    assert report.flips == 0
    assert report.max_abs_diff <= 1e-6
    cases = report.max_abs_diff_by_case
    # every special value, for each feature and all at once (M1, M2)
    for v in SPECIAL_VALUES:
        assert f"{v}:all" in cases
        assert all(f"{v}:{n}" in cases for n in spec.names)
    # batch sizes and float64 input (M6); split-threshold edge rows
    assert {"rows", "batch_1", "batch_10000", "float64", "split_edges"} <= set(cases)
    assert set(report.max_abs_diff_by_feature) == set(spec.names)
    assert report.rows_compared > 100_000


def test_nan_routing_really_differs_from_zero(
    model: xgb.XGBClassifier, onnx_bytes: bytes, data: Any
) -> None:
    """NaN is missing (default branch), not 0: the gate would see a converter that zero-fills."""
    X, _ = data
    Z = X[:500].copy()
    Z[:, 3] = np.nan
    W = Z.copy()
    W[:, 3] = 0.0
    assert np.abs(model.predict_proba(Z)[:, 1] - model.predict_proba(W)[:, 1]).max() > 1e-3


def test_split_edges_are_the_models_thresholds(model: xgb.XGBClassifier) -> None:
    edges = split_edges(model)
    assert len(edges) > 100
    assert all(0 <= f < model.n_features_in_ for f, _ in edges)
    assert all(isinstance(t, np.float32) for _, t in edges)


def _shift_base(onnx_bytes: bytes, delta: float) -> bytes:
    proto = onnx.load_from_string(onnx_bytes)
    node = next(n for n in proto.graph.node if n.op_type == "TreeEnsembleClassifier")
    for attr in node.attribute:
        if attr.name == "base_values":
            attr.floats[:] = [v + delta for v in attr.floats]
            break
    else:
        node.attribute.append(onnx.helper.make_attribute("base_values", [delta]))
    data: bytes = proto.SerializeToString()
    return data


def test_gate_catches_a_wrong_base_score(
    model: xgb.XGBClassifier, onnx_bytes: bytes, data: Any, spec: Any
) -> None:
    """The onnxruntime #11892 class of bug: an intercept lost or mangled by the converter."""
    report = check_parity(model, _shift_base(onnx_bytes, 1e-3), data[0][:300], spec.thresholds)
    assert not report.passed
    assert report.max_abs_diff > 1e-6


def test_gate_counts_flips_at_the_live_thresholds(
    model: xgb.XGBClassifier, onnx_bytes: bytes, data: Any
) -> None:
    X = data[0][:300]
    p = model.predict_proba(X)[:, 1]
    # a threshold just below a native score: a +1e-3 margin shift flips that row
    t = float(np.sort(p)[-5]) - 1e-6
    report = check_parity(model, _shift_base(onnx_bytes, -1e-3), X, [t], tolerance=1.0)
    assert report.flips > 0 and not report.passed
    assert any("flips" in f for f in report.failures)


@pytest.mark.parametrize("base_score", [None, 0.3])
def test_base_score_estimated_or_explicit(data: Any, spec: Any, base_score: float | None) -> None:
    """xgboost >= 3.1 estimates a vector intercept; an explicit one converts too (#736)."""
    m = spec.train(n_estimators=30, base_score=base_score)
    report = check_parity(m, to_onnx(m, len(spec.names)), data[0][:300], spec.thresholds)
    assert report.passed, report.failures


def test_early_stopping_keeps_the_best_trees(data: Any, spec: Any) -> None:
    X, y = data
    m = xgb.XGBClassifier(
        n_estimators=300,
        max_depth=4,
        learning_rate=0.3,
        n_jobs=1,
        random_state=0,
        early_stopping_rounds=5,
        eval_metric="logloss",
    )
    m.fit(X[:15_000], y[:15_000], eval_set=[(X[15_000:], y[15_000:])], verbose=False)
    assert m.best_iteration + 1 < m.get_booster().num_boosted_rounds()
    report = check_parity(m, to_onnx(m, len(spec.names)), X[:300], spec.thresholds)
    assert report.passed, report.failures


@pytest.mark.parametrize("objective", ["binary:logitraw", "binary:hinge", "reg:logistic"])
def test_other_objectives_are_refused(data: Any, objective: str) -> None:
    X, y = data
    m = xgb.XGBClassifier(n_estimators=3, objective=objective, n_jobs=1).fit(X[:2000], y[:2000])
    with pytest.raises(ExportError, match="objective"):
        to_onnx(m, X.shape[1])


def test_non_nan_missing_is_refused(data: Any) -> None:
    X, y = data
    m = xgb.XGBClassifier(n_estimators=3, missing=-999.0, n_jobs=1).fit(
        np.nan_to_num(X[:2000]), y[:2000]
    )
    with pytest.raises(ExportError, match="missing"):
        to_onnx(m, X.shape[1])


def test_wrong_feature_count_is_refused(model: xgb.XGBClassifier) -> None:
    with pytest.raises(ExportError, match="features"):
        to_onnx(model, 3)


def test_failed_gate_writes_nothing(
    tmp_path: Path, model: xgb.XGBClassifier, data: Any, spec: Any
) -> None:
    with pytest.raises(ParityFailed) as exc:
        export_model(
            model,
            tmp_path / "m",
            model_name="fraud",
            model_version="2",
            stream="transactions",
            feature_names=spec.names,
            trained_from=spec.t0,
            trained_to=spec.t1,
            golden=data[0][:200],
            thresholds=spec.thresholds,
            tolerance=0.0,
        )
    assert exc.value.report.failures
    assert not (tmp_path / "m").exists()


def test_golden_rows_must_be_given(model: xgb.XGBClassifier, onnx_bytes: bytes) -> None:
    with pytest.raises(ValueError, match="golden"):
        check_parity(model, onnx_bytes, np.empty((0, 20)), [0.5])
