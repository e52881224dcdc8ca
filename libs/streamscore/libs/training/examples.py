"""Labelled examples: the column layout a training run reads, and the arrays it trains on.

The layout is the training set's (``streamscore features offline``,
:func:`~streamscore.libs.features.training_rows.training_columns`) plus a label:

- ``event_id`` (string) and ``event_time`` (``timestamp[us, UTC]``);
- the stream's entity keys (``customer_id``, ``terminal_id`` for transactions);
- every model feature of ``model_features(stream)``, ``float32``, null when
  missing (never 0): exactly the vector the scorer logged;
- the label: ``label`` (bool or 0/1: 1 a reported, unreversed chargeback, 0 a
  negative matured past its horizon) in labelled examples; the simulator's
  ground truth ``truth_fraud`` in a training set built from simulated files;
- optionally ``revision`` (integer) and ``label_time`` (``timestamp[us,
  UTC]``, null for a negative that matured without a label): when an
  ``event_id`` appears more than once (a corrected label), the row with the
  highest ``revision`` wins, then the latest ``label_time``, then the last
  row read (the label joiner's rule, :mod:`streamscore.libs.labels.dataset`).

Any other column (``status_*``, ``truth_*``) is ignored. When the Parquet
key-value metadata carries ``features_schema_hash`` it must equal the live
schema's, so a model never trains on vectors of another feature declaration.

>>> import pyarrow as pa
>>> from streamscore.libs.features.definitions import model_features
>>> cols = required_columns("transactions", LABEL)
>>> cols[:4], cols[-1]
(['event_id', 'event_time', 'customer_id', 'terminal_id'], 'label')
>>> check_schema(pa.schema([pa.field("event_id", pa.string())]), "transactions", LABEL)[0]
'missing columns: event_time, customer_id, terminal_id, tx_amount, ...'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from streamscore.libs.features.definitions import feature_schema_hash, model_features
from streamscore.libs.features.training_rows import EVENT_ID, EVENT_TIME, key_columns

#: The label column of labelled examples (the label joiner's output).
LABEL = "label"
#: The label column of a training set built from simulated files (ground truth).
SIM_LABEL = "truth_fraud"
#: When the label became final (optional; the latest wins for a repeated event).
LABEL_TIME = "label_time"
#: The label's revision (0 first, then one more per correction; optional).
REVISION = "revision"
SCHEMA_HASH_KEY = b"features_schema_hash"


def card_key(stream: str) -> str:
    """The entity whose alerts are counted by CP@k: the first key (the card for transactions).

    >>> card_key("transactions")
    'customer_id'
    """
    return key_columns(stream)[0]


def required_columns(stream: str, label_column: str) -> list[str]:
    """The columns an examples file must have, in layout order."""
    return [EVENT_ID, EVENT_TIME, *key_columns(stream), *model_features(stream), label_column]


def check_schema(schema: pa.Schema, stream: str, label_column: str) -> list[str]:
    """What is wrong with an examples schema for ``stream`` (empty: usable)."""
    problems: list[str] = []
    missing = [c for c in required_columns(stream, label_column) if c not in schema.names]
    if missing:
        shown = missing[:4] + (["..."] if len(missing) > 4 else [])
        problems.append("missing columns: " + ", ".join(shown))
    for name in model_features(stream):
        if name in schema.names and not pa.types.is_floating(schema.field(name).type):
            problems.append(f"feature {name} is {schema.field(name).type}, not a float")
    if label_column in schema.names:
        t = schema.field(label_column).type
        if not (pa.types.is_boolean(t) or pa.types.is_integer(t)):
            problems.append(f"label {label_column} is {t}, not bool or integer")
    meta = schema.metadata or {}
    if SCHEMA_HASH_KEY in meta and meta[SCHEMA_HASH_KEY].decode() != feature_schema_hash(stream):
        problems.append(
            "features_schema_hash differs from the live feature declarations "
            f"({meta[SCHEMA_HASH_KEY].decode()[:12]} vs {feature_schema_hash(stream)[:12]})"
        )
    return problems


@dataclass(frozen=True)
class Examples:
    """Examples as arrays, in event-time order (ties by event id)."""

    feature_names: tuple[str, ...]
    event_id: npt.NDArray[Any]
    event_time_us: npt.NDArray[np.int64]
    card: npt.NDArray[Any]
    X: npt.NDArray[np.float32]
    y: npt.NDArray[np.bool_]
    #: Rows dropped because a later row of the same event id replaced them.
    replaced: int = 0

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask: npt.NDArray[np.bool_]) -> Examples:
        """The rows where ``mask`` is true."""
        return Examples(
            self.feature_names,
            self.event_id[mask],
            self.event_time_us[mask],
            self.card[mask],
            self.X[mask],
            self.y[mask],
        )


def _time_us(column: pa.ChunkedArray) -> npt.NDArray[np.int64]:
    arr = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64)


def from_table(table: pa.Table, stream: str, label_column: str) -> Examples:
    """Arrays of a table in the examples layout (raises ``ValueError`` when it is not).

    Nulls become NaN (XGBoost's missing value); a null label is refused.

    >>> from datetime import UTC, datetime
    >>> names = model_features("transactions")
    >>> t = datetime(2026, 1, 5, tzinfo=UTC)
    >>> cols = {"event_id": ["b", "a", "b"], "event_time": [t, t, t],
    ...         "customer_id": ["C1", "C2", "C1"], "terminal_id": ["T", "T", "T"],
    ...         **{n: pa.array([1.0, None, 2.0], pa.float32()) for n in names},
    ...         "label": [0, 1, 1]}
    >>> ex = from_table(pa.table(cols), "transactions", LABEL)
    >>> ex.event_id.tolist(), ex.y.tolist(), ex.replaced, bool(np.isnan(ex.X[0, 0]))
    (['a', 'b'], [True, True], 1, True)
    """
    problems = check_schema(table.schema, stream, label_column)
    if problems:
        raise ValueError("; ".join(problems))
    if table.column(label_column).null_count:
        msg = f"{table.column(label_column).null_count} rows have no {label_column}"
        raise ValueError(msg)
    key = card_key(stream)
    if table.column(key).null_count:
        msg = f"{table.column(key).null_count} rows have no {key} (CP@k counts by {key})"
        raise ValueError(msg)
    names = tuple(model_features(stream))
    ids = np.asarray(table.column(EVENT_ID).to_numpy(zero_copy_only=False), dtype=object)
    times = _time_us(table.column(EVENT_TIME))
    n = len(ids)
    # 1. The winning row of each event id: the highest revision, then the latest label_time
    #    (a null one counts as earliest), then the last row read.
    zeros = np.zeros(n, dtype=np.int64)
    label_t = zeros
    if LABEL_TIME in table.column_names:
        label_t = _time_us(pc.fill_null(table.column(LABEL_TIME), 0))
    revision = zeros
    if REVISION in table.column_names:
        col = pc.fill_null(table.column(REVISION).cast(pa.int64()), 0)
        revision = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)
    by_id = np.lexsort((np.arange(n), label_t, revision, ids))
    last_of_id = np.r_[ids[by_id][1:] != ids[by_id][:-1], True] if n else np.zeros(0, bool)
    keep = by_id[last_of_id]
    # 2. Event-time order, ties by event id.
    keep = keep[np.lexsort((ids[keep], times[keep]))]
    X = np.empty((len(keep), len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        col = table.column(name).cast(pa.float32()).to_numpy(zero_copy_only=False)
        X[:, j] = np.asarray(col, dtype=np.float32)[keep]
    label = np.asarray(table.column(label_column).to_numpy(zero_copy_only=False))
    card = np.asarray(table.column(key).to_numpy(zero_copy_only=False), dtype=object)
    return Examples(
        feature_names=names,
        event_id=ids[keep],
        event_time_us=times[keep],
        card=card[keep],
        X=X,
        y=label.astype(np.bool_)[keep],
        replaced=n - len(keep),
    )
