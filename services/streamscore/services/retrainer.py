"""``streamscore retrainer``: drift, new labels or a schedule → a gated challenger model.

Consumes ``alerts.drift`` (the monitor's alerts) and ``examples.labelled`` (the
label joiner's matured examples), feeds them to the trigger rules of
:mod:`streamscore.libs.training.triggers` (schedule, ``retrain_trigger`` alert,
enough new labelled examples; a minimum interval between trainings, all in
stream time), and when they say so:

1. **Train** (:func:`~streamscore.services.trainer.train`) on the matured
   examples of the joiner's Parquet dataset (``--examples``, the joiner's
   ``--out``), or, before the joiner has written any, on the simulator's files
   (``--sim``, cold start). The delay-aware split ends on the last day whose
   examples have all matured (:func:`last_matured_day`), on the data's last
   day for a cold start.
   The run is logged to MLflow; the export is behind the parity gate.
2. **Register** the folder in the MLflow registry
   (:class:`~streamscore.services.model_registry.ModelRegistry`: refused unless
   the gate passed) and point the ``challenger`` alias, and the rollout stage's
   alias (``shadow`` by default, or ``canary``), at it — audited with who
   (``--by``, ``retrainer``), when and why (the trigger's causes).
3. **Hand over** to serving: :meth:`ModelStore.set_challenger` (mode
   ``shadow`` or ``canary`` with ``--canary-share``); scorers pick it up between
   batches. Promotion to champion is an explicit approval
   (``streamscore model promote``) unless ``--auto-promote`` (straight to
   champion). With a progression plan (``--progress``) the challenger moves
   shadow → canary → champion (``--promote auto``) or to *ready* (approval)
   by itself in the scorers (:mod:`.rollout`), and the retrainer mirrors those
   moves of the model store on the registry's aliases (:mod:`.alias_sync`).

A ``rollback`` alert of the scorers' canary judge (``alerts.drift``) removes the
rolled-back model's ``challenger`` / ``canary`` / ``shadow`` aliases in the
registry (audited), so the registry says what serves.

**Late rollback.** Every labelled example (corrections included) is also counted
for the late judge (:mod:`streamscore.libs.rollout.late_judge`). Once the canary
cohort of the champion's last promotion has matured, its realised precision is
compared with the model it replaced on the same buckets; a clear drop re-activates
the previous model (:meth:`ModelStore.rollback`), publishes a ``rollback`` alert
(signal ``precision``, detector ``late_judge``) and counts the verdict
(``streamscore_late_judge_verdicts_total``); the registry's ``champion`` alias
follows the store. Each promotion is judged once.

The training runs in a worker thread while the loop keeps reading (a long fit
never stalls the consumer past ``max.poll.interval.ms``); records that arrive
meanwhile count for the next training.

**Delivery.** One batch, in the order that counts every record exactly once:

1. Consume; skip records at offsets the saved state already counted (a crash
   after step 2 and before step 3 re-delivers them).
2. Apply the batch to the triggers and save the state (triggers and the next
   offset per partition) to Redis in one ``SET``.
3. Commit those offsets to Kafka (only where a new consumer group starts).

A record that breaks its contract is counted (``refused``) and skipped: both
topics are written by streamscore's own services, so it is a bug to look at,
not data to train on. A training interrupted by a stop or a crash is
forgotten on restart and its causes fire again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import msgspec
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from prometheus_client import start_http_server

from streamscore.libs.config import Settings
from streamscore.libs.contracts.alerts import DriftAlert
from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.errors import ContractError
from streamscore.libs.contracts.examples import LabelledExample
from streamscore.libs.rollout.late_judge import LateState, LateVerdict, judge, observe
from streamscore.libs.topics import DRIFT_ALERT_TOPIC, LABELLED_EXAMPLES_TOPIC
from streamscore.libs.training.triggers import (
    Decision,
    RetrainTriggers,
    TriggerState,
)
from streamscore.services.clients import make_consumer, make_producer, make_redis
from streamscore.services.metrics import RetrainerMetrics
from streamscore.services.model_store import ModelStore
from streamscore.services.retrain_job import Outcome, RetrainerConfig, retrain_once
from streamscore.services.rollout_moves import late_rollback_alert
from streamscore.services.scorer import default_policy
from streamscore.services.shutdown import stop_on_signals

log = logging.getLogger(__name__)
SERVICE = "retrainer"
STATE_KEY = "{prefix}streamscore:retrainer:{stream}:state"


class RetrainerState(msgspec.Struct, kw_only=True):
    """What the retrainer saves: the triggers and the next offset of each partition read."""

    triggers: TriggerState = msgspec.field(default_factory=TriggerState)
    #: ``"<topic>:<partition>"`` -> next offset to count.
    offsets: dict[str, int] = msgspec.field(default_factory=dict)
    #: The last finished training: outcome, versions, error (for ``status`` and tests).
    last: dict[str, str] = msgspec.field(default_factory=dict)
    #: ``rollback`` alerts not yet applied to the registry's aliases: [model version, why].
    rollbacks: list[list[str]] = msgspec.field(default_factory=list)
    #: The late judge's counts per model version and bucket, and the promotions judged.
    late: LateState = msgspec.field(default_factory=LateState)


@dataclass
class RetrainerStats:
    consumed: int = 0
    counted: Counter[str] = field(default_factory=Counter)
    outcomes: list[Outcome] = field(default_factory=list)


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


class Retrainer:
    """Steps 1-3 of the module docstring around a consumer, Redis and the MLflow registry."""

    def __init__(
        self,
        settings: Settings,
        cfg: RetrainerConfig,
        *,
        metrics: RetrainerMetrics | None = None,
    ) -> None:
        self.settings, self.cfg = settings, cfg
        self.redis = make_redis(settings, timeout_s=5.0)
        self.store = ModelStore(self.redis, namespace=cfg.namespace)
        self.key = STATE_KEY.format(prefix=cfg.topic_prefix, stream=cfg.stream)
        raw = self.redis.get(self.key)
        self.state = (
            RetrainerState() if raw is None else msgspec.json.decode(raw, type=RetrainerState)  # type: ignore[arg-type]
        )
        self.triggers = RetrainTriggers(cfg.policy, self.state.triggers)
        self.triggers.recover()
        self.alert_topic = cfg.topic_prefix + DRIFT_ALERT_TOPIC
        self.examples_topic = cfg.topic_prefix + LABELLED_EXAMPLES_TOPIC
        self.metrics = metrics
        self.stats = RetrainerStats()
        self._job: threading.Thread | None = None
        self._result: Outcome | None = None
        self._last_decision: tuple[tuple[str, ...], str] = ((), "")
        self._synced: tuple[object, ...] | None = None
        self._sync_at = 0.0
        self._late_at = 0.0
        self._pass_outcome = default_policy(cfg.stream).outcomes[0]
        if metrics is not None:  # the series exist from the start, not from the first change
            metrics.running.labels(cfg.stream).set(0)
            metrics.new_examples.labels(cfg.stream).set(self.state.triggers.new_examples)

    # Records -------------------------------------------------------------------------------

    def _count(self, kind: str, n: int = 1) -> None:
        self.stats.counted[kind] += n
        if self.metrics is not None:
            self.metrics.records.labels(self.cfg.stream, kind).inc(n)

    def apply(self, msgs: list[Message]) -> bool:
        """Step 1-2's bookkeeping: the batch into the triggers; True when anything counted."""
        counted = False
        for m in msgs:
            topic, part, offset = str(m.topic()), int(m.partition() or 0), int(m.offset() or 0)
            tp = f"{topic}:{part}"
            if offset < self.state.offsets.get(tp, 0):
                continue  # counted before a crash (step 1)
            self.state.offsets[tp] = offset + 1
            counted = True
            self.stats.consumed += 1
            try:
                if topic == self.alert_topic:
                    self._alert(decode(DriftAlert, m.value() or b"", max_bytes=1 << 20))
                else:
                    self._example(decode(LabelledExample, m.value() or b"", max_bytes=1 << 20))
            except ContractError as exc:
                log.warning("%s[%d]@%d refused: %s", topic, part, offset, exc)
                self._count("refused")
        return counted

    def _alert(self, a: DriftAlert) -> None:
        if a.kind == "rollback" and a.stream == self.cfg.stream:
            self.state.rollbacks.append([a.model_version, f"{a.alert_id}: {a.reason}"])
            self._count("rollback")
            return
        hit = self.triggers.observe_alert(
            a.alert_id,
            kind=a.kind,
            stream=a.stream,
            stream_name=self.cfg.stream,
            # Confirmed, not first evidence: the monitor's estimate of the start can be
            # days early (a slow drift), and the wait is for labels of the changed world.
            at_us=_us(a.confirmed_at),
        )
        if hit:
            log.info("%s: retrain_trigger %s: %s", self.cfg.stream, a.alert_id, a.reason)
        self._count("alert" if hit else "other")

    def _example(self, ex: LabelledExample) -> None:
        if ex.stream == self.cfg.stream and self.cfg.late_bounds is not None:
            observe(
                self.state.late,
                ex.model_version,
                t_us=_us(ex.event_time),
                revision=ex.revision,
                label=ex.label,
                flagged=ex.score is not None and ex.decision != self._pass_outcome,
                matured_us=_us(ex.matured_at),
                bucket_us=self.cfg.late_bucket_us,
            )
        if ex.stream != self.cfg.stream or ex.revision != 0:
            self._count("other")
            return
        if ex.kind == "matured_negative":  # every event up to its event time has matured
            self.triggers.observe_frontier(_us(ex.event_time))
        times = [ex.event_time, ex.matured_at] + ([ex.label_time] if ex.label_time else [])
        self.triggers.observe_examples(1, _us(max(times)))
        self._count("examples")

    def save(self) -> None:
        """Step 2: the state in one ``SET``."""
        self.redis.set(self.key, msgspec.json.encode(self.state))
        if self.metrics is not None:
            self.metrics.new_examples.labels(self.cfg.stream).set(self.state.triggers.new_examples)

    def offsets(self) -> list[TopicPartition]:
        """Step 3: the offsets the saved state reached."""
        out = []
        for tp, off in self.state.offsets.items():
            topic, _, part = tp.rpartition(":")
            out.append(TopicPartition(topic, int(part), off))
        return out

    def apply_rollbacks(self) -> int:
        """A challenger the scorers' canary judge rolled back (``rollback`` alert, saved
        first) loses its ``challenger`` / ``shadow`` / ``canary`` aliases in the registry,
        audited as done by ``canary-judge``; the alert leaves the state once applied."""
        if not self.state.rollbacks:
            return 0
        from streamscore.services.model_registry import ModelRegistry  # noqa: PLC0415

        registry = ModelRegistry.open(self.settings)
        cleared = 0
        for model_version, why in list(self.state.rollbacks):
            for alias in ("challenger", "canary", "shadow"):
                held = registry.by_alias(self.cfg.stream, alias)
                if held is not None and held.model_version == model_version:
                    registry.clear_alias(self.cfg.stream, alias, by="canary-judge", reason=why)
                    cleared += 1
            self.state.rollbacks.remove([model_version, why])
            self.save()
        return cleared

    def sync_aliases(self, every_s: float = 2.0) -> int:
        """Mirror the model store's challenger and champion on the registry's aliases
        (:func:`~streamscore.services.alias_sync.sync_aliases`), at most every ``every_s``
        and only when what the store says changed; returns the alias moves made."""
        now = time.monotonic()
        if now - self._sync_at < every_s:
            return 0
        self._sync_at = now
        ch, active = self.store.challenger(self.cfg.stream), self.store.active(self.cfg.stream)
        seen = (
            None if ch is None else (ch.ref.version, ch.mode),
            None if active is None else active.version,
        )
        if seen == self._synced:
            return 0
        from streamscore.services.alias_sync import sync_aliases  # noqa: PLC0415
        from streamscore.services.model_registry import ModelRegistry  # noqa: PLC0415

        moves = sync_aliases(ModelRegistry.open(self.settings), self.store, self.cfg.stream)
        self._synced = seen
        for m in moves:
            log.info("%s: registry %s", self.cfg.stream, m.line())
        return len(moves)

    def late_judge(self, caught_up: Callable[[], bool], every_s: float = 2.0) -> LateVerdict | None:
        """Judge the champion's last promotion again on its matured canary cohort (module
        doc); at most every ``every_s`` and only while ``caught_up()``: every committed
        example has been read, so none below the frontier is still unread on a partition
        read more slowly. Returns a verdict when one was given now."""
        now = time.monotonic()
        bounds = self.cfg.late_bounds
        if bounds is None or now - self._late_at < every_s:
            return None
        self._late_at = now
        if not caught_up():
            return None
        stream = self.cfg.stream
        active = self.store.active(stream)
        if active is None:
            return None
        old = next((r for r in self.store.history(stream) if r.version != active.version), None)
        if old is None or f"{old.version}->{active.version}" in self.state.late.judged:
            return None
        v = judge(
            self.state.late,
            new=active.version,
            old=old.version,
            horizon_us=self.cfg.horizon_us,
            bucket_us=self.cfg.late_bucket_us,
            bounds=bounds,
        )
        if v is None:
            return None
        if v.verdict == "rolled_back":
            self._roll_back_late(v)
        self.state.late.judged.append(v.pair)
        self.state.late.last = v.reason()
        self.save()
        log.info("%s: %s", stream, v.reason())
        if self.metrics is not None:
            self.metrics.late_verdicts.labels(stream, v.verdict).inc()
        return v

    def _roll_back_late(self, v: LateVerdict) -> None:
        """Re-activate the replaced model and say so on ``alerts.drift`` (acknowledged)."""
        stream = self.cfg.stream
        current = self.store.active(stream)
        if current is None or current.version != v.new:
            return  # moved on meanwhile: the next promotion gets its own judgement
        back = self.store.rollback(stream)
        log.warning("%s: late rollback %s -> %s: %s", stream, v.new, back.version, v.reason())
        alert = late_rollback_alert(stream, v, now=datetime.now(tz=UTC))
        producer = make_producer(self.settings, client_id=f"{SERVICE}-{stream}")
        producer.send(self.alert_topic, encode(alert), key=stream.encode())
        if producer.flush(30) != 0 or producer.failed_total:
            raise RuntimeError(f"{stream}: the late rollback alert was not acknowledged")

    # Trainings -----------------------------------------------------------------------------

    @property
    def training(self) -> bool:
        return self._job is not None

    def maybe_start(self) -> Decision | None:
        """Start a training in a worker thread when the triggers say so."""
        if self._job is not None:
            return None
        d = self.triggers.decide()
        result = "started" if d.retrain else (d.held or "held")
        seen = (d.causes, result)
        if d.causes and seen != self._last_decision and self.metrics is not None:
            for c in d.causes:  # counted once per change, not once per poll
                self.metrics.decisions.labels(self.cfg.stream, c, result).inc()
        self._last_decision = seen
        if not d.retrain:
            return None
        self.triggers.started(d)
        self.save()  # a crash from here on: recover() forgets this attempt
        log.info("%s: retraining (%s)", self.cfg.stream, d.reason)
        if self.metrics is not None:
            self.metrics.running.labels(self.cfg.stream).set(1)
        self._result = None
        self._job = threading.Thread(
            target=self._run, args=(d,), name=f"retrain-{self.cfg.stream}", daemon=True
        )
        self._job.start()
        return d

    def _run(self, d: Decision) -> None:
        t0 = time.monotonic()
        try:
            out = retrain_once(self.settings, self.cfg, self.store, d.reason)
        except Exception as exc:  # the thread reports every failure; the loop counts it
            log.exception("%s: retraining failed", self.cfg.stream)
            out = Outcome("error", f"{type(exc).__name__}: {exc}")
        out.seconds = time.monotonic() - t0
        self._result = out

    def maybe_finish(self) -> Outcome | None:
        """The finished training's outcome (counted, saved), or ``None`` while it runs."""
        if self._job is None or self._job.is_alive():
            return None
        self._job = None
        out = self._result or Outcome("error", "the training thread reported nothing")
        self.triggers.finished(ok=out.trained)
        self.state.last = {
            "outcome": out.outcome,
            "detail": out.detail[:1000],
            "model_version": out.model_version or "",
            "registry_version": out.registry_version or "",
            "seconds": f"{out.seconds:.1f}",
        }
        self.save()
        self.stats.outcomes.append(out)
        if self.metrics is not None:
            self.metrics.trainings.labels(self.cfg.stream, out.outcome).inc()
            self.metrics.running.labels(self.cfg.stream).set(0)
        log.info(
            "%s: training %s %s (%.1f s)", self.cfg.stream, out.outcome, out.detail, out.seconds
        )
        return out


