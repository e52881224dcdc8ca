"""The transaction simulator against the handbook's published figures and the label policy."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from streamscore.libs.contracts.codec import decode, encode
from streamscore.libs.contracts.events import Transaction
from streamscore.libs.contracts.labels import Chargeback
from streamscore.libs.simulator.chargebacks import ChargebackPolicy
from streamscore.libs.simulator.drift import DriftSpec
from streamscore.libs.simulator.records import SimRecord
from streamscore.libs.simulator.transaction_stream import (
    LABEL_TOPIC,
    TX_TOPIC,
    TransactionStreamConfig,
    transaction_records,
)
from streamscore.libs.simulator.transactions import (
    SECONDS_PER_DAY,
    TransactionScenario,
    TransactionSimulator,
)
from tests.unit.simulator.stream_checks import head_span, record_bytes

SMALL = TransactionScenario(n_customers=300, n_terminals=600, days=20)


@pytest.fixture(scope="module")
def default_month() -> list[SimRecord]:
    """The handbook's default scenario (5,000 customers, 10,000 terminals) over 35 days."""
    cfg = TransactionStreamConfig(replace(TransactionScenario(), days=35))
    return list(transaction_records(cfg, seed=2026))


def test_same_seed_same_bytes_other_seed_differs() -> None:
    cfg = TransactionStreamConfig(SMALL)
    a = record_bytes(list(transaction_records(cfg, seed=1)))
    assert a == record_bytes(list(transaction_records(cfg, seed=1)))
    assert a != record_bytes(list(transaction_records(cfg, seed=2)))


def test_every_record_is_contract_valid_and_time_ordered() -> None:
    records = list(transaction_records(TransactionStreamConfig(SMALL), seed=5))
    times = [r.time for r in records]
    assert times == sorted(times)
    for r in records:
        assert decode(type(r.event), encode(r.event), max_bytes=1 << 20) == r.event
    assert {type(r.event) for r in records} == {Transaction, Chargeback}


def test_fraud_share_and_scenarios_like_the_handbook(default_month: list[SimRecord]) -> None:
    txs = [r for r in default_month if r.topic == TX_TOPIC]
    fraud = sum(bool(r.truth["fraud"]) for r in txs)
    share = fraud / len(txs)
    assert 0.005 <= share <= 0.012, share
    scenarios = Counter(r.truth["fraud_scenario"] for r in txs)
    assert all(scenarios[k] > 0 for k in (1, 2, 3)), scenarios
    assert scenarios[4] == 0  # card testing is a drift, off by default


def test_transactions_per_customer_per_day_follow_profiles() -> None:
    s = replace(TransactionScenario(), days=30)
    sim = TransactionSimulator(s, seed=7)
    counts = np.zeros(s.n_customers)
    for d in range(s.days):
        counts += np.bincount(sim.day(d).customer, minlength=s.n_customers)
    p = sim.profiles
    has_terminal = (p.offsets[1:] - p.offsets[:-1]) > 0
    # The handbook drops times outside the day: N(43200, 20000) falls inside with p = 0.9694.
    expected = 0.9694 * p.mean_tx_per_day[has_terminal].mean()
    realised = counts[has_terminal].mean() / s.days
    assert realised == pytest.approx(expected, rel=0.03)
    # Per customer, the realised rate tracks its own profile.
    corr = np.corrcoef(counts[has_terminal] / s.days, p.mean_tx_per_day[has_terminal])[0, 1]
    assert corr > 0.9


def test_chargebacks_follow_the_policy(default_month: list[SimRecord]) -> None:
    policy = ChargebackPolicy()
    tx_time = {r.event.event_id: r.time for r in default_month if r.topic == TX_TOPIC}
    frauds = {r.event.event_id for r in default_month if r.topic == TX_TOPIC and r.truth["fraud"]}
    labels = [r.event for r in default_month if r.topic == LABEL_TOPIC]
    assert all(isinstance(lb, Chargeback) for lb in labels)
    first = {}
    for lb in labels:
        assert isinstance(lb, Chargeback)
        assert lb.target_event_id in frauds  # legitimate transactions get no label
        assert lb.event_time > tx_time[lb.target_event_id]  # never before the transaction
        if lb.status == "reported":
            first.setdefault(lb.target_event_id, lb.event_time)
    delays = np.array([(t - tx_time[i]) / timedelta(days=1) for i, t in first.items()])
    assert delays.min() >= policy.min_delay_days and delays.max() <= policy.max_delay_days
    assert np.median(delays) == pytest.approx(policy.delay_median_days, rel=0.1)
    assert len(first) / len(frauds) == pytest.approx(policy.report_share, abs=0.02)
    reversed_ = sum(lb.status == "reversed" for lb in labels if isinstance(lb, Chargeback))
    assert reversed_ / len(first) == pytest.approx(policy.reversal_share, abs=0.015)


def test_drifts_change_nothing_before_their_day() -> None:
    drifts = [
        DriftSpec("transactions", "amount_inflation", 10, {"factor": 1.5}),
        DriftSpec("transactions", "card_testing", 12, {"per_day": 5}),
    ]
    cfg = TransactionStreamConfig(SMALL, include_late_labels=False)
    base = [r for r in transaction_records(cfg, seed=3) if r.topic == TX_TOPIC]
    drifted = [r for r in transaction_records(cfg, seed=3, drifts=drifts) if r.topic == TX_TOPIC]
    cut = base[0].time.replace(hour=0, minute=0, second=0) + timedelta(days=10)
    assert [r.event for r in base if r.time < cut] == [r.event for r in drifted if r.time < cut]

    def mean_amount(rs: list[SimRecord], day: int) -> float:
        lo = base[0].time.replace(hour=0, minute=0, second=0) + timedelta(days=day)
        xs = [
            r.event.amount
            for r in rs
            if lo <= r.time < lo + timedelta(days=1)
            and isinstance(r.event, Transaction)
            and r.truth["fraud_scenario"] != 4
        ]
        return float(np.mean(xs))

    assert mean_amount(drifted, 11) > 1.3 * mean_amount(base, 11)
    assert any(r.truth["fraud_scenario"] == 4 for r in drifted)
    assert not any(
        r.truth["fraud_scenario"] == 4 and r.time < cut + timedelta(days=2) for r in drifted
    )


def test_streaming_is_lazy() -> None:
    cfg = TransactionStreamConfig(replace(SMALL, days=3650))
    assert head_span(transaction_records(cfg, seed=1)) < timedelta(seconds=SECONDS_PER_DAY)
