"""Feature-enriched events (``schemas/features/*``): what feature processors hand the scorer.

Each message carries the original event untouched, the model input values by
feature name (``None``: missing, never 0), per feature group its status and
age, when the vector was computed, and the hash of the feature schema it was
computed under (a model whose manifest names another hash refuses it).

>>> from datetime import datetime, timezone
>>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> ev = Transaction(event_id="e1", event_time=t, customer_id="c", terminal_id="t", amount=5.0)
>>> fv = TransactionFeatures(event=ev, values={"tx_amount": 5.0, "customer_nb_tx_1d": None},
...     feature_statuses={"customer_tx": "NOT_FOUND"}, feature_freshness={"customer_tx": None},
...     computed_at=t, schema_hash="0" * 64)
>>> fv.values["customer_nb_tx_1d"] is None
True
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from streamscore.libs.contracts.base import Event, Message, Timestamp
from streamscore.libs.contracts.decisions import (
    MAX_FEATURE_GROUPS,
    FeatureGroup,
    FeatureStatus,
)
from streamscore.libs.contracts.events import Click, Login, SensorReading, Transaction

MAX_FEATURES = 256
#: A feature name (a key of ``values``).
FeatureName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
SchemaHash = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$", min_length=64, max_length=64)]


class FeatureVector(Message, frozen=True):
    """Fields shared by every feature-enriched event."""

    values: Annotated[dict[FeatureName, float | None], msgspec.Meta(max_length=MAX_FEATURES)]
    feature_statuses: Annotated[
        dict[FeatureGroup, FeatureStatus], msgspec.Meta(max_length=MAX_FEATURE_GROUPS)
    ]
    feature_freshness: Annotated[
        dict[FeatureGroup, float | None], msgspec.Meta(max_length=MAX_FEATURE_GROUPS)
    ]
    computed_at: Timestamp
    schema_hash: SchemaHash


def event_of(vector: FeatureVector) -> Event:
    """The event inside a feature vector (every concrete vector type carries one)."""
    event: Event = vector.event  # type: ignore[attr-defined]
    return event


class TransactionFeatures(FeatureVector, frozen=True):
    """A transaction with its features (``features.transactions``)."""

    event: Transaction


class LoginFeatures(FeatureVector, frozen=True):
    """A login with its features (``features.logins``)."""

    event: Login


class SensorFeatures(FeatureVector, frozen=True):
    """A sensor reading with its features (``features.sensor_readings``)."""

    event: SensorReading


class ClickFeatures(FeatureVector, frozen=True):
    """A click with its features (``features.clickstream``)."""

    event: Click
