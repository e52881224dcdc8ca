from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from streamscore.libs.features.definitions import hash_feature_names
from streamscore.libs.model.manifest import ModelManifest, feature_schema_hash

NAMES = tuple(f"feat_{i:02d}" for i in range(20))
DTYPES = ("float32",) * len(NAMES)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 8, tzinfo=UTC)


def _manifest(**over: object) -> ModelManifest:
    kwargs: dict[str, object] = {
        "model_name": "fraud",
        "model_version": "7",
        "stream": "transactions",
        "feature_names": NAMES,
        "feature_dtypes": DTYPES,
        "feature_schema_hash": feature_schema_hash(NAMES, DTYPES),
        "onnx_sha256": "0" * 64,
        "opset": {"ai.onnx": 15, "ai.onnx.ml": 1},
        "input_name": "features",
        "output_name": "score",
        "trained_from": T0,
        "trained_to": T1,
        "metrics": {"auc": 0.91},
        "thresholds": (0.5, 0.9),
        "parity": {"max_abs_diff": 5e-7, "flips": 0.0},
        "created_at": T1,
        "versions": {"xgboost": "3.2.0"},
    }
    kwargs.update(over)
    return ModelManifest(**kwargs)  # type: ignore[arg-type]


def test_json_round_trip() -> None:
    m = _manifest()
    assert ModelManifest.from_json(m.to_json()) == m


def test_schema_hash_is_order_sensitive_and_matches_the_feature_definitions() -> None:
    permuted = (NAMES[1], NAMES[0], *NAMES[2:])
    assert feature_schema_hash(NAMES, DTYPES) != feature_schema_hash(permuted, DTYPES)
    assert feature_schema_hash(NAMES, DTYPES) == hash_feature_names(NAMES)
    assert feature_schema_hash(["a"], ["float32"]) != feature_schema_hash(["a"], ["float64"])


@pytest.mark.parametrize(
    "over",
    [
        {"feature_schema_hash": "1" * 64},
        {"feature_dtypes": ("float64",) * len(NAMES)},
        {"feature_names": ("a", "a")},
        {"trained_from": T1, "trained_to": T0},
    ],
)
def test_inconsistent_manifest_is_invalid(over: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _manifest(**over)


def test_unknown_field_is_invalid() -> None:
    raw = msgspec.json.decode(_manifest().to_json())
    raw["surprise"] = 1
    with pytest.raises(msgspec.ValidationError):
        ModelManifest.from_json(msgspec.json.encode(raw))