def _read_to_end(consumer: Consumer, topic: str, *, quiet: bool) -> bool:
    """Whether the last poll was ``quiet`` and every partition of ``topic`` assigned to
    ``consumer`` has been read to its end (one offset of slack: the last may be a
    transaction marker, never delivered)."""
    if not quiet:
        return False
    parts = [tp for tp in consumer.assignment() if tp.topic == topic]
    if not parts:
        return False
    for tp in consumer.position(parts):
        low, high = consumer.get_watermark_offsets(tp, timeout=5.0, cached=False)
        if high > low and tp.offset < high - 1:  # OFFSET_INVALID (< 0): nothing read yet
            return False
    return True


def run_retrainer(
    settings: Settings,
    cfg: RetrainerConfig,
    *,
    stop: threading.Event | None = None,
    on_ready: Callable[[Retrainer], None] | None = None,
    poll_s: float = 0.2,
    metrics: RetrainerMetrics | None = None,
) -> RetrainerStats:
    """Run the retrainer of ``cfg.stream`` until ``stop`` (default: SIGTERM or SIGINT);
    ``metrics``: on the process registry unless given (tests run several in one process)."""
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port, addr=settings.bind_host)
    stop = stop if stop is not None else stop_on_signals()
    r = Retrainer(settings, cfg, metrics=metrics if metrics is not None else RetrainerMetrics())
    group = f"{cfg.topic_prefix}streamscore-retrainer-{cfg.stream}"
    consumer = make_consumer(
        settings, group_id=group, client_id=f"{SERVICE}-{cfg.stream}",
        auto_offset_reset=cfg.offset_reset,
    )  # fmt: skip
    consumer.subscribe([r.alert_topic, r.examples_topic])
    if on_ready is not None:
        on_ready(r)
    try:
        while not stop.is_set():
            msgs = consumer.consume(1000, timeout=poll_s)
            good = []
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.fatal():
                        raise KafkaException(err)
                    log.warning("%s: consumer: %s", cfg.stream, err)
                    continue
                good.append(m)
            if r.apply(good):  # step 1-2
                r.save()
                consumer.commit(offsets=r.offsets(), asynchronous=False)  # step 3
            r.late_judge(partial(_read_to_end, consumer, r.examples_topic, quiet=not msgs))
            r.apply_rollbacks()
            if r.stats.outcomes or r.state.last:  # a registry exists once it trained
                r.sync_aliases()
            r.maybe_finish()
            r.maybe_start()
    finally:
        if r.training:
            log.warning("%s: stopped during a training: it runs again on restart", cfg.stream)
        consumer.close()
    return r.stats


__all__ = [
    "Outcome",
    "Retrainer",
    "RetrainerConfig",
    "RetrainerState",
    "RetrainerStats",
    "retrain_once",
    "run_retrainer",
]
