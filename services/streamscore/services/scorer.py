"""The scorer: ``features.<stream>`` → model and policy → ``decisions.*`` and ``scored.*``.

Runs on :class:`~streamscore.services.stream_processor.StreamProcessor`, so a
batch's offsets are committed only after its decisions and its scored-event
log records are acknowledged. The model is read once per batch: a hot swap
(:meth:`Scorer.swap_model`) takes effect between batches, and every decision
carries exactly one model version. With a ``model_source`` (the model store's
active reference) the scorer adopts a newly promoted or rolled-back model
between batches (:meth:`Scorer.refresh_model`).

With a ``capacity`` ledger the policy's daily investigator capacity
(``alerts_per_day``) is enforced, shared by every scorer through Redis
(:mod:`streamscore.services.capacity`). With a ``shadow_source`` the store's
shadow policy also decides every batch, on the same scores and features and
without side effects; only the agreement is counted
(``streamscore_shadow_decisions_total``), the decisions and the scored-event log
stay the active policy's (:meth:`Scorer.refresh_shadow`). With a ``rollout``
(:class:`~streamscore.services.rollout.ChallengerRunner`) the store's challenger
model runs beside the active one, in shadow (its decisions to
``shadow.decisions.<stream>`` only) or as a canary on a stable share of entities,
judged and rolled back automatically.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import cast

import redis
from prometheus_client import start_http_server

from streamscore.libs.config import Settings
from streamscore.libs.contracts.codec import encode
from streamscore.libs.contracts.decisions import Decision
from streamscore.libs.contracts.features import FeatureVector, event_of
from streamscore.libs.contracts.scored import ScoredEvent
from streamscore.libs.features.definitions import (
    groups,
    hash_feature_names,
    model_features,
)
from streamscore.libs.model.reasons import TreeReasons
from streamscore.libs.model.safety import ModelRefused
from streamscore.libs.model.session import ScoringSession
from streamscore.libs.policy.budget import DegradedBudget
from streamscore.libs.policy.capacity import CAPACITY_PATH, CapacityLedger
from streamscore.libs.policy.spec import Policy, PolicyError, load_policy
from streamscore.libs.scoring.decide import (
    NO_MODEL_VERSION,
    Explainer,
    ScoredBatch,
    ScoreModel,
    decide,
    shadow_outcomes,
)
from streamscore.libs.topics import DRIFT_ALERT_TOPIC, STREAMS
from streamscore.services.capacity import RedisCapacity
from streamscore.services.clients import make_consumer, make_producer, make_redis
from streamscore.services.metrics import DecisionMetrics, StreamMetrics, degraded_kind, path_kind
from streamscore.services.model_loader import open_model
from streamscore.services.model_store import ModelRef, ModelStore, ModelStoreError, load_reference
from streamscore.services.policy_store import PolicyStore
from streamscore.services.rollout import ChallengerRunner, TimedModel, challenger_runner
from streamscore.services.shutdown import stop_on_signals
from streamscore.services.stream_processor import Decoded, LoopStats, Output, StreamProcessor

REPO_POLICIES = Path(__file__).resolve().parents[3] / "policies"


#: After a failed policy read, how long before the store is asked again.
POLICY_ERROR_BACKOFF_S = 30.0
#: After a failed read of the active model reference, how long before the store is asked again.
MODEL_ERROR_BACKOFF_S = 30.0

log = logging.getLogger(__name__)


def _budget_for(policy: Policy) -> DegradedBudget:
    return DegradedBudget(
        max_approvals_per_minute=policy.degraded.max_approvals_per_minute,
        max_exposure_per_minute=policy.degraded.max_exposure_per_minute,
    )


class Scorer:
    """The batch handler of one stream: decisions and their log records."""

    def __init__(
        self,
        stream: str,
        *,
        policy: Policy,
        model: ScoreModel | None,
        explainer: Explainer | None = None,
        topic_prefix: str = "",
        metrics: DecisionMetrics | None = None,
        policy_source: Callable[[], Policy | None] | None = None,
        policy_refresh_s: float = 1.0,
        model_source: Callable[[], ModelRef | None] | None = None,
        model_refresh_s: float = 1.0,
        model_loader: Callable[
            [ModelRef, str], tuple[ScoreModel, Explainer | None]
        ] = load_reference,
        capacity: CapacityLedger | None = None,
        shadow_source: Callable[[], Policy | None] | None = None,
        rollout: ChallengerRunner | None = None,
    ) -> None:
        self.stream = STREAMS[stream]
        self.metrics = metrics
        self.policy = policy
        self._policy_source = policy_source
        self._policy_refresh_s = policy_refresh_s
        self._policy_checked = 0.0
        self.policy_errors = 0
        self._model = model
        self._explainer = explainer
        self._model_source = model_source
        self._model_refresh_s = model_refresh_s
        self._model_loader = model_loader
        self._model_checked = -math.inf
        #: References this scorer refused: not loaded again until promoted anew.
        self._refused: set[ModelRef] = set()
        self.model_refusals: Counter[str] = Counter()
        self.prefix = topic_prefix
        self.feature_names = model_features(stream)
        self.key_fields = sorted({g.entity.join_key for g in groups(stream)})
        self.budget = _budget_for(policy)
        self.capacity = capacity
        self._shadow_source = shadow_source
        self._shadow_checked = -math.inf
        self.shadow: Policy | None = None
        self.shadow_budget: DegradedBudget | None = None
        self.shadow_errors = 0
        #: (active outcome, shadow outcome) -> decisions, since this scorer started.
        self.shadow_agreement: Counter[tuple[str, str]] = Counter()
        self.rollout = rollout
        #: The challenger's own degraded budget when it decides in shadow.
        self.challenger_budget = _budget_for(policy)
        self._stage_s = [0.0, 0.0]  # live model and decide seconds of the current batch
        self._lock = threading.Lock()
        self._publish_model(None, model)

    def _publish_model(self, old: ScoreModel | None, new: ScoreModel | None) -> None:
        if self.metrics is None:
            return
        gauge = self.metrics.model_info
        if old is not None:
            gauge.remove(self.stream.name, old.version)
        gauge.labels(self.stream.name, new.version if new else NO_MODEL_VERSION).set(1)

    def swap_model(self, model: ScoreModel | None, explainer: Explainer | None = None) -> None:
        """Serve ``model`` from the next batch on (the current batch keeps its model)."""
        with self._lock:
            old = self._model
            self._model, self._explainer = model, explainer
        self._publish_model(old, model)

    @property
    def model_version(self) -> str | None:
        """The version of the model serving now (``None``: no model, the degraded path)."""
        with self._lock:
            return None if self._model is None else self._model.version

    def refresh_policy(self) -> None:
        """Adopt the store's active policy if it changed (at most every ``policy_refresh_s``).

        1. Checked between batches only: every decision of a batch has one policy version.
        2. A store that cannot be read keeps the current policy (counted in
           ``policy_errors``): a store outage must not stop decisions, and the next
           attempt waits ``POLICY_ERROR_BACKOFF_S`` so a dead store's timeouts do not
           land on the decision path every second.
        3. A policy for another stream is ignored (and counted).
        """
        if self._policy_source is None:
            return
        now = time.monotonic()
        if now - self._policy_checked < self._policy_refresh_s:
            return
        self._policy_checked = now
        try:
            active = self._policy_source()
        except (redis.RedisError, PolicyError):
            self.policy_errors += 1
            self._policy_checked = now + POLICY_ERROR_BACKOFF_S
            return
        if active is None or active.version == self.policy.version:
            return
        if active.stream != self.stream.name:
            self.policy_errors += 1
            return
        self.policy = active
        # A new policy may change the degraded budget's limits: start its minute afresh.
        self.budget = _budget_for(active)

    def refresh_shadow(self) -> None:
        """Adopt the store's shadow policy (or its absence), like :meth:`refresh_policy`.

        1. Checked between batches only, at most every ``policy_refresh_s``.
        2. A store that cannot be read keeps the current shadow (counted in
           ``shadow_errors``) and is asked again after ``POLICY_ERROR_BACKOFF_S``.
        3. A shadow for another stream is ignored (and counted).
        4. A new shadow gets its own degraded budget: a shadow never spends the
           active policy's.
        """
        if self._shadow_source is None:
            return
        now = time.monotonic()
        if now - self._shadow_checked < self._policy_refresh_s:
            return
        self._shadow_checked = now
        try:
            shadow = self._shadow_source()
        except (redis.RedisError, PolicyError):  # 2.
            self.shadow_errors += 1
            self._shadow_checked = now + POLICY_ERROR_BACKOFF_S
            return
        if shadow is not None and shadow.stream != self.stream.name:  # 3.
            self.shadow_errors += 1
            return
        if shadow is None:
            self.shadow, self.shadow_budget = None, None
        elif self.shadow is None or shadow.version != self.shadow.version:
            self.shadow, self.shadow_budget = shadow, _budget_for(shadow)  # 4.

    def refresh_model(self) -> None:
        """Adopt the store's active model when it is another version than the one serving.

        1. Checked between batches only (before a batch takes its model), at most every
           ``model_refresh_s``: every decision of a batch carries one model version.
        2. A store that cannot be read keeps the current model (counted as
           ``store_unreadable``); it is asked again after ``MODEL_ERROR_BACKOFF_S``.
        3. A reference refused here before is not loaded again (no hot loop of ONNX
           session builds); promoting it anew (a new ``promoted_at``) retries it.
        4. The folder is loaded and verified without the lock held (building an ONNX
           session takes a while; nobody waits on the lock meanwhile), and must hold
           the reference's version and file hash
           (:func:`~streamscore.services.model_store.load_reference`).
        5. A refusal keeps the current model serving and is counted by reason
           (``streamscore_model_refusals_total``); a load swaps from this batch on.
        """
        if self._model_source is None:
            return
        now = time.monotonic()
        if now - self._model_checked < self._model_refresh_s:
            return
        self._model_checked = now
        try:
            ref = self._model_source()
        except (redis.RedisError, ModelStoreError) as exc:  # 2.
            self._model_checked = now + MODEL_ERROR_BACKOFF_S
            self._count_refusal("store_unreadable", str(exc))
            return
        if ref is None or ref.version == self.model_version or ref in self._refused:  # 3.
            return
        try:
            model, explainer = self._model_loader(ref, self.stream.name)  # 4.
        except ModelRefused as exc:
            self._refused.add(ref)
            self._count_refusal(exc.reason, f"{ref.version}: {exc}")  # 5.
            return
        self.swap_model(model, explainer)
        log.info("%s: serving model %s from %s", self.stream.name, ref.version, ref.path)

    def _count_refusal(self, reason: str, detail: str) -> None:
        self.model_refusals[reason] += 1
        if self.metrics is not None:
            self.metrics.model_refusals.labels(self.stream.name, reason).inc()
        log.warning(
            "%s: model not adopted (%s); the current one keeps serving", self.stream.name, detail
        )

    def handle(self, batch: Sequence[Decoded]) -> list[Output]:
        """Decide a micro-batch; returns decision and scored-log records, keyed like the input."""
        self.refresh_policy()
        self.refresh_shadow()
        self.refresh_model()
        runner = self.rollout
        alerts = runner.refresh(self.model_version) if runner is not None else []
        with self._lock:
            model, explainer = self._model, self._explainer
        vectors = [cast(FeatureVector, d.message) for d in batch]
        now = datetime.now(tz=UTC)
        self._stage_s = [0.0, 0.0]
        shadowed: list[tuple[int, Decision]] = []
        canary: list[bool] = []
        if runner is not None and runner.serving is not None:
            keys = [str(getattr(event_of(v), runner.key_field, "") or "") for v in vectors]
            rolled = runner.decide(
                vectors,
                keys,
                champion=model,
                champion_explainer=explainer,
                decide_fn=partial(self._decide, now=now),
                outcomes=self.policy.outcomes,
            )
            scored, shadowed, alerts = rolled.scored, rolled.shadow, alerts + rolled.alerts
            canary = rolled.canary
        else:
            scored = self._decide(vectors, model, explainer, True, now=now)
        model_s, decide_s = self._stage_s
        if self.metrics is not None:
            stages = self.metrics.stage_seconds
            stages.labels(self.stream.name, "model").observe(model_s)
            stages.labels(self.stream.name, "policy").observe(max(0.0, decide_s - model_s))
        if self.shadow is not None:
            self._compare_shadow(self.shadow, vectors, scored.decisions, scored, now)
        if self.metrics is not None:
            self._observe(batch, scored.decisions, scored.missing_cells, now)
        names_hash = hash_feature_names(scored.feature_names)
        out: list[Output] = []
        decision_topic = self.prefix + self.stream.decision_topic
        log_topic = self.prefix + self.stream.scored_log_topic
        for i, (d, decision) in enumerate(zip(batch, scored.decisions, strict=True)):
            out.append(Output(decision_topic, encode(decision), d.key))
            ev = event_of(vectors[i])
            row = scored.X[i]
            out.append(
                Output(
                    log_topic,
                    encode(
                        ScoredEvent(
                            event_id=ev.event_id,
                            event_time=ev.event_time,
                            stream=self.stream.name,
                            keys={
                                k: str(getattr(ev, k))
                                for k in self.key_fields
                                if getattr(ev, k, None)
                            },
                            feature_names_hash=names_hash,
                            values=[None if math.isnan(v) else v for v in row.tolist()],
                            model_version=decision.model_version,
                            policy_version=decision.policy_version,
                            score=decision.score,
                            decision=str(decision.decision),  # type: ignore[attr-defined]
                            policy_path=decision.policy_path,
                            degraded=decision.degraded,
                            feature_freshness=dict(decision.feature_freshness),
                            decided_at=decision.decided_at,
                            model_role="canary" if canary and canary[i] else "champion",
                        )
                    ),
                    d.key,
                )
            )
        shadow_topic = self.prefix + self.stream.shadow_decision_topic
        out += [Output(shadow_topic, encode(s), batch[i].key) for i, s in shadowed]
        alert_topic = self.prefix + DRIFT_ALERT_TOPIC
        out += [Output(alert_topic, encode(a), self.stream.name.encode()) for a in alerts]
        return out

    def _decide(
        self,
        vectors: Sequence[FeatureVector],
        model: ScoreModel | None,
        explainer: Explainer | None,
        live: bool,
        *,
        now: datetime,
    ) -> ScoredBatch:
        """Decide with the active policy; ``live``: the live budget and capacity (and the
        stage timings), else the challenger's own budget and no capacity (a shadow spends
        nothing)."""
        timed = TimedModel(model) if model is not None else None
        t0 = time.perf_counter()
        scored = decide(
            vectors,
            stream=self.stream.name,
            policy=self.policy,
            model=timed,
            feature_names=self.feature_names,
            key_fields=self.key_fields,
            now=now,
            budget=self.budget if live else self.challenger_budget,
            explainer=explainer,
            capacity=self.capacity if live else None,
        )
        if live:
            self._stage_s[0] += timed.seconds if timed is not None else 0.0
            self._stage_s[1] += time.perf_counter() - t0
        return scored

    def _compare_shadow(
        self,
        shadow: Policy,
        vectors: Sequence[FeatureVector],
        decisions: Sequence[Decision],
        scored: ScoredBatch,
        now: datetime,
    ) -> None:
        """Decide the batch with the shadow policy too and count agreement (no other effect)."""
        outcomes = shadow_outcomes(
            vectors,
            scored,
            policy=shadow,
            key_fields=self.key_fields,
            now=now,
            budget=self.shadow_budget,
        )
        pairs = Counter(
            (str(d.decision), s.outcome)  # type: ignore[attr-defined]
            for d, s in zip(decisions, outcomes, strict=True)
        )
        self.shadow_agreement.update(pairs)
        if self.metrics is not None:
            for (active, shadowed), n in pairs.items():
                self.metrics.shadow_decisions.labels(self.stream.name, active, shadowed).inc(n)

    def _observe(
        self,
        batch: Sequence[Decoded],
        decisions: Sequence[Decision],
        missing: int,
        now: datetime,
    ) -> None:
        m, name = self.metrics, self.stream.name
        assert m is not None
        mix = Counter((str(d.decision), path_kind(d.policy_path)) for d in decisions)  # type: ignore[attr-defined]
        for (outcome, kind), n in mix.items():
            m.decisions.labels(name, outcome, kind).inc(n)
        for reason, n in Counter(
            degraded_kind(d.degraded) for d in decisions if d.degraded
        ).items():
            m.degraded.labels(name, reason).inc(n)
        now_ms = now.timestamp() * 1000
        hist = m.latency.labels(name)
        for d in batch:
            hist.observe(max(0.0, (now_ms - d.timestamp_ms) / 1000))
        m.missing_values.labels(name).inc(missing)
        m.exposure.labels(name).set(self.budget.exposure_last_minute)
        downgraded = sum(d.policy_path == CAPACITY_PATH for d in decisions)
        if downgraded:
            m.capacity_downgrades.labels(name).inc(downgraded)


def load_model(model_dir: Path, stream: str) -> tuple[ScoringSession, TreeReasons]:
    """A verified model for ``stream`` and its reasons, or :class:`ModelRefused`.

    The checks are :func:`~streamscore.services.model_loader.open_model`'s: the
    manifest must name the live feature schema of the stream, the file must hash
    to the manifest's value and pass the ONNX safety checks.
    """
    _manifest, session, reasons = open_model(model_dir, stream)
    return session, reasons


def default_policy(stream: str) -> Policy:
    """The shipped policy of a stream (``policies/<stream>.json``)."""
    return load_policy((REPO_POLICIES / f"{stream}.json").read_bytes())


def run_scorer(
    settings: Settings,
    stream: str,
    *,
    policy: Policy | None = None,
    model: ScoreModel | None = None,
    explainer: Explainer | None = None,
    topic_prefix: str = "",
) -> LoopStats:
    """Run the scorer of ``stream`` until SIGTERM or SIGINT; graceful: last batch committed.

    ``topic_prefix`` namespaces every topic and the consumer group (tests, tenants).

    Which model serves: the model store's active reference for ``stream`` when
    there is one (the operator's latest word, adopted before the first batch and
    after every promotion or rollback); ``model`` (``--model``) only while the
    store has none, or while the store's reference is refused.
    """
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port, addr=settings.bind_host)
    # The active policy lives in Redis (changed through the API); the file is the fallback.
    store = PolicyStore(make_redis(settings))
    models = ModelStore(store.client)
    metrics = DecisionMetrics()
    scorer = Scorer(
        stream,
        policy=policy or default_policy(stream),
        model=model,
        explainer=explainer,
        topic_prefix=topic_prefix,
        metrics=metrics,
        policy_source=lambda: store.active(stream),
        model_source=lambda: models.active(stream),
        # The day's alerts are shared by every scorer of the stream (per tenant prefix).
        capacity=RedisCapacity(store.client, prefix=topic_prefix, metrics=metrics),
        shadow_source=lambda: store.shadow(stream),
        rollout=challenger_runner(models, stream, metrics),
    )
    consumer = make_consumer(
        settings,
        group_id=f"{topic_prefix}streamscore-scorer-{stream}",
        client_id=f"scorer-{stream}",
    )
    consumer.subscribe([topic_prefix + STREAMS[stream].feature_topic])
    producer = make_producer(settings, client_id=f"scorer-{stream}")
    processor = StreamProcessor(
        consumer,
        producer,
        scorer.handle,
        service="scorer",
        max_batch=256,
        max_wait_s=0.002,
        max_bytes=settings.max_message_bytes,
        topic_prefix=topic_prefix,
        metrics=StreamMetrics(),
    )
    stop = stop_on_signals()
    try:
        return processor.run(should_stop=stop.is_set)
    finally:
        # The loop only stops between batches: everything consumed is committed.
        consumer.close()
