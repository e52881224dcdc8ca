"""The retrainer on real Kafka, Redis and a real MLflow SQLite registry.

A small world (500 cards, 13 days: 5 training days, a 3-day gap, 5 test days)
is simulated and its training set written in the label joiner's dataset layout
(the matured examples a retrainer trains on). The retrainer runs in this
process (its loop in a thread, stopped by an event) on a private topic prefix,
Redis namespace and registry:

1. A ``retrain_trigger`` alert of the monitor (with a plain drift alert and an
   alert of another stream beside it, both ignored) → a training run, a
   registry version with the aliases ``challenger`` and ``shadow``, the audit
   naming the retrainer, when and the alert; the model store's challenger
   slot holds it in shadow mode.
2. A second trigger within the minimum interval (24 h of stream time) and new
   labelled examples with it: held, no training.
3. Labelled examples past the interval → the held causes fire: a second
   version becomes the challenger (the audit says from which version).
4. A ``rollback`` alert of the scorers' canary judge for it clears its
   ``challenger`` and ``shadow`` aliases (audited as ``canary-judge``).
5. ``streamscore model promote 2`` (the explicit approval) makes it the
   champion in the registry and the active model of the store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import redis

from streamscore.libs.config import Settings
from streamscore.libs.contracts.alerts import DriftAlert
from streamscore.libs.contracts.codec import encode
from streamscore.libs.contracts.examples import LabelledExample
from streamscore.libs.features.definitions import feature_schema_hash
from streamscore.libs.labels.dataset import file_name
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import DRIFT_ALERT_TOPIC, LABELLED_EXAMPLES_TOPIC, TopicSpec
from streamscore.libs.training.params import XGBParams
from streamscore.libs.training.triggers import TriggerPolicy
from streamscore.services.clients import make_admin, make_producer
from streamscore.services.model_registry import ModelRegistry
from streamscore.services.model_store import ModelStore
from streamscore.services.retrain_job import last_matured_day
from streamscore.services.retrainer import Retrainer, RetrainerConfig, run_retrainer
from streamscore.services.sim_files import simulate_to_files
from streamscore.services.topics_admin import create_topics
from streamscore.services.training_set import build_training_set, training_set_path

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.filterwarnings("ignore:.*noload.*:DeprecationWarning"),  # MLflow 3.17 on SA 2.1
]
STREAM = "transactions"
T0 = datetime(2026, 1, 18, 12, tzinfo=UTC)  # stream time of the first trigger
WAIT_S = 150.0


@pytest.fixture(scope="module")
def examples_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small world's training set in the joiner's dataset layout (``label`` column)."""
    tmp = tmp_path_factory.mktemp("world")
    world = get("small").only(STREAM).with_days(13)
    simulate_to_files(world, seed=5, out=tmp / "sim", progress=lambda _m: None)
    build_training_set(tmp / "sim", tmp / "sim", stream=STREAM, progress=lambda _m: None)
    ts = pq.read_table(training_set_path(tmp / "sim", STREAM))
    ex = ts.rename_columns(["label" if c == "truth_fraud" else c for c in ts.column_names])
    # The joiner's kind: every event of these 13 days has matured (a label or its horizon).
    kind = pc.if_else(pc.cast(ex.column("label"), "bool"), "positive", "matured_negative")
    ex = ex.append_column("kind", kind)
    days = pc.strftime(ex.column("event_time"), format="%Y-%m-%d")
    root = tmp / "examples"
    for i, day in enumerate(sorted(set(days.to_pylist()))):
        folder = root / STREAM / f"date={day}"
        folder.mkdir(parents=True)
        name = file_name(i, i, feature_schema_hash(STREAM))
        pq.write_table(ex.filter(pc.equal(days, day)), folder / name)
    return root


@dataclass
class Running:
    retrainer: Retrainer
    stop: threading.Event
    thread: threading.Thread
    settings: Settings
    cfg: RetrainerConfig


