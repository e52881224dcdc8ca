"""The model manifest: what a model expects as input and proof of which file it is.

A manifest travels beside ``model.onnx`` as ``manifest.json``. The serving side
trusts a model only through it (see :mod:`streamscore.libs.model.load`): the
feature schema hash must equal the live one (FAULTS.md M5), the file hash must
equal the bytes on disk (M7).

The feature schema hash is SHA-256 over one ``name:dtype`` line per feature, in
model order, so it equals
:func:`streamscore.libs.features.definitions.hash_feature_names` for float32
features:

>>> feature_schema_hash(["amount", "count_1d"], ["float32", "float32"])[:12]
'957404d70d55'
>>> feature_schema_hash(["count_1d", "amount"], ["float32", "float32"])[:12]
'e80673ed1577'
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import msgspec

MANIFEST_FILE = "manifest.json"
ONNX_FILE = "model.onnx"
BOOSTER_FILE = "model.ubj"
FEATURE_DTYPES = ("float32",)


def feature_schema_hash(names: Sequence[str], dtypes: Sequence[str]) -> str:
    """SHA-256 (hex) of the ordered ``name:dtype`` lines: order, names and dtypes all count."""
    if len(names) != len(dtypes):
        msg = f"{len(names)} feature names but {len(dtypes)} dtypes"
        raise ValueError(msg)
    lines = "\n".join(f"{n}:{d}" for n, d in zip(names, dtypes, strict=True))
    return hashlib.sha256(lines.encode()).hexdigest()


def sha256_bytes(data: bytes) -> str:
    """SHA-256 (hex) of some bytes (the ONNX file)."""
    return hashlib.sha256(data).hexdigest()


class ModelManifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Everything the serving side checks before trusting ``model.onnx``.

    ``thresholds`` are the live decision thresholds the parity gate counted
    flips at; ``parity`` is the gate's summary (max abs diff, flips, tolerance).
    ``opset`` maps each ONNX domain to its version; ``versions`` the libraries
    that trained, converted and checked the model (xgboost, onnxmltools,
    onnxruntime, onnx). ``booster_sha256`` is the hash of the native XGBoost
    model (``model.ubj``) kept beside the ONNX file for reasons only.
    """

    model_name: str
    model_version: str
    stream: str
    feature_names: tuple[str, ...]
    feature_dtypes: tuple[str, ...]
    feature_schema_hash: str
    onnx_sha256: str
    opset: dict[str, int]
    input_name: str
    output_name: str
    trained_from: datetime
    trained_to: datetime
    metrics: dict[str, float]
    thresholds: tuple[float, ...]
    parity: dict[str, float]
    created_at: datetime
    versions: dict[str, str]
    params: dict[str, float | int | str] = msgspec.field(default_factory=dict)
    booster_sha256: str | None = None

    def __post_init__(self) -> None:
        if len(self.feature_names) != len(self.feature_dtypes):
            msg = "feature_names and feature_dtypes differ in length"
            raise ValueError(msg)
        bad = sorted(set(self.feature_dtypes) - set(FEATURE_DTYPES))
        if bad:
            msg = f"unsupported feature dtypes {bad}; supported: {list(FEATURE_DTYPES)}"
            raise ValueError(msg)
        if len(set(self.feature_names)) != len(self.feature_names):
            msg = "duplicate feature names"
            raise ValueError(msg)
        own = feature_schema_hash(self.feature_names, self.feature_dtypes)
        if own != self.feature_schema_hash:
            msg = "feature_schema_hash does not match feature_names and feature_dtypes"
            raise ValueError(msg)
        if self.trained_from > self.trained_to:
            msg = "trained_from is after trained_to"
            raise ValueError(msg)

    def to_json(self) -> bytes:
        """Canonical JSON (keys in field order, indented for review in a diff)."""
        return msgspec.json.format(msgspec.json.encode(self), indent=2)

    @classmethod
    def from_json(cls, data: bytes | str) -> ModelManifest:
        """Decode and validate (types, unknown fields, internal consistency)."""
        return msgspec.json.decode(data, type=cls)
