"""Real model folders for the model-administration tests: trained, tampered, mismatched."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec

from streamscore.libs.model.manifest import MANIFEST_FILE, ONNX_FILE, ModelManifest
from streamscore.libs.model.manifest import feature_schema_hash as manifest_schema_hash
from streamscore.libs.model.synthetic import train_synthetic_model
from streamscore.services.scorer import default_policy


def trained(out: Path, version: str, *, seed: int = 0) -> Path:
    """A small real transaction model (XGBoost → ONNX behind the parity gate) at ``out``."""
    train_synthetic_model(
        out,
        name="tx-admin",
        version=version,
        thresholds=default_policy("transactions").thresholds,
        trees=20,
        rows=4000,
        seed=seed,
    )
    return out


def _manifest(folder: Path) -> ModelManifest:
    return ModelManifest.from_json((folder / MANIFEST_FILE).read_bytes())


def _rewrite(folder: Path, manifest: ModelManifest) -> None:
    (folder / MANIFEST_FILE).write_bytes(manifest.to_json())


def copied(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def tamper(folder: Path) -> Path:
    """Flip one byte in the middle of ``model.onnx`` (the manifest's hash no longer matches)."""
    raw = bytearray((folder / ONNX_FILE).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (folder / ONNX_FILE).write_bytes(bytes(raw))
    return folder


def schema_mismatch(src: Path, dst: Path) -> Path:
    """A copy whose manifest (internally valid) names the features in reverse order."""
    copied(src, dst)
    m = _manifest(dst)
    names = tuple(reversed(m.feature_names))
    _rewrite(
        dst,
        msgspec.structs.replace(
            m,
            feature_names=names,
            feature_schema_hash=manifest_schema_hash(names, m.feature_dtypes),
        ),
    )
    return dst


def renamed(src: Path, dst: Path, version: str) -> Path:
    """A copy of the same model under another version (same ONNX bytes and hash)."""
    copied(src, dst)
    _rewrite(dst, msgspec.structs.replace(_manifest(dst), model_version=version))
    return dst


def version_of(folder: Path) -> str:
    return _manifest(folder).model_version
