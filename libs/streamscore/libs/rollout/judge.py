"""The canary judge: does the challenger's cohort break a bound against the champion's?

Both cohorts are observed over the same window (the same minutes, entities
split at random by :mod:`~streamscore.libs.rollout.routing`), so a difference
beyond noise is the model's doing. Each bound is checked in turn:

1. **error_rate** — rows the challenger could not score (the model call failed
   or gave no finite score), against the champion's; a breach needs the excess
   above ``max_error_rate_shift`` *and* a significant two-proportion z-test.
2. **latency** — the challenger's p99 model-call time above
   ``latency_p99_ratio`` times the champion's *and* above ``latency_floor_ms``
   (a microsecond model three times slower than another is not an incident).
3. **decision_rate** — for every outcome above the first of the ladder
   (``step_up``, ``block``...), the difference of rates beyond
   ``max_rate_shift`` *and* significant at ``alpha`` (two-sided), so a few
   unlucky minutes of a small canary do not roll it back.
4. **precision** — when labelled figures are given (flagged decisions whose
   labels matured): the challenger's precision below the champion's by more
   than ``max_precision_drop``, significant at ``alpha``.

Fewer than ``min_events`` in either cohort: no judgement (``judged`` false).

>>> champ = CohortStats(events=5000, outcomes={"approve": 4900, "step_up": 80, "block": 20},
...     latency_p99_ms=1.2)
>>> same = CohortStats(events=2000, outcomes={"approve": 1955, "step_up": 36, "block": 9},
...     latency_p99_ms=1.3)
>>> judge(champ, same, ["approve", "step_up", "block"]).rollback
False
>>> blocks = CohortStats(events=2000, outcomes={"block": 2000}, latency_p99_ms=1.3)
>>> v = judge(champ, blocks, ["approve", "step_up", "block"])
>>> v.rollback, v.reason, [b.signal for b in v.breaches]
(True, 'decision_rate', ['block'])
>>> judge(champ, CohortStats(events=10, outcomes={"block": 10}), ["approve", "block"]).judged
False
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

BreachReason = Literal["error_rate", "latency", "decision_rate", "precision", "score"]
#: Every reason a canary is rolled back for (the ``reason`` label of the rollback counter).
#: ``score``: the shadow's score distribution too far from the champion's
#: (:mod:`~streamscore.libs.rollout.progression`, KS distance; not a canary bound).
REASONS: tuple[BreachReason, ...] = (
    "error_rate",
    "latency",
    "decision_rate",
    "precision",
    "score",
)


@dataclass(frozen=True)
class Bounds:
    """What a canary may not do (defaults: conservative, tuned for minutes of traffic)."""

    latency_p99_ratio: float = 3.0
    latency_floor_ms: float = 5.0
    max_rate_shift: float = 0.05
    max_error_rate_shift: float = 0.01
    max_precision_drop: float = 0.10
    #: Two-sided significance of the proportion tests (0.001: one false alarm in a thousand
    #: judgements of a harmless canary, per bound).
    alpha: float = 0.001
    min_events: int = 200


@dataclass(frozen=True)
class Labelled:
    """Realised precision figures: flagged decisions whose labels matured, and the confirmed."""

    flagged: int
    confirmed: int


@dataclass(frozen=True)
class CohortStats:
    """One cohort over the window: decisions by outcome, failures, model-call p99."""

    events: int
    outcomes: Mapping[str, int]
    errors: int = 0
    latency_p99_ms: float | None = None
    labelled: Labelled | None = None


@dataclass(frozen=True)
class Breach:
    """One broken bound: which, on what signal, the two cohorts' figures, the test statistic."""

    reason: BreachReason
    signal: str | None
    challenger: float
    champion: float
    z: float | None
    detail: str


