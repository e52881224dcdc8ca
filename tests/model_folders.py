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


def blocking(out: Path, version: str) -> Path:
    """A real model (XGBoost → ONNX through the parity gate) that scores every row near 1:
    the transaction policy blocks everything it decides. A deliberately bad challenger."""
    from datetime import UTC, datetime

    import numpy as np
    import xgboost as xgb

    from streamscore.libs.features.definitions import model_features
    from streamscore.libs.model.export import export_model
    from streamscore.libs.model.synthetic import synthetic_rows

    rng = np.random.default_rng(0)
    X = synthetic_rows(rng, 2000)
    y = np.ones(len(X), dtype=int)
    y[:5] = 0  # two classes for the classifier; the base rate makes every score ~0.997
    model = xgb.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1, random_state=0)
    model.fit(X, y)
    names = model_features("transactions")
    export_model(
        model,
        out,
        model_name="tx-blocks-all",
        model_version=version,
        stream="transactions",
        feature_names=names,
        trained_from=datetime(2026, 1, 1, tzinfo=UTC),
        trained_to=datetime(2026, 2, 1, tzinfo=UTC),
        golden=X[:500],
        thresholds=default_policy("transactions").thresholds,
    )
    return out
