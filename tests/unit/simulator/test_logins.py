"""The logins simulator: reproducibility, contracts, attacks, label delays, stuffing drift."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import timedelta

import numpy as np
import pytest

from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.events import Login
from streamscore.libs.contracts.labels import AccountTakeover
from streamscore.libs.simulator.drift import DriftSpec
from streamscore.libs.simulator.logins import (
    ATTACK_COUNTRIES,
    LOGIN_LABEL_TOPIC,
    LOGIN_TOPIC,
    LoginStreamConfig,
    login_records,
)
from streamscore.libs.simulator.records import DEFAULT_START, SimRecord
from tests.unit.simulator.stream_checks import head_span, peak_bytes, record_bytes

SMALL = LoginStreamConfig(n_accounts=500, stuffing_accounts=(20, 60))


@pytest.fixture(scope="module")
def default_week() -> list[SimRecord]:
    """The default scenario (20,000 accounts) over 5 days."""
    return list(login_records(LoginStreamConfig(), seed=2026, days=5))


def _logins(records: list[SimRecord]) -> list[tuple[Login, dict[str, object]]]:
    return [(r.event, r.truth) for r in records if isinstance(r.event, Login)]


def test_same_seed_same_bytes_other_seed_differs() -> None:
    a = record_bytes(list(login_records(SMALL, seed=1, days=4)))
    assert a == record_bytes(list(login_records(SMALL, seed=1, days=4)))
    assert a != record_bytes(list(login_records(SMALL, seed=2, days=4)))


def test_every_record_is_contract_valid_and_time_ordered() -> None:
    records = list(login_records(SMALL, seed=5, days=4))
    times = [r.time for r in records]
    assert times == sorted(times)
    for r in records:
        assert decode(type(r.event), encode(r.event), max_bytes=1 << 20) == r.event
    assert {type(r.event) for r in records} == {Login, AccountTakeover}
    assert {r.topic for r in records} == {LOGIN_TOPIC, LOGIN_LABEL_TOPIC}
    ids = [r.event.event_id for r in records]
    assert len(ids) == len(set(ids))


def test_labels_target_earlier_successful_logins(default_week: list[SimRecord]) -> None:
    seen: dict[str, tuple[Login, dict[str, object]]] = {}
    labels = 0
    for r in default_week:
        if isinstance(r.event, Login):
            seen[r.event.event_id] = (r.event, r.truth)
            continue
        assert isinstance(r.event, AccountTakeover)
        labels += 1
        assert r.event.target_event_id in seen
        target, truth = seen[r.event.target_event_id]
        assert target.event_time < r.event.event_time
        assert target.success and target.account_id == r.event.account_id
        # Confirmed labels are takeovers; cleared ones are benign logins reported by mistake.
        assert truth["takeover"] is r.event.confirmed
    assert labels > 20


def test_attacks_have_the_configured_shapes(default_week: list[SimRecord]) -> None:
    cfg = LoginStreamConfig()
    logins = _logins(default_week)
    benign = [e for e, t in logins if t["attack"] == "none"]
    usual: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for e in benign:
        usual[e.account_id].add((e.device_id, e.ip, e.country))
    # Benign traffic: about logins_per_day per account per day, a few failed passwords.
    assert len(benign) / (cfg.n_accounts * 5) == pytest.approx(cfg.logins_per_day, rel=0.05)
    failed = sum(not e.success for e in benign) / len(benign)
    assert failed == pytest.approx(cfg.failed_password_share, rel=0.1)
    # Account takeovers: exactly ato_per_day a day, each a burst of failures then a success
    # from a device, IP and country the account never used.
    ato = [(e, t) for e, t in logins if t["attack"] == "ato"]
    successes = [e for e, t in ato if t["takeover"]]
    assert len(successes) == cfg.ato_per_day * 5
    for e in successes:
        devices = {u[0] for u in usual[e.account_id]}
        ips = {u[1] for u in usual[e.account_id]}
        homes = {u[2] for u in usual[e.account_id]}
        assert e.device_id not in devices and e.ip not in ips and e.country not in homes
        assert e.country in ATTACK_COUNTRIES
        burst = [a for a, _ in ato if a.account_id == e.account_id and not a.success]
        burst = [
            a for a in burst if timedelta(0) < e.event_time - a.event_time < timedelta(hours=1)
        ]
        assert cfg.ato_failures[0] <= len(burst)
    # Credential stuffing: one IP, many accounts within the window, a few successes.
    by_ip: dict[str, list[Login]] = defaultdict(list)
    for e, t in logins:
        if t["attack"] == "stuffing":
            by_ip[e.ip].append(e)
    assert len(by_ip) == cfg.stuffing_per_day * 5
    for attempts in by_ip.values():
        lo, hi = cfg.stuffing_accounts
        assert lo <= len({a.account_id for a in attempts}) == len(attempts) <= hi
        span = max(a.event_time for a in attempts) - min(a.event_time for a in attempts)
        assert span <= timedelta(seconds=cfg.stuffing_window_s)
    stuffing = [e for v in by_ip.values() for e in v]
    share = sum(e.success for e in stuffing) / len(stuffing)
    assert share == pytest.approx(cfg.stuffing_success_share, abs=0.015)


def test_label_delays_follow_the_configured_distribution() -> None:
    cfg = LoginStreamConfig(
        n_accounts=3_000, logins_per_day=0.3, ato_per_day=300, stuffing_per_day=0
    )
    times: dict[str, float] = {}
    delays_h: list[float] = []
    confirmed = 0
    for r in login_records(cfg, seed=7, days=10):
        t = (r.time - DEFAULT_START).total_seconds()
        if isinstance(r.event, Login):
            times[r.event.event_id] = t
        elif isinstance(r.event, AccountTakeover) and r.event.confirmed:
            assert r.event.target_event_id is not None
            delays_h.append((t - times[r.event.target_event_id]) / 3600)
            confirmed += 1
    assert len(delays_h) > 2_000
    assert statistics.median(delays_h) == pytest.approx(cfg.label_delay_median_h, rel=0.2)
    assert min(delays_h) >= cfg.label_delay_min_h - 1e-6
    assert max(delays_h) <= cfg.label_delay_max_h + 1e-6
    assert confirmed / (cfg.ato_per_day * 10) == pytest.approx(cfg.confirm_share, abs=0.03)
    # The log-normal spread: the middle half spans exp(±0.674 sigma) around the median.
    q1, q3 = np.percentile(delays_h, [25, 75])
    assert q3 / q1 == pytest.approx(np.exp(2 * 0.674 * cfg.label_delay_sigma), rel=0.2)


def test_stuffing_wave_from_its_start_day_and_not_before() -> None:
    drift = DriftSpec("logins", "stuffing_wave", start_day=3, params={"per_day": 4})
    base = list(login_records(SMALL, seed=11, days=6))
    drifted = list(login_records(SMALL, seed=11, days=6, drifts=[drift]))
    cut = DEFAULT_START + timedelta(days=3)
    assert record_bytes([r for r in base if r.time < cut]) == record_bytes(
        [r for r in drifted if r.time < cut]
    )
    assert not any(e.country == "ZZ" for e, _ in _logins(base))
    wave = [(e, t) for e, t in _logins(drifted) if e.country == "ZZ"]
    assert wave and all(e.event_time >= cut for e, _ in wave)
    assert all(t["attack"] == "stuffing" and t["drift"] for _, t in wave)
    assert len({e.ip for e, _ in wave}) == 4 * 3
    days = Counter((e.event_time - DEFAULT_START).days for e, _ in wave)
    assert sorted(days) == [3, 4, 5]


def test_records_are_generated_lazily() -> None:
    # A 365-day run yields its first records from the first day, not after building the year.
    assert head_span(login_records(LoginStreamConfig(), seed=1, days=365)) < timedelta(days=1)


def test_memory_does_not_grow_with_days() -> None:
    # Warm up first: imports and caches allocated on first use are not the stream's.
    peak_bytes(login_records(SMALL, seed=3, days=1))
    short = peak_bytes(login_records(SMALL, seed=3, days=4))
    long = peak_bytes(login_records(SMALL, seed=3, days=16))
    assert long < 1.5 * short
