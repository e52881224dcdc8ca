"""The transactions stream: transactions and their delayed chargebacks, in event-time order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from streamscore.libs.contracts.events import Transaction
from streamscore.libs.contracts.labels import Chargeback
from streamscore.libs.simulator import chargebacks
from streamscore.libs.simulator.drift import DriftSpec
from streamscore.libs.simulator.labels_queue import ArrivalQueue
from streamscore.libs.simulator.records import DEFAULT_START, SimRecord, at
from streamscore.libs.simulator.transactions import TransactionScenario, TransactionSimulator
from streamscore.libs.topics import STREAMS

TX_TOPIC = STREAMS["transactions"].input_topic
LABEL_TOPIC = STREAMS["transactions"].label_topic


@dataclass(frozen=True)
class TransactionStreamConfig:
    """Transactions (the handbook's scenario) and how their chargebacks arrive."""

    scenario: TransactionScenario = field(default_factory=TransactionScenario)
    labels: chargebacks.ChargebackPolicy = field(default_factory=chargebacks.ChargebackPolicy)
    #: Also yield the labels that arrive after the last simulated day.
    include_late_labels: bool = True


def transaction_records(
    config: TransactionStreamConfig,
    *,
    seed: int,
    start: datetime = DEFAULT_START,
    drifts: Sequence[DriftSpec] = (),
) -> Iterator[SimRecord]:
    """Yield transactions and chargebacks in event-time order, one day in memory at a time.

    A chargeback's ``event_time`` is its arrival; it is yielded when the scenario
    clock passes that time, so it always comes after its transaction.

    >>> cfg = TransactionStreamConfig(TransactionScenario(n_customers=200, n_terminals=400,
    ...                                                   days=40))
    >>> recs = list(transaction_records(cfg, seed=3))
    >>> times = [r.time for r in recs]
    >>> times == sorted(times)
    True
    >>> {r.topic for r in recs} == {TX_TOPIC, LABEL_TOPIC}
    True
    """
    sim = TransactionSimulator(config.scenario, seed, drifts)
    # Labels draw from their own generator: changing the label policy does not
    # change the transactions of a seed.
    label_rng = np.random.default_rng([seed, 1])
    queue: ArrivalQueue[chargebacks.ScheduledLabel] = ArrivalQueue()
    seq = 0
    for d in range(config.scenario.days):
        day = sim.day(d)
        n = len(day.seconds)
        ids = [f"tx-{seed}-{seq + i:010d}" for i in range(n)]
        seq += n
        frauds = np.flatnonzero(day.fraud)
        for label in chargebacks.schedule(
            config.labels,
            label_rng,
            tx_seconds=day.seconds[frauds],
            tx_event_ids=[ids[i] for i in frauds],
            customers=day.customer[frauds],
            terminals=day.terminal[frauds],
            label_prefix=f"cb-{seed}-{d}",
        ):
            queue.push(label)
        seconds, customers, terminals = (
            day.seconds.tolist(),
            day.customer.tolist(),
            day.terminal.tolist(),
        )
        amounts, fraud, scen = day.amount.tolist(), day.fraud.tolist(), day.scenario.tolist()
        for i in range(n):
            for label in queue.due(seconds[i]):
                yield _label_record(label, start)
            yield SimRecord(
                TX_TOPIC,
                Transaction(
                    event_id=ids[i],
                    event_time=at(start, seconds[i]),
                    customer_id=f"C{customers[i]:05d}",
                    terminal_id=f"T{terminals[i]:05d}",
                    amount=amounts[i],
                ),
                {"fraud": fraud[i], "fraud_scenario": scen[i]},
            )
    if config.include_late_labels:
        for label in queue.due(float("inf")):
            yield _label_record(label, start)


def _label_record(label: chargebacks.ScheduledLabel, start: datetime) -> SimRecord:
    return SimRecord(
        LABEL_TOPIC,
        Chargeback(
            event_id=label.label_id,
            event_time=at(start, label.arrival_s),
            target_event_id=label.target_event_id,
            target_event_time=at(start, label.tx_s),
            customer_id=f"C{label.customer:05d}",
            terminal_id=f"T{label.terminal:05d}",
            fraud=label.fraud,
            status=label.status,
        ),
    )
