"""One onnxruntime session per model version: :class:`ScoringSession`.

Session options are set deliberately, not inherited (DESIGN.md §5 budgets are
per process on a 2-core machine shared with Kafka and Redis):

- one intra-op and one inter-op thread, sequential execution: a micro-batch of
  tens of rows is too small to gain from threads, and extra threads would
  compete with the consumer loop;
- no spinning (``session.intra_op.allow_spinning=0``): idle threads must not
  burn a core between batches;
- ``ORT_ENABLE_ALL`` graph optimisation (done once, at construction);
- CPU execution provider only.

Input handling: any real-number array of shape ``(n, n_features)`` is cast to
float32 C-contiguous (float64 values beyond float32 become ±inf, exactly as
native XGBoost casts them; see :mod:`.parity`). A batch of 0 rows returns an
empty result without calling onnxruntime. Wrong shapes or non-numeric dtypes
raise :class:`InputError` (a ``ValueError``) naming what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from streamscore.libs.model.manifest import ModelManifest


class InputError(ValueError):
    """The input array cannot be scored by this model (shape or dtype)."""


def session_options() -> ort.SessionOptions:
    """The options every scoring session uses (see the module docstring)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


class ScoringSession:
    """Probabilities of the positive class from verified ONNX bytes.

    Build it from :func:`~.load.load_verified`'s result with :meth:`from_verified`;
    it satisfies :class:`streamscore.libs.scoring.decide.ScoreModel`.
    """

    def __init__(
        self,
        onnx_bytes: bytes,
        *,
        version: str,
        feature_names: Sequence[str],
        input_name: str = "features",
        output_name: str = "score",
    ) -> None:
        self._version = version
        self._feature_names = tuple(feature_names)
        self._input_name = input_name
        self._output_names = [output_name]
        self._session = ort.InferenceSession(
            onnx_bytes, sess_options=session_options(), providers=["CPUExecutionProvider"]
        )

    @classmethod
    def from_verified(cls, manifest: ModelManifest, onnx_bytes: bytes) -> ScoringSession:
        """A session for a model that passed :func:`~.load.load_verified`."""
        return cls(
            onnx_bytes,
            version=manifest.model_version,
            feature_names=manifest.feature_names,
            input_name=manifest.input_name,
            output_name=manifest.output_name,
        )

    @property
    def version(self) -> str:
        return self._version

    @property
    def feature_names(self) -> Sequence[str]:
        return self._feature_names

    def prepare(self, X: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """``X`` as a float32 C-contiguous ``(n, n_features)`` array, or :class:`InputError`."""
        arr = np.asarray(X)
        if arr.dtype.kind not in "fiu":
            msg = f"features must be real numbers, got dtype {arr.dtype}"
            raise InputError(msg)
        n_features = len(self._feature_names)
        if arr.ndim != 2 or arr.shape[1] != n_features:
            msg = f"features must have shape (n, {n_features}), got {arr.shape}"
            raise InputError(msg)
        if arr.dtype != np.float32 or not arr.flags.c_contiguous:
            with np.errstate(over="ignore"):  # float64 beyond float32 → ±inf, as XGBoost
                arr = np.ascontiguousarray(arr, dtype=np.float32)
        return arr

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Shape ``(n,)`` float32 probabilities of the positive class."""
        arr = self.prepare(X)
        if arr.shape[0] == 0:
            return np.empty(0, dtype=np.float32)
        out: Any = self._session.run(self._output_names, {self._input_name: arr})[0]
        return np.asarray(out, dtype=np.float32).reshape(arr.shape[0])
