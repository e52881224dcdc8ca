"""DDM, the Drift Detection Method (river's ``drift.binary.DDM`` in Numba)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from streamscore.libs.detectors._base import (
    DRIFT,
    WARNING,
    CodeArray,
    FloatArray,
    IntArray,
    WarningDetector,
    kernel,
)

# _f slots
_N, _P, _P_MIN, _S_MIN, _PS_MIN = range(5)


@kernel
def _reset_state(f: FloatArray, i: IntArray) -> None:
    f[_N] = 0.0
    f[_P] = 0.0
    f[_P_MIN] = 0.0
    f[_S_MIN] = 0.0
    f[_PS_MIN] = math.inf
    i[0] = 0
    i[1] = 0


@kernel
def _update(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    xs: FloatArray,
    out: CodeArray,
    f: FloatArray,
    i: IntArray,
    warm_start: int,
    warning_threshold: float,
    drift_threshold: float,
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
        f[_P] += (1.0 / f[_N]) * (x - f[_P])
        p = f[_P]
        n = f[_N]
        s = math.sqrt(p * (1.0 - p) / n)
        if n > warm_start:
            if p + s <= f[_PS_MIN]:
                f[_P_MIN] = p
                f[_S_MIN] = s
                f[_PS_MIN] = p + s
            i[1] = 1 if p + s > f[_P_MIN] + warning_threshold * f[_S_MIN] else 0
            if p + s > f[_P_MIN] + drift_threshold * f[_S_MIN]:
                i[0] = 1
                i[1] = 0
        out[j] = (DRIFT if i[0] else 0) | (WARNING if i[1] else 0)


class DDM(WarningDetector):
    """Drift Detection Method (Gama et al. 2004) on an error stream, compiled with Numba.

    Input: 1 for an error (misclassification), 0 for a success. Tracks the
    error rate ``p`` and its binomial standard deviation ``s``; remembers the
    minimum of ``p + s``; signals a warning when ``p + s > p_min +
    warning_threshold * s_min`` and a drift when ``p + s > p_min +
    drift_threshold * s_min``.

    Same parameters, defaults and arithmetic as river 0.26 ``drift.binary.DDM``,
    so both signal at the same indices. As in river, everything is reset on
    the update *after* a drift, a drift clears the warning flag, and nothing is
    signalled until more than ``warm_start`` values have been seen.

    Details the paper leaves open, as river does them: the minimum is updated
    when ``p + s <= p_min + s_min`` (ties included), and ``warm_start`` counts
    every value, not only errors.

    Values other than 0/1 follow the same arithmetic unchecked (a rate outside
    [0, 1] gives a NaN deviation and never signals). Non-finite inputs (NaN,
    ±inf) are skipped and counted in ``n_skipped`` (see
    ``streamscore.libs.detectors``).

    Parameters
    ----------
    warm_start
        The minimum number of values before a warning or drift can be signalled.
    warning_threshold
        Multiplier of the minimum standard deviation for the warning zone.
    drift_threshold
        Multiplier of the minimum standard deviation for a drift.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(42)
    >>> errors = np.concatenate([rng.random(1000) < 0.1, rng.random(1000) < 0.5])
    >>> ddm = DDM()
    >>> drift, warning = ddm.update_many_with_warnings(errors)
    >>> np.flatnonzero(drift).tolist()
    [1109]
    """

    _PARAMS = ("warm_start", "warning_threshold", "drift_threshold")

    def __init__(
        self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0
    ) -> None:
        self.warm_start = warm_start
        self.warning_threshold = warning_threshold
        self.drift_threshold = drift_threshold
        self._f = np.zeros(5, dtype=np.float64)
        self._i = np.zeros(3, dtype=np.int64)
        _reset_state(self._f, self._i)
        self._bind()

    def _kernel(self) -> Callable[..., None]:
        return _update

    def _param_values(self) -> tuple[Any, ...]:
        return (int(self.warm_start), float(self.warning_threshold), float(self.drift_threshold))
