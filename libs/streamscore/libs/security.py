"""Kafka and Redis security options derived from the settings, for every client.

The settings (``STREAMSCORE_KAFKA_SECURITY_PROTOCOL``, ``..._SASL_*``, ``..._SSL_*``,
``STREAMSCORE_REDIS_USERNAME`` / ``_PASSWORD`` / ``_SSL_*``, see
:class:`~streamscore.libs.config.Settings`) are turned here into the option sets
of the three client libraries, so that every client of a kind gets the same ones:

* :func:`kafka_security_config`: librdkafka keys, merged into every producer,
  consumer and admin configuration (:mod:`streamscore.libs.kafka_config`);
* :func:`aiokafka_security`: the same for aiokafka (faust's client), as plain values
  (the service turns them into faust credentials and an ``ssl.SSLContext``);
* :func:`redis_security_options`: keyword arguments of ``redis.Redis.from_url`` and
  its asyncio twin.

The functions are pure: files are named, never opened here. The returned
dictionaries hold the passwords in clear (the client libraries need them so);
never log them — log :meth:`Settings.redacted` instead.

>>> from streamscore.libs.config import Settings
>>> kafka_security_config(Settings(_env_file=None))
{'security.protocol': 'plaintext'}
>>> s = Settings(
...     _env_file=None,
...     kafka_security_protocol="SASL_SSL",
...     kafka_sasl_mechanism="SCRAM-SHA-256",
...     kafka_sasl_username="scorer",
...     kafka_sasl_password="pw",
...     kafka_ssl_ca_file="/etc/ca.pem",
... )
>>> sorted(kafka_security_config(s).items())  # doctest: +NORMALIZE_WHITESPACE
[('sasl.mechanism', 'SCRAM-SHA-256'), ('sasl.password', 'pw'), ('sasl.username', 'scorer'),
 ('security.protocol', 'sasl_ssl'), ('ssl.ca.location', '/etc/ca.pem')]
>>> redis_security_options(Settings(_env_file=None, redis_password="pw"), "redis://h:6379/0")
{'password': 'pw'}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamscore.libs.config import Settings
from streamscore.libs.kafka_config import KafkaConf


def kafka_security_config(settings: Settings) -> KafkaConf:
    """librdkafka security keys of ``settings`` (always at least ``security.protocol``).

    1. ``security.protocol`` is always written, so a client never inherits
       librdkafka's default silently (DESIGN.md §6).
    2. SASL protocols add the mechanism, user and password.
    3. TLS protocols add the CA file (else librdkafka uses the system's CAs), and the
       client certificate and key for mutual TLS; the broker's host name is verified
       (librdkafka's default ``ssl.endpoint.identification.algorithm=https``).
    """
    protocol = settings.kafka_security_protocol
    cfg: KafkaConf = {"security.protocol": protocol.lower()}
    if protocol.startswith("SASL_"):
        cfg["sasl.mechanism"] = settings.kafka_sasl_mechanism
        cfg["sasl.username"] = settings.kafka_sasl_username or ""
        if settings.kafka_sasl_password is not None:
            cfg["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if protocol.endswith("SSL"):
        if settings.kafka_ssl_ca_file is not None:
            cfg["ssl.ca.location"] = str(settings.kafka_ssl_ca_file)
        if settings.kafka_ssl_cert_file is not None and settings.kafka_ssl_key_file is not None:
            cfg["ssl.certificate.location"] = str(settings.kafka_ssl_cert_file)
            cfg["ssl.key.location"] = str(settings.kafka_ssl_key_file)
            if settings.kafka_ssl_key_password is not None:
                cfg["ssl.key.password"] = settings.kafka_ssl_key_password.get_secret_value()
    return cfg


@dataclass(frozen=True)
class AiokafkaSecurity:
    """What aiokafka (faust) needs: protocol, SASL values, and TLS files for a context."""

    protocol: str
    mechanism: str | None = None
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_password: str | None = None

    @property
    def tls(self) -> bool:
        """Whether the connection is encrypted (``SSL`` or ``SASL_SSL``)."""
        return self.protocol.endswith("SSL")

    @property
    def sasl(self) -> bool:
        """Whether the client authenticates with SASL."""
        return self.protocol.startswith("SASL_")


def aiokafka_security(settings: Settings) -> AiokafkaSecurity:
    """The security settings as aiokafka names them (see :func:`kafka_security_config`).

    >>> aiokafka_security(Settings(_env_file=None)).protocol
    'PLAINTEXT'
    """
    cfg = kafka_security_config(settings)

    def opt(key: str) -> str | None:
        value = cfg.get(key)
        return None if value is None else str(value)

    return AiokafkaSecurity(
        protocol=settings.kafka_security_protocol,
        mechanism=opt("sasl.mechanism"),
        username=opt("sasl.username"),
        password=opt("sasl.password"),
        ca_file=opt("ssl.ca.location"),
        cert_file=opt("ssl.certificate.location"),
        key_file=opt("ssl.key.location"),
        key_password=opt("ssl.key.password"),
    )


#: ``REDIS_URL`` schemes that connect with TLS.
TLS_SCHEMES = frozenset({"rediss", "rediss+cluster"})


def redis_security_options(settings: Settings, url: str) -> dict[str, Any]:
    """Keyword arguments of ``Redis.from_url(url, ...)`` carrying credentials and TLS files.

    1. ``username`` / ``password`` only when set. redis-py lets a user and password
       written in the URL override keyword arguments, so a URL's credentials win.
    2. TLS itself is the URL's scheme (``rediss://``); the CA and client files are
       passed only then (a plain connection class refuses TLS arguments). redis-py
       verifies the server's certificate and host name by default.

    >>> s = Settings(_env_file=None, redis_ssl_ca_file="/ca.pem")
    >>> redis_security_options(s, "rediss://h:6380/0"), redis_security_options(s, "redis://h/0")
    ({'ssl_ca_certs': '/ca.pem'}, {})
    """
    out: dict[str, Any] = {}
    if settings.redis_username is not None:
        out["username"] = settings.redis_username
    if settings.redis_password is not None:
        out["password"] = settings.redis_password.get_secret_value()
    if url.split("://", 1)[0].lower() in TLS_SCHEMES:
        if settings.redis_ssl_ca_file is not None:
            out["ssl_ca_certs"] = str(settings.redis_ssl_ca_file)
        if settings.redis_ssl_cert_file is not None and settings.redis_ssl_key_file is not None:
            out["ssl_certfile"] = str(settings.redis_ssl_cert_file)
            out["ssl_keyfile"] = str(settings.redis_ssl_key_file)
    return out
