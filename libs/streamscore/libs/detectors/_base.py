"""Shared plumbing of the Numba drift detectors: kernel decorator, flags, NaN policy, pickling.

Every detector keeps its whole state in a few numpy arrays. Its math is one
private Numba kernel, ``_update(xs, out, *state, *params)``, a loop over a
float64 array: ``update(x)`` calls it with a length-1 array and
``update_many(xs)`` with the whole batch, so there is one implementation of the
math and a batch gives exactly what a loop of ``update`` gives.

(A scalar ``_step(x, ...)`` kernel called by the loop was tried, inlined or
not: PageHinkley's batch went from 5.5 to 24 ns per value, so the single-value
path pays for a length-1 array instead.)

The kernel writes one ``uint8`` code per element into ``out``: bit ``DRIFT`` is
set where a drift was detected at that element, bit ``WARNING`` where a warning
zone was signalled.

NaN/inf policy (identical in every detector): a non-finite input (NaN, +inf,
-inf) is skipped. The state is left untouched, the skip is counted in
``n_skipped``, its output flags are all clear, and ``drift_detected`` /
``warning_detected`` keep describing the last accepted element. Detections on a
stream with non-finite values are therefore those of the same stream with the
non-finite values removed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

F = TypeVar("F", bound=Callable[..., Any])

DRIFT = 1
WARNING = 2

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
CodeArray = npt.NDArray[np.uint8]


def kernel(func: F) -> F:
    """Compile ``func`` as a private detector kernel: ``njit(cache=True)``, never ``fastmath``.

    Kernels test ``math.isfinite(x)`` for the NaN/inf policy, which ``fastmath``
    (``nnan``/``ninf``) would compile away (FAULTS.md D2). ``inline="always"``
    inlines helper kernels into the kernel calling them (Numba does not inline
    across separately compiled functions otherwise; ADWIN's batch loop runs
    about 2x faster for it).

    Numba's cache is keyed on the kernel's own source file: after changing this
    decorator, delete the ``*.nbi``/``*.nbc`` files under
    ``detectors/__pycache__``.
    """
    return cast(F, numba.njit(cache=True, fastmath=False, inline="always")(func))


def as_stream(xs: npt.ArrayLike) -> FloatArray:
    """A 1-D contiguous float64 view (or copy) of ``xs``."""
    arr = np.ascontiguousarray(xs, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D array, got shape {arr.shape}")
    return arr


class Detector:
    """Base of the Numba detectors: the single/batch update paths, flags and pickling.

    A subclass names its constructor arguments in ``_PARAMS`` (stored as
    read-only attributes of the same name) and its numpy state arrays in
    ``_STATE``; ``_kernel()`` returns its private kernel
    ``kernel(xs, out, *state, *params)`` and ``_param_values()`` the parameters
    in the kernel's types (so every call hits the one compiled signature).
    Slot ``0`` of the int64 state array ``_i`` is the drift flag, slot ``1``
    the warning flag and slot ``2`` the count of skipped non-finite inputs, in
    every detector.
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

    def _bind(self) -> None:
        """Cache the kernel and its arguments (after construction and unpickling)."""
        args = tuple(getattr(self, name) for name in self._STATE) + self._param_values()
        x1 = np.zeros(1, dtype=np.float64)
        object.__setattr__(self, "_batch", self._kernel())
        object.__setattr__(self, "_args", args)
        object.__setattr__(self, "_x1", x1)
        object.__setattr__(self, "_one", (x1, np.zeros(1, dtype=np.uint8), *args))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._PARAMS and name in self.__dict__:
            msg = f"{name!r} is a constructor argument: create a new {type(self).__name__}"
            raise AttributeError(msg)
        object.__setattr__(self, name, value)

    # -- updates -----------------------------------------------------------------

    def update(self, x: float) -> None:
        """Update the detector with one value (non-finite values are skipped).

        One Numba call: about 0.5 µs whatever the detector, so a per-event
        caller is roughly at river's speed; micro-batches through
        ``update_many`` are where the 20x is.
        """
        self._x1[0] = x
        self._batch(*self._one)

    def _codes(self, xs: npt.ArrayLike) -> CodeArray:
        arr = as_stream(xs)
        out = np.zeros(arr.shape[0], dtype=np.uint8)
        if arr.shape[0]:
            self._batch(arr, out, *self._args)
        return out

    def update_many(self, xs: npt.ArrayLike) -> BoolArray:
        """Update with every value of ``xs`` in order; return the drift flag of each element.

        ``out[j]`` is ``True`` exactly where ``drift_detected`` would have been
        ``True`` right after ``update(xs[j])`` in a loop (and ``False`` for
        skipped non-finite values). Detection indices: ``np.flatnonzero(out)``.
        """
        flags: BoolArray = (self._codes(xs) & DRIFT) != 0
        return flags

    # -- read-only state ---------------------------------------------------------

    @property
    def drift_detected(self) -> bool:
        """Whether a drift was detected at the last accepted element."""
        return bool(self._i[0])

    @property
    def n_skipped(self) -> int:
        """How many non-finite inputs were skipped (never reset by a drift)."""
        return int(self._i[2])

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


class WarningDetector(Detector):
    """A detector that also signals a warning zone (river's ``DriftAndWarningDetector``)."""

    @property
    def warning_detected(self) -> bool:
        """Whether the last accepted element was in the warning zone."""
        return bool(self._i[1])

    def update_many_with_warnings(self, xs: npt.ArrayLike) -> tuple[BoolArray, BoolArray]:
        """Like ``update_many``, also returning the per-element warning flags."""
        codes = self._codes(xs)
        drift: BoolArray = (codes & DRIFT) != 0
        warning: BoolArray = (codes & WARNING) != 0
        return drift, warning
