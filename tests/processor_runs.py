"""Shared steps of the tests that run ``streamscore processor`` as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from streamscore.libs.config import Settings
from streamscore.libs.topics import STREAMS, TopicSpec, dlq_topic
from streamscore.services.clients import make_admin
from streamscore.services.topics_admin import create_topics


def redis_db_url(redis_url: str, db: int) -> str:
    """The same Redis server, another database (tests keep their keys apart)."""
    return f"{redis_url.rsplit('/', 1)[0]}/{db}"


def create_stream_topics(
    settings: Settings,
    stream: str,
    prefix: str,
    *,
    labels: bool = True,
    partitions: int = 3,
    outputs: bool = False,
) -> None:
    """The namespaced input, label and feature topics of ``stream``, with their DLQs
    (``outputs``: also its decision and scored-event log topics, as a pipeline needs)."""
    s = STREAMS[stream]
    inputs = [s.input_topic, s.label_topic] if labels else [s.input_topic]
    outs = (s.decision_topic, s.scored_log_topic) if outputs else ()
    specs = [TopicSpec(prefix + t, partitions, 1) for t in (*inputs, s.feature_topic, *outs)]
    specs += [TopicSpec(dlq_topic(prefix + t), 1, 1) for t in inputs]
    create_topics(make_admin(settings), specs)


def start_cli(
    args: list[str],
    *,
    bootstrap: str,
    redis_url: str,
    log: Path,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``streamscore ARGS...`` on the given Kafka and Redis (plus ``env``), output to ``log``."""
    inherited = {k: v for k, v in os.environ.items() if k != "STREAMSCORE_METRICS_PORT"}
    full = {**inherited, "KAFKA_BOOTSTRAP": bootstrap, "REDIS_URL": redis_url, **(env or {})}
    cmd = [sys.executable, "-m", "streamscore.services.cli", *args]
    return subprocess.Popen(cmd, env=full, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def start_processor(
    stream: str, prefix: str, *, bootstrap: str, redis_url: str, log: Path
) -> subprocess.Popen[bytes]:
    """``streamscore processor`` on the given Kafka and Redis, output appended to ``log``."""
    args = ["processor", "--stream", stream, "--topic-prefix", prefix]
    return start_cli(args, bootstrap=bootstrap, redis_url=redis_url, log=log)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (graceful), then SIGKILL if it does not stop within 30 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read_all(bootstrap: str, topic: str, n: int, timeout_s: float = 120.0) -> list[Any]:
    """Records of ``topic`` from the beginning: ``n`` of them, or what came by the timeout."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        out += [m for m in c.consume(5000, timeout=0.5) if m.error() is None]
    out += [m for m in c.consume(5000, timeout=1.0) if m.error() is None]
    c.close()
    return out
