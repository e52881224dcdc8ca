"""EDDM, the Early Drift Detection Method (river's ``drift.binary.EDDM`` in Numba)."""

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

# _f slots: running mean/variance of the distances between errors (river stats.Var).
_D_N, _D_MEAN, _D_S, _P2S_MAX = range(4)
# _i slots (0 drift, 1 warning, 2 skipped are shared with every detector)
_N, _LAST_ERROR, _N_ERRORS = 3, 4, 5


@kernel
def _reset_state(f: FloatArray, i: IntArray) -> None:
    f[_D_N] = 0.0
    f[_D_MEAN] = 0.0
    f[_D_S] = 0.0
    f[_P2S_MAX] = -1.0
    i[0] = 0
    i[1] = 0
    i[_N] = 0
    i[_LAST_ERROR] = 0
    i[_N_ERRORS] = 0


@kernel
def _update(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    xs: FloatArray,
    out: CodeArray,
    f: FloatArray,
    i: IntArray,
    warm_start: int,
    alpha: float,
    beta: float,
) -> None:
    for j in range(xs.shape[0]):
        x = xs[j]
        if not math.isfinite(x):
            i[2] += 1
            out[j] = 0
            continue
        if i[0]:
            _reset_state(f, i)
        i[_N] += 1
        if x == 1.0:
            i[_N_ERRORS] += 1
            # river stats.Var(ddof=1).update(distance), same operation order.
            distance = float(i[_N] - i[_LAST_ERROR])
            mean_old = f[_D_MEAN]
            f[_D_N] += 1.0
            f[_D_MEAN] += (1.0 / f[_D_N]) * (distance - f[_D_MEAN])
            f[_D_S] += 1.0 * (distance - mean_old) * (distance - f[_D_MEAN])
            if i[_N] > warm_start:
                var = f[_D_S] / (f[_D_N] - 1.0) if f[_D_N] > 1.0 else 0.0
                p2s = f[_D_MEAN] + 2.0 * var**0.5
                if p2s > f[_P2S_MAX]:
                    f[_P2S_MAX] = p2s
                elif i[_N_ERRORS] > warm_start:
                    level = p2s / f[_P2S_MAX]
                    if level < beta:
                        i[0] = 1
                    elif level < alpha:
                        i[1] = 1
                    else:
                        i[1] = 0
            i[_LAST_ERROR] = i[_N]
        out[j] = (DRIFT if i[0] else 0) | (WARNING if i[1] else 0)


class EDDM(WarningDetector):
    """Early Drift Detection Method (Baena-García et al. 2006), compiled with Numba.

    Input: 1 for an error, anything else for a success. Tracks the mean ``p'``
    and standard deviation ``s'`` of the distance between consecutive errors and
    the maximum of ``p' + 2 s'``; the ratio of the current value to that maximum
    falling below ``alpha`` signals a warning, below ``beta`` a drift. Suited to
    gradual drifts, where errors get closer together slowly.

    Same parameters, defaults and arithmetic as river 0.26
    ``drift.binary.EDDM``, so both signal at the same indices. As in river,
    everything is reset on the update *after* a drift, the level is only
    evaluated on errors once more than ``warm_start`` values *and* more than
    ``warm_start`` errors were seen, and the warning flag only changes when the
    level is evaluated (a drift leaves it as it was).

    Details the paper leaves open, as river does them: the level is not
    evaluated on an error that raises the maximum, and besides the paper's
    ``warm_start`` (30) errors it also needs ``warm_start`` values.

    Non-finite inputs (NaN, ±inf) are skipped and counted in ``n_skipped``
    (see ``streamscore.libs.detectors``).

    Parameters
    ----------
    warm_start
        The minimum number of values and of errors before signalling.
    alpha
        Threshold of the warning zone (``alpha >= beta``).
    beta
        Threshold of a drift.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(42)
    >>> errors = np.concatenate([rng.random(3000) < 0.05, rng.random(1000) < 0.5])
    >>> eddm = EDDM()
    >>> drift, warning = eddm.update_many_with_warnings(errors)
    >>> hits = np.flatnonzero(drift)  # EDDM is alarm-prone: some hits before the change too
    >>> int(hits[hits >= 3000][0])  # first detection after the change at 3000
    3040
    """

    _PARAMS = ("warm_start", "alpha", "beta")

    def __init__(self, warm_start: int = 30, alpha: float = 0.95, beta: float = 0.9) -> None:
        if alpha < beta:
            raise ValueError("'alpha' must be greater or equal to 'beta'.")
        self.warm_start = warm_start
        self.alpha = alpha
        self.beta = beta
        self._f = np.zeros(4, dtype=np.float64)
        self._i = np.zeros(6, dtype=np.int64)
        _reset_state(self._f, self._i)
        self._bind()

    def _kernel(self) -> Callable[..., None]:
        return _update

    def _param_values(self) -> tuple[Any, ...]:
        return (int(self.warm_start), float(self.alpha), float(self.beta))
