"""The feature processor under faults (FAULTS: Redis restart, service kill -9, rebalance).

The oracle reads the input and feature topics afterwards: **lost** (events
without a feature record), **dup** (records beyond one per event) and
**conflicting** (one event, two different records). Lost and conflicting must
be 0; then ``streamscore features verify`` recomputes every event offline and
requires zero mismatches: no window update was lost or applied twice. Latency
(input record to feature record) before, during and after each fault and the
recovery time are reported (``tests/fault_report.py``).

Scenarios, each on transactions replayed at a steady pace:

* Redis killed (SIGKILL) mid-stream and restarted 3 s later on its own port,
  with its append-only file (``appendfsync always``): the processor retries,
  commits nothing meanwhile, and resumes.
* Two processors in one consumer group (they split the partitions; terminals
  are shared, so their Redis transactions really conflict), one killed with
  SIGKILL mid-stream: the survivor takes its partitions over.
* One processor killed with SIGKILL again and again while the events come in,
  restarted at once each time (a supervisor's job).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer

from streamscore.libs.config import Settings
from streamscore.libs.contracts.events import Transaction
from streamscore.libs.contracts.labels import Chargeback
from streamscore.libs.simulator.records import SimRecord
from streamscore.libs.simulator.scenario import get
from streamscore.libs.topics import STREAMS
from streamscore.services.clients import endpoints, make_producer
from streamscore.services.feature_verify import run_verify
from streamscore.services.sim_producer import publish
from tests.fault_report import (
    FaultReport,
    Out,
    fault_report,
    feature_id,
    input_id,
    kafka_ms,
    sent_from,
)
from tests.processor_runs import create_stream_topics, read_all, start_processor, stop

pytestmark = [pytest.mark.integration, pytest.mark.fault]
S = STREAMS["transactions"]
SPEEDUP = 40_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class OwnRedis:
    """A redis-server of the test's own, durable on every write, restartable on its port."""

    def __init__(self, home: Path) -> None:
        self.port = _free_port()
        self.home = home
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe is not None
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.home),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    r = OwnRedis(tmp_path)
    r.start()
    yield r
    if r.proc is not None and r.proc.poll() is None:
        r.kill()


def _world(days: int) -> tuple[list[SimRecord], list[SimRecord]]:
    world = get("small").only("transactions").with_days(days)
    records = list(world.records(seed=8))
    events = [r for r in records if isinstance(r.event, Transaction)]
    labels = [r for r in records if isinstance(r.event, Chargeback)]
    return events, labels


def _topics(settings: Settings) -> str:
    prefix = f"fault-{uuid.uuid4().hex[:8]}."
    create_stream_topics(settings, "transactions", prefix)
    return prefix


def _processor(prefix: str, redis_url: str, bootstrap: str, log: Path) -> subprocess.Popen[bytes]:
    return start_processor(
        "transactions", prefix, bootstrap=bootstrap, redis_url=redis_url, log=log
    )


