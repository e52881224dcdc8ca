"""Typed settings from the environment, with safe defaults for the local stack.

Every process reads its configuration through :class:`Settings`. Values come from
environment variables (``STREAMSCORE_*`` plus the two conventional pointers
``KAFKA_BOOTSTRAP`` and ``REDIS_URL``); nothing is read at import time.

>>> s = Settings(_env_file=None, profile="local")
>>> s.profile
'local'
>>> s.redacted()["redis_url"] is None or "://" in s.redacted()["redis_url"]
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamscore.libs.kafka_config import DELIVERY_TIMEOUT_MS

Profile = Literal["local", "test", "staging", "prod"]
#: How Kafka clients talk to the brokers (librdkafka's and aiokafka's ``security.protocol``).
KafkaSecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"]
#: SASL mechanisms the clients support with a user name and password.
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

#: Secret values that are only acceptable on the local and test profiles.
DEFAULT_SECRETS = frozenset({"", "change-me", "streamscore-local-signing-key-not-for-production"})


def default_home() -> Path:
    """Where local state lives (stack processes, Kafka jars, logs): ``~/.cache/streamscore``."""
    return Path.home() / ".cache" / "streamscore"


class Settings(BaseSettings):
    """Configuration of every streamscore process.

    ``kafka_bootstrap`` and ``redis_url`` are ``None`` when unset: the local
    stack then supplies them (``streamscore up`` writes them to its state file).
    """

    model_config = SettingsConfigDict(
        env_prefix="STREAMSCORE_", extra="ignore", populate_by_name=True
    )

    profile: Profile = "local"
    home: Path = Field(default_factory=default_home)
    kafka_bootstrap: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP", "STREAMSCORE_KAFKA_BOOTSTRAP"),
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "STREAMSCORE_REDIS_URL")
    )
    #: Partitions of every input, feature and decision topic (per stream).
    topic_partitions: int = Field(default=6, ge=1, le=1024)
    #: Replication factor of created topics (1 on the local single-node stack).
    topic_replication: int = Field(default=1, ge=1, le=16)
    #: Retention of input, feature and decision topics.
    retention_hours: int = Field(default=7 * 24, ge=1)
    #: Retention of DLQ topics (longer: they are replayed after a fix).
    dlq_retention_hours: int = Field(default=30 * 24, ge=1)
    #: Largest accepted message value; larger inputs go to the DLQ as ``oversize``.
    max_message_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: An event dated more than this ahead of the processing clock is refused (DLQ or 422,
    #: ``event_time_future``; 0: no bound). See :mod:`streamscore.libs.features.event_time`.
    event_time_max_ahead_s: float = Field(default=86_400.0, ge=0)
    #: An event older than this is refused (``event_time_past``; 0, the default: no bound
    #: beyond 2000-01-01, since replays and backfills of old data are legitimate).
    event_time_max_age_s: float = Field(default=0.0, ge=0)
    #: How long a producer retries a message before it fails (librdkafka's
    #: ``message.timeout.ms``): a service whose outputs fail stops without committing
    #: (fail closed); a producer counts the failure and hands the message back.
    kafka_delivery_timeout_ms: int = Field(default=DELIVERY_TIMEOUT_MS, ge=1000, le=3_600_000)
    #: The fused pipeline's consumer commits the offsets of acknowledged batches this
    #: often (and on revocation and close); 0: a synchronous commit after every batch.
    #: See :mod:`streamscore.services.stream_processor`, step 5.
    pipeline_commit_interval_ms: int = Field(default=100, ge=0, le=60_000)
    #: Port of a process's ``/metrics`` (unset: not served).
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    #: Address the API and ``/metrics`` listen on: loopback unless a container or pod
    #: must be reached from outside (``0.0.0.0`` there, set by the deployment files).
    bind_host: str = "127.0.0.1"
    #: Key that signs and verifies the API's bearer tokens (HS256).
    api_signing_key: SecretStr = SecretStr("streamscore-local-signing-key-not-for-production")
    #: The only folder under which the API may promote model folders (relative: to the
    #: API process's working directory); paths resolving outside it are refused.
    models_root: Path = Path("models")
    #: MLflow tracking and registry store (``STREAMSCORE_MLFLOW_TRACKING_URI``): unset, a
    #: local SQLite file ``<home>/mlflow/mlflow.db`` (no server); any SQL URL MLflow accepts.
    mlflow_tracking_uri: str | None = None
    #: Where MLflow experiments created by streamscore keep artifacts (unset:
    #: ``<home>/mlflow/artifacts``).
    mlflow_artifact_root: Path | None = None

    # Kafka security (STREAMSCORE_KAFKA_*): applied to every client, see libs/security.py.
    #: ``PLAINTEXT`` (the local stack), ``SASL_PLAINTEXT``, ``SASL_SSL`` or ``SSL``.
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    #: SASL mechanism of the ``SASL_*`` protocols.
    kafka_sasl_mechanism: KafkaSaslMechanism = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    #: PEM file of the CA that signed the brokers' certificates (unset: the system's CAs).
    kafka_ssl_ca_file: Path | None = None
    #: PEM client certificate and key (mutual TLS); both or neither.
    kafka_ssl_cert_file: Path | None = None
    kafka_ssl_key_file: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None

    # Redis security (STREAMSCORE_REDIS_*). A user and password may also be written in
    # REDIS_URL (``redis://user:pw@host:port/0``), which then wins (redis-py's rule).
    # TLS is chosen by the URL's scheme (``rediss://``).
    #: ACL user (unset with a password set: the ``default`` user, as ``requirepass``).
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    #: PEM file of the CA that signed the server's certificate (``rediss://`` only).
    redis_ssl_ca_file: Path | None = None
    #: PEM client certificate and key when the server asks for one (``tls-auth-clients``).
    redis_ssl_cert_file: Path | None = None
    redis_ssl_key_file: Path | None = None

    @model_validator(mode="after")
    def _local_mlflow_by_default(self) -> Settings:
        # Derived from ``home`` after it is known, so one STREAMSCORE_HOME moves everything.
        if self.mlflow_tracking_uri is None:
            self.mlflow_tracking_uri = f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"
        if self.mlflow_artifact_root is None:
            self.mlflow_artifact_root = self.home / "mlflow" / "artifacts"
        return self

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        # 1. Local and test profiles run on loopback with the known token: allowed.
        # 2. Any other profile must carry a real secret; refuse to construct otherwise,
        #    so a process cannot start with a default secret by accident.
        if self.profile not in ("local", "test") and (
            self.api_signing_key.get_secret_value() in DEFAULT_SECRETS
        ):
            msg = (
                f"profile {self.profile!r} refuses the default or empty API signing key; "
                "set STREAMSCORE_API_SIGNING_KEY"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _consistent_security(self) -> Settings:
        # Contradictory security settings fail at start, naming the variable, instead of
        # being silently ignored by a client library (credentials on a PLAINTEXT
        # connection) or failing later as an opaque connection error.
        problems: list[str] = []
        sasl = self.kafka_security_protocol.startswith("SASL_")
        has_creds = self.kafka_sasl_username is not None or self.kafka_sasl_password is not None
        if sasl and (not self.kafka_sasl_username or self.kafka_sasl_password is None):
            problems.append(
                f"STREAMSCORE_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "STREAMSCORE_KAFKA_SASL_USERNAME and STREAMSCORE_KAFKA_SASL_PASSWORD"
            )
        if not sasl and has_creds:
            problems.append(
                "STREAMSCORE_KAFKA_SASL_USERNAME/PASSWORD are set but "
                f"STREAMSCORE_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} does not "
                "use SASL (set SASL_PLAINTEXT or SASL_SSL)"
            )
        for what, cert, key in (
            ("KAFKA", self.kafka_ssl_cert_file, self.kafka_ssl_key_file),
            ("REDIS", self.redis_ssl_cert_file, self.redis_ssl_key_file),
        ):
            if (cert is None) != (key is None):
                problems.append(
                    f"STREAMSCORE_{what}_SSL_CERT_FILE and STREAMSCORE_{what}_SSL_KEY_FILE "
                    "go together (mutual TLS)"
                )
        if self.profile not in ("local", "test"):
            for var, secret in (
                ("STREAMSCORE_KAFKA_SASL_PASSWORD", self.kafka_sasl_password),
                ("STREAMSCORE_REDIS_PASSWORD", self.redis_password),
            ):
                if secret is not None and secret.get_secret_value() in DEFAULT_SECRETS:
                    problems.append(f"profile {self.profile!r} refuses a default or empty {var}")
            url_pw = urlsplit(self.redis_url).password if self.redis_url else None
            if url_pw is not None and url_pw in DEFAULT_SECRETS:
                problems.append(f"profile {self.profile!r} refuses a default password in REDIS_URL")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def redacted(self) -> dict[str, Any]:
        """Settings as a dict safe to print: secrets masked, passwords stripped from URLs."""
        out = self.model_dump()
        out["api_signing_key"] = "***"
        for name in ("kafka_sasl_password", "kafka_ssl_key_password", "redis_password"):
            out[name] = None if getattr(self, name) is None else "***"
        for name in (
            "kafka_ssl_ca_file",
            "kafka_ssl_cert_file",
            "kafka_ssl_key_file",
            "redis_ssl_ca_file",
            "redis_ssl_cert_file",
            "redis_ssl_key_file",
        ):
            out[name] = None if getattr(self, name) is None else str(getattr(self, name))
        out["home"] = str(self.home)
        out["models_root"] = str(self.models_root)
        out["mlflow_artifact_root"] = str(self.mlflow_artifact_root)
        if self.mlflow_tracking_uri:
            out["mlflow_tracking_uri"] = redact_url(self.mlflow_tracking_uri)
        if self.redis_url:
            out["redis_url"] = redact_url(self.redis_url)
        return out


def redact_url(url: str) -> str:
    """Remove the password from a URL.

    >>> redact_url("redis://user:secret@127.0.0.1:6379/0")
    'redis://user:***@127.0.0.1:6379/0'
    >>> redact_url("redis://127.0.0.1:6379/0")
    'redis://127.0.0.1:6379/0'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
