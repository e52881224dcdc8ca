"""Raw events as columns: the format-2 tile bytes, bit-identical edge reads, hot tiles."""

from __future__ import annotations

import random
import struct

import msgspec
import pytest

from streamscore.libs.windows import (
    DAY,
    HOUR,
    MINUTE,
    EntityWindows,
    Moments,
    Window,
    WindowConfig,
    from_fields,
    to_fields,
)
from streamscore.libs.windows.raw_events import TileEvents


def _events(n: int, seed: int) -> list[tuple[int, float, int | None]]:
    rng = random.Random(seed)
    return [
        (
            rng.randrange(0, HOUR),
            rng.uniform(-1e3, 1e6),
            None if rng.random() < 0.3 else rng.getrandbits(64),
        )
        for _ in range(n)
    ]


def test_bytes_are_those_format_2_wrote() -> None:
    """The columns' bytes equal what the codec packed event by event before (little-endian
    int64 / float64 / uint64, a flag byte), so states already in Redis load unchanged."""
    evs = _events(500, seed=1)
    col = TileEvents()
    for ev in evs:
        col.append(*ev)
    times, values, hashes, has_key = col.to_bytes()
    assert times == struct.pack(f"<{len(evs)}q", *(t for t, _, _ in evs))
    assert values == struct.pack(f"<{len(evs)}d", *(x for _, x, _ in evs))
    assert hashes == struct.pack(f"<{len(evs)}Q", *(h or 0 for _, _, h in evs))
    assert has_key == bytes(h is not None for _, _, h in evs)
    back = TileEvents.from_bytes(times, values, hashes, has_key)
    assert list(back) == evs and back == col


def test_columns_of_different_lengths_are_refused() -> None:
    col = TileEvents()
    col.append(1, 1.0, 5)
    times, values, hashes, _ = col.to_bytes()
    with pytest.raises(ValueError, match="different lengths"):
        TileEvents.from_bytes(times, values, hashes, b"")
    with pytest.raises(ValueError):
        TileEvents.from_bytes(times[:5], values, hashes, b"\x01")


@pytest.mark.parametrize("seed", range(5))
def test_edge_reads_equal_the_python_definition_bit_for_bit(seed: int) -> None:
    evs = _events(2000, seed=seed)
    col = TileEvents()
    for ev in evs:
        col.append(*ev)
    rng = random.Random(seed)
    for _ in range(50):
        lo = rng.randrange(-10, HOUR)
        hi = rng.randrange(lo, HOUR + 10)
        want = Moments.of(x for t, x, _ in evs if lo < t <= hi)
        got = col.moments_between(lo, hi)
        assert (got.count, got.sum, got.mean_, got.m2, got.min_, got.max_) == (
            want.count,
            want.sum,
            want.mean_,
            want.m2,
            want.min_,
            want.max_,
        )
        assert col.hashes_between(lo, hi) == [
            h for t, _, h in evs if lo < t <= hi and h is not None
        ]
        at_or_before = [t for t, _, _ in evs if t <= hi]
        assert col.latest_at_or_before(hi) == (max(at_or_before) if at_or_before else None)
    # Two edge tiles continue one Welford pass, as one list of their events did.
    a, b = TileEvents(), TileEvents()
    for ev in evs[:700]:
        a.append(*ev)
    for ev in evs[700:]:
        b.append(*ev)
    both = b.moments_between(100, HOUR - 100, into=a.moments_between(100, HOUR - 100))
    want = Moments.of(x for t, x, _ in evs if 100 < t <= HOUR - 100)
    assert (both.count, both.mean_, both.m2) == (want.count, want.mean_, want.m2)


def test_empty_tile_reads() -> None:
    col = TileEvents()
    assert col.moments_between(0, HOUR).count == 0
    assert col.hashes_between(0, HOUR) == []
    assert col.latest_at_or_before(HOUR) is None


def test_a_column_grows_after_reads() -> None:
    """The numpy views of a read are gone when it returns (a column with a view exported
    could not grow)."""
    col = TileEvents()
    for i in range(100):
        col.append(i, float(i), i)
        col.moments_between(-1, i)
        col.hashes_between(-1, i)
        col.latest_at_or_before(i)
    assert len(col) == 100


def test_format_2_states_with_sorted_ids_load_and_dedupe() -> None:
    """Format 2 wrote a tile's event ids sorted; they are now written in arrival order.
    Either loads, and a re-delivered id is still a duplicate."""
    cfg = WindowConfig(tile_us=HOUR, windows=(Window(DAY),), dedupe=True, grace_us=10 * MINUTE)
    e = EntityWindows(cfg)
    for i, eid in enumerate(("c", "a", "b")):
        e.add(DAY + i, 1.0, event_id=eid)
    fields = to_fields(e)
    item = msgspec.msgpack.decode(fields["t:24"])
    assert item[-1] == ["c", "a", "b"]
    item[-1] = sorted(item[-1])
    fields["t:24"] = msgspec.msgpack.encode(item)
    again = from_fields(cfg, fields)
    assert again.add(DAY + 1, 1.0, event_id="a").value == "duplicate"
    assert again.read(DAY + 2, Window(DAY)).count == 3
