"""Daily investigator capacity, table-driven: who is downgraded given the day's state."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pytest

from streamscore.libs.policy.capacity import (
    CAPACITY_PATH,
    Candidate,
    DayState,
    apply_capacity,
    enforce,
)
from streamscore.libs.policy.engine import PolicyDecision
from streamscore.libs.policy.spec import load_policy

TX = load_policy(
    b"""{"stream": "transactions", "version": "c1", "alerts_per_day": 3,
    "outcomes": ["approve", "step_up", "block"], "thresholds": [0.35, 0.8],
    "degraded": {"floor": "step_up"}}"""
)
FULL = DayState(count=3, kth_score=0.6)
STEP, BLOCK, OK = "step_up", "block", "approve"


@pytest.mark.parametrize(
    ("decision", "score", "state", "replayed", "want"),
    [
        # Over capacity: a model step_up below the day's k-th score becomes the first outcome.
        (PolicyDecision(STEP, "model"), 0.5, FULL, False, (OK, CAPACITY_PATH)),
        # At or above the k-th score it stays (ties survive).
        (PolicyDecision(STEP, "model"), 0.6, FULL, False, (STEP, "model")),
        (PolicyDecision(STEP, "model"), 0.7, FULL, False, (STEP, "model")),
        # Before the day holds k alerts, nothing changes.
        (PolicyDecision(STEP, "model"), 0.4, DayState(2, None), False, (STEP, "model")),
        # Higher outcomes, rules, floors and degraded decisions are never downgraded.
        (PolicyDecision(BLOCK, "model"), 0.85, DayState(3, 0.9), False, (BLOCK, "model")),
        (PolicyDecision(STEP, "rule:x", ("x",)), 0.5, FULL, False, (STEP, "rule:x")),
        (PolicyDecision(STEP, "model", ("velocity",)), 0.5, FULL, False, (STEP, "model")),
        (PolicyDecision(STEP, "model", ("velocity",)), 0.1, FULL, False, (STEP, "model")),
        (
            PolicyDecision(STEP, "degraded:no_score", (), "no_score"),
            math.nan,
            FULL,
            False,
            (STEP, "degraded:no_score"),
        ),
        # Approvals stay approvals.
        (PolicyDecision(OK, "model"), 0.1, FULL, False, (OK, "model")),
        # The ledger unavailable: fail open on workload (nothing downgraded).
        (PolicyDecision(STEP, "model"), 0.5, None, False, (STEP, "model")),
        # A replay of an event the ledger let through keeps its first decision.
        (PolicyDecision(STEP, "model"), 0.5, FULL, True, (STEP, "model")),
    ],
)
def test_capacity_decision(
    decision: PolicyDecision,
    score: float,
    state: DayState | None,
    replayed: bool,
    want: tuple[str, str],
) -> None:
    (got,) = apply_capacity(TX, [decision], [score], [state], [replayed])
    assert (got.outcome, got.policy_path) == want
    assert got.rule_ids == decision.rule_ids


def test_no_capacity_in_the_policy_changes_nothing() -> None:
    import msgspec

    p = msgspec.structs.replace(TX, alerts_per_day=None)
    d = [PolicyDecision(STEP, "model")]
    assert apply_capacity(p, d, [0.4], [FULL], [False]) == d


class Ledger:
    """An in-memory ledger with the Redis one's rule (the Redis one is tested on Redis)."""

    def __init__(self, available: bool = True) -> None:
        self.available = available
        self.calls: list[Mapping[str, Sequence[Candidate]]] = []

    def record(
        self, stream: str, alerts: Mapping[str, Sequence[Candidate]], k: int
    ) -> Mapping[str, DayState] | None:
        self.calls.append(alerts)
        if not self.available:
            return None
        return {day: DayState(k, 0.6) for day in alerts}


def test_enforce_records_only_the_model_alerts_by_day() -> None:
    ledger = Ledger()
    ds = [
        PolicyDecision(STEP, "model"),
        PolicyDecision(OK, "model"),
        PolicyDecision(BLOCK, "rule:r", ("r",)),
        PolicyDecision(BLOCK, "model"),
        PolicyDecision(STEP, "model"),
    ]
    out = enforce(
        TX,
        "transactions",
        ledger,
        ds,
        [0.5, 0.1, 0.2, 0.9, 0.4],
        ["a", "b", "c", "d", "e"],
        ["20261123", "20261123", "20261123", "20261123", "20261124"],
    )
    assert ledger.calls == [
        {
            "20261123": [Candidate("a", 0.5), Candidate("d", 0.9)],
            "20261124": [Candidate("e", 0.4)],
        }
    ]
    assert [d.outcome for d in out] == [OK, OK, BLOCK, BLOCK, OK]
    # No alert in the batch: the ledger is not asked at all.
    enforce(TX, "transactions", ledger, [PolicyDecision(OK, "model")], [0.1], ["f"], ["20261123"])
    assert len(ledger.calls) == 1
    # Ledger unavailable: nothing downgraded.
    down = enforce(TX, "transactions", Ledger(False), ds, [0.5] * 5, list("abcde"), ["d"] * 5)
    assert down == ds
