"""Page-Hinkley test for a change in the mean (river's ``drift.PageHinkley`` in Numba)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from streamscore.libs.detectors._base import (
    DRIFT,
    CodeArray,
    Detector,
    FloatArray,
    IntArray,
    kernel,
)

_MODES = {"up": 0, "down": 1, "both": 2}

# _f slots
_N, _MEAN, _SUM_INC, _SUM_DEC, _MIN_INC, _MAX_DEC = range(6)


@kernel
def _reset_state(f: FloatArray, i: IntArray) -> None:
    f[_N] = 0.0
    f[_MEAN] = 0.0
    f[_SUM_INC] = 0.0
    f[_SUM_DEC] = 0.0
    f[_MIN_INC] = math.inf
    f[_MAX_DEC] = -1.0
    i[0] = 0
    i[1] = 0


@kernel
def _update(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    xs: FloatArray,
    out: CodeArray,
    f: FloatArray,
    i: IntArray,
    min_instances: int,
    delta: float,
    threshold: float,
    alpha: float,
    mode: int,
) -> None:
    for j in range(xs.shape[0]):
        x = xs[j]
        if not math.isfinite(x):
            i[2] += 1
            out[j] = 0
            continue
        if i[0]:
            _reset_state(f, i)
        # river stats.Mean with w = 1.0, same operation order.
        f[_N] += 1.0
        f[_MEAN] += (1.0 / f[_N]) * (x - f[_MEAN])
        dev = x - f[_MEAN]
        f[_SUM_INC] = alpha * f[_SUM_INC] + dev - delta
        f[_SUM_DEC] = alpha * f[_SUM_DEC] + dev + delta
        # if, not min()/max(): river's comparison, whatever NaN does
        if f[_SUM_INC] < f[_MIN_INC]:  # noqa: PLR1730
            f[_MIN_INC] = f[_SUM_INC]
        if f[_SUM_DEC] > f[_MAX_DEC]:  # noqa: PLR1730
            f[_MAX_DEC] = f[_SUM_DEC]
        if f[_N] >= min_instances:
            test_inc = f[_SUM_INC] - f[_MIN_INC]
            test_dec = f[_MAX_DEC] - f[_SUM_DEC]
            if mode == 0:
                drift = test_inc > threshold
            elif mode == 1:
                drift = test_dec > threshold
            else:
                drift = test_inc > threshold or test_dec > threshold
            i[0] = 1 if drift else 0
        out[j] = DRIFT if i[0] else 0


class PageHinkley(Detector):
    """Page-Hinkley method for concept drift detection, compiled with Numba.

    Tracks the running mean of the input and the cumulative deviations from it
    (with a forgetting factor ``alpha``); a drift is signalled when the
    cumulative increase (``mode="up"``), decrease (``"down"``) or either
    (``"both"``) exceeds ``threshold``. No warning zone.

    Same parameters, defaults and arithmetic as river 0.26 ``drift.PageHinkley``,
    so both detect at the same indices. As in river, the statistics are reset
    on the update *after* a detection, and nothing is signalled before
    ``min_instances`` values have been seen since the last reset.

    Differences from the original paper (Page 1954), kept for agreement with
    river: the deviation is taken from the running mean *including* the current
    value, both cumulative sums are damped by ``alpha``, and the decrease
    statistic starts from ``max = -1`` rather than ``0``.

    Non-finite inputs (NaN, ±inf) are skipped and counted in ``n_skipped``
    (see ``streamscore.libs.detectors``).

    Parameters
    ----------
    min_instances
        The minimum number of instances before detecting change.
    delta
        The delta factor (allowed magnitude of change) of the test.
    threshold
        The change detection threshold (lambda).
    alpha
        The forgetting factor of the cumulative sums.
    mode
        ``"up"``, ``"down"`` or ``"both"``: which direction of change to detect.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(12345)
    >>> stream = np.concatenate([rng.integers(0, 2, 1000), rng.integers(4, 8, 1000)])
    >>> ph = PageHinkley()
    >>> flags = ph.update_many(stream)
    >>> np.flatnonzero(flags).tolist()
    [1008]
    >>> ph.drift_detected
    False
    """

    _PARAMS = ("min_instances", "delta", "threshold", "alpha", "mode")

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"Invalid 'mode'. Valid values are: {list(_MODES)}")
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.mode = mode
        self._f = np.zeros(6, dtype=np.float64)
        self._i = np.zeros(3, dtype=np.int64)
        _reset_state(self._f, self._i)
        self._bind()

    def _kernel(self) -> Callable[..., None]:
        return _update

    def _param_values(self) -> tuple[Any, ...]:
        return (
            int(self.min_instances),
            float(self.delta),
            float(self.threshold),
            float(self.alpha),
            _MODES[self.mode],
        )
