"""The scorer as a real process under SIGTERM and SIGKILL (FAULTS K5, K6) with the oracle.

The oracle reads the input and the decision topics afterwards and counts
**lost** (inputs without a decision), **dup** (decision records beyond one per
input) and **conflicting dup** (one input, two different decisions). Lost and
conflicting must be 0 under both faults; dup must be 0 for a graceful stop and
bounded by the in-flight batches for a kill. The feature records are all
published before the scorer starts (a backlog), so latency measures the
backlog and the figure of a restart is its first decision
(``tests/fault_report.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Hashable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Consumer, TopicPartition

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.decisions import TransactionDecision
from streamscore.libs.contracts.events import Transaction
from streamscore.libs.contracts.features import TransactionFeatures
from streamscore.libs.contracts.samples import sample_events
from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.topics import STREAMS, TopicSpec, dlq_topic
from streamscore.services.clients import make_admin, make_producer
from streamscore.services.topics_admin import create_topics
from tests.conftest import transaction_rows
from tests.fault_report import (
    FaultReport,
    Out,
    decision,
    fault_report,
    feature_id,
    kafka_ms,
    sent_from,
)
from tests.processor_runs import read_all

pytestmark = [pytest.mark.integration, pytest.mark.fault]
NAMES = model_features("transactions")
N = 6000


def _feed(settings: Settings, topic: str, n: int) -> set[str]:
    rng = np.random.default_rng(7)
    X = transaction_rows(rng, n)
    now = datetime.now(tz=UTC)
    producer = make_producer(settings, client_id="fault-feed")
    ids = set()
    for ev, row in zip(sample_events("transactions", n, seed=9), X, strict=True):
        assert isinstance(ev, Transaction)
        values = {k: (None if np.isnan(v) else float(v)) for k, v in zip(NAMES, row, strict=True)}
        fv = TransactionFeatures(
            event=ev,
            values=values,
            feature_statuses={"customer_tx": "PRESENT", "terminal_risk": "PRESENT"},
            feature_freshness={"customer_tx": 1.0, "terminal_risk": 1.0},
            computed_at=now,
            schema_hash=feature_schema_hash("transactions"),
        )
        producer.send(topic, encode(fv), key=ev.customer_id.encode())
        ids.add(ev.event_id)
    assert producer.flush(30) == 0
    return ids


class ScorerProcess:
    """``streamscore scorer`` in its own process, namespaced by a topic prefix."""

    def __init__(self, settings: Settings, model_dir: Path, prefix: str) -> None:
        self.argv = [
            sys.executable,
            "-m",
            "streamscore.services.cli",
            "scorer",
            "--stream",
            "transactions",
            "--model",
            str(model_dir),
            "--topic-prefix",
            prefix,
        ]
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
            "REDIS_URL": settings.redis_url or "",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def stop(self, sig: int, timeout_s: float = 30) -> tuple[int, float]:
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout_s)
        return code, time.monotonic() - started


def _decision(value: bytes) -> tuple[str, Hashable]:
    decode(TransactionDecision, value, max_bytes=1 << 20)  # every record a valid decision
    return decision(value)


def _decisions(settings: Settings, topic: str, want: set[str], timeout_s: float = 60) -> list[Out]:
    c = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    c.subscribe([topic])
    got: list[Out] = []
    decided: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while not want <= decided and time.monotonic() < deadline:
        for m in c.consume(2000, timeout=0.5):
            if m.error() is None:
                got.append(Out(*_decision(m.value() or b""), kafka_ms(m)))
                decided.add(got[-1].event_id)
    c.close()
    return got


def _count(settings: Settings, topic: str) -> int:
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": uuid.uuid4().hex})
    meta = c.list_topics(topic, timeout=10).topics[topic]
    total = sum(
        c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions
    )
    c.close()
    return total


def _report(
    scenario: str,
    settings: Settings,
    src: str,
    out: str,
    ids: set[str],
    faults: list[tuple[float, float]],
) -> FaultReport:
    """The oracle over the feature topic (inputs) and the decision topic."""
    inputs = sent_from(read_all(settings.kafka_bootstrap or "", src, len(ids)), feature_id, ids=ids)
    return fault_report(scenario, inputs, _decisions(settings, out, ids), faults)


def _topics(settings: Settings, prefix: str) -> tuple[str, str]:
    s = STREAMS["transactions"]
    src, out = prefix + s.feature_topic, prefix + s.decision_topic
    create_topics(
        make_admin(settings),
        [TopicSpec(t, 3, 1) for t in (src, out, prefix + s.scored_log_topic, dlq_topic(src))],
    )
    return src, out


def _wait_decided(settings: Settings, topic: str, at_least: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while _count(settings, topic) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)


def test_sigterm_is_graceful_no_duplicates(
    stack_settings: Settings, transaction_model_dir: Path
) -> None:
    prefix = f"fault-{uuid.uuid4().hex[:8]}."
    src, out = _topics(stack_settings, prefix)
    ids = _feed(stack_settings, src, N)
    scorer = ScorerProcess(stack_settings, transaction_model_dir, prefix)
    scorer.start()
    _wait_decided(stack_settings, out, N // 3)
    stopped_at = time.time()
    code, shutdown_s = scorer.stop(signal.SIGTERM)
    assert code == 0, (
        scorer.proc.stderr.read().decode() if scorer.proc and scorer.proc.stderr else ""
    )
    scorer.start()
    fault = (stopped_at, time.time())
    _wait_decided(stack_settings, out, N)
    scorer.stop(signal.SIGTERM)
    report = _report("K6 scorer SIGTERM, restarted", stack_settings, src, out, ids, [fault])
    print(f"\n{report}; shutdown {shutdown_s:.2f} s")
    assert (report.lost, report.dup, report.conflicting) == (0, 0, 0)
    assert shutdown_s < 10


def test_sigkill_loses_nothing_and_never_conflicts(
    stack_settings: Settings, transaction_model_dir: Path
) -> None:
    prefix = f"fault-{uuid.uuid4().hex[:8]}."
    src, out = _topics(stack_settings, prefix)
    ids = _feed(stack_settings, src, N)
    scorer = ScorerProcess(stack_settings, transaction_model_dir, prefix)
    kills = 0
    killed_at: list[float] = []
    restarted_at: list[float] = []
    for fraction in (0.2, 0.45, 0.7):
        scorer.start()
        restarted_at.append(time.time())
        _wait_decided(stack_settings, out, int(N * fraction))
        killed_at.append(time.time())
        scorer.stop(signal.SIGKILL)
        kills += 1
    scorer.start()
    restarted_at.append(time.time())
    _wait_decided(stack_settings, out, N)
    time.sleep(1.0)
    scorer.stop(signal.SIGTERM)
    faults = list(zip(killed_at, restarted_at[1:], strict=True))
    report = _report(f"K5 scorer SIGKILL x{kills}", stack_settings, src, out, ids, faults)
    print(f"\n{report}; dup per kill {report.dup / kills:.0f}")
    assert report.lost == 0 and report.conflicting == 0
    # At most the batches in flight at each kill are decided twice (max_batch 256 each).
    assert report.dup <= kills * 256 * 3
