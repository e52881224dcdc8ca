"""The sensor-readings stream: machines that degrade and fail, and their maintenance records.

Each machine has a type (``pump``, ``compressor``, ``turbine``) and three
sensors (``vibration``, ``temperature``, ``pressure``; ids like
``M007-vibration``) read every ``interval_s`` seconds, at a per-machine phase
with a little per-reading jitter. A reading is the machine type's baseline
plus a small per-machine offset plus Gaussian noise; a few readings are missing
(``value=None``) or glitch (a spike of many standard deviations).

Machines wear out: after a healthy period (exponential, mean
``mean_healthy_days``) a machine degrades over ``degradation_days`` until it
fails. While it degrades, vibration and temperature drift upward with the
square of the degradation (how much each depends on the failure mode; a
``seal_leak`` also loses pressure). A failed machine is repaired for
``repair_hours`` (no readings meanwhile) and restarts as new. Each failure
yields a ``Failure`` label when its maintenance record arrives, hours to days
later (log-normal, median 24 h, capped at 4 days).

The truth of a reading is ``{"degradation": float in [0, 1],
"failure_within_h": hours until the machine's next failure (None when it falls
after the simulated days), "glitch": bool, "drift": bool}``.

Drift ``recalibration``: from its ``start_day``, ``params.offset`` (default
5.0) is added to the readings of sensor ``params.sensor_type`` (default
``temperature``) on machines of ``params.machine_type`` (default ``pump``);
nothing else changes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from streamscore.libs.contracts.events import SensorReading, SensorType
from streamscore.libs.contracts.labels import Failure
from streamscore.libs.simulator._pending import (
    SECONDS_PER_DAY,
    BoolArray,
    FloatArray,
    IntArray,
    Pending,
    lognormal_delays,
)
from streamscore.libs.simulator.drift import DriftSpec, for_stream
from streamscore.libs.simulator.labels_queue import ArrivalQueue
from streamscore.libs.simulator.records import DEFAULT_START, SimRecord, at
from streamscore.libs.topics import STREAMS

SENSOR_TOPIC = STREAMS["sensor_readings"].input_topic
FAILURE_TOPIC = STREAMS["sensor_readings"].label_topic

MACHINE_TYPES = ("pump", "compressor", "turbine")
SENSOR_TYPES: tuple[SensorType, ...] = ("vibration", "temperature", "pressure")
UNITS = ("mm/s", "degC", "bar")
#: Baseline mean and noise standard deviation of each sensor, per machine type.
BASELINE_MEAN = np.array([[2.0, 55.0, 6.0], [3.5, 75.0, 9.0], [5.0, 90.0, 12.0]])
BASELINE_STD = np.array([[0.2, 1.0, 0.1], [0.3, 1.5, 0.15], [0.4, 2.0, 0.2]])
FAILURE_MODES = ("bearing_wear", "overheating", "seal_leak")
#: How strongly each failure mode moves each sensor at full degradation (a share of the
#: configured gains: vibration, temperature, pressure).
_MODE_EFFECT = np.array([[1.0, 0.3, 0.0], [0.3, 1.0, 0.0], [0.4, 0.4, -1.0]])


@dataclass(frozen=True)
class SensorStreamConfig:
    """Machines, sampling, wear and maintenance records (defaults: 34,560 readings a day)."""

    n_machines: int = 40
    interval_s: float = 300.0
    #: Readings land within ± this many seconds of their machine's sampling grid.
    jitter_s: float = 5.0
    #: Per-machine offset from its type's baseline, as a share of the baseline mean (sd).
    machine_offset_share: float = 0.03
    missing_share: float = 0.005
    glitch_share: float = 0.001
    #: A glitch moves a reading by this many noise standard deviations (range).
    glitch_sds: tuple[float, float] = (8.0, 15.0)
    mean_healthy_days: float = 25.0
    degradation_days: tuple[float, float] = (3.0, 10.0)
    repair_hours: tuple[float, float] = (4.0, 24.0)
    #: At full degradation: vibration up by this share of its baseline mean ...
    vibration_gain: float = 1.5
    #: ... temperature up by this many degrees ...
    temperature_gain_c: float = 20.0
    #: ... and (seal leaks) pressure down by this share of its baseline mean.
    pressure_drop: float = 0.15
    label_delay_median_h: float = 24.0
    label_delay_sigma: float = 0.8
    label_delay_min_h: float = 1.0
    label_delay_max_h: float = 96.0
    #: Also yield the labels that arrive after the last simulated day.
    include_late_labels: bool = True


@dataclass
class _Cycle:
    """One life of a machine: degradation from ``onset_s``, failure, repair until ``up_s``."""

    onset_s: float
    fail_s: float
    up_s: float
    mode: int


@dataclass(frozen=True)
class _Day:
    seconds: FloatArray  # sorted, seconds since the scenario start
    machine: IntArray
    sensor: IntArray
    value: FloatArray  # NaN when missing
    degradation: FloatArray
    to_failure_s: FloatArray
    glitch: BoolArray
    drift: BoolArray
    failures: list[tuple[int, _Cycle]]


class _SensorSimulator:
    def __init__(
        self, c: SensorStreamConfig, seed: int, days: int, drifts: Sequence[DriftSpec]
    ) -> None:
        self.c = c
        self.horizon_s = float(days * SECONDS_PER_DAY)
        self.rng = np.random.default_rng(seed)
        # Lives (when machines fail, how) draw from their own generator, so the
        # reading noise of a seed does not depend on when failures happen.
        self.life_rng = np.random.default_rng([seed, 3])
        self.drifts = for_stream(drifts, "sensor_readings")
        n = c.n_machines
        self.mtype = self.rng.integers(0, len(MACHINE_TYPES), size=n)
        mean = BASELINE_MEAN[self.mtype]
        self.mean = mean + self.rng.normal(0, c.machine_offset_share, size=mean.shape) * mean
        self.std = BASELINE_STD[self.mtype]
        self.phase = self.rng.uniform(0, c.interval_s, size=n)
        self.cycles = [self._new_cycle(0.0) for _ in range(n)]
        self.down_until = np.zeros(n)

    def _new_cycle(self, up_s: float) -> _Cycle:
        c, rng = self.c, self.life_rng
        ramp = rng.uniform(*c.degradation_days) * SECONDS_PER_DAY
        fail = up_s + rng.exponential(c.mean_healthy_days * SECONDS_PER_DAY) + ramp
        repair = rng.uniform(*c.repair_hours) * 3600
        return _Cycle(fail - ramp, fail, fail + repair, int(rng.integers(len(FAILURE_MODES))))

    def day(self, d: int) -> _Day:
        c, rng = self.c, self.rng
        lo, hi = d * SECONDS_PER_DAY, (d + 1) * SECONDS_PER_DAY
        times: list[FloatArray] = []
        machines: list[IntArray] = []
        onset: list[FloatArray] = []
        fail: list[FloatArray] = []
        mode: list[IntArray] = []
        failures: list[tuple[int, _Cycle]] = []
        for m in range(c.n_machines):
            # 1. The lives that overlap the day (usually one; a new one after each failure).
            lives = [self.cycles[m]]
            while lives[-1].fail_s < hi:
                failures.append((m, lives[-1]))
                lives.append(self._new_cycle(lives[-1].up_s))
            self.cycles[m] = lives[-1]
            # 2. The machine's jittered sampling grid within the day, minus repair windows
            #    (an earlier day's repair may still be running: ``down_until``).
            k0 = np.ceil((lo - self.phase[m]) / c.interval_s)
            k = np.arange(k0, k0 + SECONDS_PER_DAY / c.interval_s + 1)
            t = self.phase[m] + k * c.interval_s
            t = t + rng.uniform(-c.jitter_s, c.jitter_s, size=len(t))
            t = t[(t >= lo) & (t < hi)]
            ups = np.array([life.up_s for life in lives])
            which = np.minimum(np.searchsorted(ups, t, side="right"), len(lives) - 1)
            f = np.array([life.fail_s for life in lives])[which]
            keep = (t < f) & (t >= self.down_until[m])
            if len(lives) > 1:
                self.down_until[m] = lives[-2].up_s
            t, which = t[keep], which[keep]
            times.append(t)
            machines.append(np.full(len(t), m, dtype=np.int64))
            onset.append(np.array([life.onset_s for life in lives])[which])
            fail.append(np.array([life.fail_s for life in lives])[which])
            mode.append(np.array([life.mode for life in lives], dtype=np.int64)[which])
        t = np.concatenate(times)
        machine = np.concatenate(machines)
        on, fl, md = np.concatenate(onset), np.concatenate(fail), np.concatenate(mode)
        # 3. Three readings (one per sensor) per sample.
        t = t.repeat(3)
        machine, on, fl, md = machine.repeat(3), on.repeat(3), fl.repeat(3), md.repeat(3)
        sensor = np.tile(np.arange(3, dtype=np.int64), len(t) // 3)
        deg = np.clip((t - on) / (fl - on), 0.0, 1.0)
        gain = np.array([c.vibration_gain, 0.0, -c.pressure_drop])
        effect = _MODE_EFFECT[md, sensor] * (
            gain[sensor] * self.mean[machine, sensor] + (sensor == 1) * c.temperature_gain_c
        )
        value = self.mean[machine, sensor] + effect * deg**2
        std = self.std[machine, sensor]
        value += rng.normal(0, 1, size=len(t)) * std
        glitch = rng.random(len(t)) < c.glitch_share
        spikes = rng.uniform(*c.glitch_sds, size=len(t)) * np.where(rng.random(len(t)) < 0.5, -1, 1)
        value = np.where(glitch, value + spikes * std, value)
        value[rng.random(len(t)) < c.missing_share] = np.nan
        drift = self._recalibration(d, machine, sensor, value)
        order = np.argsort(t, kind="stable")
        return _Day(
            t[order],
            machine[order],
            sensor[order],
            np.round(value[order], 4),
            deg[order],
            fl[order] - t[order],
            glitch[order],
            drift[order],
            failures,
        )

    def _recalibration(
        self, d: int, machine: IntArray, sensor: IntArray, value: FloatArray
    ) -> BoolArray:
        hit = np.zeros(len(value), dtype=np.bool_)
        for drift in self.drifts:
            if drift.kind != "recalibration" or not drift.active(d):
                continue
            mtype = MACHINE_TYPES.index(str(drift.param("machine_type", MACHINE_TYPES[0])))
            stype = SENSOR_TYPES.index(drift.param("sensor_type", "temperature"))
            mask = (self.mtype[machine] == mtype) & (sensor == stype)
            value[mask] += float(drift.param("offset", 5.0))
            hit |= mask
        return hit


def sensor_records(
    config: SensorStreamConfig,
    *,
    seed: int,
    days: int,
    start: datetime = DEFAULT_START,
    drifts: Sequence[DriftSpec] = (),
) -> Iterator[SimRecord]:
    """Yield readings and failure labels in event-time order, one day in memory at a time.

    A label's ``event_time`` is when its maintenance record arrives, after the failure.

    >>> cfg = SensorStreamConfig(n_machines=4, mean_healthy_days=1.0,
    ...                          degradation_days=(0.5, 1.0))
    >>> recs = list(sensor_records(cfg, seed=1, days=4))
    >>> times = [r.time for r in recs]
    >>> times == sorted(times)
    True
    >>> {r.topic for r in recs} == {SENSOR_TOPIC, FAILURE_TOPIC}
    True
    >>> recs[0].event.sensor_id, recs[0].event.unit
    ('M002-vibration', 'mm/s')
    """
    c = config
    sim = _SensorSimulator(c, seed, days, drifts)
    # Labels draw from their own generator: changing the label policy does not
    # change the readings of a seed.
    label_rng = np.random.default_rng([seed, 1])
    queue: ArrivalQueue[Pending] = ArrivalQueue()
    machine_ids = [f"M{m:03d}" for m in range(c.n_machines)]
    sensor_ids = [[f"{mid}-{s}" for s in SENSOR_TYPES] for mid in machine_ids]
    machine_types = [MACHINE_TYPES[t] for t in sim.mtype.tolist()]
    seq = 0
    label_seq = 0
    horizon = sim.horizon_s
    for d in range(days):
        day = sim.day(d)
        # 1. Schedule the maintenance records of the day's failures.
        delays = lognormal_delays(
            label_rng,
            len(day.failures),
            median_s=c.label_delay_median_h * 3600,
            sigma=c.label_delay_sigma,
            min_s=c.label_delay_min_h * 3600,
            max_s=c.label_delay_max_h * 3600,
        )
        for (m, life), delay in zip(day.failures, delays.tolist(), strict=True):
            arrival = life.fail_s + delay
            label = Failure(
                event_id=f"fl-{seed}-{label_seq:07d}",
                event_time=at(start, arrival),
                machine_id=machine_ids[m],
                failure_time=at(start, life.fail_s),
                failure_mode=FAILURE_MODES[life.mode],
            )
            queue.push(Pending(arrival, label_seq, SimRecord(FAILURE_TOPIC, label)))
            label_seq += 1
        # 2. Yield the readings, releasing the labels due before each.
        secs, machines, sensors = day.seconds.tolist(), day.machine.tolist(), day.sensor.tolist()
        values, degs, to_fail = (
            day.value.tolist(),
            day.degradation.tolist(),
            day.to_failure_s.tolist(),
        )
        glitches, drifted = day.glitch.tolist(), day.drift.tolist()
        for i in range(len(secs)):
            s = secs[i]
            for p in queue.due(s):
                yield p.record
            m, k, v = machines[i], sensors[i], values[i]
            yield SimRecord(
                SENSOR_TOPIC,
                SensorReading(
                    event_id=f"sr-{seed}-{seq:010d}",
                    event_time=at(start, s),
                    machine_id=machine_ids[m],
                    sensor_id=sensor_ids[m][k],
                    machine_type=machine_types[m],
                    sensor_type=SENSOR_TYPES[k],
                    value=None if math.isnan(v) else v,  # NaN: a missing reading
                    unit=UNITS[k],
                ),
                {
                    "degradation": degs[i],
                    "failure_within_h": to_fail[i] / 3600 if s + to_fail[i] < horizon else None,
                    "glitch": glitches[i],
                    "drift": drifted[i],
                },
            )
            seq += 1
    if c.include_late_labels:
        for p in queue.due(float("inf")):
            yield p.record
