"""The progression policy: shadow → canary → champion (or approval), or out."""

from __future__ import annotations

import msgspec
import pytest

from streamscore.libs.rollout.judge import Bounds, CohortStats, Labelled
from streamscore.libs.rollout.progression import Plan, progress

LADDER = ["approve", "step_up", "block"]
CHAMP = CohortStats(events=4000, outcomes={"approve": 3880, "step_up": 80, "block": 40})
SAME = CohortStats(events=4000, outcomes={"approve": 3874, "step_up": 84, "block": 42})
BLOCKS = CohortStats(events=4000, outcomes={"approve": 3300, "step_up": 80, "block": 620})
FAILS = CohortStats(events=4000, outcomes={"approve": 3500, "step_up": 70, "block": 30}, errors=400)


def test_shadow_waits_for_its_count_then_moves_to_canary_at_the_plans_share() -> None:
    plan = Plan(shadow_events=3000, canary_share=0.25)
    wait = progress("shadow", plan, decided=2999, champion=CHAMP, challenger=SAME, outcomes=LADDER)
    assert wait.move == "wait" and "2999/3000" in wait.reason
    step = progress("shadow", plan, decided=3000, champion=CHAMP, challenger=SAME, outcomes=LADDER)
    assert (step.move, step.share) == ("to_canary", 0.25)
    assert not step.verdict.rollback and step.verdict.judged
    assert "block 0.010" in step.reason  # the figures the audit keeps


def test_shadow_too_few_events_for_the_judge_waits_whatever_the_count() -> None:
    tiny = CohortStats(events=50, outcomes={"approve": 50})
    step = progress(
        "shadow", Plan(shadow_events=10), decided=50, champion=tiny, challenger=tiny,
        outcomes=LADDER,
    )  # fmt: skip
    assert step.move == "wait" and not step.verdict.judged


@pytest.mark.parametrize(("bad", "reason"), [(BLOCKS, "decision_rate"), (FAILS, "error_rate")])
def test_a_shadow_breaking_a_bound_is_rejected_before_its_count(
    bad: CohortStats, reason: str
) -> None:
    step = progress("shadow", Plan(), decided=500, champion=CHAMP, challenger=bad, outcomes=LADDER)
    assert step.move == "reject" and step.verdict.reason == reason


def test_shadow_score_ks_bound_when_the_plan_sets_one() -> None:
    kw = {"decided": 5000, "champion": CHAMP, "challenger": SAME, "outcomes": LADDER}
    assert progress("shadow", Plan(), score_ks=0.9, **kw).move == "to_canary"  # type: ignore[arg-type]
    plan = Plan(max_score_ks=0.3)
    assert progress("shadow", plan, score_ks=0.2, **kw).move == "to_canary"  # type: ignore[arg-type]
    step = progress("shadow", plan, score_ks=0.45, **kw)  # type: ignore[arg-type]
    assert step.move == "reject" and step.verdict.reason == "score"
    assert "KS 0.450" in step.verdict.describe()


def test_canary_needs_its_count_then_approval_unless_auto() -> None:
    kw = {"champion": CHAMP, "challenger": SAME, "outcomes": LADDER}
    plan = Plan(canary_events=4000)
    assert progress("canary", plan, decided=3999, **kw).move == "wait"  # type: ignore[arg-type]
    assert progress("canary", plan, decided=4000, **kw).move == "await_approval"  # type: ignore[arg-type]
    auto = Plan(canary_events=4000, promote="auto")
    assert progress("canary", auto, decided=4000, **kw).move == "to_champion"  # type: ignore[arg-type]


def test_a_bad_canary_is_never_promoted_the_judge_rolls_it_back() -> None:
    auto = Plan(canary_events=10, promote="auto")
    step = progress(
        "canary", auto, decided=9999, champion=CHAMP, challenger=BLOCKS, outcomes=LADDER
    )
    assert step.move == "wait" and step.verdict.rollback


def test_realised_precision_when_the_plan_requires_it() -> None:
    auto = Plan(canary_events=10, promote="auto", require_precision=True)
    kw = {"decided": 5000, "champion": CHAMP, "challenger": SAME, "outcomes": LADDER}
    held = progress("canary", auto, **kw)  # type: ignore[arg-type]
    assert held.move == "wait" and "precision not known" in held.reason
    good = (Labelled(flagged=400, confirmed=200), Labelled(flagged=400, confirmed=210))
    step = progress("canary", auto, labelled=good, **kw)  # type: ignore[arg-type]
    assert step.move == "to_champion" and "precision 0.525 vs 0.500" in step.reason
    worse = (Labelled(flagged=400, confirmed=300), Labelled(flagged=400, confirmed=120))
    step = progress("canary", auto, labelled=worse, **kw)  # type: ignore[arg-type]
    assert step.move == "wait" and step.verdict.reason == "precision"


def test_bounds_are_the_judges() -> None:
    loose = Bounds(max_rate_shift=0.5)
    step = progress(
        "shadow", Plan(shadow_events=1), decided=4000, champion=CHAMP, challenger=BLOCKS,
        outcomes=LADDER, bounds=loose,
    )  # fmt: skip
    assert step.move == "to_canary"


def test_plan_round_trips_as_json_and_refuses_nonsense() -> None:
    plan = Plan(shadow_events=10, canary_events=20, canary_share=0.5, promote="auto")
    assert msgspec.json.decode(msgspec.json.encode(plan), type=Plan) == plan
    for bad in ({"canary_share": 0.0}, {"shadow_events": -1}, {"max_score_ks": 2.0}):
        with pytest.raises(ValueError, match="must be"):
            Plan(**bad)


def test_the_plan_may_widen_the_rate_bound_for_its_challenger_only() -> None:
    more = CohortStats(events=4000, outcomes={"approve": 3600, "step_up": 80, "block": 320})
    kw = {"decided": 4000, "champion": CHAMP, "challenger": more, "outcomes": LADDER}
    assert progress("shadow", Plan(), **kw).move == "reject"  # type: ignore[arg-type]
    wide = Plan(max_rate_shift=0.1)
    assert progress("shadow", wide, **kw).move == "to_canary"  # type: ignore[arg-type]
    assert progress("shadow", wide, **{**kw, "challenger": BLOCKS}).move == "reject"  # type: ignore[arg-type]
