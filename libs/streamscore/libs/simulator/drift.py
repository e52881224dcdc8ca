"""Scheduled drifts: changes injected into a scenario so detectors and retraining have work.

A scenario lists its drifts; the list is written next to the generated data
(``scenario.json``) so tests can check detection delays against it.

>>> d = DriftSpec(stream="transactions", kind="amount_inflation", start_day=20,
...               params={"factor": 1.3})
>>> d.active(19), d.active(20)
(False, True)
>>> d.param("factor"), d.param("missing", 2.0)
(1.3, 2.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The drifts each stream simulator understands (kind -> what it does).
KINDS: Mapping[str, Mapping[str, str]] = {
    "transactions": {
        "amount_inflation": "legitimate amounts multiplied by params.factor from start_day",
        "card_testing": "new fraud pattern: bursts of small amounts (params.per_day terminals)",
    },
    "logins": {
        "stuffing_wave": "credential stuffing from a new country, params.per_day attacks/day",
    },
    "sensor_readings": {
        "recalibration": "params.offset added to one machine type's sensor (params.machine_type)",
    },
    "clickstream": {
        "new_bot_type": "bots with human-like jittered timing, params.share of sessions",
    },
}


@dataclass(frozen=True)
class DriftSpec:
    """One drift: which stream, what changes, from which scenario day, with which parameters."""

    stream: str
    kind: str
    start_day: int
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = KINDS.get(self.stream, {})
        if self.kind not in known:
            msg = f"unknown drift {self.kind!r} for stream {self.stream!r}; known: {sorted(known)}"
            raise ValueError(msg)

    def active(self, day: int) -> bool:
        """Whether the drift applies on scenario day ``day``."""
        return day >= self.start_day

    def param(self, name: str, default: float | str | None = None) -> Any:
        """A parameter, or ``default`` when the scenario does not set it."""
        return self.params.get(name, default)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "kind": self.kind,
            "start_day": self.start_day,
            "params": dict(self.params),
        }


def for_stream(drifts: Sequence[DriftSpec], stream: str) -> list[DriftSpec]:
    """The drifts of one stream."""
    return [d for d in drifts if d.stream == stream]
