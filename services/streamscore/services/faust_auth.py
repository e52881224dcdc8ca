"""Kafka credentials of the faust apps (aiokafka), from the same settings as every client.

The confluent-kafka clients get the security keys from
:func:`streamscore.libs.security.kafka_security_config`; faust speaks aiokafka,
which wants a credentials object and an ``ssl.SSLContext`` instead. This module
builds them from :func:`streamscore.libs.security.aiokafka_security`, so both
client libraries connect with the same protocol, mechanism, user and CA.
"""

from __future__ import annotations

import ssl

from faust.auth import Credentials, SASLCredentials, SSLCredentials

from streamscore.libs.config import Settings
from streamscore.libs.security import AiokafkaSecurity, aiokafka_security


def ssl_context(sec: AiokafkaSecurity) -> ssl.SSLContext:
    """A client TLS context: the CA file (else the system's CAs), host names verified.

    With a client certificate and key (mutual TLS) they are loaded into it too.
    A missing or unreadable file fails here, at start, naming the file.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=sec.ca_file)
    if sec.cert_file is not None and sec.key_file is not None:
        ctx.load_cert_chain(sec.cert_file, sec.key_file, password=sec.key_password)
    return ctx


def broker_credentials(settings: Settings) -> Credentials | None:
    """faust's ``broker_credentials`` for the settings (``None``: PLAINTEXT).

    1. ``SASL_PLAINTEXT`` / ``SASL_SSL``: SASL credentials with the mechanism; a TLS
       context makes faust use ``SASL_SSL``.
    2. ``SSL``: TLS only (the client certificate, if any, authenticates).
    """
    sec = aiokafka_security(settings)
    ctx = ssl_context(sec) if sec.tls else None
    if sec.sasl:
        return SASLCredentials(
            username=sec.username,
            password=sec.password,
            mechanism=sec.mechanism,
            ssl_context=ctx,
        )
    if ctx is not None:
        return SSLCredentials(ctx)
    return None
