"""Card transactions and chargebacks, after the fraud-detection handbook's simulator.

Follows chapter 3 ("Simulated dataset") of *Reproducible Machine Learning for
Credit Card Fraud Detection* (Le Borgne et al.): customer profiles on a
100×100 grid with a mean amount, its spread and a mean number of transactions
per day; terminals on the same grid; each customer pays at terminals within a
radius; daily Poisson counts, times of day around noon, amounts from the
customer profile; and the three fraud scenarios:

1. every amount above 220 is a fraud;
2. each day, two terminals are compromised for the next 28 days: all their
   transactions are frauds;
3. each day, three customers are compromised for the next 14 days: a third of
   their transactions are frauds at five times the amount.

The code is our own and streams: it generates one day at a time, so memory
does not grow with the number of days. Random draws use one seeded numpy
``Generator``; where the handbook samples "a third of the transactions" of a
compromised customer over the whole window, we draw each transaction as
fraudulent with probability one third, which has the same expectation and
does not need the window's transactions in advance.

>>> sim = TransactionSimulator(TransactionScenario(n_customers=50, n_terminals=100, days=2), seed=1)
>>> day = sim.day(0)
>>> bool((day.seconds[:-1] <= day.seconds[1:]).all())
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from streamscore.libs.simulator.drift import DriftSpec, for_stream

SECONDS_PER_DAY = 86_400
G = TypeVar("G", bound=np.generic)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class TransactionScenario:
    """The handbook's parameters, with its defaults."""

    n_customers: int = 5_000
    n_terminals: int = 10_000
    radius: float = 5.0
    days: int = 183
    fraud_amount_threshold: float = 220.0
    compromised_terminals_per_day: int = 2
    terminal_compromise_days: int = 28
    compromised_customers_per_day: int = 3
    customer_compromise_days: int = 14
    customer_fraud_share: float = 1 / 3
    customer_fraud_multiplier: float = 5.0


@dataclass(frozen=True)
class Profiles:
    """Customer and terminal profiles, and which terminals each customer uses."""

    customer_xy: FloatArray
    mean_amount: FloatArray
    std_amount: FloatArray
    mean_tx_per_day: FloatArray
    terminal_xy: FloatArray
    #: CSR layout: customer c uses ``terminals[offsets[c]:offsets[c + 1]]``.
    offsets: IntArray
    terminals: IntArray


@dataclass(frozen=True)
class Day:
    """One simulated day of transactions, sorted by time of day."""

    day: int
    seconds: IntArray  # seconds since the scenario start
    customer: IntArray
    terminal: IntArray
    amount: FloatArray
    fraud: BoolArray
    scenario: IntArray  # 0 legitimate, else the fraud scenario (1, 2, 3; 4 = card testing drift)


def make_profiles(s: TransactionScenario, rng: np.random.Generator) -> Profiles:
    """Draw customers and terminals, and link each customer to the terminals in its radius."""
    customer_xy = rng.uniform(0, 100, size=(s.n_customers, 2))
    mean_amount = rng.uniform(5, 100, size=s.n_customers)
    std_amount = mean_amount / 2
    mean_tx_per_day = rng.uniform(0, 4, size=s.n_customers)
    terminal_xy = rng.uniform(0, 100, size=(s.n_terminals, 2))
    offsets = np.zeros(s.n_customers + 1, dtype=np.int64)
    chunks: list[IntArray] = []
    # Distances in blocks of customers, to keep memory at a few MB whatever the sizes.
    block = 256
    for start in range(0, s.n_customers, block):
        xy = customer_xy[start : start + block]
        d2 = ((xy[:, None, :] - terminal_xy[None, :, :]) ** 2).sum(axis=2)
        for i, row in enumerate(d2 < s.radius**2):
            idx = np.flatnonzero(row).astype(np.int64)
            chunks.append(idx)
            offsets[start + i + 1] = offsets[start + i] + len(idx)
    terminals = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    return Profiles(
        customer_xy, mean_amount, std_amount, mean_tx_per_day, terminal_xy, offsets, terminals
    )


