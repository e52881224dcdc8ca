"""The canary judge: noise does not roll back, each broken bound does, with its reason."""

from __future__ import annotations

import numpy as np

from streamscore.libs.rollout.judge import Bounds, CohortStats, Labelled, judge
from streamscore.libs.rollout.window import CohortWindow

LADDER = ["approve", "step_up", "block"]


def _cohort(
    rng: np.random.Generator, n: int, p: tuple[float, float, float], **kw: object
) -> CohortStats:
    counts = rng.multinomial(n, p)
    return CohortStats(events=n, outcomes=dict(zip(LADDER, counts.tolist(), strict=True)), **kw)  # type: ignore[arg-type]


def test_same_model_is_not_rolled_back_over_many_windows() -> None:
    """1000 windows of two cohorts of the same model: no false rollback at alpha=0.001."""
    rng = np.random.default_rng(7)
    p = (0.9, 0.07, 0.03)
    rollbacks = sum(
        judge(
            _cohort(rng, 3000, p, latency_p99_ms=1.0),
            _cohort(rng, 1000, p, latency_p99_ms=1.1),
            LADDER,
        ).rollback
        for _ in range(1000)
    )
    assert rollbacks == 0


def test_small_but_real_shift_below_the_bound_is_tolerated_and_above_is_not() -> None:
    rng = np.random.default_rng(8)
    champ = _cohort(rng, 20_000, (0.9, 0.07, 0.03))
    slightly = _cohort(rng, 20_000, (0.88, 0.09, 0.03))  # +2 points of step_up: inside ±5
    assert not judge(champ, slightly, LADDER).rollback
    much = _cohort(rng, 20_000, (0.8, 0.17, 0.03))
    v = judge(champ, much, LADDER)
    assert v.rollback and v.reason == "decision_rate"
    assert [b.signal for b in v.breaches] == ["step_up"]
    assert "step_up rate" in v.describe()


def test_a_large_shift_on_too_few_events_is_not_judged() -> None:
    champ = CohortStats(events=5000, outcomes={"approve": 5000})
    v = judge(champ, CohortStats(events=50, outcomes={"block": 50}), LADDER)
    assert not v.judged and not v.rollback
    assert judge(
        champ, CohortStats(events=50, outcomes={"block": 50}), LADDER, Bounds(min_events=20)
    ).rollback


def test_errors_latency_and_precision_each_break_their_bound() -> None:
    champ = CohortStats(
        events=5000,
        outcomes={"approve": 4950, "block": 50},
        latency_p99_ms=2.0,
        labelled=Labelled(flagged=400, confirmed=200),
    )
    ok = CohortStats(
        events=2000,
        outcomes={"approve": 1980, "block": 20},
        latency_p99_ms=2.5,
        labelled=Labelled(flagged=160, confirmed=78),
    )
    assert not judge(champ, ok, LADDER).rollback
    failing = CohortStats(
        events=2000, outcomes={"approve": 1880, "block": 20}, errors=100, latency_p99_ms=2.5
    )
    assert judge(champ, failing, LADDER).reason == "error_rate"
    slow = CohortStats(events=2000, outcomes={"approve": 1980, "block": 20}, latency_p99_ms=30.0)
    assert judge(champ, slow, LADDER).reason == "latency"
    # Three times slower but under the absolute floor: not an incident.
    fast_champ = CohortStats(events=5000, outcomes={"approve": 5000}, latency_p99_ms=0.1)
    assert not judge(
        fast_champ, CohortStats(events=2000, outcomes={"approve": 2000}, latency_p99_ms=0.9), LADDER
    ).rollback
    imprecise = CohortStats(
        events=2000,
        outcomes={"approve": 1980, "block": 20},
        latency_p99_ms=2.5,
        labelled=Labelled(flagged=300, confirmed=60),
    )
    v = judge(champ, imprecise, LADDER)
    assert v.reason == "precision" and v.breaches[0].challenger == 0.2
    # Better precision never breaks the bound (one-sided).
    better = CohortStats(
        events=2000,
        outcomes={"approve": 1980, "block": 20},
        latency_p99_ms=2.5,
        labelled=Labelled(flagged=300, confirmed=290),
    )
    assert not judge(champ, better, LADDER).rollback


def test_window_forgets_old_batches() -> None:
    w = CohortWindow(size=1000)
    for _ in range(50):
        w.add(outcomes={"block": 100}, errors=0, latency_ms=1.0)
    for _ in range(20):
        w.add(outcomes={"approve": 100}, errors=0, latency_ms=1.0)
    s = w.stats()
    assert s.events == 1000 and s.outcomes == {"approve": 1000}
    w.clear()
    assert w.stats().events == 0
