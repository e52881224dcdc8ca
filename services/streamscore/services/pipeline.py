"""The fused pipeline: ``events.<stream>`` → features on Redis → decisions, in one process.

The two-stage path (a faust feature processor publishing ``features.<stream>``,
then ``streamscore scorer``) pays two Kafka hops, two consumer groups and two
rounds of acknowledgements per event. This service runs the same two pieces of
code — :class:`FeatureProcessor`'s computation and :class:`Scorer`'s handler —
in one :class:`StreamProcessor` batch, so an event costs one hop:

1. A micro-batch of ``events.<stream>`` (and its label topic when a feature
   derives from labels) is decoded; a refusal goes to the DLQ.
2. The feature computation runs against the Redis state exactly as in the
   processor (one WATCH/MULTI transaction per batch, or per slot on Redis
   Cluster, see :mod:`.feature_state`; dedupe records, labels
   applied by arrival). A Redis error is retried with back-off and nothing is
   acknowledged meanwhile: no event is decided without being applied, so the
   windows stay equal to the offline computation.
3. The scorer's handler decides the feature vectors (model, policy, reasons).
4. Decisions, scored-event records, DLQ records and — unless turned off — the
   feature records (``features.<stream>``, for their other readers) are
   produced, and the offsets are committed once all are acknowledged.

A redelivered event finds its dedupe record and gets the same features, hence
the same decision for the same model and policy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

from prometheus_client import start_http_server
from redis.exceptions import RedisError

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import decode
from streamscore.libs.contracts.features import FeatureVector
from streamscore.libs.features.event_time import EventTimeBounds
from streamscore.libs.policy.spec import Policy
from streamscore.libs.scoring.decide import Explainer, ScoreModel
from streamscore.libs.windows import warmup
from streamscore.services.capacity import RedisCapacity
from streamscore.services.clients import (
    make_async_redis,
    make_consumer,
    make_producer,
    make_redis,
)
from streamscore.services.feature_processor import FeatureProcessor, InMessage, decode_state
from streamscore.services.feature_state import FeatureStateStore
from streamscore.services.metrics import DecisionMetrics, FeatureMetrics, StreamMetrics
from streamscore.services.model_store import ModelStore
from streamscore.services.policy_store import PolicyStore
from streamscore.services.rollout import challenger_runner
from streamscore.services.scorer import Scorer, default_policy
from streamscore.services.shutdown import stop_on_signals
from streamscore.services.stream_processor import Decoded, LoopStats, Output, StreamProcessor

log = logging.getLogger(__name__)
SERVICE = "pipeline"


class FusedHandler:
    """Steps 2-3 of the module docstring, as a :class:`StreamProcessor` handler."""

    def __init__(
        self,
        features: FeatureProcessor,
        scorer: Scorer,
        *,
        emit_features: bool = True,
        metrics: FeatureMetrics | None = None,
        max_backoff_s: float = 2.0,
    ) -> None:
        self.features = features
        self.scorer = scorer
        self.emit_features = emit_features
        self.metrics = metrics
        self.max_backoff_s = max_backoff_s
        self.loop = asyncio.new_event_loop()  # the Redis client's loop, driven from here
        self.store_errors = 0

    def __call__(self, batch: list[Decoded]) -> list[Output]:
        fp = self.features
        msgs = [
            InMessage(d.topic, d.partition, d.offset, d.key, d.raw, d.timestamp_ms) for d in batch
        ]
        backoff = 0.05
        t0 = time.perf_counter()
        conflicts = fp.store.conflicts
        while True:  # step 2; nothing is acknowledged while Redis is away
            try:
                records, stats = self.loop.run_until_complete(fp.process(msgs))
                break
            except (RedisError, OSError) as exc:
                self.store_errors += 1
                if self.metrics is not None:
                    self.metrics.store_errors.labels(fp.stream).inc()
                log.warning("redis error, retrying batch in %.2f s: %s", backoff, exc)
                time.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
        if self.scorer.metrics is not None:
            self.scorer.metrics.stage_seconds.labels(fp.stream, "feature_read").observe(
                time.perf_counter() - t0
            )
        if self.metrics is not None:
            # Recomputations because another process wrote the same entities.
            self.metrics.conflicts.labels(fp.stream).inc(fp.store.conflicts - conflicts)
            for outcome, n in stats.events.items():
                self.metrics.events.labels(fp.stream, outcome).inc(n)
            for outcome, n in stats.labels.items():
                self.metrics.labels.labels(fp.stream, outcome).inc(n)
            for group, n in stats.late.items():
                self.metrics.late.labels(group).inc(n)
        out: list[Output] = []
        vectors: list[Decoded] = []
        for r in records:
            if r.topic != fp.feature_topic:  # a DLQ record (a non-finite input)
                out.append(Output(r.topic, r.value, r.key, r.headers))
                continue
            if self.emit_features:
                out.append(Output(r.topic, r.value, r.key))
            fv = cast(FeatureVector, decode(fp.feature_type, r.value, max_bytes=1 << 24))
            vectors.append(Decoded(r.topic, 0, 0, r.key, r.source_timestamp_ms or 0, fv))
        if vectors:
            out += self.scorer.handle(vectors)  # step 3
        return out

    def close(self) -> None:
        self.loop.run_until_complete(self.features.store.client.aclose())
        self.loop.close()


def build_handler(
    settings: Settings,
    stream: str,
    *,
    policy: Policy | None = None,
    model: ScoreModel | None = None,
    explainer: Explainer | None = None,
    topic_prefix: str = "",
    emit_features: bool = True,
    metrics: bool = True,
) -> FusedHandler:
    """The fused handler of ``stream`` on the settings' Redis."""
    client = make_async_redis(settings, timeout_s=2.0)
    features = FeatureProcessor(
        stream,
        FeatureStateStore(client, decode_state),
        service=SERVICE,
        topic_prefix=topic_prefix,
        max_bytes=settings.max_message_bytes,
        time_bounds=EventTimeBounds.of(settings),
    )
    store = PolicyStore(make_redis(settings))
    models = ModelStore(store.client)
    dm = DecisionMetrics() if metrics else None
    scorer = Scorer(  # policy, model, shadow, challenger, capacity as in ``streamscore scorer``
        stream,
        policy=policy or default_policy(stream),
        model=model,
        explainer=explainer,
        topic_prefix=topic_prefix,
        metrics=dm,
        policy_source=lambda: store.active(stream),
        model_source=lambda: models.active(stream),
        capacity=RedisCapacity(store.client, prefix=topic_prefix, metrics=dm),
        shadow_source=lambda: store.shadow(stream),
        rollout=challenger_runner(models, stream, dm),
    )
    return FusedHandler(
        features,
        scorer,
        emit_features=emit_features,
        metrics=FeatureMetrics() if metrics else None,
    )