class TransactionSimulator:
    """Generates the scenario day by day; the same seed gives the same days.

    Drifts (``amount_inflation``, ``card_testing``) draw from their own random
    generator, so a scenario with a drift is identical to the one without it
    before the drift's first day.
    """

    def __init__(
        self, scenario: TransactionScenario, seed: int, drifts: Sequence[DriftSpec] = ()
    ) -> None:
        self.scenario = scenario
        self.drifts = for_stream(drifts, "transactions")
        self._rng = np.random.default_rng(seed)
        self._drift_rng = np.random.default_rng([seed, 2])
        self.profiles = make_profiles(scenario, self._rng)
        # Compromised terminals and customers: id -> first day they are no longer compromised.
        self._terminal_until = np.full(scenario.n_terminals, -1, dtype=np.int64)
        self._customer_until = np.full(scenario.n_customers, -1, dtype=np.int64)
        self._next_day = 0

    def day(self, d: int) -> Day:
        """The transactions of day ``d``; days must be asked for in order (0, 1, 2, ...)."""
        if d != self._next_day:
            msg = f"days are generated in order: expected day {self._next_day}, got {d}"
            raise ValueError(msg)
        self._next_day += 1
        s, p, rng = self.scenario, self.profiles, self._rng
        counts = rng.poisson(p.mean_tx_per_day)
        customer = np.repeat(np.arange(s.n_customers, dtype=np.int64), counts)
        tod = rng.normal(SECONDS_PER_DAY / 2, 20_000, size=len(customer)).astype(np.int64)
        amount = rng.normal(p.mean_amount[customer], p.std_amount[customer])
        negative = amount < 0
        amount[negative] = rng.uniform(0, 2 * p.mean_amount[customer[negative]])
        amount = np.round(amount * self._inflation(d), 2)
        n_terms = p.offsets[customer + 1] - p.offsets[customer]
        pick = np.floor(rng.random(len(customer)) * np.maximum(n_terms, 1)).astype(np.int64)
        terminal = p.terminals[np.minimum(p.offsets[customer] + pick, len(p.terminals) - 1)]
        # The handbook keeps times strictly inside the day and customers with a terminal.
        keep = (tod > 0) & (tod < SECONDS_PER_DAY) & (n_terms > 0)
        customer, terminal, amount, tod = customer[keep], terminal[keep], amount[keep], tod[keep]
        order = np.argsort(tod, kind="stable")
        customer, terminal, amount, tod = (
            customer[order],
            terminal[order],
            amount[order],
            tod[order],
        )
        fraud, scenario = self._frauds(d, customer, terminal, amount)
        day = Day(d, tod + d * SECONDS_PER_DAY, customer, terminal, amount, fraud, scenario)
        return self._card_testing(day)

    def _inflation(self, d: int) -> float:
        factor = 1.0
        for drift in self.drifts:
            if drift.kind == "amount_inflation" and drift.active(d):
                factor *= float(drift.param("factor", 1.25))
        return factor

    def _card_testing(self, day: Day) -> Day:
        """Drift ``card_testing``: a new fraud pattern (scenario 4).

        Each day ``per_day`` cards are tested: a burst of 5-10 small amounts
        (0.50-2.00) at random terminals within ten minutes.
        """
        active = [x for x in self.drifts if x.kind == "card_testing" and x.active(day.day)]
        if not active:
            return day
        rng, s = self._drift_rng, self.scenario
        cards = rng.choice(s.n_customers, size=int(active[0].param("per_day", 20)), replace=False)
        sizes = rng.integers(5, 11, size=len(cards))
        customer = np.repeat(cards.astype(np.int64), sizes)
        starts = np.repeat(rng.integers(0, SECONDS_PER_DAY - 600, size=len(cards)), sizes)
        tod = starts + rng.integers(0, 600, size=len(customer))
        extra = Day(
            day.day,
            tod.astype(np.int64) + day.day * SECONDS_PER_DAY,
            customer,
            rng.integers(0, s.n_terminals, size=len(customer)).astype(np.int64),
            np.round(rng.uniform(0.5, 2.0, size=len(customer)), 2),
            np.ones(len(customer), dtype=np.bool_),
            np.full(len(customer), 4, dtype=np.int64),
        )
        seconds = np.concatenate([day.seconds, extra.seconds])
        order = np.argsort(seconds, kind="stable")

        def cat(a: npt.NDArray[G], b: npt.NDArray[G]) -> npt.NDArray[G]:
            return np.concatenate([a, b])[order]

        return Day(
            day.day,
            seconds[order],
            cat(day.customer, extra.customer),
            cat(day.terminal, extra.terminal),
            cat(day.amount, extra.amount),
            cat(day.fraud, extra.fraud),
            cat(day.scenario, extra.scenario),
        )

    def _frauds(
        self, d: int, customer: IntArray, terminal: IntArray, amount: FloatArray
    ) -> tuple[BoolArray, IntArray]:
        """Apply the three scenarios in the handbook's order (a later one overrides the id)."""
        s, rng = self.scenario, self._rng
        scenario = np.zeros(len(customer), dtype=np.int64)
        scenario[amount > s.fraud_amount_threshold] = 1
        newly = rng.choice(s.n_terminals, size=s.compromised_terminals_per_day, replace=False)
        self._terminal_until[newly] = d + s.terminal_compromise_days
        scenario[self._terminal_until[terminal] > d] = 2
        newly = rng.choice(s.n_customers, size=s.compromised_customers_per_day, replace=False)
        self._customer_until[newly] = d + s.customer_compromise_days
        at_risk = self._customer_until[customer] > d
        hit = at_risk & (rng.random(len(customer)) < s.customer_fraud_share)
        amount[hit] = np.round(amount[hit] * s.customer_fraud_multiplier, 2)
        scenario[hit] = 3
        return scenario > 0, scenario
