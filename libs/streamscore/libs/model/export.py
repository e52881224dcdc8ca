"""XGBoost → ONNX, gated by parity, written as a model folder.

:func:`to_onnx` converts a binary ``xgboost.XGBClassifier`` with onnxmltools
(``TreeEnsembleClassifier``, ``ai.onnx.ml``) and keeps a single output: a
``Gather`` of the positive-class column, float32 ``[N]`` named ``score``. The
input is float32 ``[N, n_features]`` named ``features``.

Converter pitfalls, refused or covered (FAULTS.md M11; tests pin each):

- ``base_score``: XGBoost ≥ 3.1 stores a vector intercept estimated from the
  labels (``[5.96E-2]`` on a fraud-like set); onnxmltools 1.16 reads it and
  converts it to a margin (onnxmltools #733/#736, onnxruntime #11892 was the
  old form of this bug). Tested with the estimated and an explicit value.
- early stopping: onnxmltools keeps ``best_iteration + 1`` trees, as
  ``predict_proba`` does; tested.
- objectives: only ``binary:logistic`` (logistic transform in the ensemble);
  anything else (``binary:logitraw``, ``binary:hinge``, multi-class) is refused
  here rather than converted to something subtly different.
- missing values: the model must use NaN as missing (onnxmltools refuses
  others); categorical splits are refused (onnxmltools #736 does not convert them).

:func:`export_model` runs :func:`~.parity.check_parity` and writes
``model.onnx``, ``model.ubj`` (the native booster, for reasons only),
``manifest.json`` and ``parity.json`` only if the gate passes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxmltools
import onnxruntime as ort
import xgboost as xgb
from onnx import TensorProto, helper
from onnxmltools.convert.common.data_types import FloatTensorType

from streamscore.libs.model.manifest import (
    BOOSTER_FILE,
    MANIFEST_FILE,
    ONNX_FILE,
    ModelManifest,
    feature_schema_hash,
    sha256_bytes,
)
from streamscore.libs.model.parity import ParityReport, check_parity

PARITY_FILE = "parity.json"
CONVERTER_OPSET = 15  # the highest onnxmltools 1.16 supports


class ExportError(ValueError):
    """The model cannot be exported faithfully (objective, missing value, categorical)."""


class ParityFailed(Exception):  # noqa: N818 (the gate's verdict)
    """The parity gate failed; nothing was written. ``report`` says why."""

    def __init__(self, report: ParityReport) -> None:
        super().__init__("parity gate failed: " + "; ".join(report.failures))
        self.report = report


def check_convertible(model: xgb.XGBClassifier) -> None:
    """Refuse models the converter would get wrong (see the module docstring)."""
    objective = model.get_xgb_params().get("objective")
    if objective != "binary:logistic":
        raise ExportError(f"objective {objective!r}; only 'binary:logistic' is exported")
    missing = model.get_params().get("missing", np.nan)
    if missing is not None and not np.isnan(missing):
        raise ExportError(f"missing={missing!r}; only NaN as missing is exported")
    if getattr(model, "n_classes_", 2) != 2:
        raise ExportError(f"{model.n_classes_} classes; only binary models are exported")
    types = model.get_booster().feature_types
    if types is not None and any(t == "c" for t in types):
        raise ExportError("categorical features are not exported (onnxmltools #736)")


def to_onnx(
    model: xgb.XGBClassifier,
    n_features: int,
    *,
    input_name: str = "features",
    output_name: str = "score",
) -> bytes:
    """ONNX bytes: float32 ``[N, n_features]`` in, float32 ``[N]`` P(class 1) out."""
    check_convertible(model)
    if model.n_features_in_ != n_features:
        raise ExportError(f"model has {model.n_features_in_} features, not {n_features}")
    onx = onnxmltools.convert_xgboost(
        model,
        initial_types=[(input_name, FloatTensorType([None, n_features]))],
        target_opset=CONVERTER_OPSET,
    )
    graph = onx.graph
    probs = next(o.name for o in graph.output if o.type.tensor_type.elem_type == TensorProto.FLOAT)
    graph.initializer.append(helper.make_tensor("positive_class", TensorProto.INT64, [], [1]))
    graph.node.append(
        helper.make_node("Gather", [probs, "positive_class"], [output_name], axis=1, name="p1")
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [None]))
    if not any(op.domain in ("", "ai.onnx") for op in onx.opset_import):
        onx.opset_import.append(helper.make_opsetid("", CONVERTER_OPSET))
    onx.producer_name = "streamscore"
    onnx.checker.check_model(onx)
    data: bytes = onx.SerializeToString()
    return data


def library_versions() -> dict[str, str]:
    """Versions of the libraries that matter to parity (FAULTS.md M11)."""
    return {
        "xgboost": str(xgb.__version__),
        "onnxmltools": str(onnxmltools.__version__),
        "onnxruntime": str(ort.__version__),
        "onnx": str(onnx.__version__),
    }


def _opsets(onnx_bytes: bytes) -> dict[str, int]:
    proto = onnx.load_from_string(onnx_bytes)
    return {op.domain or "ai.onnx": int(op.version) for op in proto.opset_import}


def _params(model: xgb.XGBClassifier) -> dict[str, float | int | str]:
    booster = model.get_booster()
    config = json.loads(booster.save_config())
    learner = config["learner"]
    return {
        "n_trees": int(booster.num_boosted_rounds()),
        "max_depth": int(model.get_xgb_params().get("max_depth") or 6),
        "objective": str(learner["objective"]["name"]),
        "base_score": str(learner["learner_model_param"]["base_score"]),
        "best_iteration": int(getattr(model, "best_iteration", -1)),  # -1: no early stopping
    }


def write_model_dir(
    out_dir: str | Path,
    onnx_bytes: bytes,
    manifest: ModelManifest,
    booster_bytes: bytes | None = None,
) -> Path:
    """Write ``model.onnx`` (and ``model.ubj``), then ``manifest.json`` last.

    Each file goes through a temporary file and a rename; the manifest comes
    last, so a reader never sees a manifest whose files are not there yet.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [(ONNX_FILE, onnx_bytes)]
    if booster_bytes is not None:
        files.append((BOOSTER_FILE, booster_bytes))
    files.append((MANIFEST_FILE, manifest.to_json()))
    for name, data in files:
        tmp = out / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, out / name)
    return out


