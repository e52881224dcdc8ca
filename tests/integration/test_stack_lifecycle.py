"""The local stack manager against real processes: ``up``/``down``/``status`` lifecycle.

Every test runs its own Kafka (KRaft) and Redis in a temporary home on free ports
(never the defaults: another stack may run there), sharing only the Kafka jar cache
with the user's so a warm run downloads nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streamscore.libs.config import Settings
from streamscore.services import stack
from streamscore.services.stack.ports import choose_port, free_port

pytestmark = pytest.mark.integration

_ENV = (
    "KAFKA_BOOTSTRAP",
    "REDIS_URL",
    "STREAMSCORE_KAFKA_BOOTSTRAP",
    "STREAMSCORE_REDIS_URL",
    "STREAMSCORE_KAFKA_PORT",
    "STREAMSCORE_KAFKA_CONTROLLER_PORT",
    "STREAMSCORE_REDIS_PORT",
)


@dataclass
class Env:
    settings: Settings
    home: Path
    state_file: Path
    kafka_port: int
    redis_port: int


def _use_free_ports(monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    kafka_port = free_port()
    controller_port = free_port(exclude={kafka_port})
    redis_port = free_port(exclude={kafka_port, controller_port})
    monkeypatch.setenv("STREAMSCORE_KAFKA_PORT", str(kafka_port))
    monkeypatch.setenv("STREAMSCORE_KAFKA_CONTROLLER_PORT", str(controller_port))
    monkeypatch.setenv("STREAMSCORE_REDIS_PORT", str(redis_port))
    return kafka_port, redis_port


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """A temporary home with its own ports; whatever a test leaves running is stopped."""
    user_cache = Settings().home / "cache"
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    # Share the jar cache with the user's: a warm run must not run mvn.
    monkeypatch.setenv("STREAMSCORE_KAFKA_CACHE", str(user_cache))
    kafka_port, redis_port = _use_free_ports(monkeypatch)
    home = tmp_path / "home"
    settings = Settings(home=home, profile="test", kafka_bootstrap=None, redis_url=None)
    yield Env(settings, home, home / "stack" / "stack.json", kafka_port, redis_port)
    stack.down(settings, progress=lambda _m: None)


def _pid_exists(pid: int | None) -> bool:
    return pid is not None and Path(f"/proc/{pid}").exists()


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(f"{entry.name}: {cmd}")
    return found


def _kafka_roundtrip(bootstrap: str) -> None:
    topic = f"stack-test-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(
        timeout=30
    )
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce(topic, key=b"k", value=b"hello stack")
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            assert (msg.key(), msg.value()) == (b"k", b"hello stack")
            return
        pytest.fail(f"no message consumed from {topic} within 30 s")
    finally:
        consumer.close()


def _redis_roundtrip(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        assert client.set("stack-test", "value")
        assert client.get("stack-test") == b"value"
    finally:
        client.close()


def test_up_twice_works_and_down_leaves_nothing(env: Env, tmp_path: Path) -> None:
    messages: list[str] = []
    info = stack.up(env.settings, progress=messages.append)
    assert info.managed
    assert info.kafka_bootstrap == f"127.0.0.1:{env.kafka_port}"
    assert info.redis_url == f"redis://127.0.0.1:{env.redis_port}/0"
    assert _pid_exists(info.kafka_pid) and _pid_exists(info.redis_pid)
    assert env.state_file.is_file()
    assert any("ready on" in m for m in messages), messages
    assert stack.status(env.settings) == info

    # A second `up` finds it running: same pids, nothing started (its speed is in the note,
    # not asserted: timings belong to benchmarks).
    again: list[str] = []
    assert stack.up(env.settings, progress=again.append) == info
    assert any("already running" in m for m in again), again
    assert not any("ready on" in m or "jars" in m for m in again), again

    # The stack really works.
    _kafka_roundtrip(info.kafka_bootstrap)
    _redis_roundtrip(info.redis_url)
    assert stack.env_lines(info) == [
        f"export KAFKA_BOOTSTRAP=127.0.0.1:{env.kafka_port}",
        f"export REDIS_URL=redis://127.0.0.1:{env.redis_port}/0",
    ]

    # Both endpoints external: nothing started, nothing written in that home.
    other = tmp_path / "other-home"
    external = stack.up(
        Settings(home=other, kafka_bootstrap=info.kafka_bootstrap, redis_url=info.redis_url),
        progress=lambda _m: None,
    )
    assert not external.managed
    assert (external.kafka_pid, external.redis_pid) == (None, None)
    assert not (other / "stack").exists()

    # `down` stops both processes and leaves nothing behind; a second `down` is a no-op.
    stopped: list[str] = []
    assert stack.down(env.settings, progress=stopped.append) is True
    assert not _pid_exists(info.kafka_pid)
    assert not _pid_exists(info.redis_pid)
    assert _processes_mentioning(str(env.home)) == []
    assert not env.state_file.exists()
    assert stack.status(env.settings) is None
    assert stack.down(env.settings, progress=stopped.append) is False


def test_concurrent_ups_start_one_stack(env: Env) -> None:
    logs: list[list[str]] = [[], []]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(stack.up, env.settings, progress=log.append) for log in logs]
        first, second = (f.result(timeout=180) for f in futures)
    assert first == second
    flat = [m for log in logs for m in log]
    assert sum("kafka: 3.9.1 (KRaft) ready on" in m for m in flat) == 1, flat
    assert sum("already running" in m for m in flat) == 1, flat


def test_only_the_missing_side_is_started(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = stack.up(env.settings, progress=lambda _m: None)
    _use_free_ports(monkeypatch)
    half = Settings(home=tmp_path / "half", kafka_bootstrap=None, redis_url=first.redis_url)
    try:
        info = stack.up(half, progress=lambda _m: None)
        assert info.managed
        assert info.redis_url == first.redis_url and info.redis_pid is None
        assert info.kafka_pid not in (None, first.kafka_pid)
        _kafka_roundtrip(info.kafka_bootstrap)
    finally:
        assert stack.down(half, progress=lambda _m: None) is True
    assert not _pid_exists(info.kafka_pid)
    assert _pid_exists(first.redis_pid), "down must not stop an external Redis"


def test_stale_state_is_recovered_and_jars_stay_cached(env: Env) -> None:
    # 1. A recorded process died (Redis SIGKILLed): status says not running, `up` cleans up
    #    the survivor and starts a fresh stack.
    first = stack.up(env.settings, progress=lambda _m: None)
    assert first.redis_pid is not None
    os.kill(first.redis_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while stack.status(env.settings) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.status(env.settings) is None
    messages: list[str] = []
    second = stack.up(env.settings, progress=messages.append)
    assert any("stale" in m for m in messages), messages
    assert not _pid_exists(first.kafka_pid)
    assert second.kafka_pid != first.kafka_pid and second.redis_pid != first.redis_pid
    _redis_roundtrip(second.redis_url)

    # 2. A state file whose pids are all dead (left by a crash or a reboot): recovered too,
    #    and the warm start takes the jars from the cache without running mvn.
    saved = env.state_file.read_text()
    assert stack.down(env.settings, progress=lambda _m: None) is True
    env.state_file.write_text(saved)
    assert stack.status(env.settings) is None
    messages.clear()
    third = stack.up(env.settings, progress=messages.append)
    assert any("stale" in m for m in messages), messages
    assert any("jars cached" in m for m in messages), messages
    assert not any("fetch" in m for m in messages), messages
    assert stack.wait_kafka_ready(third.kafka_bootstrap, 10) < 10
    assert stack.wait_redis_ready(third.redis_url, 10) < 10
    assert stack.down(env.settings, progress=lambda _m: None) is True
    assert _processes_mentioning(str(env.home)) == []


def test_busy_requested_port_fails_clearly(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setenv("STREAMSCORE_REDIS_PORT", str(port))
        with pytest.raises(
            stack.PortBusyError, match=rf"127\.0\.0\.1:{port}.*STREAMSCORE_REDIS_PORT"
        ):
            stack.up(env.settings, progress=lambda _m: None)
    assert not env.state_file.exists()
    assert _processes_mentioning(str(env.home)) == []


def test_busy_default_port_is_replaced_and_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMSCORE_TEST_PORT", raising=False)
    messages: list[str] = []
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        default = busy.getsockname()[1]
        chosen = choose_port(
            default, what="thing", env_var="STREAMSCORE_TEST_PORT", progress=messages.append
        )
    assert chosen != default
    assert messages == [f"thing: default port {default} is busy, using {chosen} instead"]
