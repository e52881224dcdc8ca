"""The challenger beside the champion inside a scorer: shadow scoring, canary routing, the judge.

The model store's challenger slot (:meth:`ModelStore.set_challenger`) names a
second model for a stream and how it rolls out. A scorer with a
:class:`ChallengerRunner` polls it between batches, like the active model, and:

- **shadow**: the champion decides every event as without a challenger (the
  decision topic is unchanged); the challenger decides the same events with the
  same policy, its own degraded budget, no capacity and no side effect, and its
  decisions go to ``shadow.decisions.<stream>`` only, one per event.
- **canary**: the entities whose key hashes below the share
  (:mod:`streamscore.libs.rollout.routing`, salted with the challenger's
  version) are decided by the challenger, live: their decisions go to the
  decision topic with the challenger's ``model_version``; the others by the
  champion. A batch is split in two sub-batches and merged back in order. A
  challenger call that fails leaves its rows to the champion (counted as
  ``predict_error``): a canary never costs a decision.

The judge runs in every scorer process over its own window (the last
``window`` events of each cohort) every ``judge_every_s``. Per-process windows
are enough here, and avoid another service: the canary hash is independent of
the Kafka partitioning, so each scorer sees a random sample of both cohorts and
a bad challenger breaks the bounds in every process (a scorer with 1/N of the
traffic needs N times longer to gather ``min_events``); latency is a
per-process figure anyway. Several scorers judging the same canary roll it back
once: the store's compare-and-delete (:meth:`ModelStore.clear_challenger` with
the version) lets exactly one remove it, and only that one alerts and counts
``streamscore_model_rollbacks_total``; the others drop the challenger at once
(their own judge, or their next refresh). What a per-process judge cannot do is
the labelled precision bound: labels mature weeks later, outside any window
(the "late rollback" re-judgement is not built; :func:`judge` takes labelled
figures when a caller has them).

**Progression** (a challenger with a :class:`~streamscore.libs.rollout.progression.Plan`)
is applied here too, at each judgement, because this is where the evidence is:
the two cohorts' windows, the challenger's decision count since it entered its
mode and (in shadow) both models' scores on the same events. The retrainer,
which sets challengers, sees none of it, and a separate ``rollout`` service
would need the shadow topic, the decision topic and per-event pairing to
rebuild what the scorer holds already. A shadow that breaks a bound (or the
plan's score KS bound) is rejected exactly as a bad canary is rolled back
(compare-and-delete, alert kind ``rollback``, counted); a clean shadow moves
to canary, a clean canary to champion (plan ``promote: auto``) or to
``ready`` (awaiting ``streamscore model promote``). Every move is a
compare-and-set in the model store, so one scorer applies it and its log
line says who (``rollout-progression``), when and why; the retrainer mirrors
the moves on the MLflow aliases (:meth:`~streamscore.services.retrainer.Retrainer.sync_aliases`).
Progression only goes forward while the scorer is fed: no traffic, no move.
Counts are per process, like the judge's windows: with N scorers the first
whose own share of traffic reaches the plan's count moves the challenger (so
the plan's counts are per-process evidence, not totals).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import redis

from streamscore.libs.contracts.alerts import DriftAlert
from streamscore.libs.contracts.decisions import Decision
from streamscore.libs.contracts.features import FeatureVector
from streamscore.libs.model.safety import ModelRefused
from streamscore.libs.rollout.judge import Bounds, Verdict, judge
from streamscore.libs.rollout.progression import Step, progress
from streamscore.libs.rollout.report import ks_statistic
from streamscore.libs.rollout.routing import canary_mask
from streamscore.libs.rollout.window import CohortWindow
from streamscore.libs.scoring.decide import Explainer, ScoredBatch, ScoreModel
from streamscore.libs.topics import STREAMS
from streamscore.services.metrics import DecisionMetrics
from streamscore.services.model_store import (
    Challenger,
    ModelRef,
    ModelStore,
    ModelStoreError,
    load_reference,
)
from streamscore.services.rollout_moves import apply_step, rollback_alert

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
#: After a failed read of the challenger slot, how long before the store is asked again.
STORE_ERROR_BACKOFF_S = 30.0

#: ``decide_fn(vectors, model, explainer, live)``: the scorer's decide with its policy;
#: ``live`` decisions use the live budget and capacity, others a shadow budget and none.
DecideFn = Callable[
    [Sequence[FeatureVector], "ScoreModel | None", "Explainer | None", bool], ScoredBatch
]
#: ``roll_back(challenger, verdict)``: remove it from the store; whether this call removed it.
RollBackFn = Callable[[Challenger, Verdict], bool]
#: ``advance(challenger, step)``: apply a progression move in the store; whether it applied.
AdvanceFn = Callable[[Challenger, Step], bool]
#: Scores kept per cohort for the shadow's KS distance.
KS_SAMPLE = 5000


class TimedModel:
    """A model whose ``predict`` time is added up in ``seconds`` (the judge's latency)."""

    def __init__(self, model: ScoreModel) -> None:
        self.model = model
        self.seconds = 0.0

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def feature_names(self) -> Sequence[str]:
        return self.model.feature_names

    def predict(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.floating[Any]]:
        t0 = time.perf_counter()
        try:
            return self.model.predict(X)
        finally:
            self.seconds += time.perf_counter() - t0


@dataclass
class Serving:
    """The challenger a scorer runs now, loaded."""

    challenger: Challenger
    model: ScoreModel
    explainer: Explainer | None


@dataclass
class RolloutBatch:
    """What the runner made of a batch: the live decisions and the shadow ones (by index)."""

    scored: ScoredBatch
    shadow: list[tuple[int, Decision]] = field(default_factory=list)
    #: Per live decision: the canary decided it (empty: the champion decided every one).
    canary: list[bool] = field(default_factory=list)
    alerts: list[DriftAlert] = field(default_factory=list)


def merge(mask: Sequence[bool], canary: ScoredBatch, rest: ScoredBatch) -> ScoredBatch:
    """Two sub-batches (rows where ``mask`` is true / false) back into one, in batch order.

    Both models read the stream's live feature schema (the loader refuses any
    other), so their input matrices have the same columns.
    """
    n = len(mask)
    idx_c = [i for i, m in enumerate(mask) if m]
    idx_r = [i for i, m in enumerate(mask) if not m]
    width = max(canary.X.shape[1] if idx_c else 0, rest.X.shape[1] if idx_r else 0)
    X = np.empty((n, width), dtype=np.float32)
    scores = np.empty(n, dtype=np.float64)
    decisions: list[Decision | None] = [None] * n
    for idx, part in ((idx_c, canary), (idx_r, rest)):
        if idx:
            X[idx] = part.X
            scores[idx] = part.scores
            for i, d in zip(idx, part.decisions, strict=True):
                decisions[i] = d
    names = canary.feature_names if idx_c else rest.feature_names
    return ScoredBatch(
        [d for d in decisions if d is not None],
        X,
        scores,
        names,
        canary.missing_cells + rest.missing_cells,
        canary.degraded + rest.degraded,
    )


class ChallengerRunner:
    """The challenger side of one scorer (see the module docstring)."""

    def __init__(
        self,
        stream: str,
        *,
        source: Callable[[], Challenger | None],
        key_field: str,
        loader: Callable[[ModelRef, str], tuple[ScoreModel, Explainer | None]] = load_reference,
        refresh_s: float = 1.0,
        metrics: DecisionMetrics | None = None,
        bounds: Bounds | None = None,
        window: int = 5000,
        judge_every_s: float = 5.0,
        roll_back: RollBackFn | None = None,
        advance: AdvanceFn | None = None,
    ) -> None:
        self.stream = stream
        self.key_field = key_field
        self._source = source
        self._loader = loader
        self._refresh_s = refresh_s
        self._checked = -math.inf
        self.metrics = metrics
        self.bounds = bounds or Bounds()
        self.judge_every_s = judge_every_s
        self._judged = time.monotonic()
        self._roll_back = roll_back
        self.serving: Serving | None = None
        #: Challengers refused by the loader or rolled back here: not loaded again.
        self._dropped: set[ModelRef] = set()
        #: A rollback whose store write failed: retried on the next refresh.
        self._pending: tuple[Challenger, Verdict] | None = None
        self.windows = {CHAMPION: CohortWindow(window), CHALLENGER: CohortWindow(window)}
        self.errors: Counter[str] = Counter()
        self.verdicts: list[Verdict] = []
        self._advance = advance
        #: Challenger decisions since it entered its current mode (progression's count).
        self.decided = 0
        self._scores: dict[str, deque[float]] = {
            r: deque(maxlen=KS_SAMPLE) for r in (CHAMPION, CHALLENGER)
        }
        #: Progression moves applied by this process (newest last).
        self.steps: list[Step] = []

    # -- which challenger --------------------------------------------------------------

    def refresh(self, champion_version: str | None) -> list[DriftAlert]:
        """Adopt the store's challenger (or its absence) between batches; returns any alert of a
        rollback retried now.

        1. At most every ``refresh_s``; a store that cannot be read keeps the current
           challenger (counted ``store_unreadable``) and waits ``STORE_ERROR_BACKOFF_S``.
        2. A rollback whose store write failed is retried first.
        3. A challenger of the champion's own version (a promotion in flight) is not run.
        4. A refused or rolled-back reference is not loaded again (no hot loop); setting it
           anew (a new ``promoted_at``) retries it.
        5. The same model with another mode or share: adopted without a reload. A new
           model: loaded and verified (:func:`load_reference`), windows restarted.
        """
        now = time.monotonic()
        if now - self._checked < self._refresh_s:  # 1.
            return []
        self._checked = now
        alerts = self._retry_pending()  # 2.
        try:
            current = self._source()
        except (redis.RedisError, ModelStoreError) as exc:
            self._checked = now + STORE_ERROR_BACKOFF_S
            self._error(None, "store_unreadable", str(exc))
            return alerts
        if current is None or current.ref.version == champion_version:  # 3.
            self._adopt(None)
            return alerts
        if current.ref in self._dropped:  # 4.
            self._adopt(None)
            return alerts
        if self.serving is not None and self.serving.challenger.ref == current.ref:  # 5.
            if self.serving.challenger != current:
                self._adopt(Serving(current, self.serving.model, self.serving.explainer))
            return alerts
        try:
            model, explainer = self._loader(current.ref, self.stream)
        except ModelRefused as exc:
            self._dropped.add(current.ref)
            self._error(current.ref.version, exc.reason, str(exc))
            self._adopt(None)
            return alerts
        self._adopt(Serving(current, model, explainer))
        log.info(
            "%s: challenger %s in %s (share %.2f)",
            self.stream,
            current.ref.version,
            current.mode,
            current.share,
        )
        return alerts

    def _adopt(self, serving: Serving | None) -> None:
        old = self.serving
        gone = old is not None and (serving is None or serving.challenger != old.challenger)
        if gone and old is not None and self.metrics is not None:
            ch = old.challenger
            self.metrics.challenger_info.remove(self.stream, ch.ref.version, ch.mode)
        if serving is not None and self.metrics is not None:
            ch = serving.challenger
            self.metrics.challenger_info.labels(self.stream, ch.ref.version, ch.mode).set(ch.share)
        if (old and old.challenger) != (serving and serving.challenger):
            for w in self.windows.values():
                w.clear()
            for q in self._scores.values():
                q.clear()
            self.decided = 0
            self._judged = time.monotonic()
        self.serving = serving

    def _error(self, version: str | None, reason: str, detail: str) -> None:
        self.errors[reason] += 1
        if self.metrics is not None:
            self.metrics.rollout_errors.labels(self.stream, version or "none", reason).inc()
        log.warning("%s: challenger: %s (%s)", self.stream, reason, detail)

    # -- a batch -----------------------------------------------------------------------

    def decide(
        self,
        vectors: Sequence[FeatureVector],
        keys: Sequence[str],
        *,
        champion: ScoreModel | None,
        champion_explainer: Explainer | None,
        decide_fn: DecideFn,
        outcomes: Sequence[str],
    ) -> RolloutBatch:
        """Decide a batch with the challenger serving now (:attr:`serving` must be set)."""
        serving = self.serving
        assert serving is not None
        ch = serving.challenger
        timed_champ = TimedModel(champion) if champion is not None else None
        if ch.mode == "shadow":
            scored = decide_fn(vectors, timed_champ, champion_explainer, True)
            self._record(CHAMPION, champion, scored.decisions, timed_champ, "live")
            out = RolloutBatch(scored)
            timed = TimedModel(serving.model)
            try:
                shadow = decide_fn(vectors, timed, None, False)
            except Exception as exc:  # any model failure is counted, never fatal
                self._failed(ch, len(vectors), timed, exc)
                return out
            self._record(CHALLENGER, serving.model, shadow.decisions, timed, "shadow")
            out.shadow = list(enumerate(shadow.decisions))
            if ch.plan is not None:  # the KS sample: both models on the same events
                self._scores[CHAMPION].extend(scored.scores.tolist())
                self._scores[CHALLENGER].extend(shadow.scores.tolist())
            out.alerts = self._maybe_judge(outcomes)
            return out
        mask = canary_mask(keys, ch.share, salt=ch.ref.version)  # canary
        canary_rows = [v for v, m in zip(vectors, mask, strict=True) if m]
        rest_rows = [v for v, m in zip(vectors, mask, strict=True) if not m]
        timed = TimedModel(serving.model)
        canary: ScoredBatch | None = None
        if canary_rows:
            try:
                canary = decide_fn(canary_rows, timed, serving.explainer, True)
            except Exception as exc:  # the champion decides these rows instead
                self._failed(ch, len(canary_rows), timed, exc)
                mask = [False] * len(vectors)
                rest_rows = list(vectors)
        rest = decide_fn(rest_rows, timed_champ, champion_explainer, True)
        if canary is not None:
            self._record(CHALLENGER, serving.model, canary.decisions, timed, "live")
        self._record(CHAMPION, champion, rest.decisions, timed_champ, "live")
        scored = rest if canary is None else merge(mask, canary, rest)
        out = RolloutBatch(scored, canary=list(mask) if canary is not None else [])
        out.alerts = self._maybe_judge(outcomes)
        return out

    def _record(
        self,
        role: str,
        model: ScoreModel | None,
        decisions: Sequence[Decision],
        timed: TimedModel | None,
        route: str,
    ) -> None:
        if not decisions:
            return
        mix = Counter(str(d.decision) for d in decisions)  # type: ignore[attr-defined]
        if role == CHALLENGER:
            self.decided += len(decisions)
        ms = None if timed is None else timed.seconds * 1000
        self.windows[role].add(outcomes=mix, errors=0, latency_ms=ms)
        if self.metrics is None:
            return
        version = model.version if model is not None else "none"
        for outcome, n in mix.items():
            self.metrics.rollout_decisions.labels(self.stream, role, version, route, outcome).inc(n)
        if timed is not None:
            self.metrics.rollout_model_seconds.labels(self.stream, role, version).observe(
                timed.seconds
            )

    def _failed(self, ch: Challenger, rows: int, timed: TimedModel, exc: Exception) -> None:
        self.windows[CHALLENGER].add(outcomes={}, errors=rows, latency_ms=timed.seconds * 1000)
        self.errors["predict_error"] += rows
        if self.metrics is not None:
            labels = (self.stream, ch.ref.version, "predict_error")
            self.metrics.rollout_errors.labels(*labels).inc(rows)
        log.warning(
            "%s: challenger %s failed on %d rows: %r", self.stream, ch.ref.version, rows, exc
        )

    # -- the judge ---------------------------------------------------------------------

    def _maybe_judge(self, outcomes: Sequence[str]) -> list[DriftAlert]:
        """Every ``judge_every_s``: judge a canary (a breach rolls it back), then move the
        challenger along its plan, if it has one (module docstring)."""
        now = time.monotonic()
        if now - self._judged < self.judge_every_s or self.serving is None:
            return []
        self._judged = now
        champ, chal = (self.windows[r].stats() for r in (CHAMPION, CHALLENGER))
        challenger = self.serving.challenger
        if challenger.mode == "canary":  # the plan's own rate bound, when it sets one
            bounds = challenger.plan.bounds(self.bounds) if challenger.plan else self.bounds
            verdict = judge(champ, chal, outcomes, bounds)
            if verdict.rollback:
                return self._reject(challenger, verdict, (chal.events, champ.events))
        if challenger.plan is None:
            return []
        sa, sb = self._scores[CHAMPION], self._scores[CHALLENGER]
        step = progress(
            challenger.mode,
            challenger.plan,
            decided=self.decided,
            champion=champ,
            challenger=chal,
            outcomes=outcomes,
            bounds=self.bounds,
            score_ks=ks_statistic(list(sa), list(sb)) if sa and sb else None,
        )
        if step.move == "reject":
            return self._reject(challenger, step.verdict, (chal.events, champ.events))
        if step.move == "wait" or self._advance is None:
            return []
        if challenger.ready and step.move == "await_approval":
            return []  # said once already
        try:
            applied = self._advance(challenger, step)
        except (redis.RedisError, ModelStoreError, ModelRefused) as exc:
            self._error(challenger.ref.version, "progression_error", str(exc))
            return []
        if applied:
            self.steps.append(step)
            log.info(
                "%s: challenger %s: %s (%s)",
                self.stream,
                challenger.ref.version,
                step.move,
                step.reason,
            )
        self._checked = -math.inf  # adopt the new mode (or champion) on the next batch
        return []

    def _reject(
        self, challenger: Challenger, verdict: Verdict, events: tuple[int, int]
    ) -> list[DriftAlert]:
        """A failed canary or shadow: stop routing here, never load it again, remove it."""
        self.verdicts.append(verdict)
        # 1. Stop routing here at once (this process's customers are safe from now on),
        #    and never load this reference again.
        self._dropped.add(challenger.ref)
        self._adopt(None)
        log.warning(
            "%s: %s %s fails: %s",
            self.stream,
            challenger.mode,
            challenger.ref.version,
            verdict.describe(),
        )
        self._pending = (challenger, verdict)
        return self._retry_pending(events=events)

    def _retry_pending(self, events: tuple[int, int] = (0, 0)) -> list[DriftAlert]:
        """2. Remove it from the store (every scorer falls back on its next refresh); 3. only
        the process that removed it counts the rollback and publishes the alert (returned,
        produced with the batch). A store error keeps it pending for the next refresh."""
        if self._pending is None or self._roll_back is None:
            return []
        challenger, verdict = self._pending
        try:
            removed = self._roll_back(challenger, verdict)  # 2.
        except (redis.RedisError, ModelStoreError) as exc:
            self._error(challenger.ref.version, "rollback_store_error", str(exc))
            return []
        self._pending = None
        if not removed:
            return []  # another scorer rolled it back first (or it was replaced)
        reason = verdict.reason or "unknown"
        if self.metrics is not None:  # 3.
            self.metrics.model_rollbacks.labels(self.stream, reason).inc()
        return [
            rollback_alert(
                self.stream, challenger, verdict, events=events, now=datetime.now(tz=UTC)
            )
        ]


def challenger_runner(
    models: ModelStore, stream: str, metrics: DecisionMetrics | None
) -> ChallengerRunner:
    """The store's challenger for ``stream``, run and judged in this scorer; a failed canary
    (or shadow) is removed from the store by version (compare-and-delete: one scorer wins);
    a plan's moves are compare-and-set in the store (one scorer applies each)."""

    def roll_back(challenger: Challenger, verdict: Verdict) -> bool:
        reason = f"automatic rollback: {verdict.describe()}"
        removed = models.clear_challenger(
            stream, by="canary-judge", reason=reason, version=challenger.ref.version
        )
        return removed is not None

    def advance(challenger: Challenger, step: Step) -> bool:
        return apply_step(models, stream, challenger, step)

    return ChallengerRunner(
        stream,
        source=lambda: models.challenger(stream),
        key_field=STREAMS[stream].key_field,
        metrics=metrics,
        roll_back=roll_back,
        advance=advance,
    )
