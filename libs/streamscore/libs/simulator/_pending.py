"""Pieces shared by the login, sensor and click streams: pending labels and their delays.

A :class:`Pending` label is built in full when it is scheduled (its
``event_time`` is its arrival) and waits in an
:class:`~streamscore.libs.simulator.labels_queue.ArrivalQueue` until the
scenario clock passes its arrival.

>>> import numpy as np
>>> d = lognormal_delays(np.random.default_rng(0), 10_000, median_s=60.0, sigma=0.5,
...                      min_s=10.0, max_s=600.0)
>>> bool(50 < float(np.median(d)) < 70 and d.min() >= 10 and d.max() <= 600)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from streamscore.libs.simulator.records import SimRecord

SECONDS_PER_DAY = 86_400

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, order=True)
class Pending:
    """A label record waiting for its arrival (seconds since the scenario start).

    ``seq`` breaks ties so that labels arriving at the same instant keep their
    scheduling order (and records are never compared).
    """

    arrival_s: float
    seq: int
    record: SimRecord = field(compare=False)


def lognormal_delays(
    rng: np.random.Generator, n: int, *, median_s: float, sigma: float, min_s: float, max_s: float
) -> FloatArray:
    """``n`` log-normal delays in seconds around ``median_s``, clipped to ``[min_s, max_s]``."""
    raw = rng.lognormal(math.log(median_s), sigma, size=n)
    return np.clip(raw, min_s, max_s)


def inverse(order: IntArray) -> IntArray:
    """The inverse permutation: where each original index landed after ``x[order]``."""
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order), dtype=order.dtype)
    return inv