@dataclass(frozen=True)
class Verdict:
    """The judgement: roll back or not, and why."""

    judged: bool
    breaches: tuple[Breach, ...] = field(default=())

    @property
    def rollback(self) -> bool:
        return bool(self.breaches)

    @property
    def reason(self) -> BreachReason | None:
        """The first broken bound (the order of the module docstring)."""
        return self.breaches[0].reason if self.breaches else None

    def describe(self) -> str:
        """The breaches in words (for the alert)."""
        return "; ".join(b.detail for b in self.breaches) or "no bound broken"


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """z statistic and two-sided p-value of ``k1/n1`` against ``k2/n2`` (pooled variance).

    >>> z, p = two_proportion_z(60, 1000, 30, 1000)
    >>> round(z, 1), p < 0.01
    (3.2, True)
    >>> two_proportion_z(0, 100, 0, 100)
    (0.0, 1.0)
    """
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0.0:
        return 0.0, 1.0
    z = (k1 / n1 - k2 / n2) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def _rate_breach(  # noqa: PLR0917 (a test's figures)
    reason: BreachReason,
    signal: str | None,
    k_chal: int,
    n_chal: int,
    k_champ: int,
    n_champ: int,
    limit: float,
    alpha: float,
    *,
    direction: int = 0,
) -> Breach | None:
    """A breach when the challenger's rate differs by more than ``limit`` and significantly.

    ``direction`` 1: only a higher challenger rate counts; -1: only a lower; 0: both.
    """
    if n_chal == 0 or n_champ == 0:
        return None
    rc, r0 = k_chal / n_chal, k_champ / n_champ
    diff = rc - r0
    if direction * diff < 0 or abs(diff) <= limit:
        return None
    z, p = two_proportion_z(k_chal, n_chal, k_champ, n_champ)
    if p >= alpha:
        return None
    name = f"{signal} rate" if signal else reason.replace("_", " ")
    detail = (
        f"{name} {rc:.3f} on the challenger vs {r0:.3f} on the champion "
        f"({n_chal} vs {n_champ} events, z={z:.1f}, p={p:.1g}; bound ±{limit:g})"
    )
    return Breach(reason, signal, rc, r0, z, detail)


def precision_breach(
    challenger: Labelled, champion: Labelled, max_drop: float, alpha: float
) -> Breach | None:
    """Bound 4: the challenger's realised precision below the champion's by more than
    ``max_drop``, significant at ``alpha`` (also the late judge's test,
    :mod:`~streamscore.libs.rollout.late_judge`)."""
    return _rate_breach(
        "precision",
        "precision",
        challenger.confirmed,
        challenger.flagged,
        champion.confirmed,
        champion.flagged,
        max_drop,
        alpha,
        direction=-1,
    )


def judge(
    champion: CohortStats,
    challenger: CohortStats,
    outcomes: Sequence[str],
    bounds: Bounds | None = None,
) -> Verdict:
    """The verdict on ``challenger`` against ``champion`` (``outcomes``: the policy's ladder)."""
    b = bounds or Bounds()
    if min(champion.events, challenger.events) < b.min_events:
        return Verdict(judged=False)
    found: list[Breach | None] = []
    found.append(  # 1.
        _rate_breach(
            "error_rate",
            None,
            challenger.errors,
            challenger.events,
            champion.errors,
            champion.events,
            b.max_error_rate_shift,
            b.alpha,
            direction=1,
        )
    )
    lc, l0 = challenger.latency_p99_ms, champion.latency_p99_ms  # 2.
    if lc is not None and l0 is not None and lc > max(b.latency_floor_ms, l0 * b.latency_p99_ratio):
        found.append(
            Breach(
                "latency",
                "p99_ms",
                lc,
                l0,
                None,
                f"model p99 {lc:.2f} ms on the challenger vs {l0:.2f} ms on the champion "
                f"(bound x{b.latency_p99_ratio:g} and > {b.latency_floor_ms:g} ms)",
            )
        )
    scored_c = challenger.events - challenger.errors  # 3. rates over decisions taken
    scored_0 = champion.events - champion.errors
    for outcome in outcomes[1:]:
        found.append(
            _rate_breach(
                "decision_rate",
                outcome,
                challenger.outcomes.get(outcome, 0),
                scored_c,
                champion.outcomes.get(outcome, 0),
                scored_0,
                b.max_rate_shift,
                b.alpha,
            )
        )
    pc, p0 = challenger.labelled, champion.labelled  # 4.
    if pc is not None and p0 is not None:
        found.append(precision_breach(pc, p0, b.max_precision_drop, b.alpha))
    return Verdict(judged=True, breaches=tuple(x for x in found if x is not None))
