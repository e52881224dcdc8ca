"""Synchronous scoring: ``POST /v1/score/{stream}`` — the stream path, for one request.

For callers that cannot use Kafka. A request is one event (a JSON object) or a
batch (a JSON array of at most :data:`MAX_BATCH` events) of the stream's input
contract. It goes through the very code of the stream path:

1. Every event is decoded against the stream's contract and checked as the
   feature computation would (non-finite or out-of-range numbers). One refusal
   refuses the whole request (422, naming each bad event's index, reason and
   field): nothing of a bad request is applied.
2. The feature processor's computation (:class:`FeatureProcessor`) runs on the
   events against the Redis state, as if they had come in on ``events.<stream>``:
   windows are updated and each event's feature record is kept as its dedupe
   record. An event already processed (by the stream or an earlier request)
   gets its recorded features back: a retried request changes no aggregate and
   gets the same decision for the same model and policy.
3. The scorer's handler (:class:`Scorer`) decides: same model, policy, degraded
   rules and reasons as ``streamscore scorer``.
4. Decisions go to ``decisions.<stream>`` and scored-event records to
   ``scored.<stream>``, and the response waits for the broker's acknowledgement
   of both: a decision the caller sees is one the log holds (the label joiner,
   training and audit read it). Not acknowledged in time: 503, and the retry is
   safe by step 2.

Steps 2-4 run for concurrent requests together (:class:`_Coalescer`): what
queued while the previous batch was decided goes as one batch.

When Redis is unavailable or slow, step 2 is cut short by its guard
(:class:`~streamscore.services.api.store_guard.StoreGuard`: a deadline per
batch, and a circuit breaker that stops asking a failing store for a while) and
the events are decided on the degraded path: every feature group ``ERROR``, all
values missing, so the policy's degraded rules decide and the decision says so.
Those events are not applied to the windows (the stream path applies them if
they are also published to ``events.<stream>``). Known limit: a step cut short
while its write is in flight can leave the event applied although it was
decided degraded; a retry of that request would then get the feature-based
decision.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
from prometheus_client import REGISTRY, CollectorRegistry
from redis.exceptions import RedisError

from streamscore.libs.config import Settings
from streamscore.libs.contracts.base import Event
from streamscore.libs.contracts.codec import decode
from streamscore.libs.contracts.dlq import parse_dlq_headers
from streamscore.libs.contracts.errors import ContractError
from streamscore.libs.contracts.features import FeatureVector
from streamscore.libs.contracts.registry import contract_for
from streamscore.libs.features.compute import FeatureInputError, check_finite, event_features
from streamscore.libs.features.definitions import groups
from streamscore.libs.features.event_time import EventTimeBounds
from streamscore.libs.policy.spec import Policy, PolicyError
from streamscore.libs.scoring.decide import Explainer, ScoreModel
from streamscore.libs.security import kafka_security_config
from streamscore.libs.topics import STREAMS
from streamscore.libs.windows.timebase import to_us
from streamscore.services.api.store_guard import StoreGuard
from streamscore.services.async_delivery import AsyncDelivery, DeliveryError
from streamscore.services.capacity import RedisCapacity
from streamscore.services.clients import endpoints, make_async_redis, make_redis
from streamscore.services.feature_processor import FeatureProcessor, InMessage, decode_state
from streamscore.services.feature_state import FeatureStateStore
from streamscore.services.metrics import ApiMetrics, DecisionMetrics
from streamscore.services.model_store import ModelStore
from streamscore.services.policy_store import PolicyStore
from streamscore.services.polled import Poller
from streamscore.services.scorer import Scorer, default_policy
from streamscore.services.stream_processor import Decoded

#: The largest batch one request may carry.
MAX_BATCH = 256
#: How long the response waits for the broker to acknowledge the decisions.
DELIVERY_TIMEOUT_S = 5.0


class ScoreRequestError(Exception):
    """A request that cannot be scored: HTTP status and a JSON-able body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class StreamScoring:
    """What one stream needs: its feature computation and its scorer."""

    features: FeatureProcessor
    scorer: Scorer


@dataclass
class _Request:
    """One request's events, waiting in its stream's queue, and where its answer goes."""

    events: list[Event]
    raws: list[bytes]
    answer: asyncio.Future[tuple[list[bytes], str]]


