"""The decision policy, table-driven: thresholds, rules, floors, missing values, degraded mode."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from streamscore.libs.features.definitions import groups, model_features
from streamscore.libs.policy.budget import DegradedBudget
from streamscore.libs.policy.engine import BatchInput, decide_batch
from streamscore.libs.policy.spec import PolicyError, load_policy

ROOT = Path(__file__).resolve().parents[3]
NAN = math.nan

TX = load_policy(
    b"""{"stream": "transactions", "version": "t1",
    "outcomes": ["approve", "step_up", "block"], "thresholds": [0.35, 0.8],
    "rules": [
      {"id": "limit", "when": [{"field": "tx_amount", "op": ">", "value": 10000}], "then": "block"},
      {"id": "velocity", "when": [{"field": "nb_1d", "op": ">", "value": 40}],
       "then": "step_up", "floor": true},
      {"id": "deny", "when": [{"field": "terminal_id", "op": "in", "value": ["T666"]}],
       "then": "block"},
      {"id": "new_card", "when": [{"field": "nb_1d", "op": "missing"}], "then": "step_up",
       "floor": true}
    ],
    "degraded": {"floor": "step_up", "max_approvals_per_minute": 2,
                 "exposure_field": "tx_amount", "max_exposure_per_minute": 100.0,
                 "floor_when_exhausted": "block"}}"""
)
FI = {"tx_amount": 0, "nb_1d": 1}


def one(
    score: float,
    amount: float = 10.0,
    nb: float = 1.0,
    terminal: str = "T1",
    degraded: str | None = None,
) -> tuple[str, str, tuple[str, ...]]:
    batch = BatchInput(
        np.array([score]),
        np.array([[amount, nb]]),
        FI,
        keys={"terminal_id": [terminal]},
        degraded=[degraded],
    )
    d = decide_batch(TX, batch, now_s=0.0)[0]
    return d.outcome, d.policy_path, d.rule_ids


@pytest.mark.parametrize(
    ("kwargs", "want"),
    [
        ({"score": 0.0}, ("approve", "model", ())),
        ({"score": 0.3499}, ("approve", "model", ())),
        ({"score": 0.35}, ("step_up", "model", ())),  # a threshold is reached when equal
        ({"score": 0.8}, ("block", "model", ())),
        ({"score": 1.0}, ("block", "model", ())),
        ({"score": 0.1, "amount": 20000}, ("block", "rule:limit", ("limit",))),
        ({"score": 0.1, "amount": 10000}, ("approve", "model", ())),  # strict >
        ({"score": 0.1, "nb": 41}, ("step_up", "model", ("velocity",))),  # floor raises
        ({"score": 0.9, "nb": 41}, ("block", "model", ("velocity",))),  # floor never lowers
        ({"score": 0.1, "terminal": "T666"}, ("block", "rule:deny", ("deny",))),
        # A missing value never satisfies a comparison (never read as 0) ...
        ({"score": 0.1, "amount": NAN}, ("approve", "model", ())),
        # ... and is visible to an explicit "missing" test.
        ({"score": 0.1, "nb": NAN}, ("step_up", "model", ("new_card",))),
        ({"score": NAN}, ("step_up", "degraded:no_score", ())),
        ({"score": NAN, "amount": 20000}, ("block", "rule:limit", ("limit",))),
        (
            {"score": 0.1, "degraded": "features:NOT_FOUND"},
            ("step_up", "degraded:features:NOT_FOUND", ()),
        ),
        (
            {"score": 0.9, "degraded": "features:NOT_FOUND"},
            ("block", "degraded:features:NOT_FOUND", ()),
        ),
    ],
)
def test_table(kwargs: dict[str, object], want: tuple[str, str, tuple[str, ...]]) -> None:
    assert one(**kwargs) == want  # type: ignore[arg-type]


def test_degraded_approvals_rationed_by_count_and_money() -> None:
    open_policy = load_policy(
        b"""{"stream": "transactions", "version": "t2",
        "outcomes": ["approve", "step_up", "block"], "thresholds": [0.35, 0.8],
        "degraded": {"floor": "approve", "max_approvals_per_minute": 2,
                     "exposure_field": "tx_amount", "max_exposure_per_minute": 100.0,
                     "floor_when_exhausted": "block"}}"""
    )
    budget = DegradedBudget(max_approvals_per_minute=2, max_exposure_per_minute=100.0)
    amounts = np.array([[30.0, 1.0], [80.0, 1.0], [50.0, 1.0], [10.0, 1.0]])
    batch = BatchInput(np.full(4, NAN), amounts, FI)
    got = [
        (d.outcome, d.policy_path)
        for d in decide_batch(open_policy, batch, now_s=0.0, budget=budget)
    ]
    assert got == [
        ("approve", "degraded:no_score"),
        ("block", "degraded:no_score+budget_exhausted"),  # 30 + 80 > 100
        ("approve", "degraded:no_score"),
        ("block", "degraded:no_score+budget_exhausted"),  # count cap of 2
    ]
    assert (budget.granted_total, budget.refused, budget.exposure_total) == (2, 2, 80.0)
    # A minute later the budget is back.
    later = decide_batch(
        open_policy, BatchInput(np.array([NAN]), amounts[:1], FI), now_s=61.0, budget=budget
    )
    assert later[0].outcome == "approve"


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        (
            b'{"stream": "s", "version": "v", "outcomes": ["a", "b"], "thresholds": [],'
            b' "degraded": {"floor": "a"}}',
            "need 1 thresholds",
        ),
        (
            b'{"stream": "s", "version": "v", "outcomes": ["a", "b", "c"],'
            b' "thresholds": [0.5, 0.5], "degraded": {"floor": "a"}}',
            "increase strictly",
        ),
        (
            b'{"stream": "s", "version": "v", "outcomes": ["a", "b"], "thresholds": [0.5],'
            b' "degraded": {"floor": "z"}}',
            "unknown outcomes",
        ),
        (
            b'{"stream": "s", "version": "v", "outcomes": ["a", "b"], "thresholds": [1.5],'
            b' "degraded": {"floor": "a"}}',
            "invalid policy",
        ),
        (
            b'{"stream": "s", "version": "v", "outcomes": ["a", "b"], "thresholds": [0.5],'
            b' "degraded": {"floor": "a"}, "rules": [{"id": "r", "when": [{"field": "f",'
            b' "op": "in", "value": 3}], "then": "b"}]}',
            "needs a list",
        ),
        (
            b'{"stream": "s", "version": "v", "outcomes": ["a", "b"], "thresholds": [0.5],'
            b' "degraded": {"floor": "a"}, "extra": 1}',
            "invalid policy",
        ),
        (b"not json", "not JSON"),
    ],
)
def test_bad_policies_refused(doc: bytes, match: str) -> None:
    with pytest.raises(PolicyError, match=match):
        load_policy(doc)


@pytest.mark.parametrize("path", sorted((ROOT / "policies").glob("*.json")), ids=lambda p: p.stem)
def test_shipped_policies_valid_and_name_real_features(path: Path) -> None:
    policy = load_policy(path.read_bytes())
    assert policy.stream == path.stem
    known = set(model_features(policy.stream))
    keys = {g.entity.join_key for g in groups(policy.stream)}
    group_names = {g.name for g in groups(policy.stream)}
    for rule in policy.rules:
        for c in rule.when:
            assert c.field in known | keys, (rule.id, c.field)
    assert set(policy.degraded.required_groups) <= group_names
    if policy.degraded.exposure_field:
        assert policy.degraded.exposure_field in known
