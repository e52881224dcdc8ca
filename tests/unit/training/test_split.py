"""The delay-aware split: periods, the gap, the handbook's removal of known compromised cards."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from streamscore.libs.training.split import (
    US_PER_DAY,
    DelaySplit,
    day_number,
    split_rows,
    warmup_days,
)

START = date(2026, 2, 2)
S0 = day_number(START)


def _at(day: int, hour: int = 12) -> int:
    return (S0 + day) * US_PER_DAY + hour * 3_600_000_000


def test_periods_follow_the_handbook() -> None:
    sp = DelaySplit(START)
    assert (sp.train_end - sp.train_start).days == 7
    assert (sp.test_start - sp.train_end).days == 7
    assert (sp.test_end - sp.test_start).days == 7
    assert DelaySplit.ending(date(2026, 2, 22)) == sp
    assert sp.describe() == {
        "train": "2026-02-02..2026-02-08",
        "gap": "2026-02-09..2026-02-15",
        "test": "2026-02-16..2026-02-22",
        "train_days": 7,
        "delay_days": 7,
        "test_days": 7,
    }
    assert DelaySplit(START, delay_days=0).describe()["gap"] == "none"
    with pytest.raises(ValueError, match=">= 1"):
        DelaySplit(START, train_days=0)
    with pytest.raises(ValueError, match=">= 0"):
        DelaySplit(START, delay_days=-1)


def test_rows_by_period_and_day_edges() -> None:
    # One row at 00:00:00 and one at 23:59:59.999999 of days -1, 0, 6, 7, 13, 14, 20, 21.
    days = [-1, 0, 6, 7, 13, 14, 20, 21]
    t = np.array([x for d in days for x in ((S0 + d) * US_PER_DAY, (S0 + d + 1) * US_PER_DAY - 1)])
    card = np.array([f"c{i}" for i in range(len(t))])
    r = split_rows(DelaySplit(START), t, card, np.zeros(len(t), bool))
    per_day = {
        d: (bool(r.train[2 * i]), bool(r.gap[2 * i]), bool(r.test[2 * i]))
        for i, d in enumerate(days)
    }
    assert per_day == {
        -1: (False, False, False),
        0: (True, False, False),
        6: (True, False, False),
        7: (False, True, False),
        13: (False, True, False),
        14: (False, False, True),
        20: (False, False, True),
        21: (False, False, False),
    }
    assert (r.train[0::2] == r.train[1::2]).all() and (r.test[0::2] == r.test[1::2]).all()
    assert not r.removed.any()


def test_known_compromised_cards_leave_the_test_days() -> None:
    # Test day T (14..20) removes a card with a fraud on a day in [0, T - 8].
    rows = [
        # (day, card, fraud)
        (3, "train_fraud", True),  # known from day 11 on: every test day
        (20, "train_fraud", False),
        (14, "gap_fraud", False),  # fraud on day 8: known from day 16 on
        (8, "gap_fraud", True),
        (16, "gap_fraud", False),
        (15, "gap_fraud", False),
        (-3, "old_fraud", True),  # before the training start: does not count (handbook)
        (14, "old_fraud", False),
        (14, "test_fraud", True),  # a fraud in the test days is what the model must catch
        (20, "test_fraud", True),  # its day-14 fraud is known only from day 22
        (13, "late_gap", True),  # day 13 is known from day 21: after the test days
        (20, "late_gap", False),
    ]
    t = np.array([_at(d) for d, _, _ in rows])
    card = np.array([c for _, c, _ in rows])
    fraud = np.array([f for _, _, f in rows])
    r = split_rows(DelaySplit(START), t, card, fraud)
    removed = {(d, c) for (d, c, _), x in zip(rows, r.removed, strict=True) if x}
    kept = {(d, c) for (d, c, _), x in zip(rows, r.test, strict=True) if x}
    assert removed == {(20, "train_fraud"), (16, "gap_fraud")}
    assert kept == {
        (14, "gap_fraud"),
        (15, "gap_fraud"),
        (14, "old_fraud"),
        (14, "test_fraud"),
        (20, "test_fraud"),
        (20, "late_gap"),
    }


def test_delay_zero_knows_yesterday() -> None:
    sp = DelaySplit(START, train_days=1, delay_days=0, test_days=2)
    t = np.array([_at(0), _at(1), _at(2)])
    r = split_rows(sp, t, np.array(["a", "a", "a"]), np.array([False, True, False]))
    # The day-1 fraud is known from day 2 on (its own day's end).
    assert r.test.tolist() == [False, True, False]
    assert r.removed.tolist() == [False, False, True]


def test_lengths_must_agree() -> None:
    with pytest.raises(ValueError, match="lengths differ"):
        split_rows(DelaySplit(START), np.array([1]), np.array(["a", "b"]), np.array([True]))


def test_warmup_covers_the_longest_window() -> None:
    assert warmup_days("transactions") == 37  # terminal risk: 30 days, 7 days back
