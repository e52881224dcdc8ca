"""The engine against a brute-force reference on random event streams.

Streams are seeded and include out-of-order events within and beyond the grace
period, exact duplicates (re-delivered event ids) and a replayed batch.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from streamscore.libs.windows import (
    DAY,
    HOUR,
    MINUTE,
    EntityWindows,
    Outcome,
    Window,
    WindowConfig,
)


def close(a: float | None, b: float | None, rel: float = 1e-9, abs_: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


STATS = ("count", "sum", "mean", "var", "var_pop", "min", "max")


def _stream(seed: int, n: int, grace_us: int) -> list[tuple[int, float, str, str]]:
    """(time, value, key, event id): mostly increasing, some jitter, some very late, duplicates."""
    rng = random.Random(seed)
    t = 100 * DAY + rng.randrange(DAY)
    out: list[tuple[int, float, str, str]] = []
    for i in range(n):
        t += int(rng.expovariate(1.0) * 2 * HOUR)
        r = rng.random()
        if r < 0.15:  # out of order, within grace
            te = t - rng.randrange(grace_us + 1)
        elif r < 0.22:  # probably beyond grace
            te = t - grace_us - rng.randrange(1, 3 * DAY)
        else:
            te = t
        x = 1e6 + rng.gauss(0.0, 50.0) if seed % 2 else round(rng.uniform(0, 500), 2)
        out.append((te, x, f"k{rng.randrange(40)}", f"e{i}"))
        if out and rng.random() < 0.05:  # re-delivery of an earlier event
            out.append(out[-rng.randrange(1, min(len(out), 20) + 1)])
    mid = len(out) // 2
    return out[: mid + 40] + out[mid : mid + 30] + out[mid + 40 :]  # a batch delivered twice


WINDOWS = (
    Window(DAY),
    Window(7 * DAY),
    Window(30 * MINUTE),
    Window(DAY, delay_us=7 * DAY),
    Window(3 * DAY + 17 * MINUTE + 3, delay_us=2 * DAY + 1),
    Window(DAY, mode="aligned"),
    Window(7 * DAY, mode="aligned"),
    Window(2 * DAY, delay_us=7 * DAY, mode="aligned"),
    Window(DAY, mode="tumbling"),
    Window(6 * HOUR, delay_us=6 * HOUR, mode="tumbling"),
)


@pytest.mark.parametrize(
    ("seed", "tile_us", "grace_us"),
    [
        (1, HOUR, 10 * MINUTE),
        (2, HOUR, 0),
        (3, 30 * MINUTE, 6 * HOUR),
        (4, HOUR, 2 * HOUR),
        (5, 2 * HOUR, 30 * MINUTE),
        (6, 15 * MINUTE, HOUR),
    ],
)
def test_reads_equal_brute_force(reference: Any, seed: int, tile_us: int, grace_us: int) -> None:
    cfg = WindowConfig(tile_us=tile_us, windows=WINDOWS, grace_us=grace_us, distinct=True)
    eng = EntityWindows(cfg)
    ref = reference(tile_us, grace_us, cfg.horizon_us)
    rng = random.Random(seed + 100)
    outcomes: dict[Outcome, int] = {}
    nonempty = dict.fromkeys(WINDOWS, 0)
    for i, (t, x, key, eid) in enumerate(_stream(seed, 2000, grace_us)):
        expected_last = ref.last_at(t)
        n_after = ref.n_after(t)
        got_last = eng.last_at(t) if t >= (eng.watermark or t) - grace_us else None
        expected = ref.add(t, x, key, eid)
        out = eng.add(t, x, key=key, event_id=eid)
        outcomes[out] = outcomes.get(out, 0) + 1
        assert out.value == expected, (i, out)
        assert eng.late_events == ref.late
        if out is not Outcome.ACCEPTED:
            continue
        if n_after < cfg.last_k:  # LastSeen keeps the k most recent: exact in that range
            assert got_last == expected_last, i
        if i % 7:
            continue
        assert eng.watermark is not None
        oldest_read = eng.watermark - grace_us
        read_t = max(t, oldest_read) + rng.choice((0, 0, 1, tile_us // 2, 3 * HOUR))
        if i % 5 == 0:
            read_t = oldest_read  # the oldest read allowed
        for w in WINDOWS:
            m = eng.read(read_t, w)
            nonempty[w] += m.count > 1
            exp = ref.stats(read_t, w)
            for s in STATS:
                assert close(m.get(s), exp[s], rel=1e-7), (i, w, s, m.get(s), exp[s])
            assert eng.read_distinct(read_t, w).count() == ref.distinct(read_t, w), (i, w)
    assert min(nonempty.values()) > 20, nonempty
    assert outcomes[Outcome.DUPLICATE] > 30
    assert outcomes[Outcome.LATE_DROPPED] > 10


def test_replaying_a_batch_changes_nothing() -> None:
    """FAULTS F1: the same batch delivered twice leaves every aggregate unchanged."""
    grace = HOUR
    cfg = WindowConfig(tile_us=HOUR, windows=WINDOWS, grace_us=grace, distinct=True)
    events = _stream(7, 400, grace)[:400]
    once, twice = EntityWindows(cfg), EntityWindows(cfg)
    for batch_start in range(0, 400, 50):
        batch = events[batch_start : batch_start + 50]
        for e in (once, twice):
            for t, x, key, eid in batch:
                e.add(t, x, key=key, event_id=eid)
        for t, x, key, eid in batch:  # redelivered after a "crash"
            assert twice.add(t, x, key=key, event_id=eid) is not Outcome.ACCEPTED
    assert once.watermark is not None
    for w in WINDOWS:
        a, b = once.read(once.watermark, w), twice.read(once.watermark, w)
        assert (a.count, a.sum, a.mean, a.m2, a.min, a.max) == (
            b.count,
            b.sum,
            b.mean,
            b.m2,
            b.min,
            b.max,
        )
        assert (
            once.read_distinct(once.watermark, w).count()
            == twice.read_distinct(once.watermark, w).count()
        )
    assert twice.duplicates > 0


def test_in_grace_included_beyond_grace_counted_not_merged() -> None:
    """FAULTS F2/F3: in-grace events (e.g. ±5 min clock skew) count; later ones are reported."""
    cfg = WindowConfig(tile_us=HOUR, windows=(Window(DAY),), grace_us=5 * MINUTE)
    e = EntityWindows(cfg)
    t0 = 50 * DAY
    assert e.add(t0, 1.0) is Outcome.ACCEPTED
    assert e.add(t0 - 5 * MINUTE, 2.0) is Outcome.ACCEPTED  # exactly at the grace edge
    assert e.add(t0 + 4 * MINUTE, 3.0) is Outcome.ACCEPTED  # skewed ahead: moves the watermark
    assert e.add(t0 - 1 * MINUTE, 4.0) is Outcome.ACCEPTED  # watermark - grace exactly
    assert e.add(t0 - 1 * MINUTE - 1, 5.0) is Outcome.LATE_DROPPED
    assert e.late_events == 1
    assert e.read(t0 + 4 * MINUTE, Window(DAY)).sum == 10.0


def test_non_finite_values_are_invalid_and_not_merged() -> None:
    e = EntityWindows(WindowConfig(tile_us=HOUR, windows=(Window(DAY),)))
    assert e.add(DAY, float("nan")) is Outcome.INVALID
    assert e.add(DAY, float("inf")) is Outcome.INVALID
    assert e.watermark is None
    assert e.read(DAY, Window(DAY)).count == 0


def test_empty_windows_are_explicit() -> None:
    cfg = WindowConfig(
        tile_us=HOUR, windows=(Window(DAY), Window(DAY, delay_us=7 * DAY)), distinct=True
    )
    e = EntityWindows(cfg)
    e.add(10 * DAY, 5.0, key="a")
    m = e.read(10 * DAY, Window(DAY, delay_us=7 * DAY))
    assert m.count == 0
    for s in STATS:
        assert m.get(s) is None
        assert m.get(s, empty="zero") == 0.0
    assert e.read_distinct(10 * DAY, Window(DAY, delay_us=7 * DAY)).count() == 0
    assert e.since_last(10 * DAY - 1) is None
    assert e.since_last(10 * DAY + 5) == 5
    assert e.since_last(12 * DAY, max_age_us=DAY) is None
    assert EntityWindows(cfg).read(0, Window(DAY)).mean is None


def test_stale_reads_and_unknown_windows_are_refused() -> None:
    from streamscore.libs.windows import StaleReadError

    e = EntityWindows(WindowConfig(tile_us=HOUR, windows=(Window(DAY),), grace_us=MINUTE))
    e.add(10 * DAY, 1.0)
    with pytest.raises(StaleReadError):
        e.read(10 * DAY - 2 * MINUTE, Window(DAY))
    with pytest.raises(ValueError, match="further back"):
        e.read(10 * DAY, Window(2 * DAY))
    for mode in ("aligned", "tumbling"):
        with pytest.raises(ValueError, match="multiple"):
            WindowConfig(tile_us=HOUR, windows=(Window(90 * MINUTE, mode=mode),))
    with pytest.raises(ValueError, match="keep_events"):
        WindowConfig(tile_us=HOUR, windows=(Window(DAY),), keep_events=False)


def test_eviction_keeps_state_bounded_over_a_long_stream() -> None:
    cfg = WindowConfig(
        tile_us=HOUR,
        windows=(Window(DAY), Window(DAY, delay_us=2 * DAY)),
        grace_us=HOUR,
        distinct=True,
    )
    e = EntityWindows(cfg)
    rng = random.Random(5)
    t = 0
    max_tiles = 0
    for i in range(20_000):  # ~ 400 days at one event every ~30 minutes
        t += rng.randrange(1, HOUR)
        e.add(t, 1.0, key=f"k{i}", event_id=f"e{i}")
        max_tiles = max(max_tiles, len(e.events), len(e.distinct), len(e.ids))
    horizon_tiles = cfg.horizon_us // cfg.tile_us + 2
    assert max_tiles <= horizon_tiles
    assert min(e.events) >= e.oldest_tile
    assert len(e.moments.tile) == cfg.slots
    ref_count = sum(1 for k in e.events.values() for ev in k if t - DAY < ev[0] <= t)
    assert e.read(t, Window(DAY)).count == ref_count