class _Coalescer:
    """One stream's decision loop: concurrent requests decided together (steps 2-4).

    Requests queue up while a batch is being decided, and the next batch takes
    everything queued (up to :data:`MAX_BATCH` events) at once: one Redis
    transaction, one model call, one round of Kafka acknowledgements for all of
    them. An idle API answers a lone request at once (nothing waits to fill a
    batch); a busy one amortises the round trips, and the requests of one
    process never conflict with each other on a shared entity (a terminal).
    """

    def __init__(self, stream: str, parent: SyncScoring) -> None:
        self.stream = stream
        self.parent = parent
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[_Request] = asyncio.Queue()
        self.task = self.loop.create_task(self._run(), name=f"score-{stream}")

    async def _run(self) -> None:
        while True:
            first = await self.queue.get()
            batch, n = [first], len(first.events)
            while not self.queue.empty() and n < MAX_BATCH:
                nxt = self.queue.get_nowait()
                batch.append(nxt)
                n += len(nxt.events)
            live = [r for r in batch if not r.answer.done()]  # a cancelled caller left
            if not live:
                continue
            try:
                answers, how = await self.parent.decide(self.stream, live)
            except Exception as exc:  # every waiting caller hears of it; the loop goes on
                for r in live:
                    if not r.answer.done():
                        r.answer.set_exception(exc)
                continue
            for r, a in zip(live, answers, strict=True):
                if not r.answer.done():
                    r.answer.set_result((a, how))