@pytest.fixture
def running(stack_settings: Settings, examples_root: Path, tmp_path: Path) -> Iterator[Running]:
    prefix = f"rt-{uuid.uuid4().hex[:8]}."
    create_topics(
        make_admin(stack_settings),
        [
            TopicSpec(prefix + DRIFT_ALERT_TOPIC, 1, 1),
            TopicSpec(prefix + LABELLED_EXAMPLES_TOPIC, 3, 1),
        ],
    )
    settings = replace_settings(stack_settings, tmp_path)
    cfg = RetrainerConfig(
        stream=STREAM,
        policy=TriggerPolicy(schedule_hours=None, min_new_examples=40, min_interval_hours=24),
        examples=examples_root,
        train_days=5,
        delay_days=3,
        test_days=5,
        params=replace(XGBParams(), n_estimators=10, n_jobs=1),
        topic_prefix=prefix,
        namespace=f"it-{uuid.uuid4().hex[:8]}",
    )
    ready: list[Retrainer] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=run_retrainer, args=(settings, cfg), kwargs={"stop": stop, "on_ready": ready.append}
    )
    thread.start()
    _until(lambda: bool(ready), "the retrainer to start")
    yield Running(ready[0], stop, thread, settings, cfg)
    stop.set()
    thread.join(60)


def replace_settings(base: Settings, tmp: Path) -> Settings:
    return Settings(
        home=tmp / "home",
        profile="test",
        kafka_bootstrap=base.kafka_bootstrap,
        redis_url=base.redis_url,
        mlflow_tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
        models_root=tmp / "models",
    )


def _until(cond: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"waited {WAIT_S:.0f} s for {what}"
        time.sleep(0.1)


def _alert(
    alert_id: str, at: datetime, *, kind: str = "retrain_trigger", stream: str = STREAM
) -> DriftAlert:
    return DriftAlert(
        alert_id=alert_id, kind=kind, stream=stream, segment="all", signal="score",  # type: ignore[arg-type]
        feature=None, detector="cusum", first_evidence_at=at - timedelta(hours=6),
        confirmed_at=at, effect_sds=0.5, statistic=3.0, evidence_events=400,
        baseline_events=410, mean=0.2, baseline_mean=0.1, baseline_lag_s=86_400, related=[],
        model_version="m1", reason="score drift", raised_at=datetime.now(UTC),
    )  # fmt: skip


def _example(i: int, at: datetime, *, stream: str = STREAM, revision: int = 0) -> LabelledExample:
    return LabelledExample(
        event_id=f"e{i}", stream=stream, event_time=at - timedelta(days=120),
        kind="matured_negative", revision=revision, label=False, label_time=None,
        label_id=None, late=False,
        matured_at=at, keys={"customer_id": "C1"}, feature_names_hash="0" * 64, values=[1.0],
        model_version="m1", policy_version="p1", score=0.1, decision="approve",
    )  # fmt: skip


def _publish(settings: Settings, topic: str, messages: list[object]) -> None:
    producer = make_producer(settings, client_id="retrainer-test")
    for m in messages:
        producer.send(topic, encode(m), key=STREAM.encode())  # type: ignore[arg-type]
    assert producer.flush(30) == 0 and producer.failed_total == 0


def test_last_matured_day_is_the_maturity_frontier(tmp_path: Path) -> None:
    """Negatives are written when they mature, positives when labelled: the newest days are
    incomplete, the split must end before them."""
    root = tmp_path / "ds"
    t = datetime(2026, 3, 1, tzinfo=UTC)
    rows = [  # (event time, kind)
        (t, "matured_negative"), (t + timedelta(days=1, hours=6), "matured_negative"),
        (t + timedelta(days=1, hours=20), "positive"), (t + timedelta(days=3), "positive"),
    ]  # fmt: skip
    for i, (at, kind) in enumerate(rows):
        folder = root / STREAM / f"date={at:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.table(
            {"event_time": pa.array([at], pa.timestamp("us", tz="UTC")), "kind": [kind]}
        )
        pq.write_table(table, folder / file_name(i, i, "a" * 64))
    # Day 2 matured only up to 06:00 and later days hold positives only: day 1 is the last.
    assert last_matured_day(root, STREAM) == t.date()
    # Everything up to the data's last day matured: that day counts.
    (root / STREAM / "date=2026-03-04").rename(tmp_path / "moved")
    assert last_matured_day(root, STREAM) == (t + timedelta(days=1)).date()
    assert last_matured_day(tmp_path / "empty", STREAM) is None


