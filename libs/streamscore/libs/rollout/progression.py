"""When a challenger moves on: shadow → canary → champion, or out.

A :class:`Plan` travels with the challenger in the model store (the retrainer
writes it with the challenger, so every scorer follows the same plan and no
scorer needs its own flags). :func:`progress` is the pure decision, asked by
the scorer's :class:`~streamscore.services.rollout.ChallengerRunner` at each
judgement with what its windows hold:

1. **shadow**: the challenger decides every event beside the champion, out of
   sight. The judge's bounds (:func:`~streamscore.libs.rollout.judge.judge`:
   error rate, model latency, each outcome's rate) apply to the two cohorts of
   the same events, plus, when the plan sets ``max_score_ks``, the KS distance
   of their score distributions. A bound broken: ``reject`` (the challenger is
   removed as a failed canary would be). ``shadow_events`` shadow decisions
   with no bound broken at the last judgement: ``to_canary`` at
   ``canary_share``.
2. **canary**: the judge's rollback stays where it was (the runner rolls a
   bad canary back before asking this). ``canary_events`` challenger-decided
   events, judged with no bound broken: when the plan asks for labels
   (``require_precision``), the realised precision of both cohorts must be
   known and not significantly worse (the judge's precision bound), else
   ``wait``; then ``to_champion`` when the plan's ``promote`` is ``auto``, or
   ``await_approval`` (an operator promotes: ``streamscore model promote``).

Counts are since the challenger (in its current mode) was adopted, not the
sliding window's size: a window forgets, a promotion gate must not.

>>> from streamscore.libs.rollout.judge import CohortStats
>>> champ = CohortStats(events=3000, outcomes={"approve": 2900, "step_up": 70, "block": 30})
>>> same = CohortStats(events=3000, outcomes={"approve": 2895, "step_up": 72, "block": 33})
>>> ladder = ["approve", "step_up", "block"]
>>> plan = Plan(shadow_events=2000, canary_events=2000, canary_share=0.2)
>>> progress("shadow", plan, decided=1000, champion=champ, challenger=same, outcomes=ladder).move
'wait'
>>> step = progress("shadow", plan, decided=3000, champion=champ, challenger=same, outcomes=ladder)
>>> step.move, step.share
('to_canary', 0.2)
>>> progress("canary", plan, decided=3000, champion=champ, challenger=same, outcomes=ladder).move
'await_approval'
>>> auto = Plan(promote="auto")
>>> progress("canary", auto, decided=9000, champion=champ, challenger=same, outcomes=ladder).move
'to_champion'
>>> blocks = CohortStats(events=3000, outcomes={"approve": 2500, "step_up": 70, "block": 430})
>>> progress("shadow", plan, decided=3000, champion=champ, challenger=blocks, outcomes=ladder).move
'reject'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import msgspec

from streamscore.libs.rollout.judge import Bounds, Breach, CohortStats, Labelled, Verdict, judge

Move = Literal["wait", "to_canary", "to_champion", "await_approval", "reject"]
Promote = Literal["approval", "auto"]


class Plan(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How a challenger progresses (stored with it; defaults: minutes of small traffic)."""

    #: Shadow decisions with no bound broken before the canary.
    shadow_events: int = 2000
    #: Challenger-decided canary events, judged clean, before promotion (or approval).
    canary_events: int = 2000
    canary_share: float = 0.1
    #: ``approval``: an operator promotes; ``auto``: promoted when the canary passed.
    promote: Promote = "approval"
    #: Wait for realised precision of both cohorts (matured labels) before promotion.
    #: The scorers do not feed labelled figures yet (labels mature outside their
    #: windows): with this set, a canary there waits for an operator's promotion.
    require_precision: bool = False
    #: Largest KS distance of the shadow's scores from the champion's (``None``: not checked).
    max_score_ks: float | None = None
    #: This challenger's bound on each outcome's rate shift, in shadow and canary, instead
    #: of the scorers' (``Bounds.max_rate_shift``, 0.05). A model retrained to answer a
    #: new fraud pattern is *meant* to flag more: its retrainer widens the bound
    #: deliberately (``--max-rate-shift``), it is never widened silently.
    max_rate_shift: float | None = None

    def __post_init__(self) -> None:
        if self.shadow_events < 0 or self.canary_events < 0:
            raise ValueError("shadow_events and canary_events must be >= 0")
        if not 0.0 < self.canary_share <= 1.0:
            raise ValueError("canary_share must be in (0, 1]")
        if self.max_score_ks is not None and not 0.0 < self.max_score_ks <= 1.0:
            raise ValueError("max_score_ks must be in (0, 1]")
        if self.max_rate_shift is not None and not 0.0 < self.max_rate_shift < 1.0:
            raise ValueError("max_rate_shift must be in (0, 1)")

    def bounds(self, base: Bounds) -> Bounds:
        """``base`` with this plan's rate-shift bound, if it sets one.

        >>> Plan(max_rate_shift=0.1).bounds(Bounds()).max_rate_shift
        0.1
        >>> Plan().bounds(Bounds()).max_rate_shift
        0.05
        """
        if self.max_rate_shift is None:
            return base
        return replace(base, max_rate_shift=self.max_rate_shift)


