"""Stream services stopped with SIGTERM mid-backlog, twice, then restarted (FAULTS K6).

``streamscore pipeline`` is the deployed stream path (events → features on
Redis → decision, one process); ``streamscore processor`` is the faust feature
processor of the two-stage deployment. A graceful stop must finish the batch in
hand, wait for its records' acknowledgement, commit and exit 0: after two stops
in the middle of a backlog and two restarts, the oracle finds every event's
output exactly once (lost 0, dup 0, conflicting 0) — decisions and feature
records alike. The shutdown time of each stop is printed, with the suite's
report (``tests/fault_report.py``) of the service's output (the pipeline's
decisions, the processor's feature records); the backlog is published before
the service starts, so latency measures it and the figure of a restart is its
first output. (The scorer's own SIGTERM test is in
``test_scorer_process_faults.py``.)
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from streamscore.libs.config import Settings
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS
from streamscore.services.clients import endpoints, make_producer
from streamscore.services.sim_producer import publish
from tests.fault_report import (
    decision,
    fault_report,
    feature_id,
    input_id,
    outs_from,
    sent_from,
)
from tests.processor_runs import create_stream_topics, read_all, redis_db_url, start_cli

pytestmark = [pytest.mark.integration, pytest.mark.fault]
S = STREAMS["transactions"]
REDIS_DB = 15  # shared with tests/integration/test_pipeline.py: each flushes it first


def _records(bootstrap: str, topic: str) -> int:
    """Records written to ``topic`` so far (sum of the partitions' end offsets)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    total = sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
    c.close()
    return total


def _quiet(_: str) -> None:
    pass


@pytest.mark.parametrize("service", ["pipeline", "processor"])
def test_sigterm_mid_backlog_twice_outputs_every_event_once(
    service: str, stack_settings: Settings, transaction_model_dir: Path, tmp_path: Path
) -> None:
    bootstrap = endpoints(stack_settings).kafka_bootstrap
    url = redis_db_url(endpoints(stack_settings).redis_url, REDIS_DB)
    redis.Redis.from_url(url).flushdb()
    prefix = f"k6p-{uuid.uuid4().hex[:8]}."
    create_stream_topics(stack_settings, "transactions", prefix, outputs=True)
    records = get("small").only("transactions").with_days(14).records(seed=21)
    events = [r for r in records if r.topic == S.input_topic]
    ids = {r.event.event_id for r in events}
    publish(events, make_producer(stack_settings, client_id="it-k6p"), topic_prefix=prefix,
            progress=_quiet)  # fmt: skip
    args = [service, "--stream", "transactions", "--topic-prefix", prefix]
    if service == "pipeline":
        args += ["--model", str(transaction_model_dir)]
    log = tmp_path / f"{service}.log"
    progress = prefix + S.feature_topic  # both services write one feature record per event
    shutdowns, codes = [], []
    stopped_at: list[float] = []
    started_at: list[float] = []
    for fraction in (0.25, 0.6):  # stop in the middle of the backlog, twice
        proc = start_cli(args, bootstrap=bootstrap, redis_url=url, log=log)
        started_at.append(time.time())
        deadline = time.monotonic() + 120
        while _records(bootstrap, progress) < fraction * len(ids):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        t = time.monotonic()
        stopped_at.append(time.time())
        proc.send_signal(signal.SIGTERM)
        codes.append(proc.wait(timeout=60))
        shutdowns.append(time.monotonic() - t)
    proc = start_cli(args, bootstrap=bootstrap, redis_url=url, log=log)
    started_at.append(time.time())
    try:
        deadline = time.monotonic() + 180
        while _records(bootstrap, progress) < len(ids):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(2.0)  # anything decided twice would be written by now
        # Not transactional: the end offsets count exactly the records written.
        n_feat = _records(bootstrap, progress)
        features = read_all(bootstrap, progress, n_feat, timeout_s=60)
        decided = []
        if service == "pipeline":
            n_dec = _records(bootstrap, prefix + S.decision_topic)
            decided = read_all(bootstrap, prefix + S.decision_topic, n_dec, timeout_s=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        codes.append(proc.wait(timeout=60))
    redis.Redis.from_url(url).flushdb()

    feature_count = Counter(feature_id(m.value()) for m in features)
    figures = {
        "lost": len(ids - set(feature_count)),
        "dup": sum(feature_count.values()) - len(feature_count),
    }
    inputs = read_all(bootstrap, prefix + S.input_topic, len(events), timeout_s=60)
    report = fault_report(
        f"K6 {service} SIGTERM x2 mid-backlog",
        sent_from(inputs, input_id, ids=ids),
        outs_from(decided, decision)
        if service == "pipeline"
        else outs_from(features, lambda v: (feature_id(v), v)),
        list(zip(stopped_at, started_at[1:], strict=True)),
        output_name="decision" if service == "pipeline" else "feature record",
        note=(
            f"feature records {figures}; exit codes {codes}; shutdown "
            f"{', '.join(f'{s:.2f} s' for s in shutdowns)}"
        ),
    )
    print(f"\n{report}")
    assert (report.lost, report.dup, report.conflicting) == (0, 0, 0), report
    assert codes == [0, 0, 0], log.read_text()[-3000:]
    assert set(figures.values()) == {0}, figures
    assert set(feature_count) == ids
