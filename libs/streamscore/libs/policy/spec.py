"""What a policy says: the outcome ladder, score thresholds, hard rules and degraded mode.

Policies are data (JSON), versioned, so they can be changed, shadowed and
rolled back without a deploy. :func:`load_policy` validates one strictly.

>>> p = load_policy(b'''{"stream": "transactions", "version": "tx-1",
...   "outcomes": ["approve", "step_up", "block"], "thresholds": [0.3, 0.8],
...   "degraded": {"floor": "step_up"}}''')
>>> p.outcomes[p.outcome_index(0.5)]
'step_up'
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Op = Literal[">", ">=", "<", "<=", "==", "!=", "in", "not_in", "missing"]
Score = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class PolicyError(ValueError):
    """A policy document that cannot be used (and why)."""


class Condition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One test on a feature (numbers) or an entity key (strings, for deny/allow lists).

    ``missing`` is true when the feature has no value; a comparison with a
    missing value is false (never treated as 0).
    """

    field: str
    op: Op
    value: float | list[str | float] | None = None


class Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A hard rule: when all its conditions hold, it decides ``then`` whatever the score.

    Rules are checked in order; the first that fires decides. ``floor=True``
    makes a rule a floor instead: the outcome is at least ``then`` (e.g. a
    velocity cap that forces step-up but lets the model block).
    """

    id: str
    when: list[Condition]
    then: str
    floor: bool = False
    description: str = ""


class Degraded(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What to decide when the model or required features are unavailable.

    Rules still apply. Without a score, the outcome is ``floor`` (e.g. step-up
    instead of approve). Degraded outcomes at the bottom of the ladder (the
    "approve" equivalent) are rationed: at most ``max_approvals_per_minute``
    and ``max_exposure_per_minute`` (sum of ``exposure_field``) per minute;
    beyond that the breaker escalates them to ``floor_when_exhausted``.
    """

    floor: str
    max_approvals_per_minute: int = 600
    max_exposure_per_minute: float | None = None
    exposure_field: str | None = None
    floor_when_exhausted: str | None = None
    #: Feature groups whose absence (store down or values too old) makes a decision degraded.
    required_groups: list[str] = msgspec.field(default_factory=list)


class Policy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A stream's decision policy, identified by ``version``."""

    stream: str
    version: str
    outcomes: list[str]
    thresholds: list[Score]
    degraded: Degraded
    rules: list[Rule] = msgspec.field(default_factory=list)
    #: Investigator capacity: alerts (model-path outcomes above the first) per UTC day of the
    #: event time that the team can review, shared by every scorer. Once the day holds this
    #: many, a model alert at the lowest alert outcome scoring below the day's k-th highest
    #: alert score is downgraded to the first outcome (``capacity:over``); higher outcomes
    #: and rule decisions never are. An online top-k: see
    #: :mod:`streamscore.libs.policy.capacity`. ``None``: unlimited.
    alerts_per_day: Annotated[int, msgspec.Meta(ge=1)] | None = None
    description: str = ""

    def outcome_index(self, score: float) -> int:
        """The ladder position of a score: the number of thresholds it reaches."""
        return sum(score >= t for t in self.thresholds)


def validate(policy: Policy) -> Policy:
    """Check what the types cannot: ladder, thresholds and rule targets are consistent."""
    n = len(policy.outcomes)
    if n < 2 or len(set(policy.outcomes)) != n:
        raise PolicyError(f"{policy.version}: outcomes must be >= 2 distinct names")
    if len(policy.thresholds) != n - 1:
        raise PolicyError(f"{policy.version}: {n} outcomes need {n - 1} thresholds")
    if any(a >= b for a, b in zip(policy.thresholds, policy.thresholds[1:], strict=False)):
        raise PolicyError(f"{policy.version}: thresholds must increase strictly")
    targets = [r.then for r in policy.rules] + [policy.degraded.floor]
    if policy.degraded.floor_when_exhausted:
        targets.append(policy.degraded.floor_when_exhausted)
    unknown = sorted(set(targets) - set(policy.outcomes))
    if unknown:
        raise PolicyError(f"{policy.version}: unknown outcomes {unknown}")
    ids = [r.id for r in policy.rules]
    if len(ids) != len(set(ids)):
        raise PolicyError(f"{policy.version}: duplicate rule ids")
    for r in policy.rules:
        for c in r.when:
            if c.op in ("in", "not_in") and not isinstance(c.value, list):
                raise PolicyError(f"{policy.version}: rule {r.id}: {c.op} needs a list")
            if c.op not in ("in", "not_in", "missing") and not isinstance(c.value, float | int):
                raise PolicyError(f"{policy.version}: rule {r.id}: {c.op} needs a number")
    return policy


def load_policy(data: bytes) -> Policy:
    """Parse and validate a policy document (JSON)."""
    try:
        policy = msgspec.json.decode(data, type=Policy)
    except msgspec.ValidationError as exc:
        raise PolicyError(f"invalid policy: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise PolicyError(f"policy is not JSON: {exc}") from exc
    return validate(policy)