@dataclass(frozen=True)
class Step:
    """What to do with the challenger now, and why (the audit's words)."""

    move: Move
    reason: str
    verdict: Verdict
    share: float = 0.0


def progress(
    mode: Literal["shadow", "canary"],
    plan: Plan,
    *,
    decided: int,
    champion: CohortStats,
    challenger: CohortStats,
    outcomes: Sequence[str],
    bounds: Bounds | None = None,
    score_ks: float | None = None,
    labelled: tuple[Labelled, Labelled] | None = None,
) -> Step:
    """Steps 1-2 of the module docstring.

    ``decided``: challenger decisions since it entered ``mode``; ``champion`` /
    ``challenger``: the judge's windows; ``labelled``: (champion, challenger)
    realised precision figures when known.
    """
    if labelled is not None:
        champion = CohortStats(**{**champion.__dict__, "labelled": labelled[0]})
        challenger = CohortStats(**{**challenger.__dict__, "labelled": labelled[1]})
    verdict = judge(champion, challenger, outcomes, plan.bounds(bounds or Bounds()))
    if mode == "shadow":  # 1.
        if verdict.rollback:
            return Step("reject", f"shadow breaks a bound: {verdict.describe()}", verdict)
        ks = plan.max_score_ks
        if ks is not None and score_ks is not None and score_ks > ks and verdict.judged:
            why = f"shadow scores KS {score_ks:.3f} from the champion's (bound {ks:g})"
            breach = Breach("score", "ks", score_ks, ks, None, why)
            return Step("reject", why, Verdict(judged=True, breaches=(breach,)))
        if decided < plan.shadow_events or not verdict.judged:
            return Step("wait", f"shadow: {decided}/{plan.shadow_events} decisions", verdict)
        why = f"shadow clean over {decided} decisions ({_figures(challenger, champion)})"
        return Step("to_canary", why, verdict, share=plan.canary_share)
    if verdict.rollback:  # 2. (the runner's judge rolls it back)
        return Step("wait", f"canary breaks a bound: {verdict.describe()}", verdict)
    if decided < plan.canary_events or not verdict.judged:
        return Step("wait", f"canary: {decided}/{plan.canary_events} decisions", verdict)
    if plan.require_precision and labelled is None:
        return Step("wait", "canary clean; realised precision not known yet", verdict)
    why = f"canary clean over {decided} decisions ({_figures(challenger, champion)})"
    if labelled is not None:
        (l0, l1) = labelled
        why += f"; precision {_prec(l1)} vs {_prec(l0)}"
    return Step("to_champion" if plan.promote == "auto" else "await_approval", why, verdict)


def _figures(chal: CohortStats, champ: CohortStats) -> str:
    def rate(s: CohortStats) -> str:
        scored = max(1, s.events - s.errors)
        worst = sorted(s.outcomes.items())
        return ", ".join(f"{k} {v / scored:.3f}" for k, v in worst)

    return f"challenger {rate(chal)}; champion {rate(champ)}"


def _prec(lab: Labelled) -> str:
    return f"{lab.confirmed / lab.flagged:.3f}" if lab.flagged else "-"
