"""The delay-aware split of the fraud-detection handbook: training days, a gap, test days.

*Reproducible Machine Learning for Credit Card Fraud Detection* (Le Borgne et
al.), chapter 3.4 ("Baseline fraud detection system", ``get_train_test_set``)
and chapter 5.2 ("Validation strategies"): a model is trained on one block of
days, the labels of a transaction are only known after a **delay**, and the
model is tested on the block that follows the delay. With the handbook's
values (one week each), for a split starting on UTC day ``s``:

1. **Training**: every example of days ``[s, s + 7)``. The model is built at
   the end of the delay period, when the training days' labels are known.
2. **Gap** (the delay period): days ``[s + 7, s + 14)``: not used, their
   labels are not known when the model is built.
3. **Test**: days ``[s + 14, s + 21)``, minus the transactions of cards
   already **known to be compromised**: on test day ``T`` a card is known
   when it had a fraud on a day in ``[s, T - delay - 1]`` (a fraud of day
   ``d`` is known from the end of day ``d + delay``: the training frauds,
   then the delay period's frauds day by day). Investigators have blocked
   those cards already; scoring them again would flatter the model. Frauds
   before ``s`` do not count (the handbook starts from the training set).

Days are UTC calendar days (the simulator's clock starts at midnight UTC).
Times are ``int64`` microseconds since the epoch (what a Parquet
``timestamp[us, UTC]`` column holds).

>>> from datetime import date
>>> sp = DelaySplit(date(2026, 2, 14))
>>> sp.train_end, sp.test_start, sp.test_end
(datetime.date(2026, 2, 21), datetime.date(2026, 2, 28), datetime.date(2026, 3, 7))
>>> DelaySplit.ending(date(2026, 3, 6)) == sp
True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from streamscore.libs.features.definitions import groups

US_PER_DAY = 86_400 * 1_000_000
_EPOCH = date(1970, 1, 1)

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


def day_number(d: date) -> int:
    """The UTC day ``d`` as days since 1970-01-01.

    >>> day_number(date(1970, 1, 2))
    1
    """
    return (d - _EPOCH).days


def day_of(d: int) -> date:
    """The date of a day number (inverse of :func:`day_number`).

    >>> day_of(day_number(date(2026, 1, 5)))
    datetime.date(2026, 1, 5)
    """
    return _EPOCH + timedelta(days=int(d))


def day_numbers(event_time_us: npt.NDArray[np.int64]) -> IntArray:
    """The UTC day (days since the epoch) of each time in microseconds.

    >>> day_numbers(np.array([0, US_PER_DAY - 1, US_PER_DAY, -1])).tolist()
    [0, 0, 1, -1]
    """
    return np.floor_divide(np.asarray(event_time_us, dtype=np.int64), US_PER_DAY)


def warmup_days(stream: str) -> int:
    """Days of history a stream's features need before their windows are full.

    The longest ``window + delay`` of its windowed features (the terminal risk
    over 30 days, 7 days back: 37 days for transactions). Training days
    earlier than that after the first event see truncated windows.

    >>> warmup_days("transactions")
    37
    """
    longest = max(f.window_s + f.delay_s for g in groups(stream) for f in g.features)
    return -(-longest // 86_400)


@dataclass(frozen=True)
class DelaySplit:
    """Training days, then ``delay_days`` unused, then test days (whole UTC days)."""

    train_start: date
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7

    def __post_init__(self) -> None:
        if self.train_days < 1 or self.test_days < 1 or self.delay_days < 0:
            msg = (
                f"train_days and test_days must be >= 1 and delay_days >= 0 "
                f"(got {self.train_days}, {self.test_days}, {self.delay_days})"
            )
            raise ValueError(msg)

    @classmethod
    def ending(
        cls, last_test_day: date, *, train_days: int = 7, delay_days: int = 7, test_days: int = 7
    ) -> DelaySplit:
        """The split whose last test day is ``last_test_day``."""
        span = train_days + delay_days + test_days
        return cls(last_test_day - timedelta(days=span - 1), train_days, delay_days, test_days)

    @property
    def train_end(self) -> date:
        """First day after the training days."""
        return self.train_start + timedelta(days=self.train_days)

    @property
    def test_start(self) -> date:
        """First test day (the day after the gap)."""
        return self.train_end + timedelta(days=self.delay_days)

    @property
    def test_end(self) -> date:
        """First day after the test days."""
        return self.test_start + timedelta(days=self.test_days)

    def describe(self) -> dict[str, Any]:
        """The split as plain values (MLflow parameters, benchmark conditions).

        >>> DelaySplit(date(2026, 2, 14)).describe()["test"]
        '2026-02-28..2026-03-06'
        """
        last = timedelta(days=1)
        return {
            "train": f"{self.train_start}..{self.train_end - last}",
            "gap": f"{self.train_end}..{self.test_start - last}" if self.delay_days else "none",
            "test": f"{self.test_start}..{self.test_end - last}",
            "train_days": self.train_days,
            "delay_days": self.delay_days,
            "test_days": self.test_days,
        }


@dataclass(frozen=True)
class SplitRows:
    """Which rows fall where. ``test`` excludes ``removed`` (known compromised cards).

    ``gap`` marks the delay period's rows (never used); ``day`` is each row's UTC day.
    """

    train: BoolArray
    gap: BoolArray
    test: BoolArray
    removed: BoolArray
    day: IntArray


def split_rows(
    split: DelaySplit,
    event_time_us: npt.NDArray[np.int64],
    card: npt.NDArray[Any],
    fraud: npt.NDArray[np.bool_],
) -> SplitRows:
    """Assign rows to training, test and removed, as the handbook's ``get_train_test_set``.

    ``card`` is the card (customer) key of each row, ``fraud`` the label as it
    becomes known after the delay.

    >>> t = np.array([0, 1, 2, 4, 4, 5]) * US_PER_DAY + 3_600_000_000  # 01:00 on days 0..5
    >>> card = np.array(["a", "b", "c", "a", "b", "c"])
    >>> fraud = np.array([True, False, False, False, True, False])
    >>> sp = DelaySplit(date(1970, 1, 1), train_days=2, delay_days=1, test_days=3)
    >>> r = split_rows(sp, t, card, fraud)
    >>> r.train.tolist(), r.test.tolist(), r.removed.tolist()
    ([True, True, False, False, False, False], [False, False, False, False, True, True], \
[False, False, False, True, False, False])

    Card ``a`` had a fraud on day 0, known from day 0 + 1 + 1 = 2 on: its
    day-4 transaction is removed; card ``b``'s fraud on test day 4 is kept.
    """
    t = np.asarray(event_time_us, dtype=np.int64)
    card = np.asarray(card)
    fraud = np.asarray(fraud, dtype=np.bool_)
    if not (len(t) == len(card) == len(fraud)):
        msg = f"lengths differ: {len(t)} times, {len(card)} cards, {len(fraud)} labels"
        raise ValueError(msg)
    day = day_numbers(t)
    s0 = day_number(split.train_start)
    train = (day >= s0) & (day < s0 + split.train_days)
    t0 = day_number(split.test_start)
    gap = (day >= s0 + split.train_days) & (day < t0)
    in_test = (day >= t0) & (day < t0 + split.test_days)
    # First day (from the training start on) on which each card had a fraud.
    _, codes = np.unique(card, return_inverse=True)
    codes = codes.reshape(-1)
    first = np.full(int(codes.max()) + 1 if len(codes) else 0, np.iinfo(np.int64).max)
    counted = fraud & (day >= s0)
    np.minimum.at(first, codes[counted], day[counted])
    known = first[codes] <= day - split.delay_days - 1
    removed = in_test & known
    return SplitRows(train=train, gap=gap, test=in_test & ~known, removed=removed, day=day)
