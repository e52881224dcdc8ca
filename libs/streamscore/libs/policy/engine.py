"""Apply a policy to a scored micro-batch: thresholds, hard rules, degraded mode.

Per row, in order:

1. The model's outcome is the ladder position of its score (``thresholds``).
2. Rules are checked in order; the first non-floor rule whose conditions all
   hold decides (``rule:<id>``). Floor rules raise the outcome to at least
   their ``then``. A condition on a missing value is false, never "0".
3. A degraded row (no score, or a required feature group unavailable) decides
   at least ``degraded.floor`` and is tagged ``degraded:<why>``; a degraded
   bottom outcome (an approval) spends the exposure budget, and when the
   budget is exhausted it escalates to ``floor_when_exhausted``.

>>> import numpy as np
>>> from streamscore.libs.policy.spec import load_policy
>>> p = load_policy(b'''{"stream": "transactions", "version": "v1",
...   "outcomes": ["approve", "step_up", "block"], "thresholds": [0.5, 0.9],
...   "degraded": {"floor": "step_up"},
...   "rules": [{"id": "big", "when": [{"field": "tx_amount", "op": ">", "value": 1000}],
...              "then": "block"}]}''')
>>> batch = BatchInput(scores=np.array([0.1, 0.95, 0.2, np.nan]),
...     features=np.array([[10.0], [10.0], [5000.0], [10.0]]), feature_index={"tx_amount": 0})
>>> [(d.outcome, d.policy_path) for d in decide_batch(p, batch, now_s=0.0)]
[('approve', 'model'), ('block', 'model'), ('block', 'rule:big'), ('step_up', 'degraded:no_score')]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from streamscore.libs.policy.budget import DegradedBudget
from streamscore.libs.policy.spec import Condition, Policy

FloatMatrix = npt.NDArray[np.floating]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class BatchInput:
    """A scored micro-batch as the policy sees it.

    ``scores`` holds NaN where no model score exists. ``features`` holds NaN for
    missing values. ``keys`` maps entity key names (e.g. ``customer_id``) to
    the row values, for deny and allow lists. ``degraded`` gives, per row, why
    the features are degraded (``None`` when they are fine).
    """

    scores: npt.NDArray[np.floating]
    features: FloatMatrix
    feature_index: Mapping[str, int]
    keys: Mapping[str, Sequence[str]] = field(default_factory=dict)
    degraded: Sequence[str | None] | None = None

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class PolicyDecision:
    """The outcome of one row and how it was reached."""

    outcome: str
    policy_path: str
    rule_ids: tuple[str, ...] = ()
    degraded: str | None = None


def _condition_mask(c: Condition, batch: BatchInput) -> BoolArray:
    n = len(batch)
    if c.field in batch.keys:
        values = batch.keys[c.field]
        allowed = {str(v) for v in c.value} if isinstance(c.value, list) else set()
        if c.op == "in":
            return np.fromiter((v in allowed for v in values), dtype=np.bool_, count=n)
        if c.op == "not_in":
            return np.fromiter((v not in allowed for v in values), dtype=np.bool_, count=n)
        if c.op == "missing":
            return np.fromiter((not v for v in values), dtype=np.bool_, count=n)
        raise ValueError(f"{c.op} is not a test on the key {c.field}")
    if c.field not in batch.feature_index:
        msg = f"rule needs {c.field!r}, which is neither a feature nor a key of this batch"
        raise KeyError(msg)
    col = batch.features[:, batch.feature_index[c.field]]
    missing = np.isnan(col)
    if c.op == "missing":
        return missing
    if c.op in ("in", "not_in"):
        listed = c.value if isinstance(c.value, list) else []
        allowed_f = np.asarray([float(x) for x in listed], dtype=np.float64)
        inside = np.isin(col, allowed_f)
        return (inside if c.op == "in" else ~inside) & ~missing
    v = float(c.value)  # type: ignore[arg-type]  # validated: a number for comparisons
    with np.errstate(invalid="ignore"):
        mask: BoolArray = {
            ">": col > v,
            ">=": col >= v,
            "<": col < v,
            "<=": col <= v,
            "==": col == v,
            "!=": col != v,
        }[c.op]
    return mask & ~missing


def decide_batch(
    policy: Policy,
    batch: BatchInput,
    *,
    now_s: float,
    budget: DegradedBudget | None = None,
) -> list[PolicyDecision]:
    """Decide every row of ``batch`` (see the module docstring for the order)."""
    n = len(batch)
    scores = np.asarray(batch.scores, dtype=np.float64)
    no_score = np.isnan(scores)
    thresholds = np.asarray(policy.thresholds, dtype=np.float64)
    model_idx = np.searchsorted(thresholds, np.where(no_score, 0.0, scores), side="right")
    rule_masks = [
        np.logical_and.reduce([_condition_mask(c, batch) for c in r.when])
        if r.when
        else np.ones(n, dtype=np.bool_)
        for r in policy.rules
    ]
    index = {name: i for i, name in enumerate(policy.outcomes)}
    floor_idx = index[policy.degraded.floor]
    exhausted = policy.degraded.floor_when_exhausted or policy.degraded.floor
    exposure_col = (
        batch.feature_index.get(policy.degraded.exposure_field)
        if policy.degraded.exposure_field
        else None
    )
    degraded_in = batch.degraded or [None] * n
    out: list[PolicyDecision] = []
    for i in range(n):
        why = "no_score" if no_score[i] else degraded_in[i]
        outcome = -1 if no_score[i] else int(model_idx[i])
        path = "model"
        fired: list[str] = []
        decided_by_rule = False
        for r, mask in zip(policy.rules, rule_masks, strict=True):
            if not mask[i]:
                continue
            fired.append(r.id)
            if r.floor:
                outcome = max(outcome, index[r.then])
            else:
                outcome, path, decided_by_rule = index[r.then], f"rule:{r.id}", True
                break
        if why is not None and not decided_by_rule:
            outcome = max(outcome, floor_idx)
            path = f"degraded:{why}"
            if outcome == 0 and budget is not None:
                amount = 0.0
                if exposure_col is not None:
                    value = float(batch.features[i, exposure_col])
                    amount = 0.0 if np.isnan(value) else value
                if not budget.allow(now_s=now_s, exposure=amount):
                    outcome = index[exhausted]
                    path = f"degraded:{why}+budget_exhausted"
        elif outcome < 0:  # no score, decided by a floor rule only: cannot happen (why is set)
            outcome = floor_idx
        out.append(PolicyDecision(policy.outcomes[outcome], path, tuple(fired), why))
    return out
