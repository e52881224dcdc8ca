"""Score a micro-batch of feature-enriched events and turn it into decision records.

1. Build the model input in the model's feature order (missing = NaN).
2. Score with the model (no model: every row is degraded, ``no_score``).
3. Mark rows whose required feature groups are stale or unavailable.
4. Apply the policy (thresholds, rules, degraded mode and its budget), then,
   with a capacity ledger and a policy with ``alerts_per_day``, the day's
   investigator capacity (:mod:`streamscore.libs.policy.capacity`; the decisions
   it downgrades carry the reason ``capacity``).
5. Reasons: the rules that fired, then the model's top contributions for
   rows whose outcome is not the first of the ladder (the approvals need none,
   and contributions cost more than scoring).
6. One decision record per event, tagged with exactly one model version and
   one policy version.

Given the same events, model, policy and budget state, the decisions are the
same (``decided_at`` aside): replay is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from streamscore.libs.contracts.decisions import MAX_REASONS, Decision, Reason
from streamscore.libs.contracts.features import FeatureVector, event_of
from streamscore.libs.contracts.registry import CONTRACTS
from streamscore.libs.policy.budget import DegradedBudget
from streamscore.libs.policy.capacity import CAPACITY_PATH, CAPACITY_REASON, CapacityLedger, enforce
from streamscore.libs.policy.engine import BatchInput, PolicyDecision, decide_batch
from streamscore.libs.policy.spec import Policy
from streamscore.libs.scoring.matrix import degraded_reason, model_matrix

NO_MODEL_VERSION = "none"


class ScoreModel(Protocol):
    """A loaded model: its version, input order and a batch predict."""

    @property
    def version(self) -> str: ...

    @property
    def feature_names(self) -> Sequence[str]: ...

    def predict(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.floating[Any]]: ...


class Explainer(Protocol):
    """Top contributing features for some rows of a batch."""

    def top_reasons(self, X: npt.NDArray[np.float32], k: int) -> list[list[tuple[str, float]]]: ...


DECISION_TYPES: dict[str, type[Decision]] = {
    c.stream: c.type  # type: ignore[misc]
    for c in CONTRACTS
    if c.kind == "decisions" and c.stream is not None
}


@dataclass(frozen=True)
class ScoredBatch:
    """Decisions of a batch and what went into them (for the scored-event log and metrics)."""

    decisions: list[Decision]
    X: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float64]
    feature_names: Sequence[str]
    missing_cells: int
    degraded: int


def decide(
    vectors: Sequence[FeatureVector],
    *,
    stream: str,
    policy: Policy,
    model: ScoreModel | None,
    feature_names: Sequence[str],
    key_fields: Sequence[str],
    now: datetime,
    budget: DegradedBudget | None = None,
    explainer: Explainer | None = None,
    top_k: int = 5,
    capacity: CapacityLedger | None = None,
) -> ScoredBatch:
    """Decide every event of ``vectors`` (all of ``stream``)."""
    names = list(model.feature_names) if model is not None else list(feature_names)
    X, missing = model_matrix(vectors, names)
    if model is not None and len(vectors):
        scores = np.asarray(model.predict(X), dtype=np.float64)
    else:
        scores = np.full(len(vectors), np.nan)
    events = [event_of(fv) for fv in vectors]
    batch = policy_input(vectors, policy, X, scores, names, key_fields)
    outcomes = decide_batch(policy, batch, now_s=now.timestamp(), budget=budget)
    if capacity is not None and policy.alerts_per_day is not None:
        ids = [ev.event_id for ev in events]
        days = [ev.event_time.astimezone(UTC).strftime("%Y%m%d") for ev in events]
        outcomes = enforce(policy, stream, capacity, outcomes, scores.tolist(), ids, days)
    why = batch.degraded or []

    contributions: dict[int, list[tuple[str, float]]] = {}
    if explainer is not None and model is not None:
        rows = [
            i
            for i, d in enumerate(outcomes)
            if d.outcome != policy.outcomes[0] and not np.isnan(scores[i])
        ]
        if rows:
            explained = explainer.top_reasons(X[rows], top_k)
            contributions = dict(zip(rows, explained, strict=True))

    cls = DECISION_TYPES[stream]
    version = model.version if model is not None else NO_MODEL_VERSION
    decisions = []
    for i, (fv, ev, d) in enumerate(zip(vectors, events, outcomes, strict=True)):
        reasons = [Reason(code=f"rule:{r}", weight=None) for r in d.rule_ids]
        if d.policy_path == CAPACITY_PATH:
            reasons.append(Reason(code=CAPACITY_REASON, weight=None))
        reasons += [Reason(code=n, weight=round(w, 6)) for n, w in contributions.get(i, [])]
        score = None if np.isnan(scores[i]) else min(1.0, max(0.0, float(scores[i])))
        extra: dict[str, object] = {}
        if stream == "sensor_readings":
            extra["anomaly_score"] = None
        elif stream == "clickstream":
            extra["propensity"] = None
        decisions.append(
            cls(
                event_id=ev.event_id,
                event_time=ev.event_time,
                decision=d.outcome,  # type: ignore[call-arg]
                score=score,
                model_version=version,
                policy_version=policy.version,
                policy_path=d.policy_path,
                reasons=reasons[:MAX_REASONS],
                feature_freshness=dict(fv.feature_freshness),
                feature_statuses=dict(fv.feature_statuses),
                degraded=d.degraded,
                decided_at=now,
                **extra,
            )
        )
    return ScoredBatch(decisions, X, scores, names, missing, sum(w is not None for w in why))


def policy_input(  # noqa: PLR0917 (a scored batch's parts)
    vectors: Sequence[FeatureVector],
    policy: Policy,
    X: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float64],
    names: Sequence[str],
    key_fields: Sequence[str],
) -> BatchInput:
    """What ``policy`` sees of a scored batch (its own required feature groups decide degraded)."""
    required = policy.degraded.required_groups
    why = [degraded_reason(dict(fv.feature_statuses), required) for fv in vectors]
    events = [event_of(fv) for fv in vectors]
    keys = {k: [str(getattr(ev, k, "")) for ev in events] for k in key_fields}
    return BatchInput(scores, X, {n: i for i, n in enumerate(names)}, keys, why)


def shadow_outcomes(
    vectors: Sequence[FeatureVector],
    scored: ScoredBatch,
    *,
    policy: Policy,
    key_fields: Sequence[str],
    now: datetime,
    budget: DegradedBudget | None = None,
) -> list[PolicyDecision]:
    """What ``policy`` would decide on a batch already scored: same scores, same features.

    No model call and no capacity (a shadow consumes none of the day's alerts);
    ``budget`` should be the shadow's own, so the active degraded budget is untouched.
    """
    batch = policy_input(vectors, policy, scored.X, scored.scores, scored.feature_names, key_fields)
    return decide_batch(policy, batch, now_s=now.timestamp(), budget=budget)
