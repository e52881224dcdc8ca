"""The one place that builds Kafka and Redis clients for every service.

Endpoints come from the settings (``KAFKA_BOOTSTRAP`` / ``REDIS_URL``) or, when
those are unset, from the local stack that ``streamscore up`` started. The
client settings that decide semantics come from
:mod:`streamscore.libs.kafka_config`.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from streamscore.libs.config import Settings
from streamscore.libs.kafka_config import (
    IsolationLevel,
    OffsetReset,
    admin_config,
    consumer_config,
)
from streamscore.services import stack
from streamscore.services.kafka_producer import DeliveryHook, Producer


class StackNotRunningError(RuntimeError):
    """No endpoint is configured and no local stack is running."""


@dataclass(frozen=True)
class Endpoints:
    """Where Kafka and Redis are."""

    kafka_bootstrap: str
    redis_url: str


def endpoints(settings: Settings) -> Endpoints:
    """Resolve endpoints: environment first, then the running local stack."""
    kafka, redis_url = settings.kafka_bootstrap, settings.redis_url
    if kafka is None or redis_url is None:
        info = stack.status(settings)
        if info is not None:
            kafka = kafka or info.kafka_bootstrap
            redis_url = redis_url or info.redis_url
    if kafka is None or redis_url is None:
        missing = [n for n, v in (("KAFKA_BOOTSTRAP", kafka), ("REDIS_URL", redis_url)) if not v]
        msg = (
            f"{' and '.join(missing)} not set and no local stack is running: "
            "run `streamscore up` (or point the variables at an existing cluster)"
        )
        raise StackNotRunningError(msg)
    return Endpoints(kafka_bootstrap=kafka, redis_url=redis_url)


def make_producer(
    settings: Settings,
    *,
    client_id: str,
    linger_ms: float = 1.0,
    delivery_timeout_ms: int | None = None,
    on_delivery: DeliveryHook | None = None,
) -> Producer:
    """An idempotent, ``acks=all`` producer with delivery accounting.

    ``delivery_timeout_ms`` defaults to the settings' ``kafka_delivery_timeout_ms``;
    ``on_delivery`` sees every delivery report (a failed message can be sent again).
    """
    return Producer(
        endpoints(settings).kafka_bootstrap,
        client_id=client_id,
        linger_ms=linger_ms,
        delivery_timeout_ms=delivery_timeout_ms or settings.kafka_delivery_timeout_ms,
        on_delivery=on_delivery,
    )


def make_consumer(
    settings: Settings,
    *,
    group_id: str,
    client_id: str = "streamscore",
    auto_offset_reset: OffsetReset = "earliest",
    isolation_level: IsolationLevel = "read_committed",
) -> Consumer:
    """A consumer that never auto-commits (the service commits after its work is acked)."""
    cfg = consumer_config(
        endpoints(settings).kafka_bootstrap,
        group_id=group_id,
        client_id=client_id,
        auto_offset_reset=auto_offset_reset,
        isolation_level=isolation_level,
    )
    return Consumer(cfg)


def make_admin(settings: Settings) -> AdminClient:
    """An admin client for topic administration."""
    return AdminClient(admin_config(endpoints(settings).kafka_bootstrap))


def make_redis(settings: Settings, *, timeout_s: float = 0.5) -> redis.Redis:
    """A Redis client (hiredis parser when installed) with bounded timeouts.

    Timeouts are short on purpose: the scorer must meet its latency budget and
    take the degraded path when Redis is slow, rather than wait.
    """
    return redis.Redis.from_url(
        endpoints(settings).redis_url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        retry_on_timeout=False,
    )
