"""The one place that builds Kafka and Redis clients for every service.

Endpoints come from the settings (``KAFKA_BOOTSTRAP`` / ``REDIS_URL``) or, when
those are unset, from the local stack that ``streamscore up`` started. The
client settings that decide semantics come from
:mod:`streamscore.libs.kafka_config`.

Redis Cluster is chosen by the URL's scheme: ``REDIS_URL=redis+cluster://host:port``
(``rediss+cluster://`` with TLS) names one seed node, the client discovers the
others, and :func:`make_redis` / :func:`make_async_redis` return a
``RedisCluster``. Any other URL (``redis://``, ``rediss://``, ``unix://``) is one
server, as before. On a cluster the database is always 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from streamscore.libs.config import Settings
from streamscore.libs.kafka_config import (
    AssignmentStrategy,
    IsolationLevel,
    OffsetReset,
    admin_config,
    consumer_config,
)
from streamscore.libs.security import kafka_security_config, redis_security_options
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
        security=kafka_security_config(settings),
    )


def make_consumer(
    settings: Settings,
    *,
    group_id: str,
    client_id: str = "streamscore",
    auto_offset_reset: OffsetReset = "earliest",
    isolation_level: IsolationLevel = "read_committed",
    assignment_strategy: AssignmentStrategy = "cooperative-sticky",
    auto_commit_interval_ms: int | None = None,
) -> Consumer:
    """A consumer that commits only what the service finished (acknowledged).

    ``assignment_strategy="range"`` for a consumer of several co-partitioned
    topics; ``auto_commit_interval_ms`` to have librdkafka commit the offsets
    the service stored (see :func:`streamscore.libs.kafka_config.consumer_config`,
    items 1 and 5).
    """
    cfg = consumer_config(
        endpoints(settings).kafka_bootstrap,
        group_id=group_id,
        client_id=client_id,
        auto_offset_reset=auto_offset_reset,
        isolation_level=isolation_level,
        assignment_strategy=assignment_strategy,
        security=kafka_security_config(settings),
        auto_commit_interval_ms=auto_commit_interval_ms,
    )
    return Consumer(cfg)


def make_admin(settings: Settings) -> AdminClient:
    """An admin client for topic administration."""
    return AdminClient(
        admin_config(endpoints(settings).kafka_bootstrap, security=kafka_security_config(settings))
    )


#: URL schemes that select Redis Cluster, and the plain scheme each stands for.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def cluster_url(redis_url: str) -> str | None:
    """The plain URL of a seed node if ``redis_url`` selects Redis Cluster, else ``None``.

    >>> cluster_url("redis+cluster://127.0.0.1:7000")
    'redis://127.0.0.1:7000'
    >>> cluster_url("rediss+cluster://u:pw@redis.example:6380/0")
    'rediss://u:pw@redis.example:6380/0'
    >>> cluster_url("redis://127.0.0.1:6379/0") is None
    True
    """
    parts = urlsplit(redis_url)
    plain = CLUSTER_SCHEMES.get(parts.scheme.lower())
    if plain is None:
        return None
    return urlunsplit((plain, parts.netloc, parts.path, parts.query, parts.fragment))


def is_cluster(client: object) -> bool:
    """Whether ``client`` (sync or asyncio) talks to a Redis Cluster."""
    return isinstance(client, RedisCluster | AsyncRedisCluster)


def make_redis(settings: Settings, *, timeout_s: float = 0.5) -> redis.Redis:
    """A Redis client (hiredis parser when installed) with bounded timeouts.

    Timeouts are short on purpose: the scorer must meet its latency budget and
    take the degraded path when Redis is slow, rather than wait.

    On a cluster URL this is a ``redis.cluster.RedisCluster``. It is typed as
    ``redis.Redis`` because it offers the same single-key commands, which is
    all the model, policy and monitor stores use; code that sends several keys
    in one call checks :func:`is_cluster` and splits them by slot.
    """
    url = endpoints(settings).redis_url
    seed = cluster_url(url)
    if seed is not None:
        cluster = RedisCluster.from_url(
            seed,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
            **redis_security_options(settings, url),
        )
        return cast(redis.Redis, cluster)
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        retry_on_timeout=False,
        **redis_security_options(settings, url),
    )


def make_async_redis(settings: Settings, *, timeout_s: float = 2.0) -> aioredis.Redis:
    """The ``redis.asyncio`` twin of :func:`make_redis` (bytes replies, bounded timeouts).

    Used by the feature processors and the fused pipeline; on a
    cluster URL it is a ``redis.asyncio.cluster.RedisCluster`` (typed as
    ``aioredis.Redis`` for the same reason as in :func:`make_redis`).
    """
    url = endpoints(settings).redis_url
    seed = cluster_url(url)
    if seed is not None:
        cluster = AsyncRedisCluster.from_url(
            seed,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            **redis_security_options(settings, url),
        )
        return cast(aioredis.Redis, cluster)
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        decode_responses=False,
        **redis_security_options(settings, url),
    )
