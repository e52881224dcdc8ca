"""Fixtures of the fault suite: a private Kafka + Redis that a test may kill."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamscore.libs.config import Settings
from streamscore.services import stack


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def own_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, Settings]]:
    """A Kafka + Redis of this test only: ``(the stack's own settings, clients' settings)``.

    Its ports are pinned (environment), so a restart comes back where the clients
    already point: a broker that came back elsewhere would be a different fault.
    """
    os.environ.setdefault("STREAMSCORE_KAFKA_CACHE", str(Settings().home / "cache"))
    for var in ("STREAMSCORE_KAFKA_PORT", "STREAMSCORE_KAFKA_CONTROLLER_PORT"):
        monkeypatch.setenv(var, str(_free_port()))
    monkeypatch.setenv("STREAMSCORE_REDIS_PORT", str(_free_port()))
    local = Settings(home=tmp_path / "stack", profile="test", kafka_bootstrap=None, redis_url=None)
    info = stack.up(local, progress=lambda _m: None)
    try:
        yield (
            local,
            Settings(
                home=local.home,
                profile="test",
                kafka_bootstrap=info.kafka_bootstrap,
                redis_url=info.redis_url,
            ),
        )
    finally:
        stack.down(local, progress=lambda _m: None)
