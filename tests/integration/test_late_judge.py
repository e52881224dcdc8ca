"""The retrainer's late judge on real Kafka, Redis and model folders: a promotion whose canary
cohort's labels matured with clearly lower precision is rolled back, alerted and counted.

The model store holds v1 (the old champion) and v2 (promoted after a canary). Labelled
examples, as the joiner writes them, say that during the canary (hours 0-5, both models on
the same traffic) v1's flagged events were fraudulent half the time and v2's one time in
eight; hours 6-8 are v2's alone, and the joiner's clock (``matured_at``) has passed them
all. The retrainer (its loop in a thread, no training trigger enabled) must re-activate v1,
publish a ``rollback`` alert (signal ``precision``, detector ``late_judge``) and judge this
promotion once only.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry

from streamscore.libs.config import Settings
from streamscore.libs.contracts.alerts import DriftAlert
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.examples import LabelledExample
from streamscore.libs.features.definitions import feature_schema_hash
from streamscore.libs.labels.spec import HOUR_US
from streamscore.libs.rollout.late_judge import LateBounds
from streamscore.libs.topics import DRIFT_ALERT_TOPIC, LABELLED_EXAMPLES_TOPIC, TopicSpec
from streamscore.libs.training.triggers import TriggerPolicy
from streamscore.services.clients import make_admin, make_producer
from streamscore.services.metrics import RetrainerMetrics
from streamscore.services.model_store import ModelStore
from streamscore.services.retrainer import Retrainer, RetrainerConfig, run_retrainer
from streamscore.services.topics_admin import create_topics
from tests.integration.test_retrainer import replace_settings
from tests.model_folders import trained
from tests.processor_runs import read_all

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]
STREAM = "transactions"
T0 = datetime(2026, 5, 1, tzinfo=UTC)
HORIZON = timedelta(hours=10)


def _examples(
    version: str, hours: range, per_hour: int, precision: float, seed: int
) -> list[LabelledExample]:
    rng = random.Random(seed)
    out = []
    for h in hours:
        for i in range(per_hour):
            t = T0 + timedelta(hours=h, seconds=i * 3600 / per_hour)
            flagged = rng.random() < 0.25
            label = rng.random() < (precision if flagged else 0.01)
            out.append(
                LabelledExample(
                    event_id=f"{version}-{h}-{i}",
                    stream=STREAM,
                    event_time=t,
                    kind="positive" if label else "matured_negative",
                    revision=0,
                    label=label,
                    label_time=t + timedelta(hours=2) if label else None,
                    label_id=f"cb-{version}-{h}-{i}" if label else None,
                    late=False,
                    matured_at=t + (timedelta(hours=2) if label else HORIZON),
                    keys={"customer_id": f"C{i}"},
                    feature_names_hash=feature_schema_hash(STREAM),
                    values=[1.0],
                    model_version=version,
                    policy_version="p1",
                    score=0.9 if flagged else 0.1,
                    decision="block" if flagged else "approve",
                )
            )
    return out


def _until(cond: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"waited {timeout_s:.0f} s for {what}"
        time.sleep(0.1)


def test_a_promotion_with_lower_realised_precision_is_rolled_back_late(
    stack_settings: Settings, tmp_path: Path
) -> None:
    prefix = f"lj-{uuid.uuid4().hex[:8]}."
    alerts, examples = prefix + DRIFT_ALERT_TOPIC, prefix + LABELLED_EXAMPLES_TOPIC
    create_topics(make_admin(stack_settings), [TopicSpec(alerts, 1, 1), TopicSpec(examples, 3, 1)])
    settings = replace_settings(stack_settings, tmp_path)
    namespace = f"it-lj-{uuid.uuid4().hex[:8]}"
    store = ModelStore(redis.Redis.from_url(settings.redis_url or ""), namespace=namespace)
    v1 = store.promote(STREAM, trained(tmp_path / "v1", "tx-lj-1", seed=1), "ops", "first")
    v2 = store.promote(STREAM, trained(tmp_path / "v2", "tx-lj-2", seed=2), "rollout", "canary ok")

    producer = make_producer(settings, client_id="late-judge-test")
    batch = (
        _examples(v1.version, range(6), 120, 0.5, seed=1)
        + _examples(v2.version, range(6), 120, 0.125, seed=2)
        + _examples(v2.version, range(6, 9), 240, 0.125, seed=3)
    )
    for ex in batch:
        producer.send(examples, encode(ex), key=ex.event_id.encode())
    assert producer.flush(30) == 0 and producer.failed_total == 0

    cfg = RetrainerConfig(
        stream=STREAM,
        policy=TriggerPolicy(schedule_hours=None, on_alert=False, min_new_examples=None),
        topic_prefix=prefix,
        namespace=namespace,
        late_bounds=LateBounds(min_flagged=30, min_drop=0.05),
        horizon_us=int(HORIZON.total_seconds()) * 1_000_000,
        late_bucket_us=HOUR_US,
    )
    ready: list[Retrainer] = []
    stop = threading.Event()
    registry = CollectorRegistry()
    thread = threading.Thread(
        target=run_retrainer,
        args=(settings, cfg),
        kwargs={"stop": stop, "on_ready": ready.append, "metrics": RetrainerMetrics(registry)},
    )
    thread.start()
    try:
        _until(lambda: bool(ready), "the retrainer to start")
        r = ready[0]
        _until(lambda: bool(r.state.late.judged), "the late verdict")
        assert r.state.late.judged == [f"{v1.version}->{v2.version}"]
        active = store.active(STREAM)
        assert active is not None and active.version == v1.version
        # Its own alert comes back on alerts.drift: counted as a rollback, never re-judged.
        _until(lambda: r.stats.counted["rollback"] == 1, "the rollback alert read back")
        time.sleep(2.5)  # a judging round later: still one verdict, still v1
        assert r.state.late.judged == [f"{v1.version}->{v2.version}"]
        assert store.active(STREAM) == active
    finally:
        stop.set()
        thread.join(60)
    records = read_all(settings.kafka_bootstrap or "", alerts, 1, timeout_s=30)
    got = [decode(DriftAlert, m.value(), max_bytes=1 << 20) for m in records]
    (alert,) = got
    assert (alert.kind, alert.signal, alert.detector) == ("rollback", "precision", "late_judge")
    assert alert.model_version == v2.version and 0.4 < (alert.baseline_mean or 0) < 0.6
    assert 0.05 < (alert.mean or 0) < 0.2 and alert.effect_sds < -3.09
    assert f"rolled back to {v1.version}" in alert.reason
    # Judged on every example: 6 canary hours of 120 events a side, a quarter flagged.
    assert alert.baseline_events > 150 and alert.evidence_events > 150
    verdicts = registry.get_sample_value(
        "streamscore_late_judge_verdicts_total", {"stream": STREAM, "verdict": "rolled_back"}
    )
    assert verdicts == 1
    saved = redis.Redis.from_url(settings.redis_url or "").get(r.key)
    assert saved is not None and f"{v1.version}->{v2.version}".encode() in saved
