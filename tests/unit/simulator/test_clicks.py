"""The clickstream simulator: reproducibility, contracts, sessions, bots, conversions, drift."""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from datetime import timedelta

import pytest

from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.events import Click
from streamscore.libs.contracts.labels import Conversion
from streamscore.libs.simulator.clicks import (
    BROWSER_AGENTS,
    CLICK_TOPIC,
    CONVERSION_TOPIC,
    CRAWLER_AGENTS,
    ClickStreamConfig,
    click_records,
)
from streamscore.libs.simulator.drift import DriftSpec
from streamscore.libs.simulator.records import DEFAULT_START, SimRecord
from tests.unit.simulator.stream_checks import head_span, peak_bytes, record_bytes

SMALL = ClickStreamConfig(n_users=500, n_bot_users=20)
MEDIUM = ClickStreamConfig(n_users=5_000)
TINY = ClickStreamConfig(n_users=200, n_bot_users=10)


@pytest.fixture(scope="module")
def medium() -> list[SimRecord]:
    """5,000 users over 2 days: about 4,000 human sessions."""
    return list(click_records(MEDIUM, seed=2026, days=2))


def _sessions(records: list[SimRecord]) -> dict[str, list[tuple[Click, dict[str, object]]]]:
    out: dict[str, list[tuple[Click, dict[str, object]]]] = defaultdict(list)
    for r in records:
        if isinstance(r.event, Click):
            out[r.event.session_id].append((r.event, r.truth))
    return out


def _gaps(clicks: list[tuple[Click, dict[str, object]]]) -> list[float]:
    return [
        (b.event_time - a.event_time).total_seconds()
        for (a, _), (b, _) in itertools.pairwise(clicks)
    ]


def test_same_seed_same_bytes_other_seed_differs() -> None:
    a = record_bytes(list(click_records(SMALL, seed=1, days=3)))
    assert a == record_bytes(list(click_records(SMALL, seed=1, days=3)))
    assert a != record_bytes(list(click_records(SMALL, seed=2, days=3)))


def test_every_record_is_contract_valid_and_time_ordered() -> None:
    records = list(click_records(SMALL, seed=5, days=3))
    times = [r.time for r in records]
    assert times == sorted(times)
    for r in records:
        assert decode(type(r.event), encode(r.event), max_bytes=1 << 20) == r.event
    assert {type(r.event) for r in records} == {Click, Conversion}
    assert {r.topic for r in records} == {CLICK_TOPIC, CONVERSION_TOPIC}
    ids = [r.event.event_id for r in records]
    assert len(ids) == len(set(ids))


def test_concurrent_sessions_interleave(medium: list[SimRecord]) -> None:
    clicks = [r.event for r in medium if isinstance(r.event, Click)]
    switches = sum(a.session_id != b.session_id for a, b in itertools.pairwise(clicks))
    # Far more switches than sessions: sessions overlap and their clicks are merged by time.
    assert switches > 1.5 * len({c.session_id for c in clicks})


def test_one_label_per_human_session_on_its_last_click(medium: list[SimRecord]) -> None:
    sessions = _sessions(medium)
    seen: set[str] = set()
    labelled: dict[str, Conversion] = {}
    for r in medium:
        if isinstance(r.event, Click):
            seen.add(r.event.event_id)
        elif isinstance(r.event, Conversion):
            assert r.event.target_event_id in seen  # an earlier event of the same run
            assert r.event.session_id not in labelled
            labelled[r.event.session_id] = r.event
    humans = {s for s, clicks in sessions.items() if not clicks[0][1]["bot"]}
    assert set(labelled) == humans
    for sid, label in labelled.items():
        clicks = sessions[sid]
        last = clicks[-1][0]
        assert label.target_event_id == last.event_id
        assert label.event_time > last.event_time
        assert label.user_id == last.user_id
        purchase = [c for c, _ in clicks if c.action == "purchase"]
        if purchase:
            assert label.converted and label.value == purchase[0].value
            assert [c.action for c, _ in clicks[-2:]] == ["add_to_cart", "purchase"]
        assert label.converted == (label.value is not None)
    bought = sum(any(c.action == "purchase" for c, _ in sessions[s]) for s in humans)
    assert bought / len(humans) == pytest.approx(MEDIUM.conversion_share, abs=0.012)
    late = sum(lab.converted for lab in labelled.values()) - bought
    assert late / (len(humans) - bought) == pytest.approx(MEDIUM.late_conversion_share, abs=0.008)


