"""The fused pipeline (``streamscore pipeline``) on the real stack: features equal the offline
computation, every event decided once, and a SIGKILL mid-stream loses nothing (DESIGN.md §6)."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np
import pytest
import redis

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import decode
from streamscore.libs.contracts.events import Transaction
from streamscore.libs.contracts.features import TransactionFeatures
from streamscore.libs.contracts.labels import Chargeback
from streamscore.libs.features.definitions import model_features
from streamscore.libs.features.offline import compute
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS
from streamscore.services.clients import endpoints, make_producer
from streamscore.services.sim_producer import publish
from tests.processor_runs import (
    create_stream_topics,
    read_all,
    redis_db_url,
    start_cli,
    stop,
)

pytestmark = pytest.mark.integration
S = STREAMS["transactions"]
REDIS_DB = 15
#: Event time / wall time of the replay: partitions stay close in event time, as
#: in the processor's online = offline test (a terminal is fed by every partition).
SPEEDUP = 50_000


def _quiet(_: str) -> None:
    pass


class _Decision(msgspec.Struct):
    event_id: str
    decision: str
    score: float | None
    model_version: str
    degraded: str | None


@pytest.fixture
def pipeline_env(stack_settings: Settings) -> Iterator[tuple[str, str]]:
    url = redis_db_url(endpoints(stack_settings).redis_url, REDIS_DB)
    r = redis.Redis.from_url(url)
    r.flushdb()
    prefix = f"pl-{uuid.uuid4().hex[:8]}."
    create_stream_topics(stack_settings, "transactions", prefix, outputs=True)
    yield prefix, url
    r.flushdb()


def test_pipeline_decides_every_event_on_offline_equal_features_through_a_kill(
    stack_settings: Settings,
    pipeline_env: tuple[str, str],
    transaction_model_dir: Path,
    tmp_path: Path,
) -> None:
    prefix, url = pipeline_env
    bootstrap = endpoints(stack_settings).kafka_bootstrap
    records = list(get("small").only("transactions").with_days(7).records(seed=9))
    events = [x for x in records if isinstance(x.event, Transaction)]
    labels = [x for x in records if isinstance(x.event, Chargeback)]
    producer = make_producer(stack_settings, client_id="it-pipeline")
    args = ["pipeline", "--stream", "transactions", "--topic-prefix", prefix]
    args += ["--model", str(transaction_model_dir)]
    log = tmp_path / "pipeline.log"
    # Labels first (all arrived before any event is processed: the offline rule).
    publish(labels, producer, topic_prefix=prefix, progress=_quiet)
    proc = start_cli(args, bootstrap=bootstrap, redis_url=url, log=log)
    half = len(events) // 2
    try:
        time.sleep(5)  # labels consumed before the events come
        publish(events[:half], producer, topic_prefix=prefix, speedup=SPEEDUP, progress=_quiet)
        read_all(bootstrap, prefix + S.decision_topic, half // 2, timeout_s=120)
        proc.send_signal(signal.SIGKILL)  # mid-stream: some decided, some not committed
        proc.wait()
        proc = start_cli(args, bootstrap=bootstrap, redis_url=url, log=log)
        publish(events[half:], producer, topic_prefix=prefix, speedup=SPEEDUP, progress=_quiet)
        decided = read_all(bootstrap, prefix + S.decision_topic, len(events), timeout_s=180)
        features = read_all(bootstrap, prefix + S.feature_topic, len(events), timeout_s=30)
    finally:
        stop(proc)

    # The oracle: nothing lost, duplicates identical (the kill replays a batch).
    by_id: dict[str, set[tuple[str, float | None, str]]] = {}
    for m in decided:
        d = msgspec.json.decode(m.value(), type=_Decision)
        by_id.setdefault(d.event_id, set()).add((d.decision, d.score, d.model_version))
    assert {e.event.event_id for e in events} <= set(by_id), log.read_text()[-2000:]
    assert all(len(v) == 1 for v in by_id.values()), "a conflicting duplicate"
    assert {v for s in by_id.values() for (_, _, v) in s} == {"tx-fraud-it-1"}

    # The features the model saw equal the offline computation (first record per event).
    online: dict[str, TransactionFeatures] = {}
    for m in features:
        fv = decode(TransactionFeatures, m.value(), max_bytes=1 << 21)
        online.setdefault(fv.event.event_id, fv)
    offline = {
        ev.event_id: res
        for ev, res in compute("transactions", [e.event for e in events], [x.event for x in labels])
    }
    bad = 0
    for eid, fv in online.items():
        off = offline[eid]
        for n in model_features("transactions"):
            a, b = fv.values[n], off.values[n]
            if (a is None) != (b is None) or (
                a is not None and not np.isclose(a, b, rtol=1e-6, atol=1e-9)  # type: ignore[arg-type]
            ):
                bad += 1
    assert len(online) == len(events)
    assert bad == 0
