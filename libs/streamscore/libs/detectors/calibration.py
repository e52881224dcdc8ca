"""Alarm limits for a target in-control average run length (ARL0), from simulated null paths.

A *path* is the sequence of statistics one population detector computes on a
simulated in-control run: row ``r`` of ``paths`` holds the statistic of test
``0, 1, 2, ...`` of run ``r``, test ``k`` being taken at value
``window_size + k * stride`` after monitoring started (see
``streamscore.libs.detectors.population``). With an alarm when the statistic
exceeds ``limit``, the run length of a run is ``window_size + K * stride``
values, ``K`` the number of tests before the first one above the limit.

Runs are simulated for a finite number of tests, so some end without an alarm
(censored). The mean run length is estimated as if ``K`` were geometric (a
constant alarm rate per test once the first window is full), whose maximum
likelihood estimate of the mean is the number of tests without an alarm, over
all runs, divided by the number of alarms:
``ARL(limit) = window_size + stride * sum(K_r) / #alarms``. Without censoring
it is the plain mean. The runs are simulated for ``HORIZON * arl0`` values so
that few are censored (about ``exp(-HORIZON)``), and the geometric assumption
only has to hold for their tail.

Examples
--------
Independent tests with a standard normal statistic, four tests per window:

>>> import numpy as np
>>> paths = np.random.default_rng(0).normal(size=(400, 200))
>>> limit = run_length_limit(paths, window_size=100, stride=25, arl0=2_000)
>>> bool(1_800 < mean_run_length(paths, limit, 100, 25) < 2_300)
True
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

HORIZON = 2.0
"""Simulated run length, in multiples of ``arl0``."""


def simulated_tests(window_size: int, stride: int, arl0: float) -> int:
    """Number of tests in one simulated run: enough to cover ``HORIZON * arl0`` values."""
    return max(2, math.ceil((HORIZON * arl0 - window_size) / stride) + 1)


def _mean_run_length(running_max: FloatArray, limit: float, window_size: int, stride: int) -> float:
    before = (running_max <= limit).sum(axis=1)  # K per run (all tests if censored)
    alarms = int((before < running_max.shape[1]).sum())
    if alarms == 0:
        return math.inf
    return window_size + stride * float(before.sum()) / alarms


def mean_run_length(paths: FloatArray, limit: float, window_size: int, stride: int) -> float:
    """Estimated mean run length, in values, of the alarm rule ``statistic > limit``."""
    running_max = np.maximum.accumulate(paths, axis=1)
    return _mean_run_length(running_max, limit, window_size, stride)


def run_length_limit(paths: FloatArray, window_size: int, stride: int, arl0: float) -> float:
    """The smallest simulated level whose estimated mean run length is at least ``arl0``.

    The sequential procedure itself is simulated, so the correlation of
    overlapping windows is taken into account (an alarm needs the running
    maximum of the path to pass the limit).
    """
    running_max = np.maximum.accumulate(paths, axis=1)
    levels = np.unique(running_max)
    lo, hi = 0, levels.shape[0] - 1  # no run passes the highest level: ARL = inf
    while lo < hi:
        mid = (lo + hi) // 2
        if _mean_run_length(running_max, float(levels[mid]), window_size, stride) >= arl0:
            hi = mid
        else:
            lo = mid + 1
    return float(levels[lo])


def per_test_limit(paths: FloatArray, window_size: int, stride: int, arl0: float) -> float:
    """The approximation that treats tests as independent: a per-test false-alarm rate.

    With independent tests each alarming with probability ``alpha``, the mean
    run length is ``window_size + stride * (1 - alpha) / alpha``; this returns
    the ``1 - alpha`` quantile of the simulated statistics for the ``alpha``
    giving ``arl0``. Overlapping windows make consecutive statistics
    positively correlated, so exceedances come in clusters and the true mean
    run length at this limit is *longer* than ``arl0``: the approximation is
    conservative (fewer false alarms than asked, later detections).
    """
    alpha = stride / (arl0 - window_size + stride)
    return float(np.quantile(paths, 1.0 - alpha, method="higher"))
