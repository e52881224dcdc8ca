"""The drift monitor (``streamscore monitor``) as a process on the real stack: it raises each of the
simulator's scheduled drifts within a stated delay, and nothing on the same world without the drift.

The scored-event log is fed directly (the pipeline would take minutes for these volumes): every
event's features come from the offline computation, which equals the pipeline's
(``test_pipeline``), scored with the stream's shipped policy (and the transactions model). Each
case runs two monitors side by side, on two topic prefixes: the world with the drift (from day 3)
and the same world (same seed) without it. Six simulated days each: a day to settle, a day for the
first baseline, a day of reference comparisons, then three days watched (clicks: seven days).
"""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from streamscore.libs.config import Settings
from streamscore.libs.contracts.alerts import DriftAlert
from streamscore.libs.contracts.codec import decode
from streamscore.libs.monitoring.plan import plan_for
from streamscore.libs.topics import DRIFT_ALERT_TOPIC, STREAMS
from streamscore.services.clients import endpoints
from streamscore.services.scorer import load_model
from tests.monitor_runs import (
    DAY_S,
    DRIFTS,
    WORLD,
    ScoredRun,
    publish_scored_log,
    scored_runs,
    summary,
    wait_consumed,
)
from tests.processor_runs import read_all, redis_db_url, start_cli, stop

pytestmark = pytest.mark.integration
REDIS_DB = 13
PARTITIONS = 3

#: Drift kind -> (days, drift day, seed, the longest accepted delay in hours from the drift's
#: start to the alert's confirmation, event time). Logins and clicks compare three-hour slots
#: (bursts of stuffing and of bot sessions). The new bot type moves clicks mostly at night by
#: a quarter of a standard deviation in this 2,000-user shop: its world gets a fourth day
#: before the drift, so that its baseline is a median of three days.
CASES: dict[str, tuple[int, int, int, int]] = {
    "amount_inflation": (6, 3, 2, 24),
    "card_testing": (6, 3, 2, 24),
    "recalibration": (6, 3, 2, 24),
    "stuffing_wave": (6, 3, 2, 48),
    "new_bot_type": (7, 4, 4, 48),
}


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


def _monitor_both(
    settings: Settings, stream: str, runs: dict[str, ScoredRun], redis_url: str, log: Path
) -> dict[str, list[DriftAlert]]:
    bootstrap = endpoints(settings).kafka_bootstrap
    tag = uuid.uuid4().hex[:6]
    prefixes = {name: f"mon-{tag}-{name}." for name in runs}
    procs = []
    try:
        for name, run in runs.items():
            publish_scored_log(settings, stream, prefixes[name], run.records, PARTITIONS)
        for name in runs:
            args = ["monitor", "--stream", stream, "--topic-prefix", prefixes[name]]
            procs.append(start_cli(args, bootstrap=bootstrap, redis_url=redis_url, log=log))
        for name in runs:
            p = prefixes[name]
            group = f"{p}streamscore-monitor-{stream}"
            topic = p + STREAMS[stream].scored_log_topic
            assert wait_consumed(bootstrap, group, topic, PARTITIONS, timeout_s=90), (
                log.read_text()[-3000:]
            )
    finally:
        for proc in procs:
            stop(proc)
    assert all(proc.returncode == 0 for proc in procs), log.read_text()[-3000:]
    return {name: _alerts(bootstrap, prefixes[name]) for name in runs}


@pytest.mark.parametrize("kind", list(CASES))
def test_monitor_raises_each_scheduled_drift_in_time_and_nothing_without_it(
    kind: str,
    stack_settings: Settings,
    redis_url: str,
    transaction_model_dir: Path,
    tmp_path: Path,
    record_property: pytest.RecordProperty,
) -> None:
    stream = DRIFTS[kind].stream
    days, drift_day, seed, bound_h = CASES[kind]
    model = load_model(transaction_model_dir, stream)[0] if stream == "transactions" else None
    drifted, steady = scored_runs(kind, days=days, drift_day=drift_day, seed=seed, model=model)
    start_s = WORLD.start.timestamp() + drift_day * DAY_S
    log = tmp_path / "monitor.log"
    alerts = _monitor_both(
        stack_settings, stream, {"drift": drifted, "steady": steady}, redis_url, log
    )
    lines = summary(alerts["drift"], start_s)
    record_property("alerts", lines)
    print(f"\n{kind}: {len(drifted.records):,} + {len(steady.records):,} scored events", *lines)

    # The stationary world raises nothing in its three watched days.
    assert alerts["steady"] == [], summary(alerts["steady"], start_s)
    # The drift is raised after it starts and within the stated delay; nothing before it.
    drift_alerts = [a for a in alerts["drift"] if a.kind == "drift"]
    assert drift_alerts, log.read_text()[-3000:]
    first = min(a.confirmed_at.timestamp() for a in drift_alerts)
    assert start_s <= first <= start_s + bound_h * 3600, lines
    assert all(a.stream == stream and a.alert_id for a in alerts["drift"])
    assert len({a.alert_id for a in alerts["drift"]}) == len(alerts["drift"])
    plan = plan_for(stream)
    assert len(drift_alerts) <= len(plan.signals()) * plan.max_segments  # one cause, few alerts
    triggers = [a for a in alerts["drift"] if a.kind == "retrain_trigger"]
    if kind == "amount_inflation":  # the model's inputs drift: retrain
        assert triggers and triggers[0].model_version == "tx-fraud-it-1", lines
    if model is None:  # no model scores the stream: nothing to retrain
        assert triggers == []


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("true",))


def test_state_round_trips_through_redis_and_a_tampered_snapshot_is_refused(
    redis_url: str,
) -> None:
    from streamscore.libs.monitoring.alerting import AlertDesk
    from streamscore.libs.monitoring.watch import StreamWatch
    from streamscore.services.monitor_state import MonitorStore

    plan = plan_for("sensor_readings")
    store = MonitorStore(redis.Redis.from_url(redis_url), "sensor_readings", topic_prefix="it.")
    assert store.load(plan) is None
    watch, desk = StreamWatch(plan), AlertDesk(plan)
    desk.remember({"all|score": 123.0})
    assert store.save(watch, desk) > 0
    loaded = store.load(plan)
    assert loaded is not None and loaded[1].last_alerted == {"all|score": 123.0}
    assert store.load(replace(plan, slot_s=7200)) is None  # another plan: warm up afresh
    store.mark({"sensor_type=temperature|feature:sensor_zscore_24h": 456.0})
    assert store.marks() == {"sensor_type=temperature|feature:sensor_zscore_24h": 456.0}
    store.client.set(store.state_key, pickle.dumps((1, plan.fingerprint(), _Evil(), desk)))
    assert store.load(plan) is None  # os.system is not on the allow-list
