"""Champion against shadow challenger on the same events: decision mixes, agreement, score
distributions (two-sample Kolmogorov-Smirnov statistic).

Input: pairs of outcomes for one event, the champion's (decision topic) and
the challenger's (shadow topic), each ``(decision, score, degraded)``.

>>> pairs = [(("approve", 0.1, False), ("approve", 0.12, False)),
...          (("approve", 0.2, False), ("step_up", 0.5, False)),
...          (("block", 0.9, False), ("block", 0.95, False)),
...          (("step_up", None, True), ("step_up", None, True))]
>>> c = compare(pairs, ["approve", "step_up", "block"], versions=("m1", "m2"))
>>> c.paired, c.agreement, c.flips
(4, 0.75, {'approve->step_up': 1})
>>> c.challenger.mix
{'approve': 0.25, 'step_up': 0.5, 'block': 0.25}
>>> round(c.ks, 3)
0.333
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: One model's outcome for an event: decision, score (``None``: not scored), degraded.
Outcome = tuple[str, float | None, bool]


@dataclass(frozen=True)
class Side:
    """One model over the paired events."""

    model_version: str
    events: int
    #: Share of each outcome of the ladder.
    mix: dict[str, float]
    degraded_rate: float
    #: Score quantiles (p50, p90, p99) over the scored events; ``None`` without scores.
    score_quantiles: tuple[float, float, float] | None


@dataclass(frozen=True)
class Comparison:
    """Champion and challenger on the same events."""

    champion: Side
    challenger: Side
    paired: int
    #: Share of events with the same decision.
    agreement: float
    #: ``"<champion outcome>-><challenger outcome>"`` -> events, for every disagreement.
    flips: dict[str, int]
    #: Two-sample KS statistic of the two score distributions (``None``: no scores).
    ks: float | None


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """Largest distance between the empirical CDFs of ``a`` and ``b`` (0: same, 1: disjoint).

    >>> ks_statistic([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    0.0
    >>> ks_statistic([0.1, 0.2], [0.8, 0.9])
    1.0
    """
    x, y = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / len(x)
    cdf_y = np.searchsorted(y, grid, side="right") / len(y)
    return float(np.max(np.abs(cdf_x - cdf_y)))


def _side(version: str, rows: Sequence[Outcome], outcomes: Sequence[str]) -> Side:
    n = len(rows)
    counts = Counter(d for d, _s, _g in rows)
    scores = [s for _d, s, _g in rows if s is not None]
    q = None
    if scores:
        p50, p90, p99 = np.quantile(np.asarray(scores), [0.5, 0.9, 0.99]).tolist()
        q = (round(p50, 6), round(p90, 6), round(p99, 6))
    return Side(
        model_version=version,
        events=n,
        mix={o: counts.get(o, 0) / n if n else 0.0 for o in outcomes},
        degraded_rate=sum(g for _d, _s, g in rows) / n if n else 0.0,
        score_quantiles=q,
    )


def compare(
    pairs: Sequence[tuple[Outcome, Outcome]],
    outcomes: Sequence[str],
    *,
    versions: tuple[str, str],
) -> Comparison:
    """Compare the champion (first of each pair) with the challenger on the same events."""
    champ = [p[0] for p in pairs]
    chal = [p[1] for p in pairs]
    flips = Counter(f"{a[0]}->{b[0]}" for a, b in pairs if a[0] != b[0])
    sa = [s for _d, s, _g in champ if s is not None]
    sb = [s for _d, s, _g in chal if s is not None]
    return Comparison(
        champion=_side(versions[0], champ, outcomes),
        challenger=_side(versions[1], chal, outcomes),
        paired=len(pairs),
        agreement=(len(pairs) - sum(flips.values())) / len(pairs) if pairs else 0.0,
        flips=dict(sorted(flips.items())),
        ks=ks_statistic(sa, sb) if sa and sb else None,
    )
