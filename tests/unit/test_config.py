from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streamscore.libs.config import Settings

DEFAULT_KEY = "streamscore-local-signing-key-not-for-production"


def test_env_pointers_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:16379/0")
    monkeypatch.setenv("STREAMSCORE_TOPIC_PARTITIONS", "12")
    s = Settings()
    assert (s.kafka_bootstrap, s.redis_url, s.topic_partitions) == (
        "127.0.0.1:19092",
        "redis://127.0.0.1:16379/0",
        12,
    )


@pytest.mark.parametrize("profile", ["staging", "prod"])
@pytest.mark.parametrize("token", ["", "change-me", DEFAULT_KEY])
def test_default_secret_refused_outside_local(profile: str, token: str) -> None:
    with pytest.raises(ValidationError, match="refuses the default"):
        Settings(profile=profile, api_signing_key=token)  # type: ignore[arg-type]


def test_real_secret_accepted_and_never_printed() -> None:
    s = Settings(profile="prod", api_signing_key="s3cr3t-value-0123456789")  # type: ignore[arg-type]
    assert "s3cr3t" not in repr(s)
    assert "s3cr3t" not in str(s.redacted())


def test_redis_password_redacted() -> None:
    s = Settings(redis_url="redis://:hunter2@127.0.0.1:6379/0")
    assert "hunter2" not in str(s.redacted())


def test_invalid_partitions_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSCORE_TOPIC_PARTITIONS", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_mlflow_is_local_under_home_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STREAMSCORE_HOME", str(tmp_path))
    monkeypatch.delenv("STREAMSCORE_MLFLOW_TRACKING_URI", raising=False)
    s = Settings()
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert s.mlflow_artifact_root == tmp_path / "mlflow" / "artifacts"
    monkeypatch.setenv("STREAMSCORE_MLFLOW_TRACKING_URI", "postgresql://ml:hunter2@db:5432/mlflow")
    s = Settings()
    assert s.mlflow_tracking_uri == "postgresql://ml:hunter2@db:5432/mlflow"
    assert "hunter2" not in str(s.redacted())
