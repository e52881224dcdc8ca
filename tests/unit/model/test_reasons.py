"""Top contributing features: exact tree contributions that sum to the margin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from streamscore.libs.model.export import export_model
from streamscore.libs.model.load import load_verified
from streamscore.libs.model.manifest import BOOSTER_FILE, feature_schema_hash
from streamscore.libs.model.reasons import TreeReasons, load_booster
from streamscore.libs.model.safety import ModelRefused
from streamscore.libs.scoring.decide import Explainer


@pytest.fixture(scope="module")
def reasons(model: xgb.XGBClassifier, spec: Any) -> TreeReasons:
    return TreeReasons(model, spec.names)


def test_contributions_sum_to_the_margin(
    reasons: TreeReasons, model: xgb.XGBClassifier, data: Any
) -> None:
    X = data[0][:500]
    contrib = reasons.contributions(X)
    assert contrib.shape == (500, 21)
    margin = model.predict(X, output_margin=True)
    assert np.abs(contrib.sum(axis=1) - margin).max() < 1e-4
    assert np.abs(reasons.margin(X) - margin).max() < 1e-5


def test_approx_contributions_also_sum_to_the_margin(
    model: xgb.XGBClassifier, data: Any, spec: Any
) -> None:
    fast = TreeReasons(model, spec.names, method="approx")
    X = data[0][:500]
    contrib = fast.contributions(X)
    margin = model.predict(X, output_margin=True)
    assert np.abs(contrib.sum(axis=1) - margin).max() < 1e-4
    exact = TreeReasons(model, spec.names).contributions(X)
    assert not np.allclose(contrib, exact)  # a different attribution, same total


def test_unknown_method_is_refused(model: xgb.XGBClassifier, spec: Any) -> None:
    with pytest.raises(ValueError, match="method"):
        TreeReasons(model, spec.names, method="magic")  # type: ignore[arg-type]


def test_early_stopped_model_explains_its_best_trees(data: Any, spec: Any) -> None:
    X, y = data
    m = xgb.XGBClassifier(
        n_estimators=200,
        max_depth=4,
        learning_rate=0.3,
        n_jobs=1,
        random_state=0,
        early_stopping_rounds=5,
        eval_metric="logloss",
    )
    m.fit(X[:15_000], y[:15_000], eval_set=[(X[15_000:], y[15_000:])], verbose=False)
    contrib = TreeReasons(m, spec.names).contributions(X[:100])
    margin = m.predict(X[:100], output_margin=True)  # honours best_iteration
    assert np.abs(contrib.sum(axis=1) - margin).max() < 1e-4


def test_top_k_is_ordered_by_absolute_contribution(
    reasons: TreeReasons, data: Any, spec: Any
) -> None:
    X = data[0][:50]
    top = reasons.top_reasons(X, 3)
    contrib = reasons.contributions(X)[:, :-1]
    assert len(top) == 50 and all(len(r) == 3 for r in top)
    for row, rs in zip(contrib, top, strict=True):
        mags = [abs(v) for _, v in rs]
        assert mags == sorted(mags, reverse=True)
        assert mags[0] == pytest.approx(np.abs(row).max())
        assert all(v == pytest.approx(row[spec.names.index(n)]) for n, v in rs)


def test_the_informative_features_lead(
    reasons: TreeReasons, model: xgb.XGBClassifier, data: Any
) -> None:
    X = data[0][:2000]
    risky = X[model.predict_proba(X)[:, 1] > 0.5]
    leaders = [r[0][0] for r in reasons.top_reasons(risky, 1)]
    informative = {"feat_00", "feat_01", "feat_02", "feat_03", "feat_04"}
    assert len(leaders) > 20
    assert sum(name in informative for name in leaders) >= 0.8 * len(leaders)


def test_subset_only(reasons: TreeReasons, data: Any) -> None:
    X = data[0][:64]
    full = reasons.top_reasons(X, 2)
    by_mask = reasons.top_reasons_for(X, np.arange(64) % 10 == 0, 2)
    by_idx = reasons.top_reasons_for(X, [3, 7], 2)
    assert sorted(by_mask) == list(range(0, 64, 10))
    assert all(by_mask[i] == full[i] for i in by_mask)
    assert by_idx == {3: full[3], 7: full[7]}
    assert reasons.top_reasons_for(X, np.zeros(64, dtype=bool), 2) == {}


def test_edge_cases(reasons: TreeReasons) -> None:
    explainer: Explainer = reasons
    assert explainer.top_reasons(np.empty((0, 20), dtype=np.float32), 3) == []
    assert reasons.top_reasons(np.zeros((2, 20), dtype=np.float32), 0) == [[], []]
    assert len(reasons.top_reasons(np.full((1, 20), np.nan, dtype=np.float32), 50)[0]) == 20


def test_feature_count_must_match(model: xgb.XGBClassifier) -> None:
    with pytest.raises(ValueError, match="names"):
        TreeReasons(model, ["a", "b"])


def test_reasons_from_a_verified_model_folder(tmp_path: Path, data: Any, spec: Any) -> None:
    """The native booster ships beside the ONNX file; early stopping survives the trip."""
    X, y = data
    m = xgb.XGBClassifier(
        n_estimators=200,
        max_depth=4,
        learning_rate=0.3,
        n_jobs=1,
        random_state=0,
        early_stopping_rounds=5,
        eval_metric="logloss",
    )
    m.fit(X[:15_000], y[:15_000], eval_set=[(X[15_000:], y[15_000:])], verbose=False)
    out = tmp_path / "m"
    manifest, _ = export_model(
        m,
        out,
        model_name="fraud",
        model_version="3",
        stream="transactions",
        feature_names=spec.names,
        trained_from=spec.t0,
        trained_to=spec.t1,
        golden=X[:200],
        thresholds=spec.thresholds,
    )
    live = feature_schema_hash(spec.names, ("float32",) * len(spec.names))
    manifest, _ = load_verified(out, live)
    booster = load_booster(out, manifest)
    contrib = TreeReasons(booster, manifest.feature_names).contributions(X[:100])
    margin = m.predict(X[:100], output_margin=True)
    assert np.abs(contrib.sum(axis=1) - margin).max() < 1e-4

    raw = bytearray((out / BOOSTER_FILE).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (out / BOOSTER_FILE).write_bytes(bytes(raw))
    with pytest.raises(ModelRefused) as exc:
        load_booster(out, manifest)
    assert exc.value.reason == "booster_hash_mismatch"
    (out / BOOSTER_FILE).unlink()
    with pytest.raises(ModelRefused, match="booster_missing"):
        load_booster(out, manifest)
