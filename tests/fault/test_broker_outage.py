"""Kafka down for longer than the delivery timeout (FAULTS K4): visible, recoverable, not lost.

A private stack (its broker is killed). Producers and the fused pipeline run
with an 8 s delivery timeout (``STREAMSCORE_KAFKA_DELIVERY_TIMEOUT_MS``); the
broker is SIGKILLed mid-stream and kept down for 20 s while the producer goes
on publishing, then restarted from its log directory.

What must happen, and is checked:

1. Every message the producer could not deliver fails *visibly*: counted by
   librdkafka error name (``_MSG_TIMED_OUT``) and handed back through the
   delivery hook, which is the producer's retry path: the test sends those
   messages again once the broker is back, with their first attempt's timestamp
   (their latency counts from then).
2. The pipeline never commits a batch whose decisions were not acknowledged:
   if its outputs time out it stops (``ProcessingHaltedError``, non-zero exit)
   and, restarted (as a supervisor would), decides that batch again.
3. The oracle afterwards: lost 0 (every event, retried or not, has a
   decision), conflicting duplicates 0; duplicates, the pipeline's exits,
   latency before, during and after the outage and the recovery time are
   reported (``tests/fault_report.py``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message

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
TIMEOUT_MS = 8000
DOWN_S = 20.0
RATE = 100.0


def test_broker_down_past_the_delivery_timeout(
    own_stack: tuple[Settings, Settings], transaction_model_dir: Path, tmp_path: Path
) -> None:
    local, settings = own_stack
    bootstrap, redis_url = settings.kafka_bootstrap or "", settings.redis_url or ""
    prefix = f"k4-{uuid.uuid4().hex[:6]}."
    create_stream_topics(settings, "transactions", prefix, outputs=True)
    records = [
        r
        for r in get("small").only("transactions").with_days(6).records(seed=41)
        if isinstance(r.event, Transaction)
    ][:5000]
    failed: list[tuple[str, bytes, bytes]] = []  # topic, key, value: the retry path
    first_sent: dict[str, int] = {}  # event id -> ms of its first attempt (a failure has none)

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failed.append((msg.topic() or "", msg.key() or b"", msg.value() or b""))

    producer = make_producer(
        settings, client_id="it-k4", delivery_timeout_ms=TIMEOUT_MS, on_delivery=on_delivery
    )
    env = {"STREAMSCORE_KAFKA_DELIVERY_TIMEOUT_MS": str(TIMEOUT_MS)}
    args = ["pipeline", "--stream", "transactions", "--topic-prefix", prefix,
            "--model", str(transaction_model_dir)]  # fmt: skip
    log = tmp_path / "pipeline.log"
    procs = [start_cli(args, bootstrap=bootstrap, redis_url=redis_url, log=log, env=env)]
    exits: list[int] = []
    stop_supervising = threading.Event()

    def supervise() -> None:  # 2. a supervisor restarts a pipeline that stopped
        while not stop_supervising.wait(0.5):
            code = procs[-1].poll()
            if code is not None:
                exits.append(code)
                procs.append(
                    start_cli(args, bootstrap=bootstrap, redis_url=redis_url, log=log, env=env)
                )

    supervisor = threading.Thread(target=supervise, daemon=True)
    feed = threading.Thread(
        target=publish,
        args=(records, producer),
        kwargs={
            "rate": RATE,
            "topic_prefix": prefix,
            "progress": lambda _m: None,
            "on_send": lambda r: first_sent.setdefault(r.event.event_id, int(time.time() * 1e3)),
        },
    )
    try:
        supervisor.start()
        feed.start()
        time.sleep(0.3 * len(records) / RATE)
        info = stack.status(local)
        assert info is not None and info.kafka_pid is not None
        killed_at = time.time()
        os.kill(info.kafka_pid, signal.SIGKILL)
        time.sleep(DOWN_S)
        timed_out = len(failed)
        stack.up(local, progress=lambda _m: None)  # same ports, same log directory
        restarted_at = time.time()
        feed.join(timeout=300)
        assert not feed.is_alive()
        producer.flush(60)
        retried = list(failed)
        for topic, key, value in retried:  # 1. the retry path: send again what failed
            ts = first_sent.get(input_id(value) or "")
            producer.send(topic, value, key=key, timestamp_ms=ts)
        assert producer.flush(60) == 0
        decided = read_all(bootstrap, prefix + S.decision_topic, len(records), timeout_s=240)
    finally:
        stop_supervising.set()
        supervisor.join(timeout=5)
        for p in procs:
            stop(p)

    inputs = read_all(bootstrap, prefix + S.input_topic, len(records), timeout_s=60)
    report = fault_report(
        f"K4 broker down {DOWN_S:.0f} s > delivery timeout {TIMEOUT_MS / 1000:.0f} s",
        sent_from(inputs, input_id, ids=[r.event.event_id for r in records]),
        outs_from(decided, decision),
        [(killed_at, restarted_at)],
        note=(
            f"producer failures {dict(producer.failed)} ({timed_out} reported while the "
            f"broker was down), re-sent {len(retried)}; pipeline exits {exits}"
        ),
    )
    print(f"\n{report}")
    assert retried, "the outage outlasted the timeout: some deliveries must have failed"
    assert set(producer.failed) <= {"_MSG_TIMED_OUT"}, producer.failed
    assert sum(producer.failed.values()) == len(retried)  # every failure was handed back
    assert all(code != 0 for code in exits)  # a stop here is a fail-closed stop, never "done"
    assert (report.lost, report.conflicting) == (0, 0), log.read_text()[-3000:]