def test_trigger_train_register_challenger_hold_and_approve(running: Running) -> None:
    r, settings, cfg = running.retrainer, running.settings, running.cfg
    alerts, examples = r.alert_topic, r.examples_topic

    # 1. A retrain_trigger alert (beside a plain drift alert and another stream's trigger).
    _publish(settings, alerts, [
        _alert("d-1", T0, kind="drift"), _alert("o-1", T0, stream="logins"), _alert("a-1", T0),
    ])  # fmt: skip
    _until(lambda: len(r.stats.outcomes) == 1, "the first training")
    first = r.stats.outcomes[0]
    assert first.outcome == "ok", first.detail
    assert r.stats.counted["alert"] == 1 and r.stats.counted["other"] == 2

    registry = ModelRegistry.open(settings)
    (v1,) = registry.versions(STREAM)
    assert v1.model_version == first.model_version and v1.run_id is not None
    assert set(v1.aliases) == {"challenger", "shadow"}
    assert v1.gate["passed"] == 1.0 and v1.gate["flips"] == 0.0
    audit = registry.audit(STREAM)
    assert [(e.alias, e.version, e.previous, e.by) for e in audit] == [
        ("challenger", "1", None, "retrainer"),
        ("shadow", "1", None, "retrainer"),
    ]
    assert "a-1" in audit[0].reason and audit[0].gate["flips"] == 0.0
    assert abs((audit[0].at - datetime.now(UTC)).total_seconds()) < 600
    store = ModelStore(redis.Redis.from_url(settings.redis_url or ""), namespace=cfg.namespace)
    staged = store.challenger(STREAM)
    assert staged is not None and staged.mode == "shadow"
    assert staged.ref.version == v1.model_version and staged.ref.promoted_by == "retrainer"
    assert store.active(STREAM) is None  # promotion needs an explicit approval

    # 2. Within the minimum interval: another trigger and enough examples are held.
    soon = T0 + timedelta(hours=1)
    _publish(settings, alerts, [_alert("a-2", soon)])
    _publish(settings, examples, [_example(i, soon) for i in range(45)])
    _until(
        lambda: r.stats.counted["alert"] == 2 and r.stats.counted["examples"] == 45,
        "the held records to be counted",
    )
    held = r.triggers.decide()
    assert not held.retrain and held.held == "min_interval"
    assert set(held.causes) == {"alert", "examples"}
    assert len(r.stats.outcomes) == 1 and len(registry.versions(STREAM)) == 1

    # 3. Examples past the interval (other streams' and corrections ignored): the held causes fire.
    later = T0 + timedelta(hours=25)
    _publish(settings, examples, [
        _example(100, later, stream="logins"), _example(101, later, revision=1),
        _example(102, later),
    ])  # fmt: skip
    _until(lambda: len(r.stats.outcomes) == 2, "the second training")
    second = r.stats.outcomes[1]
    assert second.outcome == "ok", second.detail
    assert r.stats.counted["examples"] == 46 and r.stats.counted["other"] == 4
    v2 = registry.by_alias(STREAM, "challenger")
    assert v2 is not None and v2.version == "2" and v2.model_version == second.model_version
    last = registry.audit(STREAM)[-2]
    assert (last.alias, last.version, last.previous) == ("challenger", "2", "1")
    assert "a-2" in last.reason and "new labelled examples" in last.reason
    assert r.state.triggers.alerts == {} and r.state.triggers.trainings == 2

    # 4. The scorers' canary judge rolls v2 back: its aliases go (audited), v1's stay.
    _publish(settings, alerts, [
        msgspec.structs.replace(_alert("rb-1", later, kind="rollback"),
                                model_version=v2.model_version,
                reason=f"canary {v2.model_version} rolled back: block rate +9 points"),
    ])  # fmt: skip
    _until(
        lambda: r.stats.counted["rollback"] == 1 and not r.state.rollbacks,
        "the rollback to be applied",
    )
    assert registry.by_alias(STREAM, "challenger") is None
    assert registry.by_alias(STREAM, "shadow") is None
    judged = [e for e in registry.audit(STREAM) if e.by == "canary-judge"]
    assert {(e.alias, e.previous) for e in judged} == {("challenger", "2"), ("shadow", "2")}
    assert "block rate" in judged[0].reason

    # 5. The explicit approval, from the command line (v2 anyway, by number).
    env = {
        **os.environ,
        "STREAMSCORE_HOME": str(settings.home),
        "STREAMSCORE_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri or "",
        "REDIS_URL": settings.redis_url or "",
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "streamscore.services.cli", "model", "promote", "--stream",
         STREAM, "2", "--reason", "shadow report clean", "--by", "ops-carol",
         "--namespace", cfg.namespace],
        env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    champion = registry.by_alias(STREAM, "champion")
    assert champion is not None and champion.version == "2"
    active = store.active(STREAM)
    assert active is not None and active.version == v2.model_version
    assert active.promoted_by == "ops-carol" and store.challenger(STREAM) is None
    entry = next(e for e in registry.audit(STREAM) if e.alias == "champion")
    assert (entry.by, entry.reason, entry.version) == ("ops-carol", "shadow report clean", "2")