class SyncScoring:
    """The synchronous scoring of every stream (the module docstring's steps 1-4)."""

    def __init__(
        self,
        streams: Mapping[str, StreamScoring],
        delivery: AsyncDelivery,
        *,
        metrics: ApiMetrics | None = None,
        max_bytes: int = 1024 * 1024,
        delivery_timeout_s: float = DELIVERY_TIMEOUT_S,
        guard: StoreGuard | None = None,
        poller: Poller | None = None,
    ) -> None:
        self.streams = streams
        self.delivery = delivery
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.delivery_timeout_s = delivery_timeout_s
        self.guard = guard or StoreGuard(metrics=metrics)
        self.poller = poller
        self._coalescers: dict[str, _Coalescer] = {}
        #: The streams that were given a model (readiness expects one serving).
        self.with_model = frozenset(s for s, v in self.models().items() if v is not None)

    def models(self) -> dict[str, str | None]:
        """The model version serving each stream (``None``: the degraded path decides)."""
        return {s: sc.scorer.model_version for s, sc in self.streams.items()}

    async def score(self, stream: str, body: bytes) -> bytes:
        """The JSON response for ``body``: one decision, or ``{"decisions": [...]}``."""
        start = time.perf_counter()
        status = 200
        try:
            return await self._score(stream, body)
        except ScoreRequestError as exc:
            status = exc.status
            raise
        finally:
            if self.metrics is not None:
                self.metrics.requests.labels(stream, str(status)).inc()
                self.metrics.latency.labels(stream).observe(time.perf_counter() - start)

    async def _score(self, stream: str, body: bytes) -> bytes:
        batch, items = _split(body)
        events = self._decode(stream, items)  # step 1
        request = _Request(
            events, [bytes(i) for i in items], asyncio.get_running_loop().create_future()
        )
        self._coalescer(stream).queue.put_nowait(request)
        decisions, how = await request.answer
        if self.metrics is not None:
            self.metrics.events.labels(stream, how).inc(len(events))
        if not batch:
            return decisions[0]
        return b'{"decisions":[' + b",".join(decisions) + b"]}"

    def _coalescer(self, stream: str) -> _Coalescer:
        c = self._coalescers.get(stream)
        if c is None or c.loop is not asyncio.get_running_loop():  # a new server loop
            c = self._coalescers[stream] = _Coalescer(stream, self)
        return c

    def _decode(self, stream: str, items: Sequence[msgspec.Raw]) -> list[Event]:
        """Step 1: the contract, then the feature computation's input checks (non-finite,
        out of range, implausible event time) — a request is refused before anything of
        it is applied."""
        contract = contract_for(STREAMS[stream].input_topic)
        bounds, now = self.streams[stream].features.time_bounds, time.time()
        events: list[Event] = []
        errors: list[dict[str, Any]] = []
        for i, raw in enumerate(items):
            try:
                event = cast(Event, decode(contract.type, bytes(raw), max_bytes=self.max_bytes))
                check_finite(event)
                bounds.check(to_us(event.event_time), now)
                events.append(event)
            except ContractError as err:
                errors.append(_error(i, err.reason, err.field, err.detail))
            except FeatureInputError as err:
                errors.append(
                    _error(i, "semantic", f"$.{err.field}", f"{err.reason}: {err.detail}")
                )
        if errors:
            raise ScoreRequestError(422, {"detail": "events refused", "errors": errors})
        return events

    async def decide(
        self, stream: str, requests: Sequence[_Request]
    ) -> tuple[list[list[bytes]], str]:
        """Steps 2-4 for the events of ``requests`` together: each request's decisions."""
        s = self.streams[stream]
        now_ms = int(time.time() * 1000)
        key_field = STREAMS[stream].key_field
        events = [ev for r in requests for ev in r.events]
        raws = [raw for r in requests for raw in r.raws]
        msgs = [
            InMessage(
                s.features.event_topic, 0, i, str(getattr(ev, key_field)).encode(), raw, now_ms
            )
            for i, (ev, raw) in enumerate(zip(events, raws, strict=True))
        ]
        vectors, how = await self._features(s.features, events, msgs)  # step 2
        decoded = [
            Decoded(s.features.feature_topic, 0, m.offset, m.key, now_ms, v)
            for m, v in zip(msgs, vectors, strict=True)
        ]
        outputs = s.scorer.handle(decoded)  # step 3
        try:  # step 4
            await self.delivery.send(
                [(o.topic, o.key, o.value) for o in outputs], timeout_s=self.delivery_timeout_s
            )
        except DeliveryError as exc:
            raise ScoreRequestError(
                503, {"detail": f"decisions not acknowledged by Kafka: {exc}"}
            ) from exc
        if self.metrics is not None:
            self.metrics.batch.labels(stream).observe(len(events))
        decision_topic = s.scorer.prefix + s.scorer.stream.decision_topic
        decisions = [o.value for o in outputs if o.topic == decision_topic]
        answers, at = [], 0
        for r in requests:
            answers.append(decisions[at : at + len(r.events)])
            at += len(r.events)
        return answers, how

    async def _features(
        self, fp: FeatureProcessor, events: list[Event], msgs: list[InMessage]
    ) -> tuple[list[FeatureVector], str]:
        result, how = await self.guard.run(lambda: fp.process(msgs))
        if result is None:
            return [_unavailable(fp, ev) for ev in events], how
        out, _stats = result
        refused = [r for r in out if r.topic != fp.feature_topic]
        if refused:  # step 1 checked every input: a refusal here is a bug, not bad input
            h = parse_dlq_headers(refused[0].headers)
            raise RuntimeError(f"feature computation refused a checked event: {h.reason} {h.field}")
        vectors = [
            cast(FeatureVector, decode(fp.feature_type, r.value, max_bytes=self.max_bytes))
            for r in out
        ]
        return vectors, "store"

    def close(self) -> None:
        """Stop the decision loops and flush the producer (every answered request was acked)."""
        for c in self._coalescers.values():
            if not c.loop.is_closed():
                c.task.cancel()
        self.delivery.close()
        if self.poller is not None:
            self.poller.close()


def _split(body: bytes) -> tuple[bool, list[msgspec.Raw]]:
    """``(is_batch, items)``: a JSON array is a batch, anything else one event."""
    text = body.lstrip()
    if not text.startswith(b"["):
        return False, [msgspec.Raw(body)]
    try:
        items = msgspec.json.decode(text, type=list[msgspec.Raw])
    except msgspec.DecodeError as exc:
        raise ScoreRequestError(422, {"detail": f"not a JSON array of events: {exc}"}) from exc
    if not items:
        raise ScoreRequestError(422, {"detail": "empty batch"})
    if len(items) > MAX_BATCH:
        raise ScoreRequestError(
            422, {"detail": f"batch of {len(items)} events; at most {MAX_BATCH}"}
        )
    return True, items


