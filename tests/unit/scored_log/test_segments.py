"""Where segments end: size, age, cut points; the same offsets always seal at the same place."""

from __future__ import annotations

import pytest

from streamscore.libs.scored_log.segments import PartitionSegments, RollPolicy, Segment


def _ranges(segments: list[Segment[int]]) -> list[tuple[int, int]]:
    return [(s.first_offset, s.last_offset) for s in segments]


def _feed(p: PartitionSegments[int], offsets: range, *, tick: float = 0.01) -> list[Segment[int]]:
    """Add ``offsets`` one by one (a clock moving ``tick`` each), checking age after each."""
    sealed: list[Segment[int]] = []
    for i, o in enumerate(offsets):
        s = p.add(o, o, nbytes=10, now=i * tick)
        if s is None:
            s = p.due(now=i * tick)
        if s is not None:
            sealed.append(s)
    return sealed


def test_size_limits_seal_deterministically() -> None:
    policy = RollPolicy(max_rows=100, max_bytes=10_000, max_age_s=1e9)
    a = _feed(PartitionSegments(0, policy), range(0, 350))
    b = _feed(PartitionSegments(0, policy), range(0, 350), tick=0.5)
    assert _ranges(a) == _ranges(b) == [(0, 99), (100, 199), (200, 299)]
    by_bytes = _feed(PartitionSegments(0, RollPolicy(max_bytes=250, max_age_s=1e9)), range(60))
    assert _ranges(by_bytes) == [(0, 24), (25, 49)]


def test_cut_points_reproduce_segments_sealed_by_age() -> None:
    # First life: sealed by age at irregular places.
    policy = RollPolicy(max_rows=1000, max_age_s=0.5)
    first = PartitionSegments[int](0, policy)
    sealed: list[Segment[int]] = []
    clock = 0.0
    for o in range(200):
        clock += 0.3 if o % 17 == 0 else 0.001
        for s in (first.add(o, o, nbytes=1, now=clock), first.due(clock)):
            if s is not None:
                sealed.append(s)
    assert len(sealed) > 3
    # Second life from offset 0 with the last offsets as cuts, on another clock.
    again = PartitionSegments[int](0, policy, cuts=[s.last_offset for s in sealed])
    assert _ranges(_feed(again, range(200), tick=0.0)) == _ranges(sealed)
    assert [s.rows for s in sealed] == [list(range(a, b + 1)) for a, b in _ranges(sealed)]


def test_age_is_stretched_while_a_cut_is_pending() -> None:
    policy = RollPolicy(max_age_s=1.0, recovery_max_age_s=30.0)
    p = PartitionSegments[int](0, policy, cuts=[5])
    p.add(0, 0, nbytes=1, now=0.0)
    assert p.due(now=10.0) is None
    sealed = p.add(5, 5, nbytes=1, now=10.0)
    assert sealed is not None and (sealed.first_offset, sealed.last_offset) == (0, 5)
    p.add(6, 6, nbytes=1, now=10.0)
    assert p.due(now=11.0) is not None  # no cut left: the normal limit again


def test_cuts_behind_the_first_offset_are_dropped() -> None:
    p = PartitionSegments[int](0, RollPolicy(max_age_s=1.0), cuts=[3, 9, 20])
    assert p.add(10, 10, nbytes=1, now=0.0) is None  # 3 and 9: records gone (retention)
    assert p.pending_cuts == [20]
    assert p.due(now=5.0) is None  # still waiting for 20
    sealed = p.add(25, 25, nbytes=1, now=6.0)  # offsets may jump (control records)
    assert sealed is not None and sealed.last_offset == 25 and p.pending_cuts == []


def test_dead_letters_advance_offsets_without_rows() -> None:
    p = PartitionSegments[str](4, RollPolicy(max_rows=2, max_age_s=1.0))
    assert p.add(0, None, nbytes=5, now=0.0) is None
    assert p.add(1, "row", nbytes=5, now=0.0) is None
    assert p.add(2, None, nbytes=5, now=0.0) is None
    sealed = p.due(now=1.0)
    assert sealed is not None
    assert (sealed.partition, sealed.first_offset, sealed.last_offset) == (4, 0, 2)
    assert sealed.rows == ["row"] and sealed.nbytes == 15
    assert p.seal() is None and p.due(now=9.0) is None


def test_policy_refuses_non_positive_limits() -> None:
    with pytest.raises(ValueError, match="positive"):
        RollPolicy(max_rows=0)
    with pytest.raises(ValueError, match="positive"):
        RollPolicy(max_age_s=0.0)
