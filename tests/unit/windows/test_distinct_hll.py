"""Distinct counts: exact below the threshold, HyperLogLog within its documented error beyond."""

from __future__ import annotations

import random

import pytest

from streamscore.libs.windows import (
    DAY,
    HOUR,
    Distinct,
    EntityWindows,
    HyperLogLog,
    Window,
    WindowConfig,
    hash64,
)


@pytest.mark.parametrize(("n", "p"), [(10_000, 12), (30_000, 12), (100_000, 12), (20_000, 10)])
def test_hll_error_within_documented_bound(n: int, p: int) -> None:
    h = HyperLogLog(p)
    for i in range(n):
        h.add_hash(hash64(f"{p}-item-{i}"))
        if i % 3 == 0:
            h.add_hash(hash64(f"{p}-item-{i}"))  # repeats do not count
    # 3.5 standard errors: a seeded, deterministic check of the documented 1.04/sqrt(m).
    assert abs(h.estimate() - n) / n < 3.5 * h.relative_error


def test_hll_small_cardinalities_and_merge() -> None:
    a, b = HyperLogLog(), HyperLogLog()
    assert a.estimate() == 0.0
    for i in range(50):
        a.add_hash(hash64(i))
    for i in range(25, 80):
        b.add_hash(hash64(i))
    a.merge(b)
    assert abs(a.estimate() - 80) < 3
    with pytest.raises(ValueError, match="merge"):
        a.merge(HyperLogLog(10))
    with pytest.raises(ValueError, match="precision"):
        HyperLogLog(3)


def test_distinct_exact_until_threshold_then_sketch() -> None:
    d = Distinct(threshold=64)
    for i in range(64):
        d.add_hash(hash64(i))
        d.add_hash(hash64(i))
    assert d.is_exact and d.count() == 64
    d.add_hash(hash64(64))
    assert not d.is_exact and abs(d.count() - 65) <= 2
    e = Distinct.from_bytes(d.to_bytes())
    assert e.count() == d.count() and not e.is_exact


def test_windowed_distinct_switches_to_hll_and_stays_within_bound() -> None:
    cfg = WindowConfig(
        tile_us=HOUR, windows=(Window(DAY), Window(7 * DAY)), distinct=True, dedupe=False
    )
    e = EntityWindows(cfg)
    rng = random.Random(3)
    keys: list[tuple[int, str]] = []
    t = 30 * DAY
    for _ in range(40_000):
        t += rng.randrange(0, 30_000_000)
        k = f"ip-{rng.randrange(30_000)}"
        e.add(t, 0.0, key=k)
        keys.append((t, k))
    for w in (Window(DAY), Window(7 * DAY)):
        truth = len({k for tk, k in keys if t - w.length_us < tk <= t})
        d = e.read_distinct(t, w)
        assert not d.is_exact
        assert abs(d.count() - truth) / truth < 3.5 * HyperLogLog(cfg.hll_p).relative_error
    small = EntityWindows(cfg)
    for i in range(100):
        small.add(DAY + i, 0.0, key=f"k{i % 10}")
    got = small.read_distinct(DAY + 100, Window(DAY))
    assert got.is_exact and got.count() == 10
