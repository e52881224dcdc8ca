"""``streamscore monitor`` killed with SIGKILL again and again while it reads a drifting log.

The same scored-event log (sensor readings with the simulator's recalibration
drift from day 3, as in ``tests/integration/test_monitor.py``) is published
under two topic prefixes. One monitor reads the first undisturbed; a second
monitor reads the other, which arrives in six parts as a live log would, and
is killed with SIGKILL after each of the first five parts came (once it got
past the previous kill's point, at a random moment of a snapshot period) and
restarted at once (a supervisor's job). Both
snapshot their state every second; a restart reads the log again from the last
snapshot's offsets.

The oracle (the suite's report, ``tests/fault_report.py``) compares the two
alert topics by incident cause (kind, segment, signal, feature): the drift must
still be raised (lost: a cause the undisturbed monitor raised and the killed
one did not), an incident may be re-published with the same ``alert_id`` by a
restart (dup: consumers key alerts by id) but never raised twice under two ids
for one cause (conflicting). There is no per-event latency: the confirmation
time of the first drift alert is reported against the undisturbed one, and
whether the alert ids are the undisturbed run's (an id is derived from the
confirmation time, so a later confirmation is a new id).
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import KafkaException

from streamscore.libs.config import Settings
from streamscore.libs.contracts.alerts import DriftAlert
from streamscore.libs.contracts.codec import decode
from streamscore.libs.monitoring.plan import plan_for
from streamscore.libs.topics import DRIFT_ALERT_TOPIC, STREAMS
from streamscore.services.clients import endpoints
from streamscore.services.monitor_state import MonitorStore
from tests.fault_report import Out, Sent, fault_report
from tests.monitor_runs import (
    DRIFTS,
    committed_offsets,
    end_offsets,
    publish_scored_log,
    scored_runs,
    wait_consumed,
)
from tests.processor_runs import read_all, redis_db_url, start_cli, stop

pytestmark = [pytest.mark.integration, pytest.mark.fault]
KIND = "recalibration"
STREAM = DRIFTS[KIND].stream
REDIS_DB = 1
PARTITIONS = 3
KILLS = 5
SNAPSHOT_S = 1.0


@pytest.fixture
def redis_url(stack_settings: Settings) -> Iterator[str]:
    url = redis_db_url(endpoints(stack_settings).redis_url, REDIS_DB)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


def _alerts(bootstrap: str, prefix: str) -> list[DriftAlert]:
    msgs = read_all(bootstrap, prefix + DRIFT_ALERT_TOPIC, 10_000, timeout_s=3)
    return [decode(DriftAlert, m.value(), max_bytes=1 << 20) for m in msgs]


def _committed(bootstrap: str, group: str, topic: str) -> int:
    """Records the group has committed over the topic's partitions (0 before any commit)."""
    try:
        return sum(max(0, o) for o in committed_offsets(bootstrap, group, topic, PARTITIONS))
    except KafkaException:  # the coordinator not ready yet: no progress seen
        return 0


def _snapshot_covers(
    redis_url: str, prefix: str, ends: list[int], timeout_s: float = 300.0
) -> bool:
    """Wait until the monitor's saved state covers every partition up to ``ends``."""
    store = MonitorStore(redis.Redis.from_url(redis_url), STREAM, topic_prefix=prefix)
    plan, want = plan_for(STREAM), dict(enumerate(ends))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        saved = store.load(plan)
        if saved is not None and saved[2] == want:
            return True
        time.sleep(0.5)
    return False


def _cause(a: DriftAlert) -> tuple[str, str, str, str | None]:
    return (a.kind, a.segment, a.signal, a.feature)


