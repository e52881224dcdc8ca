"""The in-control baseline of the control charts (CUSUM, EWMA chart): Welford over a grace period.

Slots ``0, 1, 2`` of the chart's float state hold ``n``, the mean and the sum of
squared deviations (M2) of the values seen since the last reset.
"""

from __future__ import annotations

import math

from streamscore.libs.detectors._base import FloatArray, kernel

N, MEAN, M2 = 0, 1, 2


@kernel
def learn(f: FloatArray, x: float) -> None:
    """Add ``x`` to the baseline (Welford's update)."""
    f[N] += 1.0
    d = x - f[MEAN]
    f[MEAN] += d / f[N]
    f[M2] += d * (x - f[MEAN])


@kernel
def std(f: FloatArray) -> float:
    """The baseline's sample standard deviation (0 with fewer than 2 values)."""
    return math.sqrt(f[M2] / (f[N] - 1.0)) if f[N] > 1.0 else 0.0
