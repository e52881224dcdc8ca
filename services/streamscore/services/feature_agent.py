"""The feature processor of one stream as a faust-streaming agent (``streamscore processor``).

One agent consumes the stream's event topic (and its label topic when a
feature derives from labels) in micro-batches (``take_events``) and hands
each batch to :class:`~.feature_processor.FeatureProcessor`. Delivery, in
numbered steps:

1. faust's consumer (aiokafka) fetches; ``enable.auto.commit`` is off (faust
   always turns it off) and ``auto.offset.reset`` is set here explicitly.
2. The batch is computed and its Redis writes land atomically. On a Redis
   error the batch is retried with back-off, without end: its events stay
   un-acknowledged, so no offset moves while Redis is away.
3. Every output (feature records, DLQ records) is sent and **awaited**: the
   agent waits for the broker's acknowledgement of each. The producer is
   idempotent with ``acks=all`` (faust only enables idempotence for its
   transactional mode, so :class:`_IdempotentProducer` sets it).
4. Only when the loop body returns does ``take_events`` acknowledge the
   batch's events to faust, whose committer then commits (at most
   ``broker_commit_interval`` later) the offsets of acknowledged events. An
   unacknowledged send crashes the worker (fail closed): restarted, it
   re-reads from the last commit and the dedupe records make the replay emit
   the same records without counting anything twice.

faust's own web server is off (metrics are served by prometheus-client on
loopback); no internal topic is created (no tables, no leader topic).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_kafka
from prometheus_client import start_http_server
from redis.exceptions import RedisError

from streamscore.libs.config import Settings
from streamscore.libs.features.event_time import EventTimeBounds
from streamscore.libs.windows import warmup
from streamscore.services.clients import endpoints, make_async_redis
from streamscore.services.faust_auth import broker_credentials
from streamscore.services.feature_processor import (
    FeatureProcessor,
    InMessage,
    OutRecord,
    decode_state,
)
from streamscore.services.feature_state import FeatureStateStore
from streamscore.services.metrics import FeatureMetrics, StreamMetrics

log = logging.getLogger("streamscore.features")
SERVICE = "features"


class _IdempotentProducer(faust_kafka.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


class _Transport(faust_kafka.Transport):
    Producer = _IdempotentProducer


class _App(faust.App):
    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> Any:
        return _Transport(self.conf.broker_producer, self)


def make_app(
    settings: Settings,
    stream: str,
    *,
    topic_prefix: str = "",
    max_batch: int = 500,
    max_wait_s: float = 0.005,
    metrics: bool = True,
) -> tuple[faust.App, FeatureProcessor]:
    """The faust app of one stream's processor (not started)."""
    ep = endpoints(settings)
    datadirs = settings.home / "faust"
    datadirs.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = _App(
        f"{topic_prefix}streamscore-features-{stream}",
        broker=f"kafka://{ep.kafka_bootstrap}",
        broker_credentials=broker_credentials(settings),
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        producer_acks=-1,
        producer_linger=0.001,
        broker_commit_interval=0.5,
        broker_commit_every=10_000,
        stream_buffer_maxsize=4096,
        producer_max_request_size=settings.max_message_bytes + 64 * 1024,
        store="memory://",
        # faust's default, "<app>-data" in the working directory, litters wherever it runs.
        datadir=str(datadirs / "{conf.name}-data"),
    )
    client = make_async_redis(settings, timeout_s=2.0)
    store = FeatureStateStore(client, decode_state)
    processor = FeatureProcessor(
        stream,
        store,
        service=SERVICE,
        topic_prefix=topic_prefix,
        max_bytes=settings.max_message_bytes,
        time_bounds=EventTimeBounds.of(settings),
    )
    fm = FeatureMetrics() if metrics else None
    sm = StreamMetrics() if metrics else None
    topics: dict[str, Any] = {}

    def out_topic(name: str) -> Any:
        if name not in topics:
            topics[name] = app.topic(name, value_serializer="raw", key_serializer="raw")
        return topics[name]

    source = app.topic(*processor.topics, value_serializer="raw", key_serializer="raw")

    async def compute(batch: list[InMessage]) -> list[OutRecord]:
        backoff = 0.05
        while True:
            conflicts = store.conflicts
            try:
                out, stats = await processor.process(batch)
            except (RedisError, OSError) as exc:  # step 2: Redis away; nothing acknowledged
                if fm is not None:
                    fm.store_errors.labels(stream).inc()
                log.warning("redis error, retrying batch in %.2f s: %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if fm is not None:
                fm.conflicts.labels(stream).inc(store.conflicts - conflicts)
                for outcome, n in stats.events.items():
                    fm.events.labels(stream, outcome).inc(n)
                for outcome, n in stats.labels.items():
                    fm.labels.labels(stream, outcome).inc(n)
                for group, n in stats.late.items():
                    fm.late.labels(group).inc(n)
                for reason, n in stats.dead_letters.items():
                    fm.events.labels(stream, "dead_lettered").inc(n)
                    if sm is not None:
                        sm.dead_letters.labels(SERVICE, processor.event_topic, reason).inc(n)
            return out

    @app.agent(source, name=f"features-{stream}")
    async def features(events: Any) -> None:
        async for batch in events.take_events(max_batch, within=max_wait_s):
            msgs = [
                InMessage(
                    e.message.topic,
                    e.message.partition,
                    e.message.offset,
                    e.message.key,
                    e.message.value,
                    e.message.timestamp and int(e.message.timestamp * 1000),
                )
                for e in batch
            ]
            out = await compute(msgs)
            # Step 3: send everything, then wait for every acknowledgement.
            futures = [
                await out_topic(r.topic).send(
                    key=r.key, value=r.value, headers=list(r.headers) or None, force=True
                )
                for r in out
            ]
            await asyncio.gather(*futures)
            now = time.time()
            if fm is not None:
                for r in out:
                    if r.source_timestamp_ms is not None:
                        fm.latency.labels(stream).observe(
                            max(0.0, now - r.source_timestamp_ms / 1e3)
                        )
            if sm is not None:
                sm.batch_size.labels(SERVICE).observe(len(msgs))
                sm.produced.labels(SERVICE, processor.feature_topic).inc(len(out))
            # Step 4: returning to take_events acknowledges the batch.

    return app, processor


def run_processor(settings: Settings, stream: str, *, topic_prefix: str = "") -> int:
    """Run until SIGTERM/SIGINT (faust's worker handles both: acknowledged work is committed)."""
    from faust.worker import Worker  # noqa: PLC0415

    warmup()  # Numba kernels compiled or loaded before the first event
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port, addr=settings.bind_host)
    app, _ = make_app(settings, stream, topic_prefix=topic_prefix)
    worker = Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()  # exits the process when stopped
    return 0
