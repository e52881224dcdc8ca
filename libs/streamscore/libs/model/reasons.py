"""Top contributing features per row: tree contributions from native XGBoost.

``Booster.predict(DMatrix, pred_contribs=True)`` gives, per row, one
contribution per feature plus the bias (last column), in margin (log-odds)
units; they sum to the row's margin.

Two methods, both summing to the margin:

- ``"exact"`` (default): TreeSHAP, O(trees · leaves · depth²) per row. Costly:
  ~100-400 µs per row for 100-200 trees of depth 5 on one core, i.e. tens to
  hundreds of times a score (``streamscore bench model`` measures it);
- ``"approx"`` (``approx_contribs=True``, Saabas): each split on a row's path
  credits its feature with the change of the node's expected value,
  O(trees · depth) per row, ~50× cheaper; the fast equivalent for the online
  path when exact values do not fit the budget.

Either way a caller computes them for the rows that need them only, e.g. the
decisions that are not ``approve`` (:meth:`TreeReasons.top_reasons_for`), as
:func:`streamscore.libs.scoring.decide.decide` does.

A NaN feature contributes through its default branch like any other value.
The booster is copied and pinned to ``nthread`` threads (1 by default) so
reasons never compete with the scorer for cores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import xgboost as xgb

from streamscore.libs.model.manifest import BOOSTER_FILE, ModelManifest, sha256_bytes
from streamscore.libs.model.safety import ModelRefused


def load_booster(model_dir: str | Path, manifest: ModelManifest) -> xgb.Booster:
    """The native booster of a verified model folder, checked against ``booster_sha256``.

    Call it with the manifest :func:`~.load.load_verified` returned: the
    manifest is the trust anchor, so a ``model.ubj`` whose hash differs is
    refused (``booster_hash_mismatch``) like a tampered ONNX file.
    """
    if manifest.booster_sha256 is None:
        raise ModelRefused("booster_missing", "the manifest names no native booster")
    path = Path(model_dir) / BOOSTER_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelRefused("booster_missing", f"no {path}") from exc
    if sha256_bytes(data) != manifest.booster_sha256:
        raise ModelRefused("booster_hash_mismatch", f"{path} does not match the manifest")
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    if booster.num_features() != len(manifest.feature_names):
        detail = (
            f"booster has {booster.num_features()} features, manifest {len(manifest.feature_names)}"
        )
        raise ModelRefused("signature_mismatch", detail)
    return booster


class TreeReasons:
    """Reasons from a native booster; satisfies ``scoring.decide.Explainer``."""

    def __init__(
        self,
        model: xgb.XGBClassifier | xgb.Booster,
        feature_names: Sequence[str],
        *,
        method: Literal["exact", "approx"] = "exact",
        nthread: int = 1,
    ) -> None:
        booster = model.get_booster() if isinstance(model, xgb.XGBClassifier) else model
        if method not in ("exact", "approx"):
            msg = f"method must be 'exact' or 'approx', not {method!r}"
            raise ValueError(msg)
        self._approx = method == "approx"
        self._nthread = nthread
        self._booster = booster.copy()
        self._booster.set_param({"nthread": nthread})
        self._names = tuple(feature_names)
        best = (
            getattr(model, "best_iteration", None)
            if isinstance(model, xgb.XGBClassifier)
            else booster.attr("best_iteration")
        )
        self._range = (0, int(best) + 1) if best is not None else (0, 0)
        if booster.num_features() != len(self._names):
            msg = f"booster has {booster.num_features()} features, {len(self._names)} names given"
            raise ValueError(msg)

    @property
    def feature_names(self) -> Sequence[str]:
        return self._names

    def contributions(self, X: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """``(n, n_features + 1)``: per-feature contributions, then the bias (margin units)."""
        arr = np.ascontiguousarray(X, dtype=np.float32)
        if arr.shape[0] == 0:
            return np.empty((0, len(self._names) + 1), dtype=np.float32)
        dm = xgb.DMatrix(arr, missing=np.nan, nthread=self._nthread)
        out: Any = self._booster.predict(
            dm, pred_contribs=True, approx_contribs=self._approx, iteration_range=self._range
        )
        return np.asarray(out, dtype=np.float32)

    def margin(self, X: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """The raw margin (log-odds) the contributions sum to."""
        arr = np.ascontiguousarray(X, dtype=np.float32)
        out: Any = self._booster.inplace_predict(
            arr, predict_type="margin", iteration_range=self._range
        )
        return np.asarray(out, dtype=np.float32)

    def top_reasons(self, X: npt.ArrayLike, k: int) -> list[list[tuple[str, float]]]:
        """Per row, the ``k`` features with the largest absolute contribution, largest first."""
        contrib = self.contributions(X)[:, :-1]
        k = max(0, min(k, contrib.shape[1]))
        if k == 0:
            return [[] for _ in range(contrib.shape[0])]
        # stable tie-break on feature order: sort by (-|c|, index)
        order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
        return [
            [(self._names[j], float(row[j])) for j in idx]
            for row, idx in zip(contrib, order, strict=True)
        ]

    def top_reasons_for(
        self, X: npt.ArrayLike, rows: npt.ArrayLike, k: int
    ) -> dict[int, list[tuple[str, float]]]:
        """Reasons for the selected ``rows`` only (indices or a boolean mask), keyed by index."""
        arr = np.asarray(X)
        sel = np.asarray(rows)
        idx = np.flatnonzero(sel) if sel.dtype == np.bool_ else sel.astype(np.int64).ravel()
        reasons = self.top_reasons(arr[idx], k)
        return {int(i): r for i, r in zip(idx, reasons, strict=True)}
