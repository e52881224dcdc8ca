"""``streamscore bench model``: ONNX Runtime µs per row against native XGBoost, and reasons.

The model is the "default transaction size" (DESIGN.md §5): ``n_features``
(20) float32 features, ``n_trees`` (100) trees of depth ``depth`` (5), trained
on a seeded synthetic fraud-like set (6 % positives, 5 % missing values),
exported with :func:`streamscore.libs.model.export.to_onnx` and served by
:class:`streamscore.libs.model.session.ScoringSession` (1 thread, no spinning).
XGBoost runs with ``nthread=1`` too, so the comparison is one core each.

For each figure: ``warmup`` calls, then ``runs`` timed runs of ``calls``
calls each on the same rows; the figure is the median of the runs' µs per
row (per call for single rows).

Rows:

1. ORT at batch ``batch`` (64) vs ``Booster.inplace_predict`` (budget ≤ 2 µs/row);
2. the same vs ``XGBClassifier.predict_proba``;
3. ORT single row vs ``inplace_predict`` single row (budget ≤ 20 µs);
4. the same vs ``predict_proba`` single row;
5. reasons top 3 µs/row at batch 64, exact (TreeSHAP) and approx (Saabas),
   each vs the bare ``pred_contribs`` call (the top-k selection overhead);
   ``agrees`` says the contributions sum to the margin;
6. if ``large_trees`` > 0: row 1 again on a model of ``large_trees`` trees
   (same depth), to show how the batch figure grows with the ensemble
   (ORT's per-row cost rises faster than linearly once the nodes leave the
   CPU cache).

``agrees`` on score rows: max abs diff between ORT and the baseline ≤ 1e-6.
The parity gate's figures on this model are in the conditions.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import xgboost as xgb

from streamscore.libs.model.export import library_versions, to_onnx
from streamscore.libs.model.parity import check_parity
from streamscore.libs.model.reasons import TreeReasons
from streamscore.libs.model.session import ScoringSession

TOLERANCE = 1e-6
BUDGET_BATCH_US = 2.0
BUDGET_SINGLE_US = 20.0


def parse_args(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="streamscore bench model")
    p.add_argument("--n-features", type=int, default=20)
    p.add_argument("--n-trees", type=int, default=100)
    p.add_argument("--large-trees", type=int, default=200)
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    return vars(p.parse_args(argv))


def make_data(n: int, n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded fraud-like rows: a few informative features, 5 % missing, ~6 % positives."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features)).astype(np.float32)
    X[rng.random(X.shape) < 0.05] = np.nan
    Z = np.nan_to_num(X)
    logit = -4 + 1.5 * Z[:, 0] + Z[:, 1] * Z[:, 2] + 0.8 * np.isnan(X[:, 3]) + 0.5 * Z[:, 4]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return X, y


def _time(fn: Callable[[], object], *, rows: int, calls: int, runs: int, warmup: int) -> float:
    """Median over ``runs`` of µs per row for ``calls`` calls of ``fn`` (each scoring ``rows``)."""
    for _ in range(warmup):
        fn()
    results = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        results.append((time.perf_counter_ns() - t0) / 1000 / calls / rows)
    return statistics.median(results)


def _row(
    metric: str,
    value: float,
    baseline_name: str,
    baseline: float,
    agrees: bool,
    budget: float | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "metric": metric,
        "value": round(value, 4),
        "unit": "µs/row",
        "baseline_name": baseline_name,
        "baseline": round(baseline, 4),
        "ratio": round(baseline / value, 3) if value > 0 else None,
        "better": "lower",
        "agrees": agrees,
    }
    if budget is not None:
        row["budget"] = budget
        row["within_budget"] = value <= budget
    return row


def _model(
    X: np.ndarray, y: np.ndarray, n_trees: int, depth: int, seed: int
) -> tuple[xgb.XGBClassifier, xgb.Booster, bytes]:
    model = xgb.XGBClassifier(
        n_estimators=n_trees, max_depth=depth, n_jobs=1, random_state=seed, tree_method="hist"
    ).fit(X, y)
    booster = model.get_booster()
    booster.set_param({"nthread": 1})
    return model, booster, to_onnx(model, X.shape[1])


def run(
    n_features: int = 20,
    n_trees: int = 100,
    depth: int = 5,
    batch: int = 64,
    runs: int = 7,
    calls: int = 2000,
    seed: int = 0,
    warmup: int = 200,
    large_trees: int = 200,
) -> dict[str, Any]:
    """Train, export, gate, then time every row; return the DESIGN.md §5 JSON shape."""
    X, y = make_data(20_000, n_features, seed)
    model, booster, onnx_bytes = _model(X, y, n_trees, depth, seed)
    names = [f"f{i}" for i in range(n_features)]
    report = check_parity(model, onnx_bytes, X[:1000], [0.5, 0.9], feature_names=names)
    session = ScoringSession(onnx_bytes, version="bench", feature_names=names)
    reasons = TreeReasons(model, names)
    fast = TreeReasons(model, names, method="approx")

    rows_b = np.ascontiguousarray(X[1000 : 1000 + batch])
    row_1 = np.ascontiguousarray(X[1000:1001])

    def diff(ref: np.ndarray, ours: np.ndarray) -> bool:
        return bool(np.abs(np.asarray(ref, dtype=np.float64) - ours).max() <= TOLERANCE)

    ours_b = session.predict(rows_b)
    ours_1 = session.predict(row_1)
    timing = {"calls": calls, "runs": runs, "warmup": warmup}
    single = {"calls": calls * 2, "runs": runs, "warmup": warmup}

    t_ort_b = _time(lambda: session.predict(rows_b), rows=batch, **timing)
    t_inp_b = _time(lambda: booster.inplace_predict(rows_b), rows=batch, **timing)
    t_pp_b = _time(lambda: model.predict_proba(rows_b), rows=batch, **timing)
    t_ort_1 = _time(lambda: session.predict(row_1), rows=1, **single)
    t_inp_1 = _time(lambda: booster.inplace_predict(row_1), rows=1, **single)
    t_pp_1 = _time(lambda: model.predict_proba(row_1), rows=1, **single)
    few = {"calls": max(calls // 100, 5), "runs": runs, "warmup": 3}
    some = {"calls": max(calls // 10, 10), "runs": runs, "warmup": 10}
    dm = xgb.DMatrix(rows_b, missing=np.nan, nthread=1)
    t_rs_b = _time(lambda: reasons.top_reasons(rows_b, 3), rows=batch, **few)
    t_raw_b = _time(lambda: booster.predict(dm, pred_contribs=True), rows=batch, **few)
    t_rsa_b = _time(lambda: fast.top_reasons(rows_b, 3), rows=batch, **some)
    t_rawa_b = _time(
        lambda: booster.predict(dm, pred_contribs=True, approx_contribs=True), rows=batch, **some
    )
    margin = model.predict(rows_b, output_margin=True)
    sums_ok = bool(np.abs(reasons.contributions(rows_b).sum(axis=1) - margin).max() < 1e-4)
    sums_ok_a = bool(np.abs(fast.contributions(rows_b).sum(axis=1) - margin).max() < 1e-4)

    inp = "xgboost inplace_predict"
    pp = "xgboost predict_proba"
    xgb_v = str(xgb.__version__)
    result_rows = [
        _row(
            f"ORT batch {batch}",
            t_ort_b,
            f"{inp} {xgb_v}",
            t_inp_b,
            diff(booster.inplace_predict(rows_b), ours_b),
            BUDGET_BATCH_US,
        ),
        _row(
            f"ORT batch {batch}",
            t_ort_b,
            f"{pp} {xgb_v}",
            t_pp_b,
            diff(model.predict_proba(rows_b)[:, 1], ours_b),
            BUDGET_BATCH_US,
        ),
        _row(
            "ORT single row",
            t_ort_1,
            f"{inp} {xgb_v}",
            t_inp_1,
            diff(booster.inplace_predict(row_1), ours_1),
            BUDGET_SINGLE_US,
        ),
        _row(
            "ORT single row",
            t_ort_1,
            f"{pp} {xgb_v}",
            t_pp_1,
            diff(model.predict_proba(row_1)[:, 1], ours_1),
            BUDGET_SINGLE_US,
        ),
        _row(
            f"reasons exact top-3 batch {batch}",
            t_rs_b,
            f"xgboost pred_contribs {xgb_v} (no top-k)",
            t_raw_b,
            sums_ok,
        ),
        _row(
            f"reasons approx top-3 batch {batch}",
            t_rsa_b,
            f"xgboost approx_contribs {xgb_v} (no top-k)",
            t_rawa_b,
            sums_ok_a,
        ),
    ]
    if large_trees > 0:
        _, big_booster, big_bytes = _model(X, y, large_trees, depth, seed)
        big = ScoringSession(big_bytes, version="bench-large", feature_names=names)
        t_big = _time(lambda: big.predict(rows_b), rows=batch, **timing)
        t_big_inp = _time(lambda: big_booster.inplace_predict(rows_b), rows=batch, **timing)
        result_rows.append(
            _row(
                f"ORT batch {batch}, {large_trees} trees",
                t_big,
                f"{inp} {xgb_v}",
                t_big_inp,
                diff(big_booster.inplace_predict(rows_b), big.predict(rows_b)),
                BUDGET_BATCH_US,
            )
        )
    return {
        "bench": "model",
        "conditions": {
            "model": f"XGBClassifier binary:logistic, {n_trees} trees, depth {depth}",
            "n_features": n_features,
            "n_trees": n_trees,
            "depth": depth,
            "batch": batch,
            "threads": "1 (ORT intra/inter op, no spinning; XGBoost nthread=1)",
            "timing": f"median of {runs} runs after warm-up; {calls} calls/run "
            f"(single row {calls * 2}, reasons exact {few['calls']}, approx {some['calls']})",
            "large_trees": large_trees,
            "parity_max_abs_diff": report.max_abs_diff,
            "parity_flips": report.flips,
            "parity_rows_compared": report.rows_compared,
            "budgets_us": {"batch_per_row": BUDGET_BATCH_US, "single_row": BUDGET_SINGLE_US},
            **library_versions(),
            "numpy": np.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "rows": result_rows,
    }
