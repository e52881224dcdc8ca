"""The vocabulary of feature declarations: entities, windowed aggregates, event features.

A :class:`FeatureGroup` is one Feast feature view: the features of one entity
of one stream, each an aggregate over an event-time window ending at the
event (optionally shifted back by a delay, for label-derived features).

>>> f = WindowedFeature("customer_nb_tx_7d", "count", window_s=7 * DAY)
>>> f.window_days
7.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DAY = 86_400
HOUR = 3_600
MINUTE = 60

Aggregation = Literal[
    "count",  # events in the window
    "sum",
    "mean",
    "std",
    "min",
    "max",
    "ewma",  # exponentially weighted mean, half-life = the window
    "distinct",  # distinct values of ``field``
    "since_last",  # seconds since the entity's previous event (before this one)
    "zscore",  # (field - mean) / std over the window, excluding this event
    "label_rate",  # labelled-positive events / events in the window (labels arrived by now)
]
#: What an empty window yields: an explicit missing value, or 0 where a
#: definition says so (the handbook's terminal risk is 0 on an empty window).
Empty = Literal["missing", "zero"]
Dtype = Literal["float32", "int64"]


@dataclass(frozen=True)
class Entity:
    """A thing features are kept for, and the event field that names it."""

    name: str
    join_key: str
    description: str


@dataclass(frozen=True)
class WindowedFeature:
    """An aggregate over the event-time window ``(t - delay - window, t - delay]``.

    The window includes the current event when ``delay_s`` is 0 (the
    handbook's customer features count the current transaction).
    """

    name: str
    agg: Aggregation
    window_s: int
    field: str | None = None
    delay_s: int = 0
    empty: Empty = "missing"
    description: str = ""

    @property
    def window_days(self) -> float:
        return self.window_s / DAY


@dataclass(frozen=True)
class EventFeature:
    """A feature computed from the event alone (no state), e.g. "during the night"."""

    name: str
    description: str
    dtype: Dtype = "float32"


@dataclass(frozen=True)
class FeatureGroup:
    """The windowed features of one entity of one stream: one Feast feature view.

    ``max_age_s`` bounds how old the group's online values may be before the
    scorer treats them as ``OUTSIDE_MAX_AGE`` (and Feast's TTL).
    """

    name: str
    stream: str
    entity: Entity
    features: tuple[WindowedFeature, ...]
    max_age_s: int
    description: str = ""

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]
