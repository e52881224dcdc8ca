"""Shared plumbing of the Numba anomaly detectors: single/batch paths, scores, NaN policy, pickling.

The drift detectors' conventions (``_base``) carry over: the whole state is a
few numpy arrays, the math is one private kernel
``_update(xs, out, *state, *params)`` looping over its input, ``update(x)``
calls it with one element and ``update_many(xs)`` with the batch, so a batch
gives exactly what a loop of ``update`` gives. Here ``out`` is a float64 array
receiving the anomaly score of each element.

Every update scores the element against what was learned *before* it, then
learns it (river's progressive order: ``score_one`` then ``learn_one``).

State slots shared by every anomaly detector: ``_f[0]`` is the score of the
last accepted element, ``_i[0]`` its anomaly flag (detectors with a
``threshold``), ``_i[1]`` the count of skipped elements.

NaN/inf policy (identical in every anomaly detector): an element that is not
finite (a vector with any NaN or ±inf component) is neither scored nor
learned. The state is left untouched, the skip is counted in ``n_skipped``, its
output score is NaN (and its flag ``False``), and ``score`` /
``anomaly_detected`` keep describing the last accepted element. Scores on a
stream with non-finite elements are therefore those of the same stream with
those elements removed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from streamscore.libs.detectors._base import BoolArray, FloatArray, IntArray, as_stream

SCORE = 0  # _f slot
FLAG, SKIPPED = 0, 1  # _i slots


class AnomalyDetector:
    """Base of the Numba anomaly detectors: update paths, ``score``, ``n_skipped``, pickling.

    A subclass names its constructor arguments in ``_PARAMS`` (read-only
    attributes of the same name) and its numpy state arrays in ``_STATE``;
    ``_kernel()`` returns its private kernel ``kernel(xs, out, *state,
    *params)`` and ``_param_values()`` the parameters in the kernel's types.
    """

    _PARAMS: ClassVar[tuple[str, ...]] = ()
    _STATE: ClassVar[tuple[str, ...]] = ("_f", "_i")
    _STATE_VERSION: ClassVar[int] = 1

    _f: FloatArray
    _i: IntArray
    _batch: Callable[..., None]
    _x1: FloatArray
    _args: tuple[Any, ...]
    _one: tuple[Any, ...]

    def _kernel(self) -> Callable[..., None]:
        raise NotImplementedError

    def _param_values(self) -> tuple[Any, ...]:
        raise NotImplementedError

    @classmethod
    def warmup(cls) -> None:
        """Compile (or load from Numba's cache) this detector's kernel, both update paths."""
        raise NotImplementedError

    def _one_shape(self) -> tuple[int, ...]:
        """Shape of the buffer holding the single element of ``update``."""
        return (1,)

    def _bind(self) -> None:
        """Cache the kernel and its arguments (after construction, allocation and unpickling)."""
        args = tuple(getattr(self, name) for name in self._STATE) + self._param_values()
        x1 = np.zeros(self._one_shape(), dtype=np.float64)
        object.__setattr__(self, "_batch", self._kernel())
        object.__setattr__(self, "_args", args)
        object.__setattr__(self, "_x1", x1)
        object.__setattr__(self, "_one", (x1, np.zeros(1, dtype=np.float64), *args))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._PARAMS and name in self.__dict__:
            msg = f"{name!r} is a constructor argument: create a new {type(self).__name__}"
            raise AttributeError(msg)
        object.__setattr__(self, name, value)

    # -- read-only state ---------------------------------------------------------

    @property
    def score(self) -> float:
        """Anomaly score of the last accepted element (``0.0`` before any)."""
        return float(self._f[SCORE])

    @property
    def n_skipped(self) -> int:
        """How many non-finite elements were skipped."""
        return int(self._i[SKIPPED])

    # -- pickling ----------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {
            "version": self._STATE_VERSION,
            "params": {name: getattr(self, name) for name in self._PARAMS},
            "state": {name: getattr(self, name).copy() for name in self._STATE},
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("version") != self._STATE_VERSION:
            raise ValueError(f"unsupported {type(self).__name__} state version")
        for name, value in state["params"].items():
            object.__setattr__(self, name, value)
        for name, value in state["state"].items():
            object.__setattr__(self, name, np.array(value, copy=True))
        self._bind()

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._PARAMS)
        return f"{type(self).__name__}({args})"


class UnivariateAnomalyDetector(AnomalyDetector):
    """An anomaly detector of one sensor's values, with a ``threshold`` on ``|score|``."""

    threshold: float

    def update(self, x: float) -> None:
        """Score ``x`` against the past, then learn it (non-finite values are skipped)."""
        self._x1[0] = x
        self._batch(*self._one)

    def update_many(self, xs: npt.ArrayLike) -> FloatArray:
        """Update with every value of ``xs`` in order; return the score of each (NaN if skipped).

        ``out[j]`` is what ``score`` reads right after ``update(xs[j])`` in a loop.
        """
        arr = as_stream(xs)
        out = np.zeros(arr.shape[0], dtype=np.float64)
        if arr.shape[0]:
            self._batch(arr, out, *self._args)
        return out

    def update_many_with_flags(self, xs: npt.ArrayLike) -> tuple[FloatArray, BoolArray]:
        """Like ``update_many``, also returning ``anomaly_detected`` after each element.

        A flag is ``abs(score) > threshold``, ``False`` for skipped values.
        """
        scores = self.update_many(xs)
        flags: BoolArray = np.abs(scores) > self.threshold
        return scores, flags

    @property
    def anomaly_detected(self) -> bool:
        """Whether the last accepted value scored ``abs(score) > threshold``."""
        return bool(self._i[FLAG])


class VectorAnomalyDetector(AnomalyDetector):
    """An anomaly detector of feature vectors, in a fixed feature order.

    The number of features is taken from the first vector (as river builds
    its models on the first ``learn_one``); a vector of another length is
    refused with ``ValueError``. Until then the state arrays that depend on it
    are empty.
    """

    _row_shape: tuple[int] | None

    def _allocate(self, n_features: int) -> None:
        """Create the state arrays for ``n_features`` features (then ``_bind``)."""
        raise NotImplementedError

    @property
    def n_features(self) -> int:
        """Length of the vectors (``0`` until the first one)."""
        return int(self._i[2])

    def _one_shape(self) -> tuple[int, ...]:
        return (1, max(self.n_features, 1))

    def _bind(self) -> None:
        super()._bind()
        # The shape update() accepts without further checks (none before the first vector).
        object.__setattr__(self, "_row_shape", (self.n_features,) if self.n_features else None)

    def _check(self, n_features: int) -> None:
        if not self.n_features:
            if n_features < 1:
                raise ValueError("a feature vector needs at least one feature")
            self._allocate(n_features)
        elif n_features != self.n_features:
            msg = f"expected {self.n_features} features, got {n_features}"
            raise ValueError(msg)

    def update(self, x: npt.ArrayLike) -> None:
        """Score the vector ``x`` against the past, then learn it (skipped if not finite)."""
        row = np.asarray(x, dtype=np.float64)
        if row.shape != self._row_shape:
            if row.ndim != 1:
                raise ValueError(f"expected a 1-D feature vector, got shape {row.shape}")
            self._check(row.shape[0])
        self._x1[0] = row
        self._batch(*self._one)

    def update_many(self, xs: npt.ArrayLike) -> FloatArray:
        """Update with every row of ``xs`` (shape ``(n, n_features)``) in order; return the scores.

        ``out[j]`` is what ``score`` reads right after ``update(xs[j])`` in a
        loop, NaN for a skipped row.
        """
        arr = np.ascontiguousarray(xs, dtype=np.float64)
        if arr.ndim != 2:
            raise ValueError(f"expected a 2-D array (n, n_features), got shape {arr.shape}")
        out = np.zeros(arr.shape[0], dtype=np.float64)
        if arr.shape[0]:
            self._check(arr.shape[1])
            self._batch(arr, out, *self._args)
        return out
