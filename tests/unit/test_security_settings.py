"""Kafka and Redis security settings: read from the environment, checked, applied, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streamscore.libs.config import Settings
from streamscore.libs.kafka_config import admin_config, consumer_config, producer_config
from streamscore.libs.security import (
    aiokafka_security,
    kafka_security_config,
    redis_security_options,
)
from streamscore.services.faust_auth import broker_credentials
from streamscore.services.stack.lifecycle import StackInfo, env_lines

SASL_ENV = {
    "STREAMSCORE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "STREAMSCORE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
    "STREAMSCORE_KAFKA_SASL_USERNAME": "scorer",
    "STREAMSCORE_KAFKA_SASL_PASSWORD": "kafka-pw-123",
    "STREAMSCORE_REDIS_USERNAME": "features",
    "STREAMSCORE_REDIS_PASSWORD": "redis-pw-456",
}


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in SASL_ENV.items():
        monkeypatch.setenv(k, v)
    s = Settings()
    assert kafka_security_config(s) == {
        "security.protocol": "sasl_plaintext",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "scorer",
        "sasl.password": "kafka-pw-123",
    }
    assert redis_security_options(s, "redis://127.0.0.1:6379/0") == {
        "username": "features",
        "password": "redis-pw-456",
    }
    shown = f"{s!r} {s} {s.redacted()}"
    assert "kafka-pw-123" not in shown and "redis-pw-456" not in shown


def test_every_kafka_config_carries_the_security_keys() -> None:
    sec = kafka_security_config(
        Settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
        )
    )
    for cfg in (
        producer_config("b:9093", client_id="c", security=sec),
        producer_config("b:9093", client_id="c", transactional_id="t", security=sec),
        consumer_config("b:9093", group_id="g", security=sec),
        admin_config("b:9093", security=sec),
    ):
        assert cfg["security.protocol"] == "sasl_ssl"
        assert cfg["sasl.password"] == "p"


def test_plaintext_is_written_explicitly() -> None:
    assert kafka_security_config(Settings()) == {"security.protocol": "plaintext"}
    assert broker_credentials(Settings()) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "needs STREAMSCORE_KAFKA_SASL_USERNAME"),
        ({"kafka_sasl_username": "u", "kafka_sasl_password": "p"}, "does not use SASL"),
        ({"kafka_ssl_cert_file": "/c.pem"}, "go together"),
        ({"redis_ssl_key_file": "/k.pem"}, "go together"),
    ],
)
def test_contradictions_fail_naming_the_variable(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [
        {"redis_password": ""},
        {"redis_password": "change-me"},
        {"redis_url": "redis://:change-me@r:6379/0"},
        {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_username": "u",
            "kafka_sasl_password": "",
        },
    ],
)
def test_default_passwords_refused_outside_local(fields: dict[str, str]) -> None:
    Settings(profile="local", **fields)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="refuses a default"):
        Settings(profile="prod", api_signing_key="real-key-0123456789", **fields)  # type: ignore[arg-type]


def test_tls_files_only_on_tls_connections() -> None:
    s = Settings(redis_ssl_ca_file="/ca.pem", kafka_ssl_ca_file="/kca.pem")
    assert "ssl_ca_certs" not in redis_security_options(s, "redis://r:6379/0")
    assert redis_security_options(s, "rediss://r:6380/0")["ssl_ca_certs"] == "/ca.pem"
    assert "ssl.ca.location" not in kafka_security_config(s)  # PLAINTEXT: no TLS keys


def test_aiokafka_view_matches() -> None:
    sec = aiokafka_security(
        Settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="PLAIN",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
        )
    )
    assert (sec.sasl, sec.tls, sec.mechanism, sec.username, sec.password) == (
        True,
        False,
        "PLAIN",
        "u",
        "p",
    )


def test_env_lines_never_print_a_password() -> None:
    lines = env_lines(StackInfo("k:9093", "rediss://u:s3cret@r:6380/0", False, Path("/h")))
    assert not any("s3cret" in line for line in lines)