def test_monitor_sigkill_repeated_loses_no_incident(
    stack_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    bootstrap = endpoints(stack_settings).kafka_bootstrap
    drifted, _steady = scored_runs(KIND, days=6, drift_day=3, seed=2, model=None)
    tag = uuid.uuid4().hex[:6]
    calm, killed = f"monk-{tag}-calm.", f"monk-{tag}-kill."
    publish_scored_log(stack_settings, STREAM, calm, drifted.records)
    log = tmp_path / "monitor.log"
    args = ["monitor", "--stream", STREAM, "--snapshot-s", str(SNAPSHOT_S), "--topic-prefix"]
    procs = [start_cli([*args, calm], bootstrap=bootstrap, redis_url=redis_url, log=log)]
    kills = 0
    faults: list[tuple[float, float]] = []
    try:
        group = f"{killed}streamscore-monitor-{STREAM}"
        topic = killed + STREAMS[STREAM].scored_log_topic
        # The killed run's log arrives in parts, as a live log would; with each new part the
        # monitor is killed once it has got past the last kill's point, at a random moment
        # of a snapshot period (mid-work or just after it), and restarted at once.
        n = len(drifted.records)
        parts = [drifted.records[i * n // (KILLS + 1) : (i + 1) * n // (KILLS + 1)]
                 for i in range(KILLS + 1)]  # fmt: skip
        publish_scored_log(stack_settings, STREAM, killed, parts[0])
        victim = start_cli([*args, killed], bootstrap=bootstrap, redis_url=redis_url, log=log)
        procs.append(victim)
        rng = random.Random(5)
        done = 0  # records committed when the last kill came
        for part in parts[1:]:
            publish_scored_log(stack_settings, STREAM, killed, part)
            deadline = time.monotonic() + 300
            while _committed(bootstrap, group, topic) <= done:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)
            time.sleep(rng.uniform(0.0, SNAPSHOT_S))
            done = _committed(bootstrap, group, topic)
            killed_at = time.time()
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            kills += 1
            victim = start_cli([*args, killed], bootstrap=bootstrap, redis_url=redis_url, log=log)
            procs.append(victim)
            faults.append((killed_at, time.time()))
        # Done when the saved state covers the whole log: the group's commits can reach the
        # end while a restarted monitor is still reading again from its snapshot.
        assert _snapshot_covers(redis_url, killed, end_offsets(bootstrap, topic, PARTITIONS))
        calm_group = f"{calm}streamscore-monitor-{STREAM}"
        calm_topic = calm + STREAMS[STREAM].scored_log_topic
        assert wait_consumed(bootstrap, calm_group, calm_topic, PARTITIONS, timeout_s=300)
    finally:
        for proc in procs:
            stop(proc)
    reference, observed = _alerts(bootstrap, calm), _alerts(bootstrap, killed)
    ref_ids = {a.alert_id for a in reference}
    ref_ids_by_cause = {_cause(a) for a in reference}

    def first(alerts: list[DriftAlert]) -> float:
        return min(a.confirmed_at.timestamp() for a in alerts if a.kind == "drift")

    delay_h = (first(observed) - first(reference)) / 3600 if observed else float("nan")
    report = fault_report(
        f"monitor SIGKILL x{kills} on a drifting log",
        [Sent(str(c)) for c in sorted(ref_ids_by_cause, key=str)],
        [Out(str(_cause(a)), (a.alert_id, a.confirmed_at)) for a in observed],
        faults,
        unit="incidents (causes)",
        output_name="alert",
        note=(
            f"{len(drifted.records):,} scored events; alert ids the undisturbed run's: "
            f"{'yes' if {a.alert_id for a in observed} == ref_ids else 'no'}; "
            f"first drift confirmed {delay_h:+.1f} h (event time) vs undisturbed"
        ),
    )
    print(f"\n{report}")
    assert kills == KILLS
    assert reference and any(a.kind == "drift" for a in reference), log.read_text()[-3000:]
    assert any(a.kind == "drift" for a in observed), log.read_text()[-3000:]
    assert report.lost == 0 and report.conflicting == 0  # conflicting: a cause under two ids
    assert {_cause(a) for a in observed if a.kind == "drift"} >= {
        c for c in ref_ids_by_cause if c[0] == "drift"
    }