def _error(index: int, reason: str, field: str | None, detail: str) -> dict[str, Any]:
    return {"index": index, "reason": reason, "field": field, "detail": detail}


def _unavailable(fp: FeatureProcessor, event: Event) -> FeatureVector:
    """The store could not be read: the event's own features, every group ``ERROR``."""
    gs = groups(fp.stream)
    values = event_features(fp.stream, event)
    values.update(dict.fromkeys((n for g in gs for n in g.feature_names), None))
    vector = fp.feature_type(
        event=event,
        values=values,
        feature_statuses=dict.fromkeys((g.name for g in gs), "ERROR"),
        feature_freshness=dict.fromkeys((g.name for g in gs), None),
        computed_at=datetime.now(tz=UTC),
        schema_hash=fp.schema_hash,
    )
    return cast(FeatureVector, vector)


def build_sync_scoring(
    settings: Settings,
    models: Mapping[str, tuple[ScoreModel, Explainer | None]],
    *,
    streams: Sequence[str] = tuple(STREAMS),
    topic_prefix: str = "",
    registry: CollectorRegistry = REGISTRY,
    store_timeout_s: float = 0.25,
    store_deadline_s: float = 0.1,
) -> SyncScoring:
    """Synchronous scoring of ``streams`` on the settings' Kafka and Redis.

    ``models`` maps a stream to its verified model and explainer; a stream
    without one decides on the policy's degraded path (no score), like a
    scorer started without a model. As in ``streamscore scorer``, the model
    store's active model wins once there is one (promotions and rollbacks
    through the API apply between batches), and so does the active policy.
    The feature step has ``store_deadline_s`` per batch and a circuit breaker
    (:class:`StoreGuard`): a slow store sends requests to the degraded path
    instead of holding them. ``store_timeout_s`` bounds each socket operation
    of the other Redis calls.
    """
    ep = endpoints(settings)
    client = make_async_redis(settings, timeout_s=store_timeout_s)  # a cluster URL: a cluster
    state = FeatureStateStore(client, decode_state)
    policies = PolicyStore(make_redis(settings))
    models_store = ModelStore(policies.client)
    # Store reads off the event loop: a slow Redis must not hold requests (FAULTS.md F7).
    poller = Poller(every_s=1.0, name="api-store-poller")
    decision_metrics = DecisionMetrics(registry)
    # The day's alert capacity is shared with the stream path (same keys, same prefix); its
    # client's timeout is the feature step's deadline, and a failure stops asking for a while.
    capacity = RedisCapacity(
        make_redis(settings, timeout_s=store_deadline_s),
        prefix=topic_prefix,
        metrics=decision_metrics,
    )
    per_stream = {}
    for stream in streams:
        model, explainer = models.get(stream, (None, None))
        per_stream[stream] = StreamScoring(
            FeatureProcessor(
                stream,
                state,
                service="api",
                topic_prefix=topic_prefix,
                max_bytes=settings.max_message_bytes,
                time_bounds=EventTimeBounds.of(settings),
            ),
            Scorer(
                stream,
                policy=policies_active_or_default(policies, stream),
                model=model,
                explainer=explainer,
                topic_prefix=topic_prefix,
                metrics=decision_metrics,
                policy_source=poller.add(lambda s=stream: policies.active(s)),  # type: ignore[misc]
                model_source=poller.add(lambda s=stream: models_store.active(s)),  # type: ignore[misc]
                capacity=capacity,
                shadow_source=poller.add(lambda s=stream: policies.shadow(s)),  # type: ignore[misc]
            ),
        )
    delivery = AsyncDelivery(
        ep.kafka_bootstrap, client_id="api-score", security=kafka_security_config(settings)
    )
    api_metrics = ApiMetrics(registry)
    return SyncScoring(
        per_stream,
        delivery,
        metrics=api_metrics,
        max_bytes=settings.max_message_bytes,
        guard=StoreGuard(deadline_s=store_deadline_s, metrics=api_metrics),
        poller=poller,
    )


def policies_active_or_default(policies: PolicyStore, stream: str) -> Policy:
    """The stream's active policy in the store, else the shipped one (store unreadable too)."""
    try:
        active = policies.active(stream)
    except (RedisError, PolicyError):
        active = None
    return active or default_policy(stream)
