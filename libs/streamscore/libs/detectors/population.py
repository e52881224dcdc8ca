"""Windowed population tests (PSI, KS, Cramér-von Mises): reference, window, calibrated limit.

Shared machinery of ``PSIDrift``, ``KSDrift`` and ``CvMDrift``; each of them
adds its statistic and a kernel ``_update`` built from the steps here.

The procedure, in accepted (finite) values:

1. Reference: the first ``reference_size`` values (or the ``reference`` given
   to the constructor) are kept, sorted, and never change afterwards.
2. Limit: ``threshold`` if given, else calibrated by Monte Carlo once the
   reference is complete (``PopulationDetector.calibrate``, seeded by
   ``seed``), for an in-control average run length of ``arl0`` values.
3. Monitoring: a *sliding* window of the last ``window_size`` values; the
   statistic between the reference and the window is computed when the window
   is first full and then every ``stride`` values (``stride == window_size``
   gives tumbling windows). A drift is signalled when it exceeds the limit.
4. Restart: on the value after a drift the window is emptied, so the next test
   comes ``window_size`` values later; the reference and the limit stay. A shift
   that persists is therefore signalled again every ``window_size`` values; to
   adopt the new population as reference, build a new detector.

Run length (the unit of ``arl0``): the number of accepted values from the start
of monitoring (the value after the reference is complete, or after a drift) up
to and including the value whose test signals. It is at least ``window_size``.

Calibration, and why (``calibrate``): a fixed p-value per test would make the
false alarms per hour grow with the volume and the test frequency, and tests
of overlapping windows are strongly correlated. Instead the whole sequential
procedure is simulated under the null hypothesis "the stream has the
reference's distribution": each of ``n_sim`` runs draws a pseudo-reference of
the reference's size and a stream, both with replacement from the reference
(bootstrap: the pseudo-reference carries the sampling noise the real
reference has, the stream keeps its ties), runs the detector's own kernel with
an infinite limit and records every test's statistic. The limit is then the
smallest simulated level whose mean run length is at least ``arl0``
(``calibration.run_length_limit``). Averaging over pseudo-references
calibrates the run length averaged over references of this size; the run
length given *one* reference varies around it, less as ``reference_size``
grows against ``window_size``. Measured on 10^6 in-control values with
``arl0=10_000``, ``window_size=200``, N(0, 1) and a rounded (tied) score,
several references: 0.56x-1.6x of ``arl0`` with references of 2 000 values,
0.8x-1.4x with 5 000 (the default; ``tests/unit/detectors/test_population.py``).
Treating the tests as independent instead (``method="per_test"``) gives
1.7x-2.5x: conservative, since overlapping windows' exceedances cluster.
Resampling a continuous reference creates ties the real stream does not have,
which makes the simulated KS statistic slightly smaller: on N(0, 1) data the
run length comes out a little short (0.8x-1.1x) rather than long. ``arl0``
is in values, not time: at 1 000 values per second the default (10 000) is a
false alarm every ~10 s; choose it from the stream's volume.

The simulation calls the same compiled ``_update`` kernel as the stream (with
a statistics buffer), so ``warmup()`` also compiles the calibration.

Cost of the calibration: ``n_sim`` runs of ``2 * arl0`` values through the
kernel (``n_sim * arl0 * 2 * 0.1-0.5 µs``: one to a few seconds with the
defaults), once, on the call that completes the reference; it grows with
``arl0``, so for a large ``arl0`` calibrate offline with ``calibrate`` and pass
``threshold``, or pass ``reference`` so that the constructor pays it at
start-up.

NaN/inf policy (as every detector): non-finite values are skipped and counted
in ``n_skipped``, in the given ``reference`` too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from streamscore.libs.detectors import calibration
from streamscore.libs.detectors._base import (
    DRIFT,
    CodeArray,
    Detector,
    FloatArray,
    IntArray,
    as_stream,
    kernel,
)

# _f slots: the limit in use (NaN until known), the last statistic (NaN before the first
# test), then one slot for the statistic's own use.
LIMIT, SCORE, EXTRA = 0, 1, 2
# _i slots (0 drift, 1 warning, 2 skipped are shared with every detector): reference
# values held, reference complete but not prepared, window values since the last
# restart, position of the oldest window value in the ring.
NREF, PENDING, FILLED, POS = 3, 4, 5, 6
_N_INT_SLOTS = 7

_NO_STATS = np.empty(0, dtype=np.float64)


@kernel
def restart(i: IntArray) -> None:
    """Clear the drift flag and empty the window (the value after a drift)."""
    i[0] = 0
    i[FILLED] = 0
    i[POS] = 0


@kernel
def learn(x: float, i: IntArray, ref: FloatArray) -> bool:
    """Append ``x`` to the reference; ``True`` when it completes it (marked pending)."""
    ref[i[NREF]] = x
    i[NREF] += 1
    if i[NREF] == ref.shape[0]:
        i[PENDING] = 1
        return True
    return False


@kernel
def advance(i: IntArray, window_size: int, stride: int) -> bool:
    """Count a value pushed into the window; ``True`` when a test is due on it."""
    i[FILLED] += 1
    i[POS] = (i[POS] + 1) % window_size
    return bool(i[FILLED] >= window_size and (i[FILLED] - window_size) % stride == 0)


@kernel
def decide(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    s: float,
    j: int,
    out: CodeArray,
    f: FloatArray,
    i: IntArray,
    stats: FloatArray,
) -> None:
    """Record the statistic ``s`` of the test at element ``j``; signal if above the limit."""
    f[SCORE] = s
    if stats.shape[0]:
        stats[j] = s
    if s > f[LIMIT]:
        i[0] = 1
        out[j] = DRIFT


class PopulationDetector(Detector):
    """Base of the windowed population tests; see the module docstring for the procedure.

    A subclass adds its statistic's state arrays (``_statistic_state``), fills
    them from the sorted reference (``_load_reference``), empties its window
    state (``_empty_window``) and names its extra constructor arguments
    (``_options``). Its kernel is
    ``_update(xs, out, *state, *params, stats) -> int``: it returns ``-1``, or
    the index to resume from after the reference was completed (the Python
    side then sorts it and calibrates). ``stats`` is empty, or as long as
    ``xs`` to receive each test's statistic (the calibration's simulation).
    """

    _PARAMS: ClassVar[tuple[str, ...]] = (
        "reference_size",
        "window_size",
        "stride",
        "arl0",
        "threshold",
        "n_sim",
        "seed",
        "reference",
    )
    _STATE: ClassVar[tuple[str, ...]] = ("_f", "_i", "_ref", "_ring")

    _ref: FloatArray
    _ring: FloatArray
    _state_args: tuple[Any, ...]
    _o1: CodeArray
    _run: Callable[..., int]  # the kernel (as ``_batch``), typed with its return value

    def __init__(  # noqa: PLR0917 - river-style constructor, positional like river's
        self,
        reference_size: int,
        window_size: int,
        stride: int,
        arl0: float,
        threshold: float | None,
        n_sim: int,
        seed: int,
        reference: Iterable[float] | None,
    ) -> None:
        if reference_size < 2:
            raise ValueError("reference_size must be at least 2")
        if window_size < 2:
            raise ValueError("window_size must be at least 2")
        if not 1 <= stride <= window_size:
            raise ValueError("stride must be between 1 and window_size")
        if not arl0 > window_size:
            raise ValueError("arl0 must exceed window_size (no alarm can come earlier)")
        if n_sim < 10:
            raise ValueError("n_sim must be at least 10")
        initial = None if reference is None else tuple(float(v) for v in reference)
        self.reference_size = reference_size
        self.window_size = window_size
        self.stride = stride
        self.arl0 = arl0
        self.threshold = threshold
        self.n_sim = n_sim
        self.seed = seed
        self.reference = initial
        self._f = np.full(3, math.nan, dtype=np.float64)
        self._i = np.zeros(_N_INT_SLOTS, dtype=np.int64)
        self._ring = np.zeros(window_size, dtype=np.float64)
        if initial is None:
            self._ref = np.zeros(reference_size, dtype=np.float64)
        else:
            values = np.array(initial, dtype=np.float64)
            finite = values[np.isfinite(values)]
            if finite.shape[0] < 2:
                raise ValueError("reference needs at least 2 finite values")
            self._ref = finite
            self._i[NREF] = finite.shape[0]
            self._i[2] = values.shape[0] - finite.shape[0]
        self._statistic_state()
        self._bind()
        if initial is not None:
            self._prepare_reference()

    # -- subclass hooks ----------------------------------------------------------

    def _statistic_state(self) -> None:
        """Allocate the statistic's own state arrays (named in ``_STATE``)."""

    def _load_reference(self) -> None:
        """Fill the statistic's state from the sorted reference ``_ref``."""

    def _empty_window(self) -> None:
        """Empty the window (``restart`` does it inside the kernel)."""
        self._i[FILLED] = 0
        self._i[POS] = 0

    def _options(self) -> dict[str, Any]:
        """The statistic's own constructor arguments."""
        return {}

    # -- plumbing ----------------------------------------------------------------

    def _param_values(self) -> tuple[Any, ...]:
        return (int(self.stride),)

    def _bind(self) -> None:
        state = tuple(getattr(self, name) for name in self._STATE) + self._param_values()
        x1 = np.zeros(1, dtype=np.float64)
        o1 = np.zeros(1, dtype=np.uint8)
        args = (*state, _NO_STATS)
        object.__setattr__(self, "_batch", self._kernel())
        object.__setattr__(self, "_run", self._batch)
        object.__setattr__(self, "_state_args", state)
        object.__setattr__(self, "_args", args)
        object.__setattr__(self, "_x1", x1)
        object.__setattr__(self, "_o1", o1)
        object.__setattr__(self, "_one", (x1, o1, *args))

    def _prepare_reference(self) -> None:
        """Sort the complete reference, load it, and fix the limit (calibrating if needed)."""
        self._ref.sort()
        self._load_reference()
        if self.threshold is None:
            limit = type(self).calibrate(
                self._ref,
                self.window_size,
                self.stride,
                self.arl0,
                self.n_sim,
                self.seed,
                **self._options(),
            )
        else:
            limit = float(self.threshold)
        self._f[LIMIT] = limit
        self._i[PENDING] = 0

    def _resume(self, xs: FloatArray, out: CodeArray, start: int) -> None:
        """The kernel stopped at ``start`` for the reference: prepare it, then go on."""
        while start >= 0:
            self._prepare_reference()
            if start >= xs.shape[0]:
                return
            stop = self._run(xs[start:], out[start:], *self._args)
            start = start + stop if stop >= 0 else -1

    def update(self, x: float) -> None:
        """Update the detector with one value (non-finite values are skipped)."""
        self._x1[0] = x
        stop = self._run(*self._one)
        if stop >= 0:
            self._resume(self._x1, self._o1, stop)

    def _codes(self, xs: npt.ArrayLike) -> CodeArray:
        arr = as_stream(xs)
        out = np.zeros(arr.shape[0], dtype=np.uint8)
        if arr.shape[0]:
            stop = self._run(arr, out, *self._args)
            if stop >= 0:
                self._resume(arr, out, stop)
        return out

    # -- calibration -------------------------------------------------------------

    @classmethod
    def null_paths(  # noqa: PLR0917 - positional like calibrate
        cls,
        reference: npt.ArrayLike,
        window_size: int,
        stride: int,
        arl0: float,
        n_sim: int = 200,
        seed: int = 0,
        **options: Any,
    ) -> FloatArray:
        """Statistics of ``n_sim`` simulated in-control runs (one row per run, one column per test).

        Each run draws a pseudo-reference of ``len(reference)`` values and a
        stream of ``calibration.simulated_tests`` tests' worth of values, both
        with replacement from ``reference`` (its finite values), and runs this
        detector's kernel on them with an infinite limit.
        """
        ref = as_stream(reference)
        ref = np.sort(ref[np.isfinite(ref)])
        n = ref.shape[0]
        n_tests = calibration.simulated_tests(window_size, stride, arl0)
        length = window_size + (n_tests - 1) * stride
        sim = cls(n, window_size, stride, arl0, math.inf, n_sim, seed, None, **options)
        sim._i[NREF] = n  # the pseudo-references below are complete
        rng = np.random.default_rng(seed)
        paths = np.empty((n_sim, n_tests), dtype=np.float64)
        stats = np.empty(length, dtype=np.float64)
        out = np.zeros(length, dtype=np.uint8)
        for r in range(n_sim):
            sim._ref[:] = ref[rng.integers(0, n, n)]
            sim._empty_window()
            sim._prepare_reference()
            stream = ref[rng.integers(0, n, length)]
            stats.fill(math.nan)
            sim._run(stream, out, *sim._state_args, stats)
            paths[r] = stats[window_size - 1 :: stride]
        return paths

    @classmethod
    def calibrate(  # noqa: PLR0917 - calibrate(reference, window_size, stride, arl0, n_sim, seed)
        cls,
        reference: npt.ArrayLike,
        window_size: int,
        stride: int,
        arl0: float,
        n_sim: int = 200,
        seed: int = 0,
        *,
        method: str = "run_length",
        **options: Any,
    ) -> float:
        """The alarm limit giving an in-control mean run length of ``arl0`` values.

        ``method="run_length"`` (used by the detector) simulates the sequential
        procedure and picks the limit from the simulated run lengths
        (``calibration.run_length_limit``); ``"per_test"`` treats the tests as
        independent, with a per-test false-alarm rate of about
        ``stride / arl0`` (``calibration.per_test_limit``, conservative).
        ``options`` are the statistic's own constructor arguments.
        """
        paths = cls.null_paths(reference, window_size, stride, arl0, n_sim, seed, **options)
        if method == "run_length":
            return calibration.run_length_limit(paths, window_size, stride, arl0)
        if method == "per_test":
            return calibration.per_test_limit(paths, window_size, stride, arl0)
        raise ValueError(f"unknown calibration method {method!r}")

    # -- read-only state ---------------------------------------------------------

    @property
    def score(self) -> float:
        """The statistic of the last test (NaN before the first test)."""
        return float(self._f[SCORE])

    @property
    def limit(self) -> float:
        """The alarm limit in use: ``threshold``, or the calibrated one (NaN until known)."""
        return float(self._f[LIMIT])

    def __repr__(self) -> str:
        def show(name: str) -> str:
            value = getattr(self, name)
            if name == "reference" and value is not None:
                return f"<{len(value)} values>"
            return repr(value)

        args = ", ".join(f"{name}={show(name)}" for name in self._PARAMS)
        return f"{type(self).__name__}({args})"
