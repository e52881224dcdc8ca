"""Named scenarios: which streams, how big, how long, and which drifts when.

>>> s = get("small")
>>> s.name, s.days > 0
('small', True)
>>> sorted(SCENARIOS) == sorted(["default", "small", "drift"])
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from streamscore.libs.simulator.drift import DriftSpec
from streamscore.libs.simulator.merge import merge
from streamscore.libs.simulator.records import DEFAULT_START, SimRecord
from streamscore.libs.simulator.transaction_stream import (
    TransactionStreamConfig,
    transaction_records,
)
from streamscore.libs.simulator.transactions import TransactionScenario

StreamFactory = Callable[[int, int, datetime, tuple[DriftSpec, ...]], Iterator[SimRecord]]


@dataclass(frozen=True)
class Scenario:
    """A reproducible world: with a seed, it always yields the same records."""

    name: str
    description: str
    days: int
    transactions: TransactionStreamConfig | None = field(default_factory=TransactionStreamConfig)
    drifts: tuple[DriftSpec, ...] = ()
    start: datetime = DEFAULT_START

    def with_days(self, days: int) -> Scenario:
        """The same scenario over another number of days."""
        return replace(self, days=days)

    def streams(self) -> dict[str, StreamFactory]:
        """The enabled streams, each a factory ``(seed, days, start, drifts) -> records``."""
        out: dict[str, StreamFactory] = {}
        tx = self.transactions
        if tx is not None:

            def transactions(
                seed: int, days: int, start: datetime, drifts: tuple[DriftSpec, ...]
            ) -> Iterator[SimRecord]:
                cfg = replace(tx, scenario=replace(tx.scenario, days=days))
                return transaction_records(cfg, seed=seed, start=start, drifts=drifts)

            out["transactions"] = transactions
        return out

    def records(self, seed: int) -> Iterator[SimRecord]:
        """Every stream merged in event-time order (events and labels)."""
        # Each stream gets its own seed derived from the scenario seed, so adding
        # a stream to a scenario does not change the others.
        return merge(
            factory(seed * 1000 + i, self.days, self.start, self.drifts)
            for i, factory in enumerate(self.streams().values())
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, written next to generated data."""
        return {
            "name": self.name,
            "description": self.description,
            "days": self.days,
            "start": self.start.isoformat(),
            "streams": sorted(self.streams()),
            "transactions": None if self.transactions is None else asdict(self.transactions),
            "drifts": [d.as_dict() for d in self.drifts],
        }


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="default",
            description="The handbook's defaults (5,000 customers, 10,000 terminals), 183 days.",
            days=183,
        ),
        Scenario(
            name="small",
            description="A small world for demos and tests: 500 customers, 30 days.",
            days=30,
            transactions=TransactionStreamConfig(
                TransactionScenario(n_customers=500, n_terminals=1_000)
            ),
        ),
        Scenario(
            name="drift",
            description="Default sizes over 90 days with scheduled drifts from day 45.",
            days=90,
            drifts=(
                DriftSpec("transactions", "amount_inflation", 45, {"factor": 1.3}),
                DriftSpec("transactions", "card_testing", 60, {"per_day": 20}),
            ),
        ),
    )
}


def get(name: str) -> Scenario:
    """A named scenario, or a clear error listing the known ones."""
    try:
        return SCENARIOS[name]
    except KeyError:
        msg = f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}"
        raise KeyError(msg) from None
