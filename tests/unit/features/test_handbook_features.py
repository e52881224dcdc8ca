"""Transaction features against the fraud-detection handbook's own pandas definitions.

The handbook (Le Borgne et al., "Reproducible Machine Learning for Credit Card
Fraud Detection", chapter 3.4) computes, per customer, ``rolling('{w}D')`` counts
and mean amounts over 1, 7 and 30 days including the current transaction,
and per terminal ``rolling(delay + w) - rolling(delay)`` counts and frauds with a
7-day delay, risk = frauds / transactions, 0 when empty. Here the same pandas
code runs on a simulated month and a half and must equal the streaming
computation event by event. The handbook knows every fraud at once; to compare,
each fraud's label is given as arriving at the transaction's own time. A second
test checks the streaming rule the handbook does not have: a label counts only
from its arrival on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from streamscore.libs.contracts.events import Transaction
from streamscore.libs.contracts.labels import Chargeback
from streamscore.libs.features.offline import compute
from streamscore.libs.simulator.scenario import get

DAYS = 45
DELAY = 7


@pytest.fixture(scope="module")
def month() -> tuple[list[Transaction], list[bool]]:
    scenario = get("small").only("transactions").with_days(DAYS)
    txs: list[Transaction] = []
    fraud: list[bool] = []
    for r in scenario.records(seed=11):
        if isinstance(r.event, Transaction):
            txs.append(r.event)
            fraud.append(bool(r.truth["fraud"]))
    return txs, fraud


def _instant_labels(txs: list[Transaction], fraud: list[bool]) -> list[Chargeback]:
    return [
        Chargeback(
            event_id=f"cb-{tx.event_id}",
            event_time=tx.event_time,
            target_event_id=tx.event_id,
            target_event_time=tx.event_time,
            customer_id=tx.customer_id,
            terminal_id=tx.terminal_id,
            fraud=True,
            status="reported",
        )
        for tx, f in zip(txs, fraud, strict=True)
        if f
    ]


def _handbook(txs: list[Transaction], fraud: list[bool]) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "TRANSACTION_ID": [t.event_id for t in txs],
            "TX_DATETIME": [t.event_time.replace(tzinfo=None) for t in txs],
            "CUSTOMER_ID": [t.customer_id for t in txs],
            "TERMINAL_ID": [t.terminal_id for t in txs],
            "TX_AMOUNT": [t.amount for t in txs],
            "TX_FRAUD": np.array(fraud, dtype=int),
        }
    )
    df["TX_DURING_WEEKEND"] = (df.TX_DATETIME.dt.weekday >= 5).astype(int)
    df["TX_DURING_NIGHT"] = (df.TX_DATETIME.dt.hour <= 6).astype(int)

    def customer(
        g: pd.DataFrame,
    ) -> pd.DataFrame:  # the handbook's get_customer_spending_behaviour_features
        g = g.sort_values("TX_DATETIME", kind="stable").set_index("TX_DATETIME")
        for w in (1, 7, 30):
            s = g["TX_AMOUNT"].rolling(f"{w}D").sum()
            n = g["TX_AMOUNT"].rolling(f"{w}D").count()
            g[f"customer_nb_tx_{w}d"] = n
            g[f"customer_avg_amount_{w}d"] = s / n
        return g.reset_index()

    def terminal(g: pd.DataFrame) -> pd.DataFrame:  # the handbook's get_count_risk_rolling_window
        g = g.sort_values("TX_DATETIME", kind="stable").set_index("TX_DATETIME")
        fraud_delay = g["TX_FRAUD"].rolling(f"{DELAY}D").sum()
        n_delay = g["TX_FRAUD"].rolling(f"{DELAY}D").count()
        for w in (1, 7, 30):
            fraud_dw = g["TX_FRAUD"].rolling(f"{DELAY + w}D").sum()
            n_dw = g["TX_FRAUD"].rolling(f"{DELAY + w}D").count()
            n = n_dw - n_delay
            g[f"terminal_nb_tx_{w}d"] = n
            g[f"terminal_risk_{w}d"] = ((fraud_dw - fraud_delay) / n).fillna(0)
        return g.reset_index()

    c = pd.concat(customer(g) for _, g in df.groupby("CUSTOMER_ID"))
    t = pd.concat(terminal(g) for _, g in df.groupby("TERMINAL_ID"))
    keep = [col for col in t.columns if col.startswith("terminal_")]
    return c.merge(t[["TRANSACTION_ID", *keep]], on="TRANSACTION_ID").set_index("TRANSACTION_ID")


def test_transactions_match_the_handbook(month: tuple[list[Transaction], list[bool]]) -> None:
    txs, fraud = month
    assert len(txs) > 10_000 and sum(fraud) > 20
    ref = _handbook(txs, fraud)
    got = {
        ev.event_id: r.values for ev, r in compute("transactions", txs, _instant_labels(txs, fraud))
    }
    names = [
        *(f"customer_{k}_{w}d" for w in (1, 7, 30) for k in ("nb_tx", "avg_amount")),
        *(f"terminal_{k}_{w}d" for w in (1, 7, 30) for k in ("nb_tx", "risk")),
    ]
    ours = pd.DataFrame.from_dict(got, orient="index").loc[ref.index]
    assert (ours["tx_during_weekend"].to_numpy() == ref["TX_DURING_WEEKEND"].to_numpy()).all()
    assert (ours["tx_during_night"].to_numpy() == ref["TX_DURING_NIGHT"].to_numpy()).all()
    for name in names:
        np.testing.assert_allclose(
            ours[name].to_numpy(dtype=float),
            ref[name].to_numpy(dtype=float),
            rtol=1e-9,
            err_msg=name,
        )
    # Non-trivial: terminals did have known frauds in their delayed windows.
    assert (ours["terminal_risk_30d"] > 0).sum() > 100


def test_terminal_risk_counts_only_arrived_labels() -> None:
    t0 = datetime(2026, 2, 2, tzinfo=UTC)

    def tx(i: int, day: float) -> Transaction:
        return Transaction(
            event_id=f"tx{i}",
            event_time=t0 + timedelta(days=day),
            customer_id=f"C{i}",
            terminal_id="T",
            amount=1.0,
        )

    def cb(i: int, tx_day: float, arrival_day: float, *, fraud: bool = True) -> Chargeback:
        return Chargeback(
            event_id=f"cb{i}-{arrival_day}",
            event_time=t0 + timedelta(days=arrival_day),
            target_event_id=f"tx{i}",
            target_event_time=t0 + timedelta(days=tx_day),
            customer_id=f"C{i}",
            terminal_id="T",
            fraud=fraud,
            status="reported" if fraud else "reversed",
        )

    txs = [tx(0, 0.0), tx(1, 0.5), tx(2, 8.0), tx(3, 12.0), tx(4, 20.0)]
    # tx0 is reported fraud on day 10 and reversed on day 15; tx1 is reported on day 9.
    labels = [cb(1, 0.5, 9.0), cb(0, 0.0, 10.0), cb(0, 0.0, 15.0, fraud=False)]
    out = {ev.event_id: r.values for ev, r in compute("transactions", txs, labels)}
    # Day 8: window (day -30, day 1] holds tx0 and tx1, no label has arrived yet.
    assert out["tx2"]["terminal_nb_tx_30d"] == 2.0 and out["tx2"]["terminal_risk_30d"] == 0.0
    # Day 12: both labels arrived: 2 frauds of 2.
    assert out["tx3"]["terminal_risk_30d"] == 1.0
    # Day 20: tx0's chargeback was reversed on day 15; window (-17, 13] holds tx0 to tx3.
    assert out["tx4"]["terminal_nb_tx_30d"] == 4.0
    assert out["tx4"]["terminal_risk_30d"] == pytest.approx(1 / 4)
    # The 1-day window 7 days back from day 20 is (12, 13]: empty, so 0 (handbook).
    assert out["tx4"]["terminal_nb_tx_1d"] == 0.0 and out["tx4"]["terminal_risk_1d"] == 0.0