def test_label_delays_follow_the_configured_distribution(medium: list[SimRecord]) -> None:
    times = {r.event.event_id: r.time for r in medium if isinstance(r.event, Click)}
    delays_h = [
        (r.time - times[r.event.target_event_id]).total_seconds() / 3600
        for r in medium
        if isinstance(r.event, Conversion) and r.event.target_event_id is not None
    ]
    assert len(delays_h) > 3_000
    assert statistics.median(delays_h) == pytest.approx(MEDIUM.label_delay_median_h, rel=0.2)
    assert min(delays_h) >= MEDIUM.label_delay_min_h - 1e-6
    assert max(delays_h) <= MEDIUM.label_delay_max_h + 1e-6


def test_humans_and_bots_have_their_own_rhythm(medium: list[SimRecord]) -> None:
    sessions = _sessions(medium)
    bots = [c for c in sessions.values() if c[0][1]["bot_type"] == "scripted"]
    humans = [c for c in sessions.values() if c[0][1]["bot_type"] == "none"]
    assert len(bots) / len(sessions) == pytest.approx(MEDIUM.bot_share, abs=0.01)
    bot_gaps = [g for c in bots for g in _gaps(c)]
    human_gaps = [g for c in humans for g in _gaps(c)]
    assert statistics.median(bot_gaps) == pytest.approx(MEDIUM.bot_gap_s, rel=0.05)
    assert statistics.pstdev(bot_gaps) < 0.1
    assert statistics.median(human_gaps) == pytest.approx(MEDIUM.human_gap_median_s, rel=0.15)
    lengths = [len(c) for c in humans]
    assert statistics.mean(lengths) == pytest.approx(MEDIUM.actions_per_session, rel=0.1)
    lo, hi = MEDIUM.bot_actions
    assert all(lo <= len(c) <= hi for c in bots)
    bot_clicks = [e for c in bots for e, _ in c]
    views = sum(e.action == "page_view" for e in bot_clicks) / len(bot_clicks)
    assert views == pytest.approx(MEDIUM.bot_page_view_share, abs=0.02)
    assert all(e.user_agent in CRAWLER_AGENTS for e in bot_clicks)
    assert all(e.user_agent in BROWSER_AGENTS for c in humans for e, _ in c)


def test_new_bot_type_from_its_start_day_and_not_before() -> None:
    drift = DriftSpec("clickstream", "new_bot_type", start_day=2, params={"share": 0.1})
    base = list(click_records(MEDIUM, seed=11, days=3))
    drifted = list(click_records(MEDIUM, seed=11, days=3, drifts=[drift]))
    cut = DEFAULT_START + timedelta(days=2)
    assert record_bytes([r for r in base if r.time < cut]) == record_bytes(
        [r for r in drifted if r.time < cut]
    )
    assert not any(r.truth.get("bot_type") == "jittered" for r in base)
    sessions = _sessions([r for r in drifted if r.time >= cut])
    jittered = [c for c in sessions.values() if c[0][1]["bot_type"] == "jittered"]
    assert all(e.event_time >= cut for c in jittered for e, _ in c)
    assert all(t["bot"] for c in jittered for _, t in c)
    assert len(jittered) / len(sessions) == pytest.approx(0.1, abs=0.015)
    # Human-like timing and browsers: what makes them new.
    gaps = [g for c in jittered for g in _gaps(c)]
    assert statistics.median(gaps) == pytest.approx(MEDIUM.human_gap_median_s, rel=0.15)
    assert all(e.user_agent in BROWSER_AGENTS for c in jittered for e, _ in c)


def test_records_are_generated_lazily() -> None:
    # A 365-day run yields its first records from the first day, not after building the year.
    assert head_span(click_records(ClickStreamConfig(), seed=1, days=365)) < timedelta(days=1)


def test_memory_does_not_grow_with_days() -> None:
    # Warm up first: imports and caches allocated on first use are not the stream's.
    peak_bytes(click_records(TINY, seed=3, days=1))
    short = peak_bytes(click_records(TINY, seed=3, days=4))
    long = peak_bytes(click_records(TINY, seed=3, days=16))
    assert long < 1.5 * short
