"""HDDM_A, Hoeffding's-bound drift detection on averages (river's ``drift.binary.HDDMA``)."""

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

# _f slots: three running means (count, mean): the cut points and the global mean.
_MIN_N, _MIN_MEAN, _MAX_N, _MAX_MEAN, _Z_N, _Z_MEAN = range(6)


@kernel
def _reset_state(f: FloatArray, i: IntArray) -> None:
    f[:] = 0.0
    i[0] = 0
    i[1] = 0


@kernel
def _hoeffding(n: float, drift_confidence: float) -> float:
    return math.sqrt(1.0 / (2.0 * n) * math.log(1.0 / drift_confidence))


@kernel
def _shifted(n_cut: float, mean_cut: float, n_z: float, mean_z: float, conf: float) -> bool:
    """Whether ``mean_z - mean_cut`` exceeds the Hoeffding bound at confidence ``conf``."""
    if n_cut == n_z:
        return False
    m = (n_z - n_cut) / n_cut * (1.0 / n_z)
    eps = math.sqrt(m / 2.0 * math.log(2.0 / conf))
    return mean_z - mean_cut >= eps


@kernel
def _update(  # noqa: PLR0917 - a Numba kernel takes its state and parameters positionally
    xs: FloatArray,
    out: CodeArray,
    f: FloatArray,
    i: IntArray,
    drift_confidence: float,
    warning_confidence: float,
    two_sided: bool,
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
        f[_Z_N] += 1.0
        f[_Z_MEAN] += (1.0 / f[_Z_N]) * (x - f[_Z_MEAN])
        if f[_MIN_N] == 0.0:
            f[_MIN_N] = f[_Z_N]
            f[_MIN_MEAN] = f[_Z_MEAN]
        if f[_MAX_N] == 0.0:
            f[_MAX_N] = f[_Z_N]
            f[_MAX_MEAN] = f[_Z_MEAN]
        eps_z = _hoeffding(f[_Z_N], drift_confidence)
        eps_x = _hoeffding(f[_MIN_N], drift_confidence)
        if f[_MIN_MEAN] + eps_x >= f[_Z_MEAN] + eps_z:
            f[_MIN_N] = f[_Z_N]
            f[_MIN_MEAN] = f[_Z_MEAN]
        eps_x = _hoeffding(f[_MAX_N], drift_confidence)
        if f[_MAX_MEAN] - eps_x <= f[_Z_MEAN] - eps_z:
            f[_MAX_N] = f[_Z_N]
            f[_MAX_MEAN] = f[_Z_MEAN]
        if _shifted(f[_MIN_N], f[_MIN_MEAN], f[_Z_N], f[_Z_MEAN], drift_confidence):
            i[1] = 0
            i[0] = 1
        elif _shifted(f[_MIN_N], f[_MIN_MEAN], f[_Z_N], f[_Z_MEAN], warning_confidence):
            i[1] = 1
            i[0] = 0
        else:
            i[1] = 0
            i[0] = 0
        if two_sided:
            # Decrease: the same test with the roles of the means swapped.
            if _shifted(f[_MAX_N], -f[_MAX_MEAN], f[_Z_N], -f[_Z_MEAN], drift_confidence):
                i[0] = 1
            elif _shifted(f[_MAX_N], -f[_MAX_MEAN], f[_Z_N], -f[_Z_MEAN], warning_confidence):
                i[1] = 1
        out[j] = (DRIFT if i[0] else 0) | (WARNING if i[1] else 0)


class HDDMA(WarningDetector):
    """Drift detection with Hoeffding's bounds on moving averages (Frías-Blanco et al. 2014).

    Input: values in [0, 1], typically 1 for an error and 0 for a success.
    Keeps the global mean and a cut point where the mean was lowest (and, with
    ``two_sided_test``, highest) as measured by Hoeffding's bound; a drift
    (warning) is signalled when the mean since the cut point is significantly
    higher (lower) at ``drift_confidence`` (``warning_confidence``).

    Same parameters, defaults and arithmetic as river 0.26
    ``drift.binary.HDDMA``, so both signal at the same indices. As in river,
    everything is reset on the update *after* a drift.

    Details as river does them: the cut points move using the Hoeffding bound
    at ``drift_confidence`` whichever level is tested, and the two-sided
    decrease test only sets flags (it never clears the increase test's
    warning or drift).

    Non-finite inputs (NaN, ±inf) are skipped and counted in ``n_skipped``
    (see ``streamscore.libs.detectors``).

    Parameters
    ----------
    drift_confidence
        Confidence of the drift test.
    warning_confidence
        Confidence of the warning test.
    two_sided_test
        Also detect decreases of the mean.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(42)
    >>> errors = np.concatenate([rng.random(1000) < 0.1, rng.random(1000) < 0.5])
    >>> hddm = HDDMA()
    >>> drift, warning = hddm.update_many_with_warnings(errors)
    >>> np.flatnonzero(drift).tolist()
    [1015]
    """

    _PARAMS = ("drift_confidence", "warning_confidence", "two_sided_test")

    def __init__(
        self,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        two_sided_test: bool = False,
    ) -> None:
        self.drift_confidence = drift_confidence
        self.warning_confidence = warning_confidence
        self.two_sided_test = two_sided_test
        self._f = np.zeros(6, dtype=np.float64)
        self._i = np.zeros(3, dtype=np.int64)
        _reset_state(self._f, self._i)
        self._bind()

    def _kernel(self) -> Callable[..., None]:
        return _update

    def _param_values(self) -> tuple[Any, ...]:
        return (
            float(self.drift_confidence),
            float(self.warning_confidence),
            bool(self.two_sided_test),
        )