def run_pipeline(
    settings: Settings,
    stream: str,
    *,
    model: ScoreModel | None = None,
    explainer: Explainer | None = None,
    policy: Policy | None = None,
    topic_prefix: str = "",
    emit_features: bool = True,
) -> LoopStats:
    """Run the fused pipeline of ``stream`` until SIGTERM or SIGINT (the last batch committed)."""
    warmup()  # Numba kernels compiled or loaded before the first event
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port, addr=settings.bind_host)
    handler = build_handler(
        settings,
        stream,
        policy=policy,
        model=model,
        explainer=explainer,
        topic_prefix=topic_prefix,
        emit_features=emit_features,
    )
    # Events and labels are co-partitioned: "range" splits each topic over the
    # group (cooperative-sticky balanced only the partition count, and gave one
    # member all event partitions, another all label partitions).
    consumer = make_consumer(
        settings,
        group_id=f"{topic_prefix}streamscore-pipeline-{stream}",
        client_id=SERVICE,
        assignment_strategy="range",
        auto_commit_interval_ms=settings.pipeline_commit_interval_ms or None,
    )
    consumer.subscribe(list(handler.features.topics))
    processor = StreamProcessor(
        consumer,
        make_producer(settings, client_id=f"{SERVICE}-{stream}"),
        handler,
        service=SERVICE,
        max_batch=500,
        first_wait_s=0.1,  # handle an event when it arrives (no batch-filling wait)
        max_bytes=settings.max_message_bytes,
        topic_prefix=topic_prefix,
        metrics=StreamMetrics(),
        commit="stored" if settings.pipeline_commit_interval_ms else "sync",
    )
    stop = stop_on_signals()
    try:
        return processor.run(should_stop=stop.is_set)
    finally:
        consumer.close()
        handler.close()
