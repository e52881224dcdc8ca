"""The late judge: re-judge a promotion once the labels of its canary cohort have matured.

The canary judge (:mod:`.judge`) decides within minutes on what it sees at once:
errors, latency, the shift of the decision rate. Whether the new model's alerts
are *right* is known only when the labels mature, weeks later for chargebacks.
So the labelled examples (``examples.labelled``) are counted per model version
and event-time bucket — events, positives, flagged events, flagged positives,
where *flagged* is any outcome but the policy's first (``approve``, ``allow``...)
on a scored event — and a promotion is judged again:

1. **Cohort.** The buckets in which both the promoted model (*new*) and the one
   it replaced (*old*) decided: its canary period, when a stable hash of the
   entity split the same traffic between them, so the fraud mix is the same on
   both sides. Comparing different periods instead would credit or blame the
   model for the change of the fraud itself; a model promoted without a canary
   has no such cohort (verdict ``no_cohort``, nothing done).
2. **Maturity.** A bucket is final once its end plus the horizon is behind the
   frontier (the newest ``matured_at`` seen: the joiner's clock has passed it,
   so every example of the bucket has been emitted). The cohort is complete
   once a final bucket after it holds the new model's events only (the
   promotion itself has matured). Until then: wait (``None``).
3. **Verdict.** Precision of the flagged events (flagged positives / flagged)
   on each side, with at least ``min_flagged`` flagged events on each, else
   ``too_few``. The canary judge's precision bound decides
   (:func:`~streamscore.libs.rollout.judge.precision_breach`): ``rolled_back``
   when the new precision is lower by more than ``min_drop`` and a
   two-proportion z-test says so at ``alpha`` (0.001), else ``kept``.

A correction (revision > 0) moves one event's label: the counts follow it.

>>> H = 3_600_000_000
>>> s = LateState()
>>> for i in range(200):
...     old_pos, new_pos = i % 2 == 0, i % 10 == 0
...     observe(s, "v1", t_us=i * 1000, revision=0, label=old_pos, flagged=True,
...             matured_us=0, bucket_us=H)
...     observe(s, "v2", t_us=i * 1000, revision=0, label=new_pos, flagged=True,
...             matured_us=0, bucket_us=H)
...     observe(s, "v2", t_us=H + i, revision=0, label=False, flagged=False,
...             matured_us=2 * H + 10 * H, bucket_us=H)
>>> v = judge(s, new="v2", old="v1", horizon_us=10 * H, bucket_us=H, bounds=LateBounds())
>>> v.verdict, round(v.old_precision, 2), round(v.new_precision, 2), v.z < -3.09
('rolled_back', 0.5, 0.1, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import msgspec

from streamscore.libs.rollout.judge import Labelled, precision_breach, two_proportion_z

Verdict = Literal["rolled_back", "kept", "too_few", "no_cohort"]
#: Counts per bucket: events, positives, flagged events, flagged positives.
N, POS, FLAGGED, FLAGGED_POS = range(4)


class LateState(msgspec.Struct, kw_only=True):
    """What the late judge keeps (saved with the retrainer's state)."""

    #: model version -> bucket index (event time // bucket) -> [n, pos, flagged, flagged_pos].
    counts: dict[str, dict[int, list[int]]] = msgspec.field(default_factory=dict)
    #: Order in which versions were first seen (the oldest is forgotten past ``max_versions``).
    versions: list[str] = msgspec.field(default_factory=list)
    #: The newest ``matured_at`` of any example (µs): the joiner's clock has passed it.
    frontier_us: int = 0
    #: ``"<old>-><new>"`` promotions already judged (a verdict is given once).
    judged: list[str] = msgspec.field(default_factory=list)
    #: The last verdict's :meth:`LateVerdict.reason` (status, tests).
    last: str = ""


@dataclass(frozen=True)
class LateBounds:
    """When a promotion is rolled back late (module doc, step 3)."""

    min_flagged: int = 30
    min_drop: float = 0.05
    alpha: float = 0.001

    def __post_init__(self) -> None:
        if self.min_flagged < 1 or not 0 <= self.min_drop < 1 or not 0 < self.alpha < 1:
            msg = f"min_flagged >= 1, 0 <= min_drop < 1 and 0 < alpha < 1: {self}"
            raise ValueError(msg)


@dataclass(frozen=True)
class LateVerdict:
    """The judgement of one promotion, and its evidence."""

    verdict: Verdict
    old: str
    new: str
    buckets: int = 0
    old_flagged: int = 0
    new_flagged: int = 0
    old_precision: float = math.nan
    new_precision: float = math.nan
    z: float = math.nan

    @property
    def pair(self) -> str:
        return f"{self.old}->{self.new}"

    def reason(self) -> str:
        return (
            f"late judge {self.verdict}: realised precision {self.new_precision:.3f} "
            f"({self.new}, {self.new_flagged} flagged) vs {self.old_precision:.3f} "
            f"({self.old}, {self.old_flagged} flagged) over {self.buckets} concurrent "
            f"buckets, z = {self.z:.2f}"
        )


def observe(
    state: LateState,
    version: str,
    *,
    t_us: int,
    revision: int,
    label: bool,
    flagged: bool,
    matured_us: int,
    bucket_us: int,
    max_versions: int = 4,
) -> None:
    """Count one labelled example (a primary, or a correction of its label)."""
    state.frontier_us = max(state.frontier_us, matured_us)
    if version not in state.counts:
        state.counts[version] = {}
        state.versions.append(version)
        while len(state.versions) > max_versions:
            state.counts.pop(state.versions.pop(0), None)
    row = state.counts[version].setdefault(t_us // bucket_us, [0, 0, 0, 0])
    step = 1 if label else -1
    if revision == 0:
        row[N] += 1
        if label:
            row[POS] += 1
        if flagged:
            row[FLAGGED] += 1
            row[FLAGGED_POS] += label
    else:  # the label of a counted event flipped to ``label``
        row[POS] += step
        if flagged:
            row[FLAGGED_POS] += step


def judge(
    state: LateState,
    *,
    new: str,
    old: str,
    horizon_us: int,
    bucket_us: int,
    bounds: LateBounds,
) -> LateVerdict | None:
    """Steps 1-3 of the module doc for the promotion ``old -> new`` (``None``: wait)."""
    a, b = state.counts.get(old, {}), state.counts.get(new, {})
    final = (state.frontier_us - horizon_us) // bucket_us  # buckets below it are final
    #: Final buckets the new model decided alone (after the promotion).
    solo = [k for k in b if k < final and not a.get(k, [0])[N]]
    cohort = sorted(k for k in a.keys() & b.keys() if a[k][N] and b[k][N])
    if not cohort:
        return LateVerdict("no_cohort", old, new) if solo and a else None
    last = cohort[-1]
    if last >= final or not any(k > last for k in solo):  # step 2
        return None
    old_side = Labelled(sum(a[k][FLAGGED] for k in cohort), sum(a[k][FLAGGED_POS] for k in cohort))
    new_side = Labelled(sum(b[k][FLAGGED] for k in cohort), sum(b[k][FLAGGED_POS] for k in cohort))
    seen = LateVerdict("too_few", old, new, len(cohort), old_side.flagged, new_side.flagged)
    if min(old_side.flagged, new_side.flagged) < bounds.min_flagged:
        return seen
    worse = precision_breach(new_side, old_side, bounds.min_drop, bounds.alpha)
    z, _p = two_proportion_z(
        new_side.confirmed, new_side.flagged, old_side.confirmed, old_side.flagged
    )
    return replace(
        seen,
        verdict="rolled_back" if worse is not None else "kept",
        old_precision=old_side.confirmed / old_side.flagged,
        new_precision=new_side.confirmed / new_side.flagged,
        z=z,
    )
