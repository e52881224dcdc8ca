"""Daily investigator capacity: keep the alerts of a day to about its top ``k`` scores.

A policy's ``alerts_per_day`` (``k``) is how many alerts the investigators can
review per day (the handbook's card precision top-k). An *alert* is a
model-path decision above the first outcome (``step_up`` or ``block`` for
transactions). Capacity is kept per stream and per UTC day of the event time,
in a store shared by every scorer process (a :class:`CapacityLedger`; the
Redis one is :mod:`streamscore.services.capacity`).

Per batch:

1. The batch's alert candidates (model path, an outcome above the first, a
   score) are recorded in the day's ledger, keyed by ``event_id`` (recording
   an event twice changes nothing: at-least-once replays are not counted twice).
2. The ledger answers with the day's state after the batch: how many alerts it
   holds (at most ``k``), the ``k``-th highest score once it holds ``k``, and
   which of the batch's events it had already let through (a replay).
3. :func:`apply_capacity` downgrades to the first outcome (``policy_path``
   ``capacity:over``) every alert at the *lowest* alert outcome whose score is
   below the ``k``-th highest of the day, unless the ledger had let that event
   through before. Higher outcomes (``block``), rule decisions and outcomes
   raised by a floor rule are never downgraded; degraded decisions are not alerts
   of the model and are left alone. Before the day holds ``k`` alerts nothing
   changes.

This approximates "the top-k scores of the day" online: an alert survives when
it is among the day's top ``k`` *so far*. The ``k``-th score only rises during a
day, so every alert scoring at least the day's final ``k``-th score survives,
and every downgraded one scores below it; exact (about ``k`` survivors) when the
best alerts come first, about ``k·(1 + ln(n/k))`` of ``n`` alerts when scores
arrive in random order, and early in the day the first ``k`` alerts all pass
(the bar is still low). A batch counts as one instant: its alerts are compared
with the ``k``-th score after the whole batch is recorded.

>>> from streamscore.libs.policy.engine import PolicyDecision
>>> from streamscore.libs.policy.spec import load_policy
>>> p = load_policy(b'''{"stream": "transactions", "version": "v1", "alerts_per_day": 2,
...   "outcomes": ["approve", "step_up", "block"], "thresholds": [0.5, 0.9],
...   "degraded": {"floor": "step_up"}}''')
>>> ds = [PolicyDecision("step_up", "model"), PolicyDecision("step_up", "model"),
...       PolicyDecision("block", "model")]
>>> full = DayState(count=2, kth_score=0.7)
>>> [d.outcome for d in apply_capacity(p, ds, [0.6, 0.8, 0.95], [full] * 3, [False] * 3)]
['approve', 'step_up', 'block']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from streamscore.libs.policy.engine import PolicyDecision
from streamscore.libs.policy.spec import Policy

CAPACITY_PATH = "capacity:over"
CAPACITY_REASON = "capacity"


@dataclass(frozen=True)
class DayState:
    """A day's ledger after a batch was recorded in it.

    ``count``: alerts the day holds (at most ``k``); ``kth_score``: the ``k``-th
    highest alert score once ``count`` reaches ``k`` (else ``None``);
    ``already_kept``: the batch's event ids the ledger had let through before.
    """

    count: int
    kth_score: float | None
    already_kept: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Candidate:
    """One alert of a batch as the ledger records it."""

    event_id: str
    score: float


class CapacityLedger(Protocol):
    """The shared record of the days' alerts (the I/O lives behind this)."""

    def record(
        self, stream: str, alerts: Mapping[str, Sequence[Candidate]], k: int
    ) -> Mapping[str, DayState] | None:
        """Record each day's (``YYYYMMDD``) alerts; ``None``: the store is unavailable."""
        ...


def is_alert(policy: Policy, d: PolicyDecision, score: float) -> bool:
    """A model-path decision above the first outcome, with a score: it uses capacity.

    >>> from streamscore.libs.policy.spec import load_policy
    >>> p = load_policy(b'''{"stream": "s", "version": "v", "outcomes": ["a", "b"],
    ...   "thresholds": [0.5], "degraded": {"floor": "b"}}''')
    >>> is_alert(p, PolicyDecision("b", "model"), 0.6)
    True
    >>> is_alert(p, PolicyDecision("b", "rule:x"), 0.6)  # a rule decided
    False
    """
    return d.policy_path == "model" and d.outcome != policy.outcomes[0] and not math.isnan(score)


def downgradable(policy: Policy, d: PolicyDecision, score: float) -> bool:
    """An alert at the lowest alert outcome that the model alone decided (no floor rule fired)."""
    return (
        is_alert(policy, d, score)
        and d.outcome == policy.outcomes[1]
        and not d.rule_ids
        and policy.outcome_index(score) == 1
    )


def over_capacity(score: float, state: DayState, k: int) -> bool:
    """Whether an alert scoring ``score`` is outside the day's top ``k``.

    >>> over_capacity(0.5, DayState(3, 0.6), k=3), over_capacity(0.6, DayState(3, 0.6), k=3)
    (True, False)
    >>> over_capacity(0.1, DayState(2, None), k=3)  # the day does not hold k alerts yet
    False
    """
    return state.count >= k and state.kth_score is not None and score < state.kth_score


def apply_capacity(
    policy: Policy,
    decisions: Sequence[PolicyDecision],
    scores: Sequence[float],
    states: Sequence[DayState | None],
    replayed: Sequence[bool],
) -> list[PolicyDecision]:
    """Downgrade the alerts outside their day's top ``k`` (see the module docstring).

    ``states[i]`` is the ledger's answer for row ``i``'s day (``None``: unavailable,
    nothing is downgraded: capacity fails open on workload, never on risk);
    ``replayed[i]`` is true when the ledger had let row ``i``'s event through before.
    """
    k = policy.alerts_per_day
    if k is None:
        return list(decisions)
    first = policy.outcomes[0]
    out = []
    for d, score, state, again in zip(decisions, scores, states, replayed, strict=True):
        if (
            state is not None
            and not again
            and downgradable(policy, d, score)
            and over_capacity(score, state, k)
        ):
            out.append(replace(d, outcome=first, policy_path=CAPACITY_PATH))
        else:
            out.append(d)
    return out


def enforce(  # noqa: PLR0917 (one batch's parallel columns)
    policy: Policy,
    stream: str,
    ledger: CapacityLedger,
    decisions: Sequence[PolicyDecision],
    scores: Sequence[float],
    event_ids: Sequence[str],
    days: Sequence[str],
) -> list[PolicyDecision]:
    """Steps 1-3 of the module docstring for one batch: record its alerts, then downgrade.

    Nothing is asked of the ledger when the policy has no capacity or the batch
    no alert.
    """
    k = policy.alerts_per_day
    if k is None:
        return list(decisions)
    alerts: dict[str, list[Candidate]] = {}
    for d, score, event_id, day in zip(decisions, scores, event_ids, days, strict=True):
        if is_alert(policy, d, score):
            alerts.setdefault(day, []).append(Candidate(event_id, float(score)))
    if not alerts:
        return list(decisions)
    answer = ledger.record(stream, alerts, k)
    if answer is None:
        return list(decisions)
    states = [answer.get(day) for day in days]
    replayed = [
        s is not None and e in s.already_kept for s, e in zip(states, event_ids, strict=True)
    ]
    return apply_capacity(policy, decisions, scores, states, replayed)
