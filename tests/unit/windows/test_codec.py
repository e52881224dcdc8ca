"""Serialisation round trip: state -> dict of bytes/ints (a Redis hash) -> identical reads."""

from __future__ import annotations

import random

import pytest

from streamscore.libs.windows import (
    DAY,
    HOUR,
    MINUTE,
    EntityWindows,
    Outcome,
    Window,
    WindowConfig,
    changes,
    from_fields,
    to_fields,
)

WINDOWS = (
    Window(DAY),
    Window(7 * DAY),
    Window(DAY, delay_us=7 * DAY),
    Window(DAY, mode="aligned"),
)


def _as_redis(fields: dict[str, bytes | int]) -> dict[bytes, bytes]:
    """What HGETALL gives back: names and values as bytes (ints as their decimal text)."""
    return {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}


def _snapshot(e: EntityWindows, t: int) -> list[object]:
    out: list[object] = [e.watermark, e.late_events, e.duplicates, e.last_at(t), e.since_last(t)]
    for w in WINDOWS:
        m = e.read(t, w)
        out += [m.count, m.sum, m.mean, m.m2, m.min, m.max]
        d = e.read_distinct(t, w)
        out += [d.count(), d.is_exact]
    return out


@pytest.mark.parametrize("many_keys", [False, True])
def test_round_trip_gives_identical_reads_and_continues_identically(many_keys: bool) -> None:
    cfg = WindowConfig(
        tile_us=HOUR,
        windows=WINDOWS,
        grace_us=30 * MINUTE,
        distinct=True,
        distinct_threshold=16 if many_keys else 64,
    )
    rng = random.Random(11)
    events = []
    t = 10 * DAY
    for i in range(3000):
        t += rng.randrange(0, 20 * MINUTE)
        te = t - rng.randrange(0, HOUR) if rng.random() < 0.2 else t
        events.append(
            (te, rng.uniform(-5, 5), f"k{rng.randrange(500 if many_keys else 20)}", f"e{i}")
        )
    a = EntityWindows(cfg)
    for te, x, k, eid in events[:2000]:
        a.add(te, x, key=k, event_id=eid)
    b = from_fields(cfg, _as_redis(to_fields(a)))
    assert a.watermark is not None
    assert _snapshot(a, a.watermark) == _snapshot(b, a.watermark)
    for te, x, k, eid in events[1990:]:  # overlap: the replayed ids are duplicates in both
        assert a.add(te, x, key=k, event_id=eid) == b.add(te, x, key=k, event_id=eid)
    for e in (a, b):
        assert e.add(*events[5][:2], event_id=events[5][3]) is Outcome.LATE_DROPPED
    assert _snapshot(a, a.watermark) == _snapshot(b, a.watermark)
    assert to_fields(a)["last"] == to_fields(b)["last"]


def test_empty_state_round_trips_and_foreign_state_is_refused() -> None:
    cfg = WindowConfig(tile_us=HOUR, windows=(Window(DAY),))
    e = from_fields(cfg, to_fields(EntityWindows(cfg)))
    assert e.watermark is None and e.read(DAY, Window(DAY)).count == 0
    other = WindowConfig(tile_us=MINUTE, windows=(Window(DAY),))
    with pytest.raises(ValueError, match="tile size"):
        from_fields(other, to_fields(e))


def test_state_is_compact() -> None:
    """A customer with ~5 transactions a day over 30 days: a few KiB per entity."""
    cfg = WindowConfig(tile_us=HOUR, windows=(Window(DAY), Window(7 * DAY), Window(30 * DAY)))
    e = EntityWindows(cfg)
    rng = random.Random(2)
    for i in range(150):
        e.add(40 * DAY + rng.randrange(30 * DAY), rng.uniform(1, 300), event_id=f"tx-{i:08d}")
    size = sum(len(v) if isinstance(v, bytes) else 8 for v in to_fields(e).values())
    assert size < 12_000


def test_incremental_changes_keep_a_redis_hash_equal_to_the_state() -> None:
    """HSET the changed fields and HDEL the evicted ones after every event: the hash always
    decodes to the same reads, and it stays bounded (about one field per retained tile)."""
    cfg = WindowConfig(tile_us=HOUR, windows=WINDOWS, grace_us=30 * MINUTE, distinct=True)
    e = EntityWindows(cfg)
    redis_hash: dict[str, bytes | int] = {}
    rng = random.Random(4)
    t = 10 * DAY
    max_fields = 0
    for i in range(4000):
        t += rng.randrange(0, 40 * MINUTE)
        te = t - rng.randrange(0, 2 * HOUR) if rng.random() < 0.2 else t
        e.add(te, rng.uniform(0, 9), key=f"k{rng.randrange(30)}", event_id=f"e{i % 3900}")
        put, delete = changes(e)
        redis_hash.update(put)
        for name in delete:
            redis_hash.pop(name, None)
        max_fields = max(max_fields, len(redis_hash))
        if i % 500 == 499:
            assert e.watermark is not None
            b = from_fields(cfg, _as_redis(redis_hash))
            assert _snapshot(b, e.watermark) == _snapshot(e, e.watermark)
            assert redis_hash == to_fields(e)
    assert max_fields <= cfg.slots + 7
