"""The sensor simulator: reproducibility, contracts, wear and failures, delays, recalibration."""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest

from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.events import SensorReading
from streamscore.libs.contracts.labels import Failure
from streamscore.libs.simulator.drift import DriftSpec
from streamscore.libs.simulator.records import DEFAULT_START, SimRecord
from streamscore.libs.simulator.sensors import (
    FAILURE_MODES,
    FAILURE_TOPIC,
    SENSOR_TOPIC,
    SensorStreamConfig,
    sensor_records,
)
from tests.unit.simulator.stream_checks import head_span, peak_bytes, record_bytes

#: Machines that wear out in days, so a short run sees many failures.
FAST = SensorStreamConfig(
    n_machines=20, interval_s=900.0, mean_healthy_days=2.0, degradation_days=(1.0, 2.0)
)
SMALL = SensorStreamConfig(n_machines=6, mean_healthy_days=1.0, degradation_days=(0.5, 1.0))


@pytest.fixture(scope="module")
def fast_month() -> list[SimRecord]:
    return list(sensor_records(FAST, seed=2026, days=30))


def _readings(records: list[SimRecord]) -> list[tuple[SensorReading, dict[str, object]]]:
    return [(r.event, r.truth) for r in records if isinstance(r.event, SensorReading)]


def test_same_seed_same_bytes_other_seed_differs() -> None:
    a = record_bytes(list(sensor_records(SMALL, seed=1, days=3)))
    assert a == record_bytes(list(sensor_records(SMALL, seed=1, days=3)))
    assert a != record_bytes(list(sensor_records(SMALL, seed=2, days=3)))


def test_every_record_is_contract_valid_and_time_ordered() -> None:
    records = list(sensor_records(SMALL, seed=5, days=5))
    times = [r.time for r in records]
    assert times == sorted(times)
    for r in records:
        assert decode(type(r.event), encode(r.event), max_bytes=1 << 20) == r.event
    assert {type(r.event) for r in records} == {SensorReading, Failure}
    assert {r.topic for r in records} == {SENSOR_TOPIC, FAILURE_TOPIC}
    ids = [r.event.event_id for r in records]
    assert len(ids) == len(set(ids))
    for e, _ in _readings(records):
        assert e.sensor_id == f"{e.machine_id}-{e.sensor_type}"


def test_sampling_missing_readings_and_glitches(fast_month: list[SimRecord]) -> None:
    readings = _readings(fast_month)
    n = len(readings)
    missing = sum(e.value is None for e, _ in readings) / n
    glitches = sum(bool(t["glitch"]) for _, t in readings) / n
    assert missing == pytest.approx(FAST.missing_share, rel=0.2)
    assert glitches == pytest.approx(FAST.glitch_share, rel=0.35)
    # Consecutive readings of a sensor are interval_s apart (± jitter) outside repairs.
    by_sensor: dict[str, list[datetime]] = defaultdict(list)
    for e, _ in readings:
        by_sensor[e.sensor_id].append(e.event_time)
    gaps = [(b - a).total_seconds() for ts in by_sensor.values() for a, b in itertools.pairwise(ts)]
    assert statistics.median(gaps) == pytest.approx(FAST.interval_s, abs=2 * FAST.jitter_s)
    assert min(gaps) >= FAST.interval_s - 2 * FAST.jitter_s


