"""Delayed chargeback labels for simulated frauds.

Each fraudulent transaction yields, with probability ``report_share``, a
chargeback whose arrival is drawn from a log-normal delay (by default a median
of 25 days: about 90% arrive between 10 and 60 days, a tail reaches the
120-day cap). A small share is reported twice (a second report, a new label
event, a few days later) and a small share is reversed later (the merchant won
the dispute: a ``reversed`` label saying "not fraud"). Legitimate transactions
get no label; frauds never reported stay unlabelled, as in real life.

>>> import numpy as np
>>> p = ChargebackPolicy()
>>> d = delays_days(p, np.random.default_rng(0), 100_000)
>>> bool(d.min() >= p.min_delay_days and d.max() <= p.max_delay_days)
True
>>> bool(0.80 < ((d >= 7) & (d <= 60)).mean() < 0.97)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from streamscore.libs.simulator._pending import SECONDS_PER_DAY, lognormal_delays

LabelStatus = Literal["reported", "reversed"]


@dataclass(frozen=True)
class ChargebackPolicy:
    """How frauds turn into (late, sometimes duplicated or reversed) labels."""

    report_share: float = 0.95
    delay_median_days: float = 25.0
    delay_sigma: float = 0.55
    min_delay_days: float = 2.0
    max_delay_days: float = 120.0
    duplicate_share: float = 0.02
    duplicate_delay_days: float = 3.0
    reversal_share: float = 0.03
    reversal_delay_days: tuple[float, float] = (5.0, 30.0)


@dataclass(frozen=True, order=True)
class ScheduledLabel:
    """A label event, ordered by its arrival time (seconds since the scenario start)."""

    arrival_s: float
    label_id: str
    target_event_id: str
    customer: int
    terminal: int
    fraud: bool
    status: LabelStatus
    #: When the labelled transaction happened (seconds since the scenario start).
    tx_s: float = 0.0


def delays_days(
    policy: ChargebackPolicy, rng: np.random.Generator, n: int
) -> npt.NDArray[np.float64]:
    """Report delays in days, log-normal around the median, clipped to the policy's range."""
    return lognormal_delays(
        rng,
        n,
        median_s=policy.delay_median_days,  # the helper is unit-free: days in, days out
        sigma=policy.delay_sigma,
        min_s=policy.min_delay_days,
        max_s=policy.max_delay_days,
    )


def schedule(
    policy: ChargebackPolicy,
    rng: np.random.Generator,
    *,
    tx_seconds: npt.NDArray[np.int64],
    tx_event_ids: list[str],
    customers: npt.NDArray[np.int64],
    terminals: npt.NDArray[np.int64],
    label_prefix: str,
) -> list[ScheduledLabel]:
    """Labels for the given fraudulent transactions (one day's frauds at a time)."""
    n = len(tx_seconds)
    reported = rng.random(n) < policy.report_share
    delay_s = delays_days(policy, rng, n) * SECONDS_PER_DAY
    duplicated = rng.random(n) < policy.duplicate_share
    dup_after_s = rng.uniform(0, policy.duplicate_delay_days, size=n) * SECONDS_PER_DAY
    reversed_ = rng.random(n) < policy.reversal_share
    rev_after_s = rng.uniform(*policy.reversal_delay_days, size=n) * SECONDS_PER_DAY
    out: list[ScheduledLabel] = []
    for i in np.flatnonzero(reported):
        at = float(tx_seconds[i] + delay_s[i])
        base = (tx_event_ids[i], int(customers[i]), int(terminals[i]))
        tx_s = float(tx_seconds[i])
        out.append(ScheduledLabel(at, f"{label_prefix}-{i}", *base, True, "reported", tx_s))
        if duplicated[i]:
            out.append(
                ScheduledLabel(
                    at + float(dup_after_s[i]),
                    f"{label_prefix}-{i}-dup",
                    *base,
                    True,
                    "reported",
                    tx_s,
                )
            )
        if reversed_[i]:
            out.append(
                ScheduledLabel(
                    at + float(rev_after_s[i]),
                    f"{label_prefix}-{i}-rev",
                    *base,
                    False,
                    "reversed",
                    tx_s,
                )
            )
    return out
