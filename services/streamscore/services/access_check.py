"""Check at start that Kafka and Redis accept the process's credentials; fail clearly if not.

Without this, wrong credentials do not stop a service: librdkafka retries a
refused SASL handshake forever (logging a line every few hundred milliseconds)
and the Redis paths retry with back-off, so the process looks alive and decides
nothing. The long-running commands (``cli.SERVICE_COMMANDS``) therefore prove
both connections once before they start, and exit with one message that names
the refusal, the server, the user and the variables to fix. Passwords are
never part of a message.

Only a refusal is fatal. A server that does not answer yet is logged and the
service starts anyway: waiting for a broker or Redis that is restarting is the
services' own job (FAULTS K1, F6). On ``PLAINTEXT`` Kafka (nothing to refuse)
the Kafka check is skipped, so the default local set-up starts as before.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from redis.exceptions import RedisClusterException

from streamscore.libs.config import Settings, redact_url
from streamscore.libs.kafka_config import admin_config
from streamscore.libs.security import kafka_security_config
from streamscore.services.clients import endpoints, make_redis

log = logging.getLogger("streamscore.access_check")
#: librdkafka log texts of a refused handshake, and what each means.
_REFUSALS = (
    ("sasl authentication error", "authentication"),
    ("authentication failed", "authentication"),
    ("ssl handshake failed", "TLS"),
    ("certificate verify failed", "TLS"),
)


class AccessError(RuntimeError):
    """Kafka or Redis refused the configured credentials or TLS settings."""


class _Capture(logging.Handler):
    """Keeps librdkafka's log lines of the check (not printed) and spots a refusal."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.refusal: str | None = None
        self.last = ""
        self._guard = threading.Lock()

    def note(self, text: str) -> None:
        low = text.lower()
        with self._guard:
            self.last = text
            for marker, kind in _REFUSALS:
                if marker in low and self.refusal is None:
                    self.refusal = kind

    def emit(self, record: logging.LogRecord) -> None:
        self.note(record.getMessage())


def check_kafka(settings: Settings, *, timeout_s: float = 15.0) -> None:
    """Metadata requests with the settings' security; :class:`AccessError` if refused.

    1. ``PLAINTEXT``: nothing to check (no credentials to refuse).
    2. An admin client with the same security keys as every client of the process;
       its log lines and errors are captured (not printed): they tell a refusal
       (SASL authentication, TLS handshake) from a broker that does not answer.
    3. Short metadata requests until one succeeds (access proven), a refusal shows
       (raised at once: librdkafka would retry it forever), or ``timeout_s`` passes
       without an answer (logged, not fatal).
    """
    if settings.kafka_security_protocol == "PLAINTEXT":
        return
    bootstrap = endpoints(settings).kafka_bootstrap
    capture = _Capture()
    logger = logging.getLogger(f"streamscore.access_check.kafka.{id(capture)}")
    logger.propagate = False
    logger.addHandler(capture)

    def on_error(err: KafkaError) -> None:
        if err.code() == KafkaError._AUTHENTICATION:
            capture.refusal = capture.refusal or "authentication"
        capture.note(str(err))

    security = kafka_security_config(settings)
    cfg: dict[str, Any] = {
        **admin_config(bootstrap, client_id="streamscore-access-check", security=security),
        "logger": logger,
        "error_cb": on_error,
    }
    admin = AdminClient(cfg)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                admin.list_topics(timeout=1.0)
                return
            except KafkaException:
                admin.poll(0.1)  # serve the queued error and log callbacks
            if capture.refusal is not None:
                break
            if time.monotonic() >= deadline:
                log.warning(
                    "Kafka at %s did not answer within %.0f s over %s (%s); starting anyway",
                    bootstrap,
                    timeout_s,
                    settings.kafka_security_protocol,
                    capture.last,
                )
                return
    finally:
        logger.removeHandler(capture)
    if capture.refusal == "TLS":
        msg = (
            f"Kafka at {bootstrap} refused the TLS handshake over "
            f"{settings.kafka_security_protocol} ({capture.last}): check "
            "STREAMSCORE_KAFKA_SSL_CA_FILE (and _SSL_CERT_FILE/_SSL_KEY_FILE for mutual TLS)"
        )
    else:
        msg = (
            f"Kafka at {bootstrap} refused authentication of user "
            f"{settings.kafka_sasl_username!r} ({settings.kafka_sasl_mechanism} over "
            f"{settings.kafka_security_protocol}): check STREAMSCORE_KAFKA_SASL_USERNAME, "
            "STREAMSCORE_KAFKA_SASL_PASSWORD and STREAMSCORE_KAFKA_SASL_MECHANISM"
        )
    raise AccessError(msg)


def check_redis(settings: Settings) -> None:
    """PING with the settings' credentials; :class:`AccessError` naming the refusal."""
    url = endpoints(settings).redis_url
    client: redis.Redis | None = None
    try:
        client = make_redis(settings, timeout_s=5.0)  # a cluster client connects here
        client.ping()
    except redis.AuthenticationError as exc:
        user = settings.redis_username or "default"
        msg = (
            f"Redis at {redact_url(url)} refused authentication of user {user!r} ({exc}): "
            "check STREAMSCORE_REDIS_USERNAME and STREAMSCORE_REDIS_PASSWORD (or REDIS_URL)"
        )
        raise AccessError(msg) from exc
    except redis.ResponseError as exc:
        if "NOAUTH" in str(exc) or "NOPERM" in str(exc):
            msg = (
                f"Redis at {redact_url(url)} requires authentication or refuses this user "
                f"({exc}): set STREAMSCORE_REDIS_USERNAME and STREAMSCORE_REDIS_PASSWORD"
            )
            raise AccessError(msg) from exc
        log.warning("Redis at %s answered PING with %s; starting anyway", redact_url(url), exc)
    except (redis.RedisError, RedisClusterException, OSError) as exc:
        if "certificate verify failed" in str(exc).lower():  # wrong CA: a refusal, not a wait
            msg = (
                f"Redis at {redact_url(url)} failed the TLS handshake ({exc}): check "
                "STREAMSCORE_REDIS_SSL_CA_FILE (and _SSL_CERT_FILE/_SSL_KEY_FILE)"
            )
            raise AccessError(msg) from exc
        # Not answering: the service waits for it.
        log.warning("Redis at %s did not answer (%s); starting anyway", redact_url(url), exc)
    finally:
        if client is not None:
            client.close()


def check_access(settings: Settings) -> None:
    """Redis, then Kafka (the slower check); the first refusal raises :class:`AccessError`."""
    check_redis(settings)
    check_kafka(settings)
