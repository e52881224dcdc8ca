"""Named scenarios: which streams, how big, how long, and which drifts when.

>>> s = get("small")
>>> s.name, sorted(s.streams())
('small', ['clickstream', 'logins', 'sensor_readings', 'transactions'])
>>> sorted(SCENARIOS) == sorted(["default", "small", "drift", "transactions"])
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from streamscore.libs.simulator.clicks import ClickStreamConfig, click_records
from streamscore.libs.simulator.drift import DriftSpec
from streamscore.libs.simulator.logins import LoginStreamConfig, login_records
from streamscore.libs.simulator.merge import merge
from streamscore.libs.simulator.records import DEFAULT_START, SimRecord
from streamscore.libs.simulator.sensors import SensorStreamConfig, sensor_records
from streamscore.libs.simulator.transaction_stream import (
    TransactionStreamConfig,
    transaction_records,
)
from streamscore.libs.simulator.transactions import TransactionScenario

StreamFactory = Callable[[int, int, datetime, tuple[DriftSpec, ...]], Iterator[SimRecord]]


@dataclass(frozen=True)
class Scenario:
    """A reproducible world: with a seed, it always yields the same records.

    A stream whose config is ``None`` is left out.
    """

    name: str
    description: str
    days: int
    transactions: TransactionStreamConfig | None = field(default_factory=TransactionStreamConfig)
    logins: LoginStreamConfig | None = field(default_factory=LoginStreamConfig)
    sensors: SensorStreamConfig | None = field(default_factory=SensorStreamConfig)
    clicks: ClickStreamConfig | None = field(default_factory=ClickStreamConfig)
    drifts: tuple[DriftSpec, ...] = ()
    start: datetime = DEFAULT_START

    def with_days(self, days: int) -> Scenario:
        """The same scenario over another number of days."""
        return replace(self, days=days)

    def only(self, *streams: str) -> Scenario:
        """The same scenario with only the named streams enabled (each keeps its seed).

        >>> sorted(SCENARIOS["small"].only("logins").streams())
        ['logins']
        """
        keep = set(streams)
        return replace(
            self,
            transactions=self.transactions if "transactions" in keep else None,
            logins=self.logins if "logins" in keep else None,
            sensors=self.sensors if "sensor_readings" in keep else None,
            clicks=self.clicks if "clickstream" in keep else None,
        )

    def streams(self) -> dict[str, StreamFactory]:
        """The enabled streams, each a factory ``(seed, days, start, drifts) -> records``."""
        out: dict[str, StreamFactory] = {}
        tx, lg, sn, ck = self.transactions, self.logins, self.sensors, self.clicks
        if tx is not None:

            def transactions(
                seed: int, days: int, start: datetime, drifts: tuple[DriftSpec, ...]
            ) -> Iterator[SimRecord]:
                cfg = replace(tx, scenario=replace(tx.scenario, days=days))
                return transaction_records(cfg, seed=seed, start=start, drifts=drifts)

            out["transactions"] = transactions
        if lg is not None:
            out["logins"] = lambda seed, days, start, drifts: login_records(
                lg, seed=seed, days=days, start=start, drifts=drifts
            )
        if sn is not None:
            out["sensor_readings"] = lambda seed, days, start, drifts: sensor_records(
                sn, seed=seed, days=days, start=start, drifts=drifts
            )
        if ck is not None:
            out["clickstream"] = lambda seed, days, start, drifts: click_records(
                ck, seed=seed, days=days, start=start, drifts=drifts
            )
        return out

    def records(self, seed: int) -> Iterator[SimRecord]:
        """Every stream merged in event-time order (events and labels)."""
        # Each stream has a fixed slot, so its seed does not depend on which other
        # streams are enabled: disabling one stream leaves the others unchanged.
        slots = {"transactions": 0, "logins": 1, "sensor_readings": 2, "clickstream": 3}
        return merge(
            factory(seed * 1000 + slots[name], self.days, self.start, self.drifts)
            for name, factory in self.streams().items()
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-able description, written next to generated data."""

        def config(c: object | None) -> dict[str, Any] | None:
            return None if c is None else asdict(c)  # type: ignore[call-overload]

        return {
            "name": self.name,
            "description": self.description,
            "days": self.days,
            "start": self.start.isoformat(),
            "streams": sorted(self.streams()),
            "transactions": config(self.transactions),
            "logins": config(self.logins),
            "sensor_readings": config(self.sensors),
            "clickstream": config(self.clicks),
            "drifts": [d.as_dict() for d in self.drifts],
        }


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="default",
            description="The four streams at their default sizes (transactions: the handbook's "
            "5,000 customers and 10,000 terminals), 183 days.",
            days=183,
        ),
        Scenario(
            name="transactions",
            description="Transactions and chargebacks only, the handbook's defaults, 183 days.",
            days=183,
            logins=None,
            sensors=None,
            clicks=None,
        ),
        Scenario(
            name="small",
            description="A small world for demos and tests: every stream, a few thousand "
            "entities, 30 days.",
            days=30,
            transactions=TransactionStreamConfig(
                TransactionScenario(n_customers=500, n_terminals=1_000)
            ),
            logins=LoginStreamConfig(n_accounts=2_000),
            sensors=SensorStreamConfig(n_machines=8),
            clicks=ClickStreamConfig(n_users=2_000),
        ),
        Scenario(
            name="drift",
            description="Default sizes over 90 days with scheduled drifts from day 45 on.",
            days=90,
            drifts=(
                DriftSpec("transactions", "amount_inflation", 45, {"factor": 1.3}),
                DriftSpec("transactions", "card_testing", 60, {"per_day": 20}),
                DriftSpec("logins", "stuffing_wave", 50, {"per_day": 5}),
                DriftSpec(
                    "sensor_readings",
                    "recalibration",
                    55,
                    {"offset": 5.0, "sensor_type": "temperature", "machine_type": "pump"},
                ),
                DriftSpec("clickstream", "new_bot_type", 65, {"share": 0.05}),
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
