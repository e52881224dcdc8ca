"""The Kafka broker killed under load (FAULTS K1/K3 on one node): nothing lost, nothing conflicting.

A private stack (its own Kafka and Redis processes, in a temporary home, on free
ports) so that killing the broker disturbs no other test. The fused pipeline
decides transactions published at a steady rate; mid-stream the broker is
killed with SIGKILL and restarted a few seconds later from the same log
directory — shorter than the producers' delivery timeout (120 s), so every
producer retries instead of failing. Afterwards the oracle (DESIGN.md §6)
reads the input and decision topics: lost and conflicting duplicates must be
0; duplicates (a batch decided but not committed when the broker died),
latency before, during and after the outage, the recovery time and the time
from restart to the first new decision are reported (``tests/fault_report.py``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from streamscore.libs.config import Settings
from streamscore.libs.contracts.events import Transaction
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS
from streamscore.services import stack
from streamscore.services.clients import make_producer
from streamscore.services.sim_producer import publish
from tests.fault_report import decision, fault_report, input_id, outs_from, sent_from
from tests.processor_runs import create_stream_topics, read_all, start_cli, stop

pytestmark = [pytest.mark.integration, pytest.mark.fault]
S = STREAMS["transactions"]


def test_broker_killed_and_restarted_mid_stream(
    own_stack: tuple[Settings, Settings], transaction_model_dir: Path, tmp_path: Path
) -> None:
    local, settings = own_stack
    bootstrap, redis_url = settings.kafka_bootstrap or "", settings.redis_url or ""
    prefix = f"bk-{uuid.uuid4().hex[:6]}."
    create_stream_topics(settings, "transactions", prefix, outputs=True)
    records = [
        r
        for r in get("small").only("transactions").with_days(4).records(seed=17)
        if isinstance(r.event, Transaction)
    ]
    log = tmp_path / "pipeline.log"
    args = ["pipeline", "--stream", "transactions", "--topic-prefix", prefix]
    proc = start_cli(
        [*args, "--model", str(transaction_model_dir)],
        bootstrap=bootstrap,
        redis_url=redis_url,
        log=log,
    )
    producer = make_producer(settings, client_id="it-broker-fault")
    feed = threading.Thread(
        target=publish,
        args=(records, producer),
        kwargs={"rate": 250.0, "topic_prefix": prefix, "progress": lambda _m: None},
    )
    killed_at = restarted_at = 0.0
    try:
        feed.start()
        time.sleep(0.4 * len(records) / 250.0)  # 40 % published
        info = stack.status(local)
        assert info is not None and info.kafka_pid is not None
        killed_at = time.time()
        os.kill(info.kafka_pid, signal.SIGKILL)
        time.sleep(5.0)
        stack.up(local, progress=lambda _m: None)  # same ports, same log directory
        restarted_at = time.time()
        feed.join(timeout=300)
        assert not feed.is_alive()
        decided = read_all(bootstrap, prefix + S.decision_topic, len(records), timeout_s=240)
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        stop(proc)

    inputs = read_all(bootstrap, prefix + S.input_topic, len(records), timeout_s=60)
    report = fault_report(
        "K1/K3 broker SIGKILL, restarted after 5 s",
        sent_from(inputs, input_id, ids=[r.event.event_id for r in records]),
        outs_from(decided, decision),
        [(killed_at, restarted_at)],
    )
    print(f"\n{report}")
    assert (report.lost, report.conflicting) == (0, 0), log.read_text()[-3000:]