def _feature_records(
    bootstrap: str, prefix: str, ids: set[str], timeout_s: float = 120
) -> list[Out]:
    """The feature topic's records (outcome: the record's bytes), once every id has one."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([prefix + S.feature_topic])
    out: list[Out] = []
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    idle_since = time.monotonic()
    while time.monotonic() < deadline:
        msgs = [m for m in c.consume(5000, timeout=0.5) if m.error() is None]
        for m in msgs:
            value = m.value() or b""
            out.append(Out(feature_id(value), value, kafka_ms(m)))
            seen.add(out[-1].event_id)
        if msgs:
            idle_since = time.monotonic()
        elif ids <= seen and time.monotonic() - idle_since > 3:
            break
    c.close()
    return out


def _report(
    scenario: str,
    bootstrap: str,
    prefix: str,
    events: list[SimRecord],
    faults: list[tuple[float, float]],
) -> FaultReport:
    """The oracle over the input topic and the feature topic."""
    ids = {e.event.event_id for e in events}
    outputs = _feature_records(bootstrap, prefix, ids)
    read = read_all(bootstrap, prefix + S.input_topic, len(events))
    inputs = sent_from(read, input_id, ids=ids)
    return fault_report(scenario, inputs, outputs, faults, output_name="feature record")


def _label_and_wait(prefix: str, labels: list[SimRecord], settings: Settings) -> None:
    publish(
        labels,
        make_producer(settings, client_id="fault-labels"),
        topic_prefix=prefix,
        progress=lambda _: None,
    )


def _verify(settings: Settings, prefix: str, n: int) -> Any:
    res = run_verify(settings, "transactions", topic_prefix=prefix, idle_s=5.0)
    a = res.agreement
    assert a.compared == n
    assert not any(a.mismatches.values()), {k: v for k, v in a.mismatches.items() if v}
    return a


def test_redis_killed_and_restarted_mid_stream(
    stack_settings: Settings, own_redis: OwnRedis, tmp_path: Path
) -> None:
    bootstrap = endpoints(stack_settings).kafka_bootstrap
    events, labels = _world(12)
    prefix = _topics(stack_settings)
    log = tmp_path / "processor.log"
    _label_and_wait(prefix, labels, stack_settings)
    proc = _processor(prefix, own_redis.url, bootstrap, log)
    try:
        time.sleep(4)
        producer = make_producer(stack_settings, client_id="fault-feed")
        half = len(events) // 2
        publish(
            events[:half], producer, topic_prefix=prefix, speedup=SPEEDUP, progress=lambda _: None
        )
        killed_at = time.time()
        own_redis.kill()
        publish(events[half : half + 500], producer, topic_prefix=prefix, progress=lambda _: None)
        time.sleep(3)  # events keep coming while Redis is away
        own_redis.start()
        fault = (killed_at, time.time())
        publish(
            events[half + 500 :],
            producer,
            topic_prefix=prefix,
            speedup=SPEEDUP,
            progress=lambda _: None,
        )
        report = _report(
            "F4 Redis SIGKILL, restarted after 3 s", bootstrap, prefix, events, [fault]
        )
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        stop(proc)
    print(f"\n{report}")
    assert report.lost == 0 and report.conflicting == 0
    assert "redis error, retrying" in log.read_text()
    _verify(stack_settings, prefix, len(events))


def test_two_processors_one_killed(
    stack_settings: Settings, own_redis: OwnRedis, tmp_path: Path
) -> None:
    bootstrap = endpoints(stack_settings).kafka_bootstrap
    events, labels = _world(12)
    prefix = _topics(stack_settings)
    _label_and_wait(prefix, labels, stack_settings)
    logs = [tmp_path / "p1.log", tmp_path / "p2.log"]
    procs = [_processor(prefix, own_redis.url, bootstrap, log) for log in logs]
    try:
        time.sleep(6)  # both joined: the three partitions are split between them
        producer = make_producer(stack_settings, client_id="fault-feed")
        half = len(events) // 2
        publish(
            events[:half], producer, topic_prefix=prefix, speedup=SPEEDUP, progress=lambda _: None
        )
        killed_at = time.time()
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        publish(
            events[half:], producer, topic_prefix=prefix, speedup=SPEEDUP, progress=lambda _: None
        )
        report = _report(
            "two processors, one SIGKILLed (not restarted)",
            bootstrap,
            prefix,
            events,
            [(killed_at, killed_at)],  # nothing restarts: the survivor takes over
        )
        assert procs[1].poll() is None, logs[1].read_text()[-3000:]
    finally:
        for p in procs:
            stop(p)
    print(f"\n{report}")
    assert report.lost == 0 and report.conflicting == 0
    _verify(stack_settings, prefix, len(events))


def test_processor_sigkill_repeated(
    stack_settings: Settings, own_redis: OwnRedis, tmp_path: Path
) -> None:
    bootstrap = endpoints(stack_settings).kafka_bootstrap
    events, labels = _world(12)
    prefix = _topics(stack_settings)
    _label_and_wait(prefix, labels, stack_settings)
    log = tmp_path / "processor.log"
    procs = [_processor(prefix, own_redis.url, bootstrap, log)]
    producer = make_producer(stack_settings, client_id="fault-feed")
    feed = threading.Thread(
        target=publish,
        args=(events, producer),
        kwargs={"topic_prefix": prefix, "speedup": SPEEDUP / 4, "progress": lambda _: None},
    )
    kills = 0
    faults: list[tuple[float, float]] = []
    try:
        time.sleep(4)
        feed.start()
        while feed.is_alive() or kills < 3:
            time.sleep(3.0)
            killed_at = time.time()
            procs[-1].send_signal(signal.SIGKILL)
            procs[-1].wait()
            kills += 1
            procs.append(_processor(prefix, own_redis.url, bootstrap, log))
            faults.append((killed_at, time.time()))
        feed.join()
        report = _report(
            f"processor SIGKILL x{kills}, restarted at once", bootstrap, prefix, events, faults
        )
        assert procs[-1].poll() is None, log.read_text()[-3000:]
    finally:
        for p in procs:
            stop(p)
    print(f"\n{report}")
    assert report.lost == 0 and report.conflicting == 0
    _verify(stack_settings, prefix, len(events))
