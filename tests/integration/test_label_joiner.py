"""``streamscore joiner`` as a process on real Kafka and Redis, against the oracle."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from streamscore.libs.config import Settings
from streamscore.libs.labels.layout import JoinKeys
from streamscore.libs.labels.spec import default_spec, to_us
from streamscore.libs.topics import dlq_topic
from streamscore.services.join_state import RedisJoinState
from streamscore.services.realised_report import compute
from tests.joiner_runs import (
    STREAM,
    check,
    dataset_rows,
    joiner_topics,
    produce_inputs,
    read_examples_topic,
    start_joiner,
    topic_rows,
    wait_drained,
    wait_matured,
)
from tests.label_join_cases import T0, ScoredIn, scenario
from tests.processor_runs import read_all, redis_db_url, stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_joiner_process_joins_every_event_once(stack_settings: Settings, tmp_path: Path) -> None:
    assert stack_settings.redis_url and stack_settings.kafka_bootstrap
    bootstrap = stack_settings.kafka_bootstrap
    settings = stack_settings.model_copy(
        update={"redis_url": redis_db_url(stack_settings.redis_url, 7)}
    )
    prefix = f"jn-{uuid.uuid4().hex[:8]}-"
    topics = joiner_topics(settings, prefix)
    sc = scenario(random.Random(11), 400)
    *body, tick = sc.inputs
    assert isinstance(tick, ScoredIn) and tick.event.event_id == "tick"
    out, log = tmp_path / "examples", tmp_path / "joiner.log"
    # Labels and decisions race: half the inputs are published before the joiner starts.
    half = len(body) // 2
    produce_inputs(settings, topics, body[:half], poison=6)
    proc = start_joiner(settings, prefix, out, log, "--commit-interval", "0.3")
    try:
        produce_inputs(settings, topics, body[half:])
        wait_drained(bootstrap, topics.group, [topics.scored, topics.labels])
        produce_inputs(settings, topics, [tick])  # the clock passes every horizon
        wait_drained(bootstrap, topics.group, [topics.scored, topics.labels])
        wait_matured(settings, prefix, sc)
    finally:
        stop(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
    examples = read_examples_topic(bootstrap, topics.examples)
    figures = check(topic_rows(examples), sc)
    print(f"\njoiner oracle: {figures}")
    assert figures.events == 400
    assert (figures.lost, figures.duplicates, figures.wrong_final) == (0, 0, 0), figures
    assert (figures.bad_sequences, figures.unexpected, figures.early_maturity) == (0, 0, 0)
    assert {"positive", "negative", "matured_negative", "correction"} <= set(figures.kinds)
    # The Parquet dataset holds exactly the topic's rows.
    assert sorted(dataset_rows(out)) == sorted(topic_rows(examples))
    # Poison went to the DLQs, counted; labels of unknown events expired, counted.
    dead = sum(
        len(read_all(bootstrap, dlq_topic(t), 3, timeout_s=10))
        for t in (topics.scored, topics.labels)
    )
    assert dead == 6
    summary = log.read_text().splitlines()[-1]
    unknown = {x.fact.target_event_id for x in sc.inputs if not isinstance(x, ScoredIn)
               and (x.fact.target_event_id or "").startswith("unknown")}  # fmt: skip
    assert f"orphan_expired {len(unknown):,}" in summary or not unknown, summary
    assert re.search(r"6 to DLQ", summary), summary
    # The state is bounded: everything but the tick has been closed and forgotten.
    client = redis.Redis.from_url(settings.redis_url or "")
    state = RedisJoinState(client, JoinKeys(prefix, STREAM), ttl_s=60)
    state.load()
    assert (state.meta.held, state.meta.pending, state.meta.orphans) == (1, 1, 0)
    assert state.outbox() == []
    # A realised-performance report was written at shutdown (its window: the last days).
    report = json.loads((out / STREAM / "_report.json").read_text())
    assert report["thresholds"] == [0.35, 0.8] and report["stream"] == STREAM
    # Read at a watermark 50 h in: day 0 has matured (24 h + 10 h horizon), day 1 has not.
    spec = default_spec(STREAM, horizon="10h")
    rep = compute(out, STREAM, spec, to_us(T0 + timedelta(hours=50)), thresholds=[0.35, 0.8], k=5)
    status = {(f.model_version, f.day): f.status for f in rep.days}
    assert set(status.values()) == {"realised", "estimate"}
    assert {(f.model_version, f.status) for f in rep.summary} == {
        (m, s) for m in ("m-1", "m-2") for s in ("realised", "estimate")
    }
    realised = [f for f in rep.summary if f.status == "realised"]
    assert all(
        f.auc is not None and 0 <= f.auc <= 1 and f.label_completeness == 1 for f in realised
    )
    estimate = [f for f in rep.summary if f.status == "estimate"]
    assert all(f.label_completeness is not None and f.label_completeness < 1 for f in estimate)
    # The one-off report reads the stopped joiner's clock from Redis.
    once = subprocess.run(
        [sys.executable, "-m", "streamscore.services.cli", "joiner", "--stream", STREAM,
         "--topic-prefix", prefix, "--out", str(out), "--horizon", "10h", "--report-only"],
        env={**os.environ, "KAFKA_BOOTSTRAP": bootstrap, "REDIS_URL": settings.redis_url or ""},
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    assert json.loads(once.stdout)["watermark"].startswith("2026-03-17")  # the tick, 400 h in
    state.delete_all()
