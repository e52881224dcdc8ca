"""Event-time plausibility bounds (libs/features/event_time.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streamscore.libs.config import Settings
from streamscore.libs.features.compute import FeatureInputError
from streamscore.libs.features.event_time import EARLIEST, EventTimeBounds

NOW = datetime(2026, 6, 1, tzinfo=UTC).timestamp()


def _us(seconds_from_now: float) -> int:
    return int((NOW + seconds_from_now) * 1_000_000)


def _rule(bounds: EventTimeBounds, t_us: int) -> str | None:
    try:
        bounds.check(t_us, NOW)
    except FeatureInputError as err:
        assert err.field == "event_time"
        return err.reason
    return None


def test_ahead_bound_is_inclusive_and_counts_from_the_clock() -> None:
    b = EventTimeBounds(max_ahead_s=600)
    assert _rule(b, _us(600)) is None
    assert _rule(b, _us(601)) == "event_time_future"
    assert _rule(b, _us(-10 * 365 * 86_400)) is None  # old data: no age bound by default


def test_zero_turns_a_bound_off_but_never_the_floor() -> None:
    off = EventTimeBounds(max_ahead_s=0, max_age_s=0)
    assert _rule(off, _us(50 * 365 * 86_400)) is None
    floor = int(EARLIEST.timestamp() * 1_000_000)
    assert _rule(off, floor) is None
    assert _rule(off, floor - 1) == "event_time_past"
    assert _rule(off, -5) == "event_time_past"


def test_age_bound_when_set() -> None:
    b = EventTimeBounds(max_age_s=3600)
    assert _rule(b, _us(-3600)) is None
    assert _rule(b, _us(-3601)) == "event_time_past"


def test_default_is_a_day_ahead_and_settings_carry_both(monkeypatch: pytest.MonkeyPatch) -> None:
    assert EventTimeBounds() == EventTimeBounds(max_ahead_s=86_400.0, max_age_s=0.0)
    monkeypatch.setenv("STREAMSCORE_EVENT_TIME_MAX_AHEAD_S", "0")
    monkeypatch.setenv("STREAMSCORE_EVENT_TIME_MAX_AGE_S", "7200")
    s = Settings(kafka_bootstrap="127.0.0.1:1", redis_url="redis://127.0.0.1:1/0")
    assert EventTimeBounds.of(s) == EventTimeBounds(max_ahead_s=0.0, max_age_s=7200.0)
    monkeypatch.setenv("STREAMSCORE_EVENT_TIME_MAX_AHEAD_S", "-1")
    with pytest.raises(ValueError):
        Settings(kafka_bootstrap="127.0.0.1:1", redis_url="redis://127.0.0.1:1/0")
