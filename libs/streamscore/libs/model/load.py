"""Read a model folder only if every check passes: :func:`load_verified`.

Order of the checks (cheap and decisive first; the ONNX bytes are parsed only
once they are known to be the ones the manifest describes):

1. ``manifest.json`` exists and decodes into a valid :class:`ModelManifest`
   (its own feature schema hash matches its feature names and dtypes);
2. its feature schema hash equals the live one (FAULTS.md M5: a permuted or
   renamed feature list is refused, never silently re-mapped);
3. ``model.onnx`` exists and is not larger than the cap (read nothing huge);
4. the SHA-256 of its bytes equals the manifest's (M7: a flipped byte is refused);
5. the ONNX safety checks of :mod:`.safety` (M8);
6. its signature is what the manifest says: one float32 input named
   ``input_name`` with ``len(feature_names)`` columns, an output ``output_name``.

Any failure raises :class:`~.safety.ModelRefused`; the caller keeps serving
the previous model and counts the refusal by ``reason``.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
from onnx import ModelProto, TensorProto

from streamscore.libs.model.manifest import MANIFEST_FILE, ONNX_FILE, ModelManifest, sha256_bytes
from streamscore.libs.model.safety import ModelRefused, SafetyLimits, parse_checked

__all__ = ["ModelRefused", "check_signature", "load_verified"]


def _read_manifest(model_dir: Path) -> ModelManifest:
    path = model_dir / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelRefused("manifest_missing", f"no {path}") from exc
    try:
        return ModelManifest.from_json(raw)
    except (msgspec.DecodeError, ValueError) as exc:
        raise ModelRefused("manifest_invalid", f"{path}: {exc}") from exc


def check_signature(model: ModelProto, manifest: ModelManifest) -> None:
    """Refuse a model whose input or output is not what the manifest says."""
    inputs = list(model.graph.input)
    init_names = {t.name for t in model.graph.initializer}
    inputs = [i for i in inputs if i.name not in init_names]
    if len(inputs) != 1 or inputs[0].name != manifest.input_name:
        names = [i.name for i in inputs]
        detail = f"inputs {names}, manifest says [{manifest.input_name!r}]"
        raise ModelRefused("signature_mismatch", detail)
    tensor = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    n = len(manifest.feature_names)
    if tensor.elem_type != TensorProto.FLOAT or len(dims) != 2 or dims[1] != n:
        detail = f"input {manifest.input_name!r} is type {tensor.elem_type} dims {dims}"
        raise ModelRefused("signature_mismatch", f"{detail}; expected float32 [N, {n}]")
    outputs = [o.name for o in model.graph.output]
    if manifest.output_name not in outputs:
        detail = f"outputs {outputs} lack {manifest.output_name!r}"
        raise ModelRefused("signature_mismatch", detail)


def load_verified(
    model_dir: str | Path,
    expected_feature_schema_hash: str,
    limits: SafetyLimits | None = None,
) -> tuple[ModelManifest, bytes]:
    """The manifest and ONNX bytes of ``model_dir``, or :class:`ModelRefused` (see above)."""
    limits = limits or SafetyLimits()
    model_dir = Path(model_dir)
    manifest = _read_manifest(model_dir)  # 1.
    if manifest.feature_schema_hash != expected_feature_schema_hash:  # 2.
        detail = (
            f"model {manifest.model_name}:{manifest.model_version} expects feature schema "
            f"{manifest.feature_schema_hash[:12]}, live schema is "
            f"{expected_feature_schema_hash[:12]}"
        )
        raise ModelRefused("schema_mismatch", detail)
    onnx_path = model_dir / ONNX_FILE
    try:  # 3.
        size = onnx_path.stat().st_size
    except FileNotFoundError as exc:
        raise ModelRefused("model_missing", f"no {onnx_path}") from exc
    if size > limits.max_model_bytes:
        raise ModelRefused("model_too_large", f"{size} bytes > {limits.max_model_bytes}")
    data = onnx_path.read_bytes()
    digest = sha256_bytes(data)  # 4.
    if digest != manifest.onnx_sha256:
        detail = f"sha256 {digest[:12]} of {onnx_path}, manifest says {manifest.onnx_sha256[:12]}"
        raise ModelRefused("hash_mismatch", detail)
    model = parse_checked(data, limits)  # 5.
    check_signature(model, manifest)  # 6.
    return manifest, data
