"""Shared fixtures: the real stack the integration tests talk to.

Where the endpoints come from, in order:

1. ``KAFKA_BOOTSTRAP`` and ``REDIS_URL`` set (CI after ``streamscore up``, or an
   external cluster): use them, start nothing.
2. A Docker engine answers: Kafka (KRaft) and Redis containers via testcontainers.
3. Otherwise: the project's own local stack (real ``java`` and ``redis-server``
   processes) in a temporary home, stopped at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from streamscore.libs.config import Settings
from streamscore.libs.model.synthetic import synthetic_rows, train_synthetic_model


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=10, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings whose ``kafka_bootstrap`` and ``redis_url`` point at a live stack."""
    home = tmp_path_factory.mktemp("streamscore-home")
    if os.environ.get("KAFKA_BOOTSTRAP") and os.environ.get("REDIS_URL"):
        yield Settings(home=home, profile="test")
        return
    if _docker_available():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.redis import RedisContainer

        with KafkaContainer().with_kraft() as kafka, RedisContainer() as redis_c:
            host, port = redis_c.get_container_host_ip(), redis_c.get_exposed_port(6379)
            yield Settings(
                home=home,
                profile="test",
                kafka_bootstrap=kafka.get_bootstrap_server(),
                redis_url=f"redis://{host}:{port}/0",
            )
        return
    from streamscore.services import stack

    local = Settings(home=home, profile="test", kafka_bootstrap=None, redis_url=None)
    # Share the Kafka jar cache with the user's, so a test session downloads nothing twice.
    os.environ.setdefault("STREAMSCORE_KAFKA_CACHE", str(Settings().home / "cache"))
    info = stack.up(local, progress=lambda _m: None)
    try:
        yield Settings(
            home=home,
            profile="test",
            kafka_bootstrap=info.kafka_bootstrap,
            redis_url=info.redis_url,
        )
    finally:
        stack.down(local, progress=lambda _m: None)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def transaction_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Model inputs in the transaction feature order: amounts log-normal, 5% missing."""
    return synthetic_rows(rng, n)


@pytest.fixture(scope="session")
def transaction_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real XGBoost model on the transaction features, exported to ONNX behind the gate."""
    from streamscore.services.scorer import default_policy

    out = tmp_path_factory.mktemp("model")
    train_synthetic_model(
        out,
        name="tx-fraud",
        version="tx-fraud-it-1",
        thresholds=default_policy("transactions").thresholds,
    )
    return out