def export_model(
    model: xgb.XGBClassifier,
    out_dir: str | Path,
    *,
    model_name: str,
    model_version: str,
    stream: str,
    feature_names: Sequence[str],
    trained_from: datetime,
    trained_to: datetime,
    golden: npt.NDArray[Any],
    thresholds: Sequence[float],
    metrics: Mapping[str, float] | None = None,
    tolerance: float | None = None,
    created_at: datetime | None = None,
) -> tuple[ModelManifest, ParityReport]:
    """Convert, gate on ``golden`` rows at the live ``thresholds``, write the folder.

    Raises :class:`ParityFailed` (nothing written) when the gate fails.
    """
    names = tuple(feature_names)
    onnx_bytes = to_onnx(model, len(names))
    kwargs: dict[str, Any] = {} if tolerance is None else {"tolerance": tolerance}
    report = check_parity(model, onnx_bytes, golden, thresholds, feature_names=names, **kwargs)
    if not report.passed:
        raise ParityFailed(report)
    dtypes = ("float32",) * len(names)
    booster_bytes = bytes(model.get_booster().save_raw("ubj"))
    manifest = ModelManifest(
        model_name=model_name,
        model_version=model_version,
        stream=stream,
        feature_names=names,
        feature_dtypes=dtypes,
        feature_schema_hash=feature_schema_hash(names, dtypes),
        onnx_sha256=sha256_bytes(onnx_bytes),
        opset=_opsets(onnx_bytes),
        input_name="features",
        output_name="score",
        trained_from=trained_from,
        trained_to=trained_to,
        metrics=dict(metrics or {}),
        thresholds=tuple(float(t) for t in thresholds),
        parity=report.summary(),
        created_at=created_at or datetime.now(UTC),
        versions=library_versions(),
        params=_params(model),
        booster_sha256=sha256_bytes(booster_bytes),
    )
    out = write_model_dir(out_dir, onnx_bytes, manifest, booster_bytes)
    (out / PARITY_FILE).write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    return manifest, report
