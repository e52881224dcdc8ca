"""The columns of a training set, and one training row from one event and its features.

A training row is what the offline path writes per event: ``event_id``,
``event_time``, the event's entity keys (each group's join key, once), every
model input in ``model_features(stream)`` order (``None`` when missing, never
0), and per feature group its status (``PRESENT`` / ``NOT_FOUND``) under
``status_<group>``. A group row is the slice Feast reads for one feature view:
the group's join key, ``event_time`` and the group's features.

Pure: no I/O; the service (:mod:`streamscore.services.training_set`) writes the
rows to Parquet.

>>> from datetime import UTC, datetime
>>> from streamscore.libs.contracts.events import Transaction
>>> from streamscore.libs.features.offline import compute
>>> t = datetime(2026, 1, 5, 12, tzinfo=UTC)
>>> tx = Transaction(event_id="e1", event_time=t, customer_id="C", terminal_id="T", amount=10.0)
>>> [(event, result)] = compute("transactions", [tx])
>>> row = training_row("transactions", event, result)
>>> list(row) == training_columns("transactions")
True
>>> row["customer_id"], row["customer_nb_tx_1d"], row["customer_secs_since_last_tx"]
('C', 1.0, None)
>>> row["status_customer_tx"]
'NOT_FOUND'
>>> g = group_row(groups("transactions")[1], event, result)
>>> list(g)[:3], g["terminal_risk_1d"]
(['terminal_id', 'event_time', 'terminal_nb_tx_1d'], 0.0)
"""

from __future__ import annotations

from typing import Any

from streamscore.libs.contracts.base import Event
from streamscore.libs.features.compute import EventResult
from streamscore.libs.features.definitions import groups, model_features
from streamscore.libs.features.spec import FeatureGroup

EVENT_ID = "event_id"
EVENT_TIME = "event_time"
STATUS_PREFIX = "status_"


def key_columns(stream: str) -> list[str]:
    """The entity keys of ``stream``'s events: each group's join key, once, in group order."""
    keys: list[str] = []
    for g in groups(stream):
        if g.entity.join_key not in keys:
            keys.append(g.entity.join_key)
    return keys


def status_column(group: FeatureGroup) -> str:
    """The column holding a group's status."""
    return f"{STATUS_PREFIX}{group.name}"


def training_columns(stream: str) -> list[str]:
    """Every column of a training row, in order (truth columns are the writer's to add)."""
    return [
        EVENT_ID,
        EVENT_TIME,
        *key_columns(stream),
        *model_features(stream),
        *(status_column(g) for g in groups(stream)),
    ]


def training_row(stream: str, event: Event, result: EventResult) -> dict[str, Any]:
    """One training row: ids, keys, every model feature (``None`` stays ``None``), statuses."""
    row: dict[str, Any] = {EVENT_ID: event.event_id, EVENT_TIME: event.event_time}
    for key in key_columns(stream):
        value = getattr(event, key)
        row[key] = None if value is None else str(value)
    values = result.values
    for name in model_features(stream):
        row[name] = values[name]
    for g in groups(stream):
        row[status_column(g)] = result.statuses[g.name]
    return row


def group_columns(group: FeatureGroup) -> list[str]:
    """The columns of a group's offline (Feast batch source) file."""
    return [group.entity.join_key, EVENT_TIME, *group.feature_names]


def group_row(group: FeatureGroup, event: Event, result: EventResult) -> dict[str, Any]:
    """The values of one group as of ``event``: what Feast's feature view serves at its time."""
    key = getattr(event, group.entity.join_key)
    row: dict[str, Any] = {
        group.entity.join_key: None if key is None else str(key),
        EVENT_TIME: event.event_time,
    }
    values = result.values
    for name in group.feature_names:
        row[name] = values[name]
    return row
