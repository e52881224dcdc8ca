"""Load a model folder for serving: :func:`open_model` (verified manifest, ONNX session, reasons).

Every path that serves a model goes through here: the scorer at start
(``--model``), the model store when a version is promoted or rolled back to,
and the scorer when it adopts the store's active version between batches.
"""

from __future__ import annotations

from pathlib import Path

from streamscore.libs.features.definitions import feature_schema_hash
from streamscore.libs.model.load import load_verified
from streamscore.libs.model.manifest import ModelManifest
from streamscore.libs.model.reasons import TreeReasons, load_booster
from streamscore.libs.model.safety import ModelRefused
from streamscore.libs.model.session import ScoringSession

__all__ = ["ModelRefused", "open_model"]


def open_model(
    model_dir: str | Path, stream: str
) -> tuple[ModelManifest, ScoringSession, TreeReasons]:
    """The manifest, session and reasons of a verified model folder, or :class:`ModelRefused`.

    1. :func:`~streamscore.libs.model.load.load_verified`: the manifest must name the
       live feature schema of ``stream``, ``model.onnx`` must hash to the manifest's
       value and pass the ONNX safety and signature checks.
    2. The onnxruntime session is built from the verified bytes only.
    3. The native booster for reasons must hash to the manifest's ``booster_sha256``.
       Reasons use the approximate (Saabas) contributions, which sum to the margin at
       a fraction of exact TreeSHAP's cost, and only for decisions that are not approvals.
    4. Any other failure (an unreadable file, onnxruntime or XGBoost rejecting what
       passed the checks) is a refusal too, ``load_error``: whoever asked keeps the
       model it has, and counts the refusal by reason.
    """
    model_dir = Path(model_dir)
    try:
        manifest, onnx_bytes = load_verified(model_dir, feature_schema_hash(stream))  # 1.
        session = ScoringSession.from_verified(manifest, onnx_bytes)  # 2.
        reasons = TreeReasons(  # 3.
            load_booster(model_dir, manifest), manifest.feature_names, method="approx"
        )
    except ModelRefused:
        raise
    except Exception as exc:  # 4. onnxruntime's errors derive from Exception only
        raise ModelRefused("load_error", f"{model_dir}: {type(exc).__name__}: {exc}") from exc
    return manifest, session, reasons
