"""Mergeable moments: Welford per tile, Chan merge across tiles, numerically stable."""

from __future__ import annotations

import math
import random

import numpy as np

from streamscore.libs.windows import HOUR, MINUTE, EntityWindows, Moments, Window, WindowConfig


def test_random_partitions_merge_to_the_same_moments() -> None:
    rng = random.Random(8)
    xs = [rng.uniform(-1e3, 1e3) for _ in range(500)]
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(xs)), 7))
        parts = [xs[a:b] for a, b in zip([0, *cuts], [*cuts, len(xs)], strict=True)]
        m = Moments()
        for p in parts:
            m.merge(Moments.of(p))
        assert m.count == len(xs)
        assert math.isclose(m.mean or 0, float(np.mean(xs)), rel_tol=1e-12)
        assert math.isclose(m.var or 0, float(np.var(xs, ddof=1)), rel_tol=1e-10)
        assert (m.min, m.max) == (min(xs), max(xs))


def test_variance_is_stable_under_a_large_offset() -> None:
    """1e9 + N(0, 0.01): the naive sum-of-squares formula loses every digit here."""
    rng = np.random.default_rng(4)
    xs = 1e9 + rng.normal(0.0, 0.01, 5000)
    e = EntityWindows(WindowConfig(tile_us=MINUTE, windows=(Window(HOUR),), keep_events=True))
    ts = np.sort(rng.integers(0, HOUR, xs.size))
    for t, x in zip(ts.tolist(), xs.tolist(), strict=True):
        e.add(HOUR + t, x)
    m = e.read(2 * HOUR - 1, Window(HOUR))
    assert m.count == xs.size
    assert m.std is not None
    assert math.isclose(m.std, float(np.std(xs, ddof=1)), rel_tol=1e-6)


def test_single_value_has_no_sample_variance() -> None:
    m = Moments.of([3.0])
    assert m.var is None and m.var_pop == 0.0 and m.std_pop == 0.0
    assert m.get("std") is None and m.get("std", empty="zero") == 0.0