def test_machines_degrade_then_fail_and_restart(fast_month: list[SimRecord]) -> None:
    readings = _readings(fast_month)
    failures = [r.event for r in fast_month if isinstance(r.event, Failure)]
    # About n_machines * days / (healthy + degradation + repair) failures.
    cycle_days = FAST.mean_healthy_days + 1.5 + 14 / 24
    assert len(failures) == pytest.approx(20 * 30 / cycle_days, rel=0.25)
    assert {f.failure_mode for f in failures} == set(FAILURE_MODES)
    # Vibration and temperature rise with degradation (relative to each sensor's healthy mean).
    healthy: dict[str, list[float]] = defaultdict(list)
    worn: dict[str, list[float]] = defaultdict(list)
    for e, t in readings:
        if e.value is None or t["glitch"]:
            continue
        deg = t["degradation"]
        assert isinstance(deg, float) and 0.0 <= deg <= 1.0
        if deg == 0.0:
            healthy[e.sensor_id].append(e.value)
        elif deg > 0.9:
            worn[e.sensor_id].append(e.value)
    for kind in ("vibration", "temperature"):
        ratios = [
            statistics.mean(worn[s]) / statistics.mean(healthy[s])
            for s in worn
            if s.endswith(kind) and healthy[s]
        ]
        assert ratios and statistics.mean(ratios) > 1.1
    # Truth ``failure_within_h`` counts down to the failure in the label; no reading while
    # the machine is repaired; afterwards it restarts as new.
    by_machine: dict[str, list[tuple[SensorReading, dict[str, object]]]] = defaultdict(list)
    for e, t in readings:
        by_machine[e.machine_id].append((e, t))
    for f in failures:
        rows = by_machine[f.machine_id]
        before = [(e, t) for e, t in rows if e.event_time < f.failure_time]
        after = [(e, t) for e, t in rows if e.event_time > f.failure_time]
        e, t = before[-1]
        hours = (f.failure_time - e.event_time).total_seconds() / 3600
        assert t["failure_within_h"] == pytest.approx(hours, abs=1e-6)
        assert t["degradation"] > 0.9
        if after:
            e, t = after[0]
            gap = e.event_time - f.failure_time
            assert gap >= timedelta(hours=FAST.repair_hours[0])
            assert t["degradation"] < 0.5


def test_failure_labels_arrive_with_the_configured_delays() -> None:
    cfg = SensorStreamConfig(
        n_machines=200,
        interval_s=6 * 3600.0,
        mean_healthy_days=0.5,
        degradation_days=(0.2, 0.5),
        repair_hours=(1.0, 4.0),
    )
    delays_h = []
    for r in sensor_records(cfg, seed=3, days=30):
        if isinstance(r.event, Failure):
            assert r.event.target_event_id is None
            delays_h.append((r.event.event_time - r.event.failure_time).total_seconds() / 3600)
    assert len(delays_h) > 3_000
    assert statistics.median(delays_h) == pytest.approx(cfg.label_delay_median_h, rel=0.2)
    assert cfg.label_delay_min_h - 1e-6 <= min(delays_h)
    assert max(delays_h) <= cfg.label_delay_max_h + 1e-6
    q1, q3 = np.percentile(delays_h, [25, 75])
    assert q3 / q1 == pytest.approx(np.exp(2 * 0.674 * cfg.label_delay_sigma), rel=0.2)


def test_recalibration_shifts_one_sensor_of_one_machine_type_from_its_start_day() -> None:
    params = {"machine_type": "pump", "sensor_type": "temperature", "offset": 5.0}
    drift = DriftSpec("sensor_readings", "recalibration", start_day=2, params=params)
    base = list(sensor_records(SMALL, seed=9, days=4))
    drifted = list(sensor_records(SMALL, seed=9, days=4, drifts=[drift]))
    cut = DEFAULT_START + timedelta(days=2)
    assert len(base) == len(drifted)
    shifted = 0
    for a, b in zip(base, drifted, strict=True):
        if a.time < cut or not isinstance(a.event, SensorReading):
            assert encode(a.event) == encode(b.event)
            continue
        assert isinstance(b.event, SensorReading)
        target = a.event.machine_type == "pump" and a.event.sensor_type == "temperature"
        if target and a.event.value is not None:
            assert b.event.value == pytest.approx(a.event.value + 5.0, abs=1e-3)
            assert b.truth["drift"] is True
            shifted += 1
        else:
            assert encode(a.event) == encode(b.event)
    assert shifted > 100


def test_records_are_generated_lazily() -> None:
    # A 365-day run yields its first records from the first day, not after building the year.
    assert head_span(sensor_records(SensorStreamConfig(), seed=1, days=365)) < timedelta(days=1)


def test_memory_does_not_grow_with_days() -> None:
    # Warm up first: imports and caches allocated on first use are not the stream's.
    peak_bytes(sensor_records(replace(SMALL, n_machines=2), seed=3, days=1))
    short = peak_bytes(sensor_records(replace(SMALL, n_machines=2), seed=3, days=4))
    long = peak_bytes(sensor_records(replace(SMALL, n_machines=2), seed=3, days=16))
    assert long < 1.5 * short
