"""The parity gate: ONNX Runtime against native XGBoost, before a model may serve.

:func:`check_parity` scores the same rows both ways and compares
P(class 1). Rows compared (FAULTS.md M1, M2, M6, M11):

1. ``rows``: the golden rows as given (float32);
2. for each special value and each feature, the golden rows with that feature
   set to the value, and with every feature set to it (``<value>:all``):
   NaN, +inf, -inf, ±1e39 (beyond float32: becomes ±inf when cast), ±1e-40
   (a float32 subnormal), -0.0;
3. ``split_edges``: for every split of the model, a row with the split feature
   exactly at the threshold and one float32 step either side (catches a
   converter that rounds thresholds: a leaf reached on one side only);
4. batch sizes: 0 (empty result, ONNX Runtime not called), 1 (row by row) and
   ``large_batch`` rows at once;
5. ``float64``: the golden rows as float64 (cast to float32 by the session).

NaN / inf policy (measured by the gate, pinned by the tests):

- NaN is *missing*. XGBoost sends it down each split's learned default
  branch; the ONNX ensemble has the same routing in
  ``nodes_missing_value_tracks_true``. Parity is required.
- ±inf is a value, not missing: ``x < threshold`` is false for +inf and
  true for -inf in both XGBoost and the ONNX ensemble, so +inf takes the
  "no" branch and -inf the "yes" branch of every split. Parity is required;
  the gate does not reject inf. Values beyond float32 (1e39) become ±inf in
  both (XGBoost stores float32; the session casts with overflow to inf).
- subnormals and -0.0 compare as the numbers they are (no flush-to-zero on
  either side); parity is required.

The gate passes when the largest absolute difference is at most
``tolerance`` and there are no decision flips: a row whose decision (score
``>=`` threshold, as the policy's ladder does) differs between the two at any
live threshold. Both sides compute in float32 (XGBoost sums leaf values in
float32; onnxruntime too, in its own order), so differences of a few float32
ulps of the probability are expected: measured ≤ 8e-7 (a few ulps near 0.5)
on the test and benchmark models, within the default tolerance of 1e-6
(FAULTS.md M1). Issue 7 asks 1e-5 of the registry gate; this one is tighter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import xgboost as xgb

from streamscore.libs.model.session import ScoringSession

DEFAULT_TOLERANCE = 1e-6

SPECIAL_VALUES: dict[str, float] = {
    "nan": float("nan"),
    "+inf": float("inf"),
    "-inf": float("-inf"),
    "+1e39": 1e39,
    "-1e39": -1e39,
    "+subnormal": 1e-40,
    "-subnormal": -1e-40,
    "-0.0": -0.0,
}


@dataclass(frozen=True)
class ParityReport:
    """What the gate compared and found; ``passed`` when ``failures`` is empty."""

    tolerance: float
    thresholds: tuple[float, ...]
    rows_compared: int
    max_abs_diff: float
    max_abs_diff_by_case: dict[str, float]
    max_abs_diff_by_feature: dict[str, float]
    flips: int
    flips_by_threshold: dict[str, int]
    failures: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> dict[str, float]:
        """The figures stored in the manifest."""
        return {
            "max_abs_diff": self.max_abs_diff,
            "flips": float(self.flips),
            "tolerance": self.tolerance,
            "rows_compared": float(self.rows_compared),
            "passed": float(self.passed),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``parity.json`` beside the model)."""
        d = asdict(self)
        d["passed"] = self.passed
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def native_proba(model: xgb.XGBClassifier | xgb.Booster, X: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """P(class 1) from native XGBoost, honouring early stopping (``best_iteration``)."""
    if isinstance(model, xgb.XGBClassifier):
        return np.asarray(model.predict_proba(X)[:, 1])
    best = model.attr("best_iteration")
    rng = (0, int(best) + 1) if best is not None else (0, 0)
    return np.asarray(model.inplace_predict(X, iteration_range=rng))


def _booster(model: xgb.XGBClassifier | xgb.Booster) -> xgb.Booster:
    return model.get_booster() if isinstance(model, xgb.XGBClassifier) else model


def split_edges(model: xgb.XGBClassifier | xgb.Booster) -> list[tuple[int, np.float32]]:
    """Every distinct (feature index, float32 threshold) the model splits on."""
    raw = json.loads(bytes(_booster(model).save_raw("json")))
    trees = raw["learner"]["gradient_booster"]["model"]["trees"]
    edges: set[tuple[int, float]] = set()
    for tree in trees:
        for left, f, thr in zip(
            tree["left_children"], tree["split_indices"], tree["split_conditions"], strict=True
        ):
            if left != -1:
                edges.add((int(f), float(np.float32(thr))))
    return [(f, np.float32(t)) for f, t in sorted(edges)]


def _edge_rows(
    base: npt.NDArray[np.float32], edges: list[tuple[int, np.float32]]
) -> npt.NDArray[np.float32]:
    rows = np.empty((3 * len(edges), base.shape[1]), dtype=np.float32)
    for k, (f, thr) in enumerate(edges):
        for j, v in enumerate(
            (thr, np.nextafter(thr, np.float32(-np.inf)), np.nextafter(thr, np.float32(np.inf)))
        ):
            rows[3 * k + j] = base[(3 * k + j) % base.shape[0]]
            rows[3 * k + j, f] = v
    return rows


class _Tally:
    """Accumulates differences and flips over the compared cases."""

    def __init__(self, names: Sequence[str], thresholds: npt.NDArray[np.float64]) -> None:
        self.ts = thresholds
        self.by_case: dict[str, float] = {}
        self.by_feature: dict[str, float] = dict.fromkeys(names, 0.0)
        self.flips_by_t = {repr(float(t)): 0 for t in thresholds}
        self.failures: list[str] = []
        self.total = 0

    def compare(
        self, case: str, ours: npt.NDArray[Any], ref: npt.NDArray[Any], feature: str | None = None
    ) -> None:
        a = np.asarray(ours, dtype=np.float64)
        b = np.asarray(ref, dtype=np.float64)
        if a.shape != b.shape:
            self.failures.append(f"{case}: shape {a.shape} vs native {b.shape}")
            diff = float("inf")
        else:
            self.total += a.shape[0]
            bad = ~(np.isfinite(a) & np.isfinite(b))
            if bad.any():
                self.failures.append(f"{case}: {int(bad.sum())} non-finite scores")
                diff = float("inf")
            else:
                diff = float(np.max(np.abs(a - b), initial=0.0))
            for t in self.ts:
                self.flips_by_t[repr(float(t))] += int(np.sum((a >= t) != (b >= t)))
        self.by_case[case] = max(self.by_case.get(case, 0.0), diff)
        if feature is not None:
            self.by_feature[feature] = max(self.by_feature[feature], diff)


def _value_cases(
    X: npt.NDArray[Any], names: Sequence[str]
) -> Iterator[tuple[str, str | None, npt.NDArray[np.float64]]]:
    """Case name, feature changed (or None) and rows, for every special value (step 2)."""
    for vname, value in SPECIAL_VALUES.items():
        Z = np.full(X.shape, value, dtype=np.float64)
        yield f"{vname}:all", None, Z
        for j, fname in enumerate(names):
            Z = X.astype(np.float64)
            Z[:, j] = value
            yield f"{vname}:{fname}", fname, Z


def check_parity(
    model: xgb.XGBClassifier | xgb.Booster,
    onnx_bytes: bytes,
    X: npt.NDArray[Any],
    thresholds: Sequence[float],
    *,
    feature_names: Sequence[str] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    max_rows_per_case: int = 500,
    large_batch: int = 10_000,
    single_rows: int = 32,
    input_name: str = "features",
    output_name: str = "score",
) -> ParityReport:
    """Compare ONNX Runtime with native XGBoost on ``X`` and its variants (module docstring)."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0:
        msg = f"golden rows must be a non-empty 2-D array, got shape {X.shape}"
        raise ValueError(msg)
    n_features = X.shape[1]
    names = (
        list(feature_names) if feature_names is not None else [f"f{i}" for i in range(n_features)]
    )
    session = ScoringSession(
        onnx_bytes,
        version="parity",
        feature_names=names,
        input_name=input_name,
        output_name=output_name,
    )
    ts = np.asarray(sorted(float(t) for t in thresholds), dtype=np.float64)
    tally = _Tally(names, ts)

    def both(case: str, Z: npt.NDArray[Any], feature: str | None = None) -> None:
        tally.compare(case, session.predict(Z), native_proba(model, Z), feature)

    rows32 = np.ascontiguousarray(X, dtype=np.float32)
    both("rows", rows32)  # 1.
    for case, feature, Z in _value_cases(X[:max_rows_per_case], names):  # 2.
        both(case, Z, feature)
    edges = _edge_rows(rows32[:max_rows_per_case], split_edges(model))  # 3.
    if edges.shape[0]:
        both("split_edges", edges)
    empty = session.predict(np.empty((0, n_features), dtype=np.float32))  # 4.
    if empty.shape != (0,):
        tally.failures.append(f"batch 0: shape {empty.shape}, expected (0,)")
    k = min(single_rows, rows32.shape[0])
    singles = np.concatenate([session.predict(rows32[i : i + 1]) for i in range(k)])
    tally.compare("batch_1", singles, native_proba(model, rows32[:k]))
    big = np.tile(rows32, (-(-large_batch // rows32.shape[0]), 1))[:large_batch]
    both(f"batch_{large_batch}", big)
    both("float64", X.astype(np.float64))  # 5.

    worst = max(tally.by_case.values())
    flips = sum(tally.flips_by_t.values())
    if worst > tolerance:
        case = max(tally.by_case, key=lambda c: tally.by_case[c])
        tally.failures.append(f"max abs diff {worst:.3g} > {tolerance:.3g} (case {case})")
    if flips:
        tally.failures.append(f"{flips} decision flips at thresholds {list(ts)}")
    return ParityReport(
        tolerance=tolerance,
        thresholds=tuple(float(t) for t in ts),
        rows_compared=tally.total,
        max_abs_diff=worst,
        max_abs_diff_by_case=tally.by_case,
        max_abs_diff_by_feature=tally.by_feature,
        flips=flips,
        flips_by_threshold=tally.flips_by_t,
        failures=tuple(dict.fromkeys(tally.failures)),
    )
